"""The config section of blind face restoration (GFPGAN): ``task: face``.

GFPGAN's option files spread one model over ``network_g``, ``network_d``, three facial-component
discriminators, an identity network and a dozen loose ``train`` keys. The same roles are here,
with the same names, so ``config import-basicsr train_gfpgan_v1.yml`` is a renaming, not a
rewrite. What GFPGAN hard-codes in Python is a key with GFPGAN's value as the default:

* the optimizers' betas (GFPGAN ignores the option file's and uses (0, 0.99) for G and D and
  (0.9, 0.99) for the component Ds) — written out here, and D's StyleGAN2 correction for lazy
  R1 (lr and betas raised to ``reg_every / (reg_every + 1)``) is applied to ``optim_d``;
* the EMA decay 0.5 ** (32 / 10000), updated every iteration;
* the component crop sizes (eyes 80², mouth 120² at 512 px, scaled with ``out_size``);
* the quirk that the component discriminators' fake term uses the *global* GAN loss
  (``wgan_softplus`` × 0.1) instead of the component one: ``component_d_fake_loss``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from restorekit.config.schema import PartSpec, RunConfig, TrainCore, register_task_config

GFPGAN_EMA_DECAY = 0.5 ** (32 / 10_000)  # GFPGANModel.optimize_parameters: model_ema(decay=...)
COMPONENTS = ("left_eye", "right_eye", "mouth")
#: the names ``train.losses`` may use, and what each is for
LOSS_ROLES = {
    "pixel": "L1 of output and GT (GFPGAN pixel_opt)",
    "perceptual": "VGG perceptual + Gram style (PerceptualLoss; GFPGAN perceptual_opt)",
    "gan": "global GAN loss against network_d (GFPGAN gan_opt, wgan_softplus)",
    "gan_component": "facial-component GAN loss (GFPGAN gan_component_opt, vanilla)",
    "l1": "the L1 of the pyramid, component-style and identity losses (GFPGAN L1_opt)",
}


class FaceTrain(TrainCore):
    optim_g: PartSpec = Field(
        default_factory=lambda: {"type": "Adam", "lr": 2e-3, "betas": [0.0, 0.99]},
        description="Generator optimizer (GFPGAN: Adam 2e-3, betas (0, 0.99)).",
    )
    optim_d: PartSpec = Field(
        default_factory=lambda: {"type": "Adam", "lr": 2e-3, "betas": [0.0, 0.99]},
        description="Global discriminator optimizer; lr and betas get StyleGAN2's lazy-R1 correction.",
    )
    optim_component: PartSpec = Field(
        default_factory=lambda: {"type": "Adam", "lr": 2e-3, "betas": [0.9, 0.99]},
        description="Optimizer of each facial-component discriminator (GFPGAN: betas (0.9, 0.99)).",
    )
    scheduler: PartSpec | None = Field(
        None, description="LR schedule applied to every optimizer (GFPGAN: MultiStepLR [600k, 700k], 0.5)."
    )
    warmup_iter: int = Field(0, ge=0)
    losses: dict[str, PartSpec] = Field(
        description="By role: pixel, perceptual, gan, gan_component, l1 (see restorekit.config.face)."
    )
    pyramid_loss_weight: float = Field(1.0, ge=0, description="Weight of the pyramid restoration loss.")
    remove_pyramid_loss: int | None = Field(
        None, ge=0, description="After this iteration the pyramid weight drops to 1e-12 (GFPGAN: 50000)."
    )
    comp_style_weight: float = Field(200.0, ge=0, description="Gram loss of component-D features.")
    identity_weight: float = Field(10.0, ge=0, description="L1 of ArcFace embeddings of output and GT.")
    r1_reg_weight: float = Field(10.0, ge=0, description="R1 on real images, applied lazily.")
    net_d_reg_every: int = Field(16, ge=1, description="R1 every N iterations, weighted by N.")
    net_d_iters: int = Field(1, ge=1, description="Update the generator every N iterations.")
    net_d_init_iters: int = Field(0, ge=0, description="First N iterations train only the Ds.")
    ema_decay: float = Field(GFPGAN_EMA_DECAY, ge=0.0, lt=1.0, description="EMA of G every iteration.")
    component_d_fake_loss: Literal["global_gan", "component"] = Field(
        "global_gan",
        description="Loss of the component Ds on restored crops. global_gan (default) reproduces "
        "GFPGAN, whose code uses the global wgan_softplus loss there; component uses gan_component.",
    )
    randomize_noise: bool = Field(
        True,
        description="Fresh StyleGAN2 noise at every training forward (GFPGAN). It comes from each "
        "process's torch RNG (restored on resume), so --nproc N equals one process only with false.",
    )
    eye_size: int = Field(80, ge=8, description="Eye crop side at 512 px (scaled by out_size / 512).")
    mouth_size: int = Field(120, ge=8, description="Mouth crop side at 512 px (scaled by out_size / 512).")

    @field_validator("losses")
    @classmethod
    def _known_roles(cls, v: dict[str, PartSpec]) -> dict[str, PartSpec]:
        unknown = [k for k in v if k not in LOSS_ROLES]
        if unknown:
            raise ValueError(f"unknown loss role {unknown[0]!r}; the face task knows {', '.join(LOSS_ROLES)}")
        if "gan" not in v:
            raise ValueError("the global GAN loss 'gan' is required (GFPGAN trains against network_d)")
        return v


@register_task_config
class FaceConfig(RunConfig):
    """Blind face restoration: a face restorer against global and facial-component discriminators."""

    task: Literal["face"] = "face"
    network_g: PartSpec = Field(
        description="{type: GFPGANv1 | GFPGANv1Clean | RestoreFormer, out_size: 512, ...}"
    )
    network_d: PartSpec | None = Field(None, description="{type: StyleGAN2Discriminator, out_size: 512}")
    network_d_left_eye: PartSpec | None = None
    network_d_right_eye: PartSpec | None = None
    network_d_mouth: PartSpec | None = None
    network_identity: PartSpec | None = Field(None, description="{type: ResNetArcFace, ...}; frozen.")
    pretrained: str | None = Field(None, description="Generator weights to start from.")
    pretrained_strict: bool = True
    pretrained_param_key: str | None = None
    pretrained_d: str | None = None
    pretrained_d_left_eye: str | None = None
    pretrained_d_right_eye: str | None = None
    pretrained_d_mouth: str | None = None
    pretrained_identity: str | None = Field(
        None,
        description="ArcFace weights (arcface_resnet18.pth). Required with network_identity unless "
        "identity_random_weights is true (a structural test only: the loss then means nothing).",
    )
    identity_random_weights: bool = False
    train: FaceTrain | None = None

    @property
    def use_components(self) -> bool:
        return self.network_d_left_eye is not None
