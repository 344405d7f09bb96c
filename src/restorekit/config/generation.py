"""The config section of unconditional generation (lightweight-gan): ``task: generation``.

Every lightweight-gan command-line option is a key here, with its default: the networks' own
arguments live in ``network_g`` / ``network_d`` (``LightweightGANGenerator`` /
``LightweightGANDiscriminator``), the training rhythm in ``train``. What lightweight-gan keeps
in trainer flags — augmentation, the gradient penalty, the EMA schedule — is validated here, so
a resumed run never depends on repeating them on the command line.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from restorekit.config.schema import PartSpec, RunConfig, Strict, TrainCore, register_task_config

ADAM = {"type": "Adam", "lr": 2e-4, "betas": [0.5, 0.9]}  # lightweight-gan's optimizer


class EMASchedule(Strict):
    """lightweight-gan's EMA: β 0.995 every 10 steps after step 20k; reset to G every 1000 before 25k."""

    decay: float = Field(0.995, ge=0.0, lt=1.0)
    every: int = Field(10, ge=1)
    start: int = Field(20_000, ge=0, description="Update only after this iteration.")
    reset_every: int = Field(1_000, ge=1, description="Copy G into the EMA every N iterations ...")
    reset_until: int = Field(25_000, ge=0, description="... while the iteration is below this.")


class Augment(Strict):
    """DiffAugment applied to real and fake images before D (lightweight-gan's AugWrapper)."""

    types: tuple[str, ...] = ("cutout", "translation")
    prob: float | Literal["auto"] = Field(
        "auto", description="Probability per batch; auto: min(0.5, (1e5 - N) * 3e-6) for N images."
    )
    ada_target: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="ADA: adapt p so that sign(D(real)) averages this (0.6); none = fixed p.",
    )
    ada_interval: int = Field(4, ge=1, description="ADA: adjust p every N iterations.")


class GenerationTrain(TrainCore):
    optim_g: PartSpec = Field(default_factory=lambda: dict(ADAM))
    optim_d: PartSpec = Field(default_factory=lambda: dict(ADAM))
    augment: Augment = Field(default_factory=Augment)
    gp_every: int = Field(4, ge=1, description="Gradient penalty every N iterations (lightweight-gan: 4).")
    gp_weight: float = Field(10.0, ge=0.0)
    dual_contrast_loss: bool = Field(False, description="The dual contrastive loss instead of the hinge.")
    ema: EMASchedule = Field(default_factory=EMASchedule)


class Samples(Strict):
    """The sample grid written at every validation (fixed latents, kept in the checkpoint)."""

    num: int = Field(16, ge=1, le=256)
    seed: int = Field(0, ge=0)


@register_task_config
class GenerationConfig(RunConfig):
    """Unconditional generation: a generator from latents, trained against a discriminator."""

    task: Literal["generation"] = "generation"
    network_g: PartSpec = Field(description="{type: LightweightGANGenerator, image_size: 256, ...}")
    network_d: PartSpec = Field(description="{type: LightweightGANDiscriminator, image_size: 256, ...}")
    pretrained: str | None = Field(
        None,
        description="Start from a lightweight-gan model_N.pt (G, D and GE load by key; optimizers fresh).",
    )
    samples: Samples = Field(default_factory=Samples)
    train: GenerationTrain | None = None

    @field_validator("network_g", "network_d")
    @classmethod
    def _sized(cls, v: PartSpec) -> PartSpec:
        if "image_size" not in v:
            raise ValueError("image_size is required (the side of the generated images, a power of 2)")
        return v
