"""Config-time checks of ``task: face`` (nothing is read or trained; files only tested for existence).

Every pretrained asset comes by path: a missing one is a one-line error naming the file and the
config key, before any network is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from restorekit.archs.export import check_buildable
from restorekit.archs.info import arch_info
from restorekit.config.face import COMPONENTS, FaceConfig
from restorekit.errors import ConfigError
from restorekit.optim import check_optimizer, check_scheduler
from restorekit.registry import ARCHS, DATASETS, LOSSES
from restorekit.tasks.evaluation import check_val_sets


def check_file(path: str | None, key: str) -> None:
    """A weights file named by ``key`` must exist (restorekit never downloads one)."""
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"{key}: weights file {path} does not exist (restorekit never downloads weights)")


def check_face_config(
    cfg: FaceConfig, extras: Mapping[str, Any], metrics: Mapping[str, dict[str, Any]]
) -> None:
    """Every part ``FaceTask`` builds, by key path."""
    check_buildable(cfg.network_g, "network_g")
    with torch.device("meta"):
        info = arch_info(ARCHS.build(cfg.network_g, "network_g"))
    if info.purpose != "face":
        raise ConfigError(
            f"network_g.type: {cfg.network_g['type']} is a {info.purpose} network; the face task "
            "trains face restorers (GFPGANv1, GFPGANv1Clean, RestoreFormer)"
        )
    check_val_sets(cfg, extras, metrics, need_dataset=True)
    check_file(cfg.pretrained, "pretrained")
    if cfg.train is None:
        return
    train = cfg.train
    if cfg.network_d is None:
        raise ConfigError(
            "network_d: required key is missing (the global discriminator, StyleGAN2Discriminator)"
        )
    check_buildable(cfg.network_d, "network_d")
    check_file(cfg.pretrained_d, "pretrained_d")
    given = [c for c in COMPONENTS if getattr(cfg, f"network_d_{c}") is not None]
    if given and len(given) != len(COMPONENTS):
        missing = next(c for c in COMPONENTS if c not in given)
        raise ConfigError(
            f"network_d_{missing}: the facial-component discriminators come as a set of three "
            f"(left_eye, right_eye, mouth); this config names only {', '.join(given)}"
        )
    for c in given:
        check_buildable(getattr(cfg, f"network_d_{c}"), f"network_d_{c}")
        check_file(getattr(cfg, f"pretrained_d_{c}"), f"pretrained_d_{c}")
    if given and "gan_component" not in train.losses:
        raise ConfigError("train.losses.gan_component: required with the component discriminators")
    if not given and "gan_component" in train.losses:
        raise ConfigError(
            "train.losses.gan_component: set, but there are no network_d_left_eye/... to use it"
        )
    if cfg.network_identity is not None:
        check_buildable(cfg.network_identity, "network_identity")
        if cfg.pretrained_identity is None and not cfg.identity_random_weights:
            raise ConfigError(
                "pretrained_identity: required with network_identity (arcface_resnet18.pth); set "
                "identity_random_weights: true only to test the pipeline"
            )
        check_file(cfg.pretrained_identity, "pretrained_identity")
    for key in ("optim_g", "optim_d", "optim_component"):
        check_optimizer(getattr(train, key), f"train.{key}")
    if train.scheduler is not None:
        check_scheduler(train.scheduler, "train.scheduler")
    for name, spec in train.losses.items():
        LOSSES.check(spec, f"train.losses.{name}")
    if cfg.data.train is not None:
        spec = cfg.data.train.dataset
        DATASETS.check(spec, "data.train.dataset")
        if given and not spec.get("crop_components", False):
            raise ConfigError(
                "data.train.dataset.crop_components: must be true with the component "
                "discriminators (their eye/mouth boxes come with each sample)"
            )
