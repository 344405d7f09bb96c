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


def load_face_restorer(weights: Any, **options: Any) -> Any:
    """A face pipeline (detect, align, restore, paste back); see ``restorekit.faces.pipeline``.

    ``restorekit.load_face_restorer("GFPGANv1.4.pth", upscale=2)(img)`` gives the restored photo;
    ``.process(img)`` also the faces and crops. Imported on first use, like ``load_model``.
    """
    from restorekit.faces.pipeline import load_face_restorer as _load_face_restorer

    return _load_face_restorer(weights, **options)
