"""restorekit: train, evaluate and run image-restoration and image-generation models."""

from typing import Any

__version__ = "0.1.0"


def load_model(source: Any, **options: Any) -> Any:
    """A callable restoring numpy images or tensors; see ``restorekit.inference.api.load_model``.

    ``source``: an exported ``.safetensors``, an official ``.pth``, a checkpoint or run folder.
    Options: ``device``, ``precision``, ``tile``, ``tile_overlap``, ``batch``, ``alpha``,
    ``scale``, ``raw``. The inference code is imported on first use, so ``import restorekit``
    stays instant (no torch).
    """
    from restorekit.inference.api import load_model as _load_model

    return _load_model(source, **options)
