"""Tests of the tasks: shapes, vocabularies, masks and answers against brute-force references."""
