"""restorekit: train, evaluate and run image-restoration and image-generation models."""

__version__ = "0.1.0"
