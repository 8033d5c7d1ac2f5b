"""Tests of the training loop, its command and its saved runs."""
