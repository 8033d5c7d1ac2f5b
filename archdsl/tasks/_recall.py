"""MAD's recall tasks (Poli et al. 2024; mad-lab ``mad/data/instances.py``, ``configs/tasks``):
in-context recall, noisy recall and fuzzy recall, all multi-query as in MAD's benchmark.

A sequence is a stream of key-value pairs whose keys repeat; within one sequence a key always
has the same value. Each value of a key seen before is an answer (the model can only know it
by looking back), and the sequence ends with one more query of a key already shown. Keys come
from the lower half of the (non-noise) vocabulary, values from the upper half.

- ``mad/in_context_recall``: one-token keys and values.
- ``mad/noisy_recall``: pairs are replaced by two noise tokens (from ``noise_vocab`` extra
  tokens) with probability ``frac_noise``; noise is never an answer.
- ``mad/fuzzy_recall``: keys and values are motifs of 1 to 3 distinct tokens (the test set
  always shows keys of the longest size, as MAD's does); sequences are left-padded.

MAD trains recall on every next token and tests on the answers; archdsl trains and tests on the
answers (one loss for every task), which the known-answer tests rely on.
"""

from __future__ import annotations

import torch
from pydantic import Field, model_validator

from archdsl.tasks._base import Batch, SyntheticSettings, Task, in_chunks, register_task, shift


class RecallSettings(SyntheticSettings):
    vocab: int = Field(16, ge=4, le=1_000_000, description="vocabulary (noise tokens included)")
    seq_len: int = Field(128, ge=4, le=1_000_000, description="tokens per sequence, as MAD counts them (even)")
    train_examples: int | None = Field(12_800, ge=1, description="size of the training set; none: fresh draws")

    @model_validator(mode="after")
    def _even(self):
        if self.seq_len % 2:
            raise ValueError(f"seq_len must be even, got {self.seq_len}")
        return self


class NoisyRecallSettings(RecallSettings):
    vocab: int = Field(32, ge=4, le=1_000_000, description="vocabulary, noise tokens included (MAD: 16 + 16)")
    noise_vocab: int = Field(16, ge=1, description="tokens reserved for noise (the top of the vocabulary)")
    frac_noise: float = Field(0.2, ge=0.0, lt=1.0, description="probability that a pair is noise")

    @model_validator(mode="after")
    def _room(self):
        if self.vocab - self.noise_vocab < 2:
            raise ValueError(f"vocab ({self.vocab}) must exceed noise_vocab ({self.noise_vocab}) by at least 2")
        return self


class FuzzyRecallSettings(RecallSettings):
    k_motif: int = Field(3, ge=1, le=8, description="longest key, in tokens")
    v_motif: int = Field(3, ge=1, le=8, description="longest value, in tokens")

    @model_validator(mode="after")
    def _room(self):
        keys, values = (self.vocab - 1) // 2, (self.vocab - 1) - (self.vocab - 1) // 2
        if keys < self.k_motif or values < self.v_motif:
            raise ValueError(f"vocab {self.vocab} is too small for motifs of {self.k_motif} / {self.v_motif} tokens")
        if self.seq_len < 2 * (self.k_motif + self.v_motif):
            raise ValueError(f"seq_len must be at least {2 * (self.k_motif + self.v_motif)} for these motifs")
        return self


def first_occurrence(ids: torch.Tensor) -> torch.Tensor:
    """For ids (n, P): the index of the first position of each row holding the same id (a
    stable sort groups equal ids with the earliest first; O(P log P) per row, not P x P)."""
    order = ids.argsort(dim=1, stable=True)
    ranked = ids.gather(1, order)
    starts = torch.ones_like(ranked, dtype=torch.bool)
    starts[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    positions = torch.arange(ids.shape[1]).expand_as(ids)
    group_start = torch.where(starts, positions, 0).cummax(dim=1).values
    first_sorted = order.gather(1, group_start)
    return torch.empty_like(order).scatter_(1, order, first_sorted)


def distinct_motifs(n: int, pairs: int, size: int, choices: int, g: torch.Generator) -> torch.Tensor:
    """(n, pairs, size) tokens in 0..choices-1, distinct within each motif: each next token is
    drawn among the values not taken yet (skipping the taken ones in increasing order)."""
    out = torch.empty(n, pairs, size, dtype=torch.long)
    for j in range(size):
        token = torch.randint(choices - j, (n, pairs), generator=g)
        if j:
            for taken in out[..., :j].sort(-1).values.unbind(-1):
                token += token >= taken
        out[..., j] = token
    return out


def pair_stream(
    n: int, pairs: int, keys: int, values: int, frac_noise: float, noise: tuple[int, int], g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens, answers), both (n, 2 * pairs): ``pairs - 1`` key-value (or noise) pairs and a
    final query of a key already shown. Key ids are 0..keys-1, value ids keys..keys+values-1."""
    body = pairs - 1
    key = torch.randint(keys, (n, body), generator=g)
    value_of = torch.randint(values, (n, keys), generator=g) + keys  # one value per key and sequence
    value = value_of.gather(1, key)
    is_noise = torch.rand(n, body, generator=g) < frac_noise
    keep = torch.randint(body, (n, 1), generator=g)  # one pair is never noise: the query needs a key
    is_noise.scatter_(1, keep, False)
    # a key was shown before if an earlier non-noise pair had it (noise pairs get ids of their own)
    ids = torch.where(is_noise, keys + torch.arange(body), key)
    answer = (first_occurrence(ids) < torch.arange(body)) & ~is_noise
    low, high = noise
    key = torch.where(is_noise, torch.randint(low, high, (n, body), generator=g), key)
    value = torch.where(is_noise, torch.randint(low, high, (n, body), generator=g), value)
    # the final query repeats a random non-noise pair
    pick = torch.multinomial((~is_noise).float(), 1, generator=g)
    query_key, query_value = key.gather(1, pick), value.gather(1, pick)
    tokens = torch.stack([torch.cat([key, query_key], 1), torch.cat([value, query_value], 1)], 2).flatten(1)
    answers = torch.zeros_like(tokens, dtype=torch.bool)
    answers[:, 1:-1:2] = answer
    answers[:, -1] = True
    return tokens, answers


@register_task
class InContextRecall(Task):
    name = "mad/in_context_recall"
    description = "MAD in-context recall: values of keys seen earlier in the sequence"
    Settings = RecallSettings

    @property
    def seq_len(self) -> int:
        return self.settings.seq_len - 1  # MAD's sequence, shifted by one for next-token prediction

    def _noise(self) -> tuple[float, tuple[int, int], int]:
        return 0.0, (0, 1), self.settings.vocab

    def generate(self, n: int, generator: torch.Generator, *, test: bool = False) -> Batch:
        frac, noise, clean = self._noise()
        keys, pairs = clean // 2, self.settings.seq_len // 2

        def draw(k: int) -> Batch:
            return shift(*pair_stream(k, pairs, keys, clean - keys, frac, noise, generator))

        return in_chunks(n, pairs, draw)


@register_task
class NoisyRecall(InContextRecall):
    name = "mad/noisy_recall"
    description = "MAD noisy recall: in-context recall with pairs of noise tokens in between"
    Settings = NoisyRecallSettings

    def _noise(self) -> tuple[float, tuple[int, int], int]:
        s = self.settings
        clean = s.vocab - s.noise_vocab
        return s.frac_noise, (clean, s.vocab), clean


@register_task
class FuzzyRecall(Task):
    name = "mad/fuzzy_recall"
    description = "MAD fuzzy recall: keys and values are motifs of several tokens"
    Settings = FuzzyRecallSettings

    def generate(self, n: int, generator: torch.Generator, *, test: bool = False) -> Batch:
        pairs = (self.settings.seq_len + 1 - self.settings.k_motif - self.settings.v_motif) // 2 + 1
        return in_chunks(
            n, pairs * (self.settings.k_motif + self.settings.v_motif), lambda k: self._draw(k, generator, test)
        )

    def _draw(self, n: int, g: torch.Generator, test: bool) -> Batch:
        s = self.settings
        pad = s.vocab - 1
        keys = pad // 2  # key tokens 0..keys-1, value tokens keys..pad-1
        total = s.seq_len + 1  # tokens before the shift
        longest = s.k_motif + s.v_motif
        room = total - longest  # the body; the final query (at most `longest` tokens) follows
        pairs = room // 2 + 1  # enough pairs to fill the room, whatever their sizes

        # motifs: distinct tokens per motif, a size per pair
        k_tok = distinct_motifs(n, pairs, s.k_motif, keys, g)
        v_tok = distinct_motifs(n, pairs, s.v_motif, pad - keys, g) + keys
        if test:
            k_len = torch.full((n, pairs), s.k_motif)
        else:
            k_len = torch.randint(1, s.k_motif + 1, (n, pairs), generator=g)
        v_len = torch.randint(1, s.v_motif + 1, (n, pairs), generator=g)
        slot = torch.arange(s.k_motif)
        # a key's identity: its size and its tokens (base keys + 1 digits, unused digits zero)
        digits = torch.where(slot < k_len[..., None], k_tok + 1, 0)
        k_id = (digits * (keys + 1) ** slot).sum(-1)
        # a repeated key takes the value of its first appearance (value tokens and size)
        first = first_occurrence(k_id)  # (n, pairs): index of the first pair with this key
        v_tok = v_tok.gather(1, first[..., None].expand_as(v_tok))
        v_len = v_len.gather(1, first)
        seen = first < torch.arange(pairs)

        # lay the pairs out: keep those that fit in the room
        length = k_len + v_len
        end = length.cumsum(1)
        fits = end <= room
        fits[:, 0] = True  # the first pair always fits (room >= longest)
        body_len = (end * fits).amax(1)
        query = torch.multinomial(fits.float(), 1, generator=g)[:, 0]
        q_len = length.gather(1, query[:, None])[:, 0]
        offset = total - body_len - q_len  # left padding

        tokens = torch.full((n, total + 1), pad)  # one spare column collects what does not fit
        answers = torch.zeros(n, total + 1, dtype=torch.bool)
        rows = torch.arange(n)[:, None]
        start = offset[:, None] + end - length
        for j in range(s.k_motif):
            ok = fits & (j < k_len)
            tokens[rows, torch.where(ok, start + j, total)] = k_tok[..., j]
        for j in range(s.v_motif):
            ok = fits & (j < v_len)
            where = torch.where(ok, start + k_len + j, total)
            tokens[rows, where] = v_tok[..., j]
            answers[rows, where] = seen & ok
        # the final query: the chosen pair's key and value, its value always an answer
        q_start = total - q_len
        qk_len, qv_len = k_len.gather(1, query[:, None])[:, 0], v_len.gather(1, query[:, None])[:, 0]
        qk = k_tok[torch.arange(n), query]
        qv = v_tok[torch.arange(n), query]
        for j in range(s.k_motif):
            tokens[torch.arange(n), torch.where(j < qk_len, q_start + j, total)] = qk[:, j]
        for j in range(s.v_motif):
            where = torch.where(j < qv_len, q_start + qk_len + j, total)
            tokens[torch.arange(n), where] = qv[:, j]
            answers[torch.arange(n), where] = j < qv_len
        tokens, answers = tokens[:, :total], answers[:, :total]
        return shift(tokens, answers)
