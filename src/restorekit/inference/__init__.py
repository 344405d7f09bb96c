"""Inference: uses architectures, image I/O and metrics, never the trainer."""
