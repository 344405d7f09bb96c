"""An infinite, resumable, shardable sampler whose every draw carries its own seed.

Exact resume needs the data order *and* the random augmentation of each sample to depend only on
the run's seed and the sample's global position — not on how many workers prefetched ahead, how
many processes share the data, or where a previous run stopped. So global draw ``g`` uses
permutation ``g // len`` at position ``g % len``, and its augmentation seed is derived from
``(seed, g)``; the sampler yields ``(index, draw_seed)`` and the datasets seed their crop/flip
RNG from it. Under DDP the draws are dealt out in chunks of ``chunk`` (the per-rank batch size):
chunk ``q`` of rank ``r`` of ``w`` is global chunk ``q·w + r``. So one process with batch ``2B``
sees the same samples per step as two processes with batch ``B``, and one process with
``accum_iter: 2`` at batch ``B`` sees them in the same micro-batches: its micro-batch ``r`` is rank
``r``'s batch, which is what lets the two sum the same per-micro-batch gradients, bit for bit.
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
        chunk: int = 1,
    ) -> None:
        if length <= 0:
            raise ValueError("ResumableSampler needs a non-empty dataset")
        self.length = length
        self.seed = seed
        self.start = start
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.chunk = max(1, chunk)

    def global_draw(self, t: int) -> int:
        """The global draw of this rank's ``t``-th sample (0-based, counted from ``start``)."""
        q, i = divmod(t, self.chunk)
        return self.start + (q * self.world_size + self.rank) * self.chunk + i

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch, perm, t = -1, torch.empty(0, dtype=torch.long), 0
        while True:
            g = self.global_draw(t)
            e = g // self.length
            if e != epoch:
                epoch, perm = e, epoch_permutation(self.length, self.seed, e, self.shuffle)
            yield int(perm[g % self.length]), draw_seed(self.seed, g)
            t += 1
