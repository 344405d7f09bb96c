"""The typed, strict schema of a restorekit config (pydantic v2): a common core plus one section
per task.

A config is ``RunConfig`` (what every run has: name, seed, device, where results go, the training
loader, the training core — iterations, accumulation, AMP, compile, ... —, validation cadence and
logging) *extended by the task it names*: ``task: restoration`` validates against
``RestorationConfig``, ``task: adversarial`` against ``AdversarialConfig`` and so on. Each task's
model declares exactly the keys that task reads (its networks, pretrained weights, losses,
optimizers, schedules, EMA, GAN rhythm), so a key another task uses is an error that names that
task, instead of a setting silently ignored or rejected by hand in every task.

Task models register themselves with :func:`register_task_config` (the built-in ones in
``restorekit.config.sections``), so a new kind of work is one new section, and a task defined
only in a test can bring its own. Validation picks the model by ``task:`` (a tagged union); the
JSON schema (``config schema``) shows that union so editors complete per task.

Every section forbids unknown keys, so a typo such as ``trian:`` or ``batch_sise`` is an error
with a did-you-mean. Parts chosen by name (networks, datasets, losses, optimizers, schedulers)
are kept as ``{"type": ..., **kwargs}`` mappings here and checked against the registered
constructor's signature by the task's ``check_config``, so their errors carry the same key paths.
Config objects are frozen: nothing mutates them after validation.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PartSpec = dict[str, Any]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainLoader(Strict):
    """The training data loader: a dataset spec plus how batches are fed."""

    dataset: PartSpec = Field(description="{type: PairedImageDataset | BicubicDataset | ..., ...arguments}")
    batch_size: int = Field(16, ge=1, description="Samples per iteration (per process under DDP).")
    num_workers: int = Field(2, ge=0, description="DataLoader worker processes.")
    prefetch: Literal["auto", "none", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA prefetcher on GPU, plain iteration on CPU."
    )
    pin_memory: bool = Field(True, description="Page-locked host batches (CUDA only; ignored on CPU).")
    persistent_workers: bool = Field(True, description="Keep worker processes alive (workers > 0).")
    prefetch_factor: int = Field(4, ge=1, description="Batches each worker loads ahead (workers > 0).")


class ValSet(Strict):
    """One named validation set with its own metrics.

    ``dataset`` is what the task evaluates on; a generator's set may have none (its samples are
    compared with a reference statistics file). ``metrics`` defaults to the task's own choice
    (PSNR and SSIM for restoration).
    """

    dataset: PartSpec | None = None
    batch_size: int = Field(1, ge=1, description="Images of equal size can be batched.")
    num_workers: int = Field(0, ge=0)
    metrics: dict[str, dict[str, Any]] | None = Field(
        None,
        description="metric name → options, e.g. {psnr: {crop_border: 2, test_y_channel: true}} or "
        "{fid: {reference: stats.npz, num_images: 5000}}; none = the task's defaults",
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


class TrainCore(Strict):
    """What the trainer itself reads; every task's ``train`` section extends it."""

    total_iter: int = Field(ge=1, description="Number of optimizer iterations.")
    accum_iter: int = Field(1, ge=1, description="Micro-batches accumulated per optimizer step.")
    amp: Literal["off", "bf16", "fp16"] = "off"
    compile: Literal["off", "default", "max-autotune"] = "off"
    channels_last: bool = False
    grad_clip: float | None = Field(None, gt=0, description="Clip the gradient norm to this value.")
    cudnn_benchmark: bool = True
    tf32: bool = True
    find_unused_parameters: bool = Field(
        False, description="DDP: allow parameters without gradients (slower; only when a network needs it)."
    )
    nan_retries: int = Field(
        3,
        ge=0,
        description="After a non-finite loss or weight: roll back to the last good checkpoint and retry "
        "with fresh draws this many times, then stop with an error (0: stop at once).",
    )
    dist_timeout: float = Field(
        600,
        gt=0,
        description="DDP: seconds a rank waits for the others in a collective before the job stops "
        "with an error naming the rank that did not arrive (instead of hanging).",
    )


class Val(Strict):
    freq: int | None = Field(None, ge=1, description="Validate every N iterations (and at the end).")
    use_ema: bool = Field(True, description="Validate the EMA weights when EMA is on.")
    save_best: bool = Field(True, description="Keep the checkpoint with the best first metric.")
    baseline: Literal["bicubic", "input"] | None = Field(
        None,
        description="Also report a non-learned baseline at the final validation: MATLAB bicubic, or "
        "the degraded input itself (scale 1: denoising, JPEG).",
    )


class Logger(Strict):
    print_freq: int = Field(100, ge=1)
    save_checkpoint_freq: int = Field(1000, ge=1)
    keep_last: int = Field(3, ge=1, description="Complete checkpoints kept (plus the best).")
    tensorboard: bool = True
    wandb_project: str | None = Field(None, description="Log to W&B (when installed) under this project.")
    progress_bar: bool = True


class RunConfig(Strict):
    """A whole run: the parts every task shares. A task's config model extends it."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Run folder name.")
    task: str = Field(description="What is learned; picks the rest of the schema.")
    seed: int = Field(0, ge=0, lt=2**63, description="Seeds weights, data order, augmentation and noise.")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    experiments_root: str = "experiments"
    data: Data = Field(default_factory=Data)
    train: TrainCore | None = None
    val: Val = Field(default_factory=Val)
    logger: Logger = Field(default_factory=Logger)


#: Every task's config model by task name (filled by :func:`register_task_config`).
TASK_CONFIGS: dict[str, type[RunConfig]] = {}
DEFAULT_TASK = "restoration"


def register_task_config(model: type[RunConfig]) -> type[RunConfig]:
    """Decorator: make ``model`` (a RunConfig subclass with ``task: Literal[NAME]``) the schema of NAME."""
    annotation = model.model_fields["task"].annotation
    names = getattr(annotation, "__args__", ())
    if len(names) != 1 or not isinstance(names[0], str):
        raise TypeError(f"{model.__name__}.task must be annotated Literal['<task name>']")
    TASK_CONFIGS[names[0]] = model
    return model


#: The type configs are annotated with: any task's config.
Config = RunConfig
