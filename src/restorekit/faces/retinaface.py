"""RetinaFace (Deng et al., 2019), the face detector GFPGAN's pipeline uses through facexlib.

The network, its anchors and its decoding follow facexlib's ``detection/retinaface*.py`` (itself
biubug6/Pytorch_Retinaface), so facexlib's released files load with ``strict=True`` once their
``module.`` prefix is stripped (``read_state_dict`` does that, as facexlib's loader does):

* ``detection_Resnet50_Final.pth``: torchvision's ResNet-50 (Bottleneck, [3, 4, 6, 3], stride on
  the 3×3 conv) kept up to ``layer4`` by ``IntermediateLayerGetter`` under ``body.``
  (``body.conv1``, ``body.bn1``, ``body.layer1.0.conv1`` … ``body.layer4.2.bn3``; no ``fc``);
  FPN/SSH at 256 channels;
* ``detection_mobilenet0.25_Final.pth``: MobileNetV1 ×0.25 (``body.stage1..3``; its ``avg``
  and ``fc`` are dropped the same way); FPN/SSH at 64 channels, LeakyReLU 0.1.

Both share ``fpn.output1..3``, ``fpn.merge1..2``, ``ssh1..3.{conv3X3, conv5X5_1, conv5X5_2,
conv7X7_2, conv7x7_3}`` (sic, lower-case x) and ``{Class,Bbox,Landmark}Head.<0..2>.conv1x1``.
Both have 2 anchors per cell. The ResNet-50 layout is written here, without torchvision: the
key names are all torchvision contributes.

Detection is facexlib's ``detect_faces`` as ``FaceRestoreHelper`` calls it (original size, BGR
mean (104, 117, 123) subtracted, no scaling to [0, 1]); NMS is our own greedy loop with
torchvision's semantics (suppress IoU > threshold, areas without the +1 of older code).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restorekit.errors import ConfigError, DataError, WeightsError
from restorekit.faces.types import Face
from restorekit.weights import check_finite, load_into, read_state_dict

NETWORKS: tuple[str, ...] = ("resnet50", "mobilenet0.25")
# facexlib's spellings: RetinaFace(network_name=...) and init_detection_model(model_name=...)
ALIASES = {
    "mobile0.25": "mobilenet0.25",
    "retinaface_resnet50": "resnet50",
    "retinaface_mobile0.25": "mobilenet0.25",
}
WEIGHT_FILES = {
    "resnet50": "detection_Resnet50_Final.pth",
    "mobilenet0.25": "detection_mobilenet0.25_Final.pth",
}

# facexlib's cfg_re50 / cfg_mnet: identical for both networks.
MIN_SIZES: tuple[tuple[int, ...], ...] = ((16, 32), (64, 128), (256, 512))
STEPS: tuple[int, ...] = (8, 16, 32)
VARIANCE: tuple[float, float] = (0.1, 0.2)
BGR_MEAN: tuple[float, float, float] = (104.0, 117.0, 123.0)
ANCHORS = 2  # per cell and level: one per min size


# ------------------------------------------------------------------ building blocks (facexlib's names)
def _conv_bn(cin: int, cout: int, stride: int = 1, leaky: float = 0.0, k: int = 3) -> nn.Sequential:
    """conv (no bias) → BN → LeakyReLU: keys ``.0.weight``, ``.1.*`` (``leaky`` 0 is a ReLU)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, k // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(leaky, inplace=True),
    )


def _conv_bn_linear(cin: int, cout: int) -> nn.Sequential:
    """3×3 conv → BN without activation (SSH branches end linear; ReLU follows the concat)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))


def _conv_dw(cin: int, cout: int, stride: int, leaky: float = 0.1) -> nn.Sequential:
    """MobileNetV1's depthwise 3×3 + pointwise 1×1 pair, each with BN and LeakyReLU 0.1."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.LeakyReLU(leaky, inplace=True),
        nn.Conv2d(cin, cout, 1, 1, 0, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(leaky, inplace=True),
    )


class MobileNetBody(nn.Module):
    """MobileNetV1 ×0.25 up to stage3; returns the stride-8/16/32 features (64/128/256 ch)."""

    out_channels = (64, 128, 256)

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            _conv_bn(3, 8, 2, leaky=0.1),
            _conv_dw(8, 16, 1),
            _conv_dw(16, 32, 2),
            _conv_dw(32, 32, 1),
            _conv_dw(32, 64, 2),
            _conv_dw(64, 64, 1),
        )
        self.stage2 = nn.Sequential(_conv_dw(64, 128, 2), *[_conv_dw(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(_conv_dw(128, 256, 2), _conv_dw(256, 256, 1))

    def forward(self, x: Tensor) -> list[Tensor]:
        c1 = self.stage1(x)
        c2 = self.stage2(c1)
        return [c1, c2, self.stage3(c2)]


class Bottleneck(nn.Module):
    """torchvision's ResNet-50 bottleneck (v1.5: the stride sits on the 3×3 conv)."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet50Body(nn.Module):
    """torchvision's ``resnet50`` without ``avgpool``/``fc``; returns layer2..4 (512/1024/2048 ch)."""

    out_channels = (512, 1024, 2048)

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, (planes, blocks, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))):
            layer = [Bottleneck(cin, planes, stride)]
            cin = planes * Bottleneck.expansion
            layer += [Bottleneck(cin, planes) for _ in range(blocks - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*layer))

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer2(self.layer1(x))
        c3 = self.layer3(c2)
        return [c2, c3, self.layer4(c3)]


class FPN(nn.Module):
    """Top-down pathway: 1×1 laterals, nearest upsampling, 3×3 merges at the two finer levels."""

    def __init__(self, in_channels: tuple[int, ...], out: int) -> None:
        super().__init__()
        leaky = 0.1 if out <= 64 else 0.0  # facexlib: LeakyReLU only for the small network
        self.output1 = _conv_bn(in_channels[0], out, leaky=leaky, k=1)
        self.output2 = _conv_bn(in_channels[1], out, leaky=leaky, k=1)
        self.output3 = _conv_bn(in_channels[2], out, leaky=leaky, k=1)
        self.merge1 = _conv_bn(out, out, leaky=leaky)
        self.merge2 = _conv_bn(out, out, leaky=leaky)

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        o1, o2, o3 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
        o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[-2:], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[-2:], mode="nearest"))
        return [o1, o2, o3]


class SSH(nn.Module):
    """Context module: 3×3 (half the channels) ‖ 5×5 and 7×7 as stacked 3×3s (a quarter each)."""

    def __init__(self, cin: int, out: int) -> None:
        super().__init__()
        leaky = 0.1 if out <= 64 else 0.0
        self.conv3X3 = _conv_bn_linear(cin, out // 2)
        self.conv5X5_1 = _conv_bn(cin, out // 4, leaky=leaky)
        self.conv5X5_2 = _conv_bn_linear(out // 4, out // 4)
        self.conv7X7_2 = _conv_bn(out // 4, out // 4, leaky=leaky)
        self.conv7x7_3 = _conv_bn_linear(out // 4, out // 4)

    def forward(self, x: Tensor) -> Tensor:
        c5 = self.conv5X5_1(x)
        branches = [self.conv3X3(x), self.conv5X5_2(c5), self.conv7x7_3(self.conv7X7_2(c5))]
        return F.relu(torch.cat(branches, dim=1))


class _Head(nn.Module):
    """1×1 conv predicting ``per_anchor`` numbers per anchor, flattened to [N, H·W·anchors, k]."""

    def __init__(self, cin: int, per_anchor: int) -> None:
        super().__init__()
        self.per_anchor = per_anchor
        self.conv1x1 = nn.Conv2d(cin, ANCHORS * per_anchor, 1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1)
        return out.reshape(out.shape[0], -1, self.per_anchor)


def canonical_network(network: str) -> str:
    """``resnet50`` or ``mobilenet0.25`` (facexlib's own spellings accepted), else ConfigError."""
    name = ALIASES.get(network, network)
    if name not in NETWORKS:
        raise ConfigError(f"RetinaFace network {network!r}: expected one of {', '.join(NETWORKS)}")
    return name


class RetinaFace(nn.Module):
    """RetinaFace with facexlib's key names; ``forward`` gives raw head outputs, ``detect`` faces."""

    def __init__(self, network: str = "resnet50") -> None:
        super().__init__()
        self.network = canonical_network(network)
        self.body: nn.Module = ResNet50Body() if self.network == "resnet50" else MobileNetBody()
        width = 256 if self.network == "resnet50" else 64
        self.fpn = FPN(self.body.out_channels, width)
        self.ssh1, self.ssh2, self.ssh3 = SSH(width, width), SSH(width, width), SSH(width, width)
        self.ClassHead = nn.ModuleList(_Head(width, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(_Head(width, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(_Head(width, 10) for _ in range(3))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(box offsets [N,P,4], class logits [N,P,2], landmark offsets [N,P,10])``.

        ``x`` is a BGR batch in 0–255 with ``BGR_MEAN`` already subtracted. The logits are raw
        (facexlib's ``phase='train'`` output); ``detect`` applies the softmax.
        """
        fpn = self.fpn(self.body(x))
        feats = [self.ssh1(fpn[0]), self.ssh2(fpn[1]), self.ssh3(fpn[2])]
        loc = torch.cat([h(f) for h, f in zip(self.BboxHead, feats)], dim=1)
        logits = torch.cat([h(f) for h, f in zip(self.ClassHead, feats)], dim=1)
        landm = torch.cat([h(f) for h, f in zip(self.LandmarkHead, feats)], dim=1)
        return loc, logits, landm

    @torch.no_grad()
    def detect(
        self,
        image: np.ndarray,
        conf_threshold: float = 0.97,
        nms_threshold: float = 0.4,
        resize: int | None = None,
        order: Literal["bgr", "rgb"] = "bgr",
    ) -> list[Face]:
        """Faces in ``image`` (H×W×3 BGR, or RGB with ``order="rgb"``; gray, alpha, 16-bit accepted).

        Defaults are ``FaceRestoreHelper``'s: score > 0.97, NMS IoU 0.4, original size. With
        ``resize`` the image is first scaled (LANCZOS4) so its shorter side is ``resize`` and the
        coordinates are scaled back, as the helper's ``resize`` does (which also multiplies the
        *scores* by the scale, a quirk not copied). Faces come best score first.
        """
        if order not in ("bgr", "rgb"):
            raise ConfigError(f"detect order {order!r}: expected 'bgr' or 'rgb'")
        img = as_bgr(image, order)
        scale = 1.0
        if resize is not None:
            if isinstance(resize, bool) or not isinstance(resize, int) or resize < 1:
                raise ConfigError(f"detect resize {resize!r}: expected a positive whole number of pixels")
            h, w = img.shape[:2]
            scale = min(h, w) / resize
            size = (max(1, int(w / scale)), max(1, int(h / scale)))
            img = cv2.resize(img, size, interpolation=cv2.INTER_LANCZOS4)
        param = next(self.parameters())
        x = torch.from_numpy(img.astype(np.float32) - np.asarray(BGR_MEAN, np.float32))
        x = x.permute(2, 0, 1).unsqueeze(0).to(param.device, param.dtype)
        was_training = self.training
        self.eval()
        try:
            loc, logits, landm = self(x)
        finally:
            self.train(was_training)
        h, w = x.shape[-2:]
        priors = prior_boxes(h, w).to(param.device)
        scores = torch.softmax(logits[0].float(), dim=-1)[:, 1]
        keep = torch.nonzero(scores > conf_threshold).flatten()
        if keep.numel() == 0:
            return []
        size = torch.tensor([w, h], dtype=torch.float32, device=param.device)
        boxes = decode_boxes(loc[0, keep].float(), priors[keep]) * size.repeat(2)
        points = decode_landmarks(landm[0, keep].float(), priors[keep]).view(-1, 5, 2) * size
        kept = nms(boxes, scores[keep], nms_threshold)
        boxes, points = (boxes[kept] * scale).cpu(), (points[kept] * scale).cpu()
        best = scores[keep][kept].cpu()
        return [
            Face(box=b.numpy().astype(np.float32), score=float(s), landmarks=p.numpy().astype(np.float32))
            for b, s, p in zip(boxes, best, points)
        ]


# ------------------------------------------------------------------ anchors, decoding, NMS
def prior_boxes(height: int, width: int) -> Tensor:
    """Anchors ``[P, 4]`` as (cx, cy, w, h) relative to the image, in facexlib's ``PriorBox`` order.

    Level k has ``ceil(height/step) × ceil(width/step)`` cells, row-major, and per cell one anchor
    per min size (square in pixels, so ``w = s/width``, ``h = s/height``). Computed in float64 and
    cast, as facexlib builds the list in Python floats and makes a float32 tensor of it.
    """
    levels = []
    for sizes, step in zip(MIN_SIZES, STEPS):
        rows, cols = math.ceil(height / step), math.ceil(width / step)
        cy = (torch.arange(rows, dtype=torch.float64) + 0.5) * step / height
        cx = (torch.arange(cols, dtype=torch.float64) + 0.5) * step / width
        gy, gx = torch.meshgrid(cy, cx, indexing="ij")
        centre = torch.stack([gx, gy], dim=-1)[:, :, None, :].expand(rows, cols, len(sizes), 2)
        s = torch.tensor(sizes, dtype=torch.float64)
        wh = torch.stack([s / width, s / height], dim=-1).expand(rows, cols, len(sizes), 2)
        levels.append(torch.cat([centre, wh], dim=-1).reshape(-1, 4))
    return torch.cat(levels).float()


def decode_boxes(loc: Tensor, priors: Tensor, variance: tuple[float, float] = VARIANCE) -> Tensor:
    """Offsets ``[P, 4]`` → (x1, y1, x2, y2) relative boxes: SSD's centre/log-size encoding."""
    centre = priors[:, :2] + loc[:, :2] * variance[0] * priors[:, 2:]
    size = priors[:, 2:] * torch.exp(loc[:, 2:] * variance[1])
    top_left = centre - size / 2
    return torch.cat([top_left, top_left + size], dim=1)


def decode_landmarks(pre: Tensor, priors: Tensor, variance: tuple[float, float] = VARIANCE) -> Tensor:
    """Offsets ``[P, 10]`` → 5 relative (x, y) points, each an offset from the anchor centre."""
    pts = pre.reshape(-1, 5, 2)
    return (priors[:, None, :2] + pts * variance[0] * priors[:, None, 2:]).reshape(-1, 10)


def box_iou(box: Tensor, boxes: Tensor) -> Tensor:
    """IoU of one (x1, y1, x2, y2) box with each of ``boxes`` (areas without a +1)."""
    wh = (torch.minimum(box[2:], boxes[:, 2:]) - torch.maximum(box[:2], boxes[:, :2])).clamp(min=0)
    inter = wh[:, 0] * wh[:, 1]
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (area + areas - inter)


def nms(boxes: Tensor, scores: Tensor, threshold: float) -> Tensor:
    """Indices kept by greedy NMS, best score first: a box goes when its IoU with a kept one > threshold.

    torchvision's ``ops.nms`` semantics (which facexlib's ``py_cpu_nms`` calls); equal scores
    keep their input order. One vectorised pass per kept box: detection leaves at most a few
    thousand candidates after the score threshold.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    boxes = boxes[order]
    alive = torch.ones(len(order), dtype=torch.bool, device=boxes.device)
    kept = []
    for i in range(len(order)):
        if not alive[i]:
            continue
        kept.append(i)
        rest = alive[i + 1 :]
        rest &= box_iou(boxes[i], boxes[i + 1 :]) <= threshold
    return order[torch.tensor(kept, dtype=torch.long, device=boxes.device)]


# ------------------------------------------------------------------ images and weights
def as_bgr(image: np.ndarray, order: str = "bgr") -> np.ndarray:
    """H×W×3 BGR in the 0–255 range, as ``FaceRestoreHelper.read_image`` prepares detection input.

    Gray is repeated to three channels, alpha dropped, 16-bit scaled to 0–255 (float).
    """
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        what = f"shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise DataError(f"face detection input: expected an H×W or H×W×C image array, got {what}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] not in (1, 3, 4):
        raise DataError(f"face detection input: expected 1, 3 or 4 channels, got {image.shape[2]}")
    if image.dtype == np.uint16 or (image.dtype != np.uint8 and float(image.max()) > 256):
        image = image.astype(np.float64) / 65535 * 255
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    image = image[:, :, :3]
    return np.ascontiguousarray(image[:, :, ::-1] if order == "rgb" else image)


def recognize_retinaface(sd: dict[str, Tensor]) -> str | None:
    """``resnet50`` / ``mobilenet0.25`` from the backbone's key names, else None."""
    if "body.layer1.0.conv1.weight" in sd:
        return "resnet50"
    if "body.stage1.0.0.weight" in sd:
        return "mobilenet0.25"
    return None


def load_retinaface(path: str | Path, network: str | None = None) -> RetinaFace:
    """RetinaFace from facexlib's weight file, strictly loaded, in eval mode.

    The layout (ResNet-50 or MobileNet-0.25) is read from the keys; ``network``, when given,
    must agree. Every problem is one ``WeightsError`` line naming the file.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        kind = "is a folder, not a file" if p.is_dir() else "does not exist"
        raise WeightsError(
            f"RetinaFace weights {p} {kind}: pass --detector-weights PATH to "
            f"{WEIGHT_FILES['resnet50']} or {WEIGHT_FILES['mobilenet0.25']} (restorekit never downloads)"
        )
    sd, _ = read_state_dict(p)
    found = recognize_retinaface(sd)
    if found is None:
        raise WeightsError(
            f"{p}: not a RetinaFace state dict (no body.layer1.0.conv1.weight or body.stage1.0.0.weight; "
            f"first keys {', '.join(list(sd)[:3])}); expected {' or '.join(WEIGHT_FILES.values())}"
        )
    if network is not None and canonical_network(network) != found:
        raise WeightsError(f"{p}: holds a RetinaFace {found}, not the {canonical_network(network)} asked for")
    check_finite(sd, p)
    model = RetinaFace(found)
    load_into(model, sd, "strict", p)
    return model.eval()
