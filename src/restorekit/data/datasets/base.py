"""``KeyedDataset``: the contract every restorekit dataset follows, SR or not.

**Keys.** A key is an index ``i`` or a pair ``(i, draw_seed)``. ``dataset[i]`` draws its random
choices (crop, flips, degradation parameters) from a fresh, OS-seeded generator;
``dataset[(i, seed)]`` draws them from ``np.random.default_rng(seed)``, so the same key always
gives the bitwise-same sample, whatever the worker process or worker count. The trainer's sampler
(``engine.sampler.ResumableSampler``) hands out such pairs, which is what makes a resumed run see
exactly the batches the uninterrupted run would have seen.

**Subclasses** implement ``__len__`` and ``_load(index, rng)``, and take every random number from
``rng``. A ``_load`` that raises ``UnreadableImageError`` (empty, truncated, not an image) either
fails the sample or, with ``skip_corrupt``, is logged once per message, counted in
``num_skipped`` (per process: each DataLoader worker counts its own) and replaced by the next
index, drawn with a fresh generator from the same seed — so a skipped sample is still a pure
function of its key. Other errors (a wrong scale, a missing file listed in meta-info) are never
skipped: they mean a wrong configuration, not one bad file.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from restorekit.data.io import UnreadableImageError
from restorekit.errors import DataError

# The package's name, not this file's: log filters set for "restorekit.data.datasets" keep working.
log = logging.getLogger("restorekit.data.datasets")


def split_key(key: Any) -> tuple[int, int | None]:
    """``i`` or ``(i, seed)`` (a tuple, list or a 0-d tensor index) → (index, seed or None)."""
    if isinstance(key, tuple | list):
        if len(key) != 2:
            raise TypeError(f"dataset key must be an index or (index, seed), got {key!r}")
        return int(key[0]), int(key[1])
    if isinstance(key, torch.Tensor):
        key = key.item()
    return int(key), None


class KeyedDataset(Dataset):
    """Key handling, seeding and corrupt-file skipping; subclasses implement ``_load``.

    ``cache_bytes`` is the memory held by decoded images a subclass keeps (``cache_images``),
    0 when it keeps none; the trainer may print it.
    """

    cache_bytes: int = 0

    def __init__(self, skip_corrupt: bool = False) -> None:
        self.skip_corrupt = skip_corrupt
        self.num_skipped = 0  # per process: each DataLoader worker counts its own
        self._warned: set[str] = set()

    def __len__(self) -> int:
        raise NotImplementedError

    def _load(self, index: int, rng: np.random.Generator) -> dict[str, Any]:
        """The sample at ``index`` (already in range), every random choice drawn from ``rng``."""
        raise NotImplementedError

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = split_key(key)
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} samples")
        for attempt in range(n):
            rng = np.random.default_rng(seed)
            try:
                return self._load((index + attempt) % n, rng)
            except UnreadableImageError as exc:
                if not self.skip_corrupt:
                    raise
                self.num_skipped += 1
                if str(exc) not in self._warned:
                    self._warned.add(str(exc))
                    log.warning("skipping unreadable image: %s", exc)
        raise DataError(f"{type(self).__name__}: all {n} samples are unreadable")
