"""The config sections of the built-in tasks: what each task reads, and nothing else.

``restoration`` (BasicSR's SRModel) has one network, ``network_g``, its pretrained weights,
pixel losses, one optimizer and schedule and an optional EMA. ``adversarial`` (SRGAN, ESRGAN,
Real-ESRGAN) adds the discriminator role (``network_d`` with its own weights, optimizer and
schedule), the G/D rhythm and the Real-ESRGAN degradation. The YAML shape is the one the
toolkit always had; the difference is that ``network_d`` under ``task: restoration`` is now
rejected by the schema itself, with a message naming the task that reads it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from restorekit.config.schema import PartSpec, RunConfig, TrainCore, register_task_config


class RestorationTrain(TrainCore):
    optim_g: PartSpec = Field(description="{type: Adam | AdamW | SGD, lr: ..., ...}")
    scheduler: PartSpec | None = Field(None, description="{type: MultiStepRestartLR, ...}; none = constant.")
    warmup_iter: int = Field(0, ge=0, description="Linear LR warm-up iterations.")
    losses: dict[str, PartSpec] = Field(
        description="Named losses, e.g. {pixel: {type: L1Loss, loss_weight: 1.0}}; their sum is minimised."
    )
    ema_decay: float = Field(0.0, ge=0.0, lt=1.0, description="EMA of the generator; 0 turns it off.")

    @field_validator("losses")
    @classmethod
    def _some_loss(cls, v: dict[str, PartSpec]) -> dict[str, PartSpec]:
        if not v:
            raise ValueError("at least one loss is needed")
        return v


@register_task_config
class RestorationConfig(RunConfig):
    """Supervised restoration: net_g(lq) ≈ gt (super-resolution, denoising, artefact removal)."""

    task: Literal["restoration"] = "restoration"
    scale: int = Field(ge=1, description="Upscaling factor (1 for denoising / restoration).")
    network_g: PartSpec = Field(description="{type: EDSR | MSRResNet | RRDBNet | ..., ...arguments}")
    pretrained: str | None = Field(None, description="Weights to start from (.safetensors or .pth).")
    pretrained_strict: bool = Field(
        True, description="false: load the tensors that fit by name and shape (BasicSR's strict_load_g)."
    )
    pretrained_param_key: str | None = Field(
        None,
        description="Key of the weights inside a BasicSR-style file (params, params_ema); none = "
        "params_ema when present, else params (the choice is logged).",
    )
    train: RestorationTrain | None = None


class AdversarialTrain(RestorationTrain):
    optim_d: PartSpec | None = Field(None, description="Discriminator optimizer.")
    scheduler_d: PartSpec | None = Field(
        None, description="Discriminator LR schedule; none = the same as scheduler (as in BasicSR)."
    )
    net_d_iters: int = Field(1, ge=1, description="Update the generator every N iterations (D every one).")
    net_d_init_iters: int = Field(
        0, ge=0, description="First N iterations train only the discriminator (generator frozen)."
    )
    usm_gt: tuple[str, ...] = Field(
        (),
        description="Losses (names in train.losses) whose target is the unsharp-masked GT, as "
        "Real-ESRGAN does for L1 and perceptual; naming the GAN loss shows D sharpened real images.",
    )


@register_task_config
class AdversarialConfig(RestorationConfig):
    """Adversarial restoration: a generator and a discriminator updated in alternation."""

    task: Literal["adversarial"] = "adversarial"  # type: ignore[assignment]
    network_d: PartSpec | None = Field(
        None, description="Discriminator {type: VGGStyleDiscriminator | UNetDiscriminatorSN, ...}."
    )
    pretrained_d: str | None = Field(None, description="Discriminator weights to start from.")
    pretrained_d_strict: bool = True
    pretrained_d_param_key: str | None = None
    degradation: dict[str, Any] | None = Field(
        None,
        description="Real-ESRGAN second-order degradation made on the training device from "
        "RealESRGANDataset batches; RealESRGANDegradation's arguments.",
    )
    train: AdversarialTrain | None = None  # type: ignore[assignment]
