"""Batching samples whose images may disagree in channels (a gray file among RGB ones).

``torch.utils.data.default_collate`` stops mid-training with a ``torch.stack`` traceback when one
image of a batch has 1 channel and the others 3: a single gray photo in a colour data set.
Repeating a gray channel three times is lossless, so that case is converted; any other
disagreement (an RGBA file, different sizes) is one line naming the file and both shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import default_collate

from restorekit.errors import DataError

_PATH_KEYS = ("gt_path", "lq_path")


def _fix(samples: Sequence[dict[str, Any]], key: str) -> None:
    tensors = [s[key] for s in samples]
    channels = {t.shape[0] for t in tensors if t.dim() == 3}
    if len(channels) < 2:
        return
    most = max(channels)
    for s in samples:
        t = s[key]
        if t.dim() == 3 and t.shape[0] == 1 and most == 3:
            s[key] = t.expand(3, -1, -1).contiguous()  # gray in a colour set: lossless
    shapes = {tuple(s[key].shape) for s in samples}
    if len(shapes) > 1:
        odd = next(s for s in samples if tuple(s[key].shape) != tuple(samples[0][key].shape))
        name = next((str(odd[k]) for k in _PATH_KEYS if k in odd), "a sample")
        raise DataError(
            f"{name}: {key} has shape {tuple(odd[key].shape)}, other images of its batch "
            f"{tuple(samples[0][key].shape)}; keep one kind of image per data set"
        )


def collate(samples: list[dict[str, Any]]) -> Any:
    """``default_collate``, with gray images in a colour batch converted to RGB."""
    if samples and isinstance(samples[0], dict):
        for key, value in samples[0].items():
            if isinstance(value, torch.Tensor) and value.dim() == 3:
                _fix(samples, key)
    return default_collate(samples)
