"""An infinite, resumable, shardable sampler whose every draw carries its own seed.

Exact resume needs the data order *and* the random augmentation of each sample to depend only on
the run's seed and the sample's global position — not on how many workers prefetched ahead, how
many processes share the data, or where a previous run stopped. So global draw ``g`` uses
permutation ``g // len`` at position ``g % len``, and its augmentation seed is derived from
``(seed, g)``; the sampler yields ``(index, draw_seed)`` and the datasets seed their crop/flip
RNG from it. Under DDP, rank ``r`` of ``w`` takes draws ``start + r, start + r + w, ...``, so one
process with batch ``2B`` sees the same samples per step as two processes with batch ``B``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


def draw_seed(seed: int, g: int) -> int:
    """A 63-bit seed for global draw ``g`` (SeedSequence mixes well even for adjacent g)."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, g]).generate_state(1, dtype=np.uint64)[0] >> 1)


def epoch_permutation(length: int, seed: int, epoch: int, shuffle: bool = True) -> torch.Tensor:
    if not shuffle:
        return torch.arange(length)
    gen = torch.Generator().manual_seed((seed * 1_000_003 + epoch) & 0x7FFFFFFFFFFFFFFF)
    return torch.randperm(length, generator=gen)


class ResumableSampler(Sampler[tuple[int, int]]):
    """Yields ``(index, draw_seed)`` forever, starting at global draw ``start``."""

    def __init__(
        self,
        length: int,
        seed: int,
        start: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ) -> None:
        if length <= 0:
            raise ValueError("ResumableSampler needs a non-empty dataset")
        self.length = length
        self.seed = seed
        self.start = start
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = self.start + self.rank
        epoch, perm = -1, torch.empty(0, dtype=torch.long)
        while True:
            e = g // self.length
            if e != epoch:
                epoch, perm = e, epoch_permutation(self.length, self.seed, e, self.shuffle)
            yield int(perm[g % self.length]), draw_seed(self.seed, g)
            g += self.world_size
