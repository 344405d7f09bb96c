"""The typed, strict schema of a restorekit config (pydantic v2).

Every section forbids unknown keys, so a typo such as ``trian:`` or ``batch_sise`` is an error
with a did-you-mean instead of a silently ignored setting. Parts chosen by name (``network_g``,
datasets, losses, optimizers, schedulers) are kept as ``{"type": ..., **kwargs}`` mappings here
and checked against the registered constructor's signature by ``restorekit.config.check_parts``,
so their errors carry the same key paths. Config objects are frozen: nothing mutates them after
validation; derived values live in the code that derives them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

PartSpec = dict[str, Any]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainLoader(Strict):
    """The training data loader: a dataset spec plus how batches are fed."""

    dataset: PartSpec = Field(description="{type: PairedImageDataset | BicubicDataset, ...arguments}")
    batch_size: int = Field(16, ge=1, description="Samples per iteration (per process under DDP).")
    num_workers: int = Field(2, ge=0, description="DataLoader worker processes.")
    prefetch: Literal["auto", "none", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA prefetcher on GPU, plain iteration on CPU."
    )
    pin_memory: bool = True


class ValSet(Strict):
    """One named validation set with its own metrics."""

    dataset: PartSpec
    batch_size: int = Field(1, ge=1, description="Images of equal size can be batched.")
    num_workers: int = Field(0, ge=0)
    metrics: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {"psnr": {}, "ssim": {}},
        description="metric name → options, e.g. {psnr: {crop_border: 2, test_y_channel: true}}",
    )
    save_images: bool = Field(False, description="Write the outputs of each validation round.")


class Data(Strict):
    train: TrainLoader | None = None
    val: dict[str, ValSet] = Field(default_factory=dict, description="Validation sets by name.")
    skip_corrupt: bool = Field(
        False, description="Skip (and count) unreadable training images instead of stopping."
    )
    degrade_on: Literal["host", "device"] = Field(
        "host",
        description="Where on-the-fly LQ images are made: in the loader workers (host) or batched on "
        "the training device (device), so that workers only decode and crop.",
    )


class Train(Strict):
    total_iter: int = Field(ge=1, description="Number of optimizer iterations.")
    optim_g: PartSpec = Field(description="{type: Adam | AdamW | SGD, lr: ..., ...}")
    scheduler: PartSpec | None = Field(None, description="{type: MultiStepRestartLR, ...}; none = constant.")
    warmup_iter: int = Field(0, ge=0, description="Linear LR warm-up iterations.")
    losses: dict[str, PartSpec] = Field(
        description="Named losses, e.g. {pixel: {type: L1Loss, loss_weight: 1.0}}; their sum is minimised."
    )
    ema_decay: float = Field(0.0, ge=0.0, lt=1.0, description="EMA of the generator; 0 turns it off.")
    grad_clip: float | None = Field(None, gt=0, description="Clip the gradient norm to this value.")
    accum_iter: int = Field(1, ge=1, description="Micro-batches accumulated per optimizer step.")
    amp: Literal["off", "bf16", "fp16"] = "off"
    channels_last: bool = False
    compile: Literal["off", "default", "max-autotune"] = "off"
    cudnn_benchmark: bool = True
    tf32: bool = True
    find_unused_parameters: bool = Field(
        False, description="DDP: allow parameters without gradients (slower; only when a network needs it)."
    )
    # adversarial task (two networks): the discriminator's optimizer, schedule and update rhythm
    optim_d: PartSpec | None = Field(None, description="Discriminator optimizer (task adversarial).")
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

    @field_validator("losses")
    @classmethod
    def _some_loss(cls, v: dict[str, PartSpec]) -> dict[str, PartSpec]:
        if not v:
            raise ValueError("at least one loss is needed")
        return v


class Val(Strict):
    freq: int | None = Field(None, ge=1, description="Validate every N iterations (and at the end).")
    use_ema: bool = Field(True, description="Validate the EMA weights when EMA is on.")
    save_best: bool = Field(True, description="Keep the checkpoint with the best first metric.")
    baseline: Literal["bicubic"] | None = Field(
        None, description="Also report a non-learned baseline (MATLAB bicubic) at the final validation."
    )


class Logger(Strict):
    print_freq: int = Field(100, ge=1)
    save_checkpoint_freq: int = Field(1000, ge=1)
    keep_last: int = Field(3, ge=1, description="Complete checkpoints kept (plus the best).")
    tensorboard: bool = True
    wandb_project: str | None = Field(None, description="Log to W&B (when installed) under this project.")
    progress_bar: bool = True


class Config(Strict):
    """A whole run: what to train, on what, how, and where the results go."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Run folder name.")
    task: str = Field("restoration", description="restoration | adversarial (GAN: network_d, optim_d)")
    scale: int = Field(ge=1, description="Upscaling factor (1 for denoising / restoration).")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    experiments_root: str = "experiments"
    network_g: PartSpec = Field(description="{type: EDSR | MSRResNet | RRDBNet | ..., ...arguments}")
    pretrained: str | None = Field(None, description="Weights to start from (.safetensors or .pth).")
    pretrained_strict: bool = True
    network_d: PartSpec | None = Field(
        None, description="Discriminator {type: VGGStyleDiscriminator | UNetDiscriminatorSN, ...}."
    )
    pretrained_d: str | None = Field(None, description="Discriminator weights to start from.")
    pretrained_d_strict: bool = True
    degradation: dict[str, Any] | None = Field(
        None,
        description="Real-ESRGAN second-order degradation made on the training device from "
        "RealESRGANDataset batches (task adversarial); RealESRGANDegradation's arguments.",
    )
    data: Data = Field(default_factory=Data)
    train: Train | None = None
    val: Val = Field(default_factory=Val)
    logger: Logger = Field(default_factory=Logger)
