"""MTCNN (Zhang et al., 2016): offline face detection with five landmarks.

The three networks and the cascade follow facenet-pytorch 2.6.0 (``models/mtcnn.py``,
``models/utils/detect_face.py``), so the ``pnet.pt`` / ``rnet.pt`` / ``onet.pt`` files shipped in
its wheel load strictly and give its boxes, scores and points. Those files are plain state dicts
saved in torch's legacy (non-zip) format; ``torch.load(weights_only=True)`` reads them, so no
pickle code ever runs (``read_state_dict``). The package itself is never imported: it pins an old
torch and pulls in torchvision, which restorekit does not use.

The cascade, per batch of equally sized RGB images in 0–255:

1. an image pyramid from ``12 / min_face_size`` down by ``factor`` while the short side is ≥ 12;
   P-Net on each level (area resize, ``(x - 127.5) / 128``), cells with score ≥ ``thresholds[0]``
   become 12×12 boxes at stride 2; NMS 0.5 per level and image, then 0.7 per image over all
   levels; box regression (widths without +1, as facenet-pytorch), squared up (``rerec``);
2. R-Net on 24×24 crops, score > ``thresholds[1]``, NMS 0.7, regression (widths with +1), square;
3. O-Net on 48×48 crops, score > ``thresholds[2]``, landmarks decoded against the O-Net input box,
   regression, then NMS 0.7 with the *Min* overlap (intersection over the smaller box, +1 areas).

Crops are taken as facenet-pytorch takes them: the integer box clipped to the image and resized
(no zero padding of the part outside, which the original MATLAB code had). The one change: a
box that lies wholly outside the image is dropped; facenet-pytorch skipped its crop but kept the
box, shifting every later crop against its box. Points come out as the networks give them:
eye on the image's left, eye on the image's right, nose, mouth left, mouth right, which is the
FFHQ template's order (``restorekit.faces.align``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from restorekit.errors import ConfigError, DataError, WeightsError
from restorekit.faces.types import Face
from restorekit.weights import check_finite, load_into, read_state_dict

WEIGHT_FILES = ("pnet.pt", "rnet.pt", "onet.pt")
THRESHOLDS = (0.6, 0.7, 0.7)
MIN_FACE_SIZE = 20
FACTOR = 0.709
BATCH = 512  # crops per R-/O-Net call: facenet-pytorch's bound on memory for images with many boxes


# ------------------------------------------------------------------ networks (facenet-pytorch's key names)
class PNet(nn.Module):
    """Fully convolutional proposal net: 12×12 windows at stride 2 → (box offsets, face probability)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(offsets [N,4,h,w], probabilities [N,2,h,w])``; channel 1 is "face"."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


def _flatten_wh(x: Tensor) -> Tensor:
    # the Caffe-converted dense layers expect (W, H, C) order, hence facenet's permute(0, 3, 2, 1)
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class RNet(nn.Module):
    """Refinement net on 24×24 crops → (box offsets [N,4], probabilities [N,2])."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu4(self.dense4(_flatten_wh(self.prelu3(self.conv3(x)))))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """Output net on 48×48 crops → (box offsets [N,4], landmarks [N,10] as x1..x5 y1..y5, probs [N,2])."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu5(self.dense5(_flatten_wh(self.prelu4(self.conv4(x)))))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


# ------------------------------------------------------------------ box helpers (facenet-pytorch's sums)
def nms(boxes: Tensor, scores: Tensor, threshold: float, mode: str = "union") -> Tensor:
    """Greedy NMS; indices kept, best score first. A box goes when its overlap with a kept one > threshold.

    ``union``: IoU with areas ``(x2-x1)·(y2-y1)``, torchvision's ``nms`` that facenet-pytorch calls
    in stages 1–2. ``min``: intersection over the smaller area with the +1 pixel convention, its
    ``nms_numpy(..., 'Min')`` of stage 3, which removes a small box nested in a bigger one that
    IoU keeps. Runs on the host: a few thousand boxes at most, and one transfer beats a device
    sync per kept box.
    """
    if mode not in ("union", "min"):
        raise ConfigError(f"nms mode {mode!r}: expected 'union' or 'min'")
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    b = boxes.detach().cpu().numpy().astype(np.float32)
    s = scores.detach().cpu().numpy()
    one = np.float32(1.0 if mode == "min" else 0.0)
    area = (b[:, 2] - b[:, 0] + one) * (b[:, 3] - b[:, 1] + one)
    order = np.argsort(-s, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]) + one)
        h = np.maximum(0.0, np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]) + one)
        inter = w * h
        if mode == "min":
            overlap = inter / np.minimum(area[i], area[rest])
        else:
            overlap = inter / (area[i] + area[rest] - inter)
        order = rest[overlap <= threshold]
    return torch.as_tensor(np.asarray(keep, dtype=np.int64), device=boxes.device)


def batched_nms(
    boxes: Tensor, scores: Tensor, groups: Tensor, threshold: float, mode: str = "union"
) -> Tensor:
    """``nms`` within each group (image) only: boxes are shifted apart by group, as torchvision does."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    offsets = groups.to(boxes) * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, threshold, mode)


def bbreg(boxes: Tensor, reg: Tensor) -> Tensor:
    """Apply regression offsets (fractions of the +1 width/height) to ``boxes[:, :4]``, in place."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    boxes[:, :4] = boxes[:, :4] + reg * torch.stack([w, h, w, h], dim=1)
    return boxes


def rerec(boxes: Tensor) -> Tensor:
    """Make ``boxes[:, :4]`` square around their centre (side = the longer side), in place."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    boxes[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    boxes[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    boxes[:, 2:4] = boxes[:, :2] + side[:, None]
    return boxes


def pad(boxes: Tensor, width: int, height: int) -> np.ndarray:
    """Integer crop windows ``[K, 4]`` as (x, y, ex, ey), 1-based starts, clipped to the image.

    The crop of box k is ``image[y-1:ey, x-1:ex]``; values are truncated toward zero first.
    """
    b = boxes[:, :4].trunc().int().cpu().numpy()
    b[:, 0] = np.maximum(b[:, 0], 1)
    b[:, 1] = np.maximum(b[:, 1], 1)
    b[:, 2] = np.minimum(b[:, 2], width)
    b[:, 3] = np.minimum(b[:, 3], height)
    return b


def generate_boxes(reg: Tensor, probs: Tensor, scale: float, threshold: float) -> tuple[Tensor, Tensor]:
    """P-Net cells with probability ≥ threshold → ``(boxes [K, 9], image index [K])``.

    A box row is x1 y1 x2 y2, score, then the cell's four regression offsets.
    """
    stride, cell = 2, 12
    mask = probs >= threshold
    idx = mask.nonzero()
    score = probs[mask]
    offsets = reg.permute(1, 0, 2, 3)[:, mask].permute(1, 0)
    xy = idx[:, 1:].to(reg.dtype).flip(1)
    q1 = ((stride * xy + 1) / scale).floor()
    q2 = ((stride * xy + cell) / scale).floor()
    return torch.cat([q1, q2, score[:, None], offsets], dim=1), idx[:, 0]


def pyramid_scales(height: int, width: int, min_face_size: float, factor: float) -> list[float]:
    """Scales of the P-Net pyramid: ``12/min_face_size`` times powers of ``factor``, short side ≥ 12."""
    m = 12.0 / min_face_size
    short = min(height, width) * m
    scales, scale = [], m
    while short >= 12:
        scales.append(scale)
        scale *= factor
        short *= factor
    return scales


def _normalise(x: Tensor) -> Tensor:
    return (x - 127.5) * 0.0078125


def _run(net: nn.Module, x: Tensor) -> tuple[Tensor, ...]:
    """``net(x)`` in the net's dtype, outputs back in float32."""
    dtype = next(net.parameters()).dtype
    return tuple(o.float() for o in net(x.to(dtype)))


# ------------------------------------------------------------------ the detector
class MTCNN(nn.Module):
    """P-, R- and O-Net with facenet-pytorch's defaults; ``detect``/``detect_batch`` give ``Face`` lists."""

    def __init__(
        self,
        min_face_size: float = MIN_FACE_SIZE,
        thresholds: Sequence[float] = THRESHOLDS,
        factor: float = FACTOR,
    ) -> None:
        super().__init__()
        if not min_face_size > 0:
            raise ConfigError(f"MTCNN min_face_size {min_face_size!r}: expected a positive number of pixels")
        if len(thresholds) != 3 or not all(0 <= t < 1 for t in thresholds):
            raise ConfigError(f"MTCNN thresholds {list(thresholds)!r}: expected three numbers in [0, 1)")
        if not 0 < factor < 1:
            raise ConfigError(f"MTCNN factor {factor!r}: expected a number in (0, 1)")
        self.min_face_size = float(min_face_size)
        self.thresholds = tuple(float(t) for t in thresholds)
        self.factor = float(factor)
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        self.eval()

    @torch.no_grad()
    def detect(self, image: np.ndarray | Tensor, order: str = "bgr") -> list[Face]:
        """Faces in one H×W×3 image (BGR by default, ``order="rgb"`` else), best score first."""
        return self.detect_batch([image], order)[0]

    @torch.no_grad()
    def detect_batch(
        self, images: Sequence[np.ndarray | Tensor] | np.ndarray, order: str = "bgr"
    ) -> list[list[Face]]:
        """Faces per image. Images of one size run as one batch; mixed sizes run size by size."""
        arrays = [to_rgb_tensor(im, order) for im in _as_list(images)]
        out: list[list[Face]] = [[] for _ in arrays]
        sizes: dict[tuple[int, int], list[int]] = {}
        for i, a in enumerate(arrays):
            sizes.setdefault(tuple(a.shape[1:]), []).append(i)
        param = next(self.parameters())
        for idx in sizes.values():
            batch = torch.stack([arrays[i] for i in idx]).to(param.device)
            boxes, points, inds = self.cascade(batch)
            boxes, points, inds = boxes.cpu().numpy(), points.cpu().numpy(), inds.cpu().numpy()
            for k, i in enumerate(idx):
                sel = inds == k
                out[i] = [Face(b[:4], float(b[4]), p) for b, p in zip(boxes[sel], points[sel])]
        return out

    @torch.no_grad()
    def cascade(self, imgs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The three stages on an RGB batch ``[N, 3, H, W]`` in 0–255.

        Boxes and points are kept in float32 whatever the networks' dtype: in float16 a
        coordinate near 2000 px would be rounded to whole pixels.

        Returns ``(boxes [K, 5] x1 y1 x2 y2 score, points [K, 5, 2], image index [K])``, best score
        first within each image.
        """
        boxes, inds = self._stage1(imgs)
        points = torch.zeros(0, 5, 2, device=imgs.device, dtype=imgs.dtype)
        if len(boxes):
            boxes, inds, reg, score = self._refine(imgs, boxes, inds, 24)
            keep = score > self.thresholds[1]
            boxes = torch.cat([boxes[keep, :4], score[keep, None]], dim=1)
            inds, reg = inds[keep], reg[keep]
            pick = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
            boxes = rerec(bbreg(boxes[pick], reg[pick]))
            inds = inds[pick]
        if len(boxes):
            boxes, inds, (reg, lm), score = self._refine(imgs, boxes, inds, 48)
            keep = score > self.thresholds[2]
            boxes = torch.cat([boxes[keep, :4], score[keep, None]], dim=1)
            inds, reg, lm = inds[keep], reg[keep], lm[keep]
            bw = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
            bh = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
            px = bw * lm[:, :5] + boxes[:, 0:1] - 1
            py = bh * lm[:, 5:] + boxes[:, 1:2] - 1
            points = torch.stack([px, py], dim=2)
            boxes = bbreg(boxes, reg)
            pick = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7, mode="min")
            boxes, inds, points = boxes[pick], inds[pick], points[pick]
        return boxes, points, inds

    def _stage1(self, imgs: Tensor) -> tuple[Tensor, Tensor]:
        _, _, h, w = imgs.shape
        found, found_inds = [], []
        for scale in pyramid_scales(h, w, self.min_face_size, self.factor):
            level = F.interpolate(imgs, size=(int(h * scale + 1), int(w * scale + 1)), mode="area")
            reg, probs = _run(self.pnet, _normalise(level))
            boxes, inds = generate_boxes(reg, probs[:, 1], scale, self.thresholds[0])
            pick = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.5)
            found.append(boxes[pick])
            found_inds.append(inds[pick])
        if not found:  # the image is smaller than the smallest face asked for
            return imgs.new_zeros(0, 5), torch.zeros(0, dtype=torch.long, device=imgs.device)
        boxes, inds = torch.cat(found), torch.cat(found_inds)
        pick = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
        boxes, inds = boxes[pick], inds[pick]
        rw = boxes[:, 2] - boxes[:, 0]
        rh = boxes[:, 3] - boxes[:, 1]
        reg = boxes[:, 5:9] * torch.stack([rw, rh, rw, rh], dim=1)
        return rerec(torch.cat([boxes[:, :4] + reg, boxes[:, 4:5]], dim=1)), inds

    def _refine(self, imgs: Tensor, boxes: Tensor, inds: Tensor, size: int):
        """Crop every box (clipped, resized to ``size``) and run R-Net (24) or O-Net (48) on the crops.

        Returns ``(boxes, inds, outputs, face scores)`` for the boxes that have a crop at all.
        """
        _, _, h, w = imgs.shape
        win = pad(boxes, w, h)
        valid = (win[:, 3] > win[:, 1] - 1) & (win[:, 2] > win[:, 0] - 1)
        if not valid.all():
            sel = torch.as_tensor(np.flatnonzero(valid), device=boxes.device)
            boxes, inds, win = boxes[sel], inds[sel], win[valid]
        ind_list = inds.tolist()
        crops = [
            F.interpolate(imgs[i : i + 1, :, y - 1 : ey, x - 1 : ex], size=(size, size), mode="area")
            for i, (x, y, ex, ey) in zip(ind_list, win.tolist())
        ]
        if not crops:
            empty = imgs.new_zeros(0, 4)
            outs = empty if size == 24 else (empty, imgs.new_zeros(0, 10))
            return boxes, inds, outs, imgs.new_zeros(0)
        data = _normalise(torch.cat(crops))
        net = self.rnet if size == 24 else self.onet
        parts = [_run(net, data[i : i + BATCH]) for i in range(0, len(data), BATCH)]
        cols = [torch.cat(c) for c in zip(*parts)]
        score = cols[-1][:, 1]
        outs = cols[0] if size == 24 else (cols[0], cols[1])
        return boxes, inds, outs, score


# ------------------------------------------------------------------ images and weights
def _as_list(images) -> list:
    if isinstance(images, (np.ndarray, Tensor)) and images.ndim == 4:
        return list(images)
    if isinstance(images, (list, tuple)):
        return list(images)
    return [images]


def to_rgb_tensor(image: np.ndarray | Tensor, order: str = "bgr") -> Tensor:
    """A ``[3, H, W]`` float RGB tensor in 0–255 from an H×W(×C) image (gray, alpha and 16-bit accepted)."""
    if order not in ("bgr", "rgb"):
        raise ConfigError(f"detect order {order!r}: expected 'bgr' or 'rgb'")
    if isinstance(image, Tensor):
        t, sixteen = image, str(image.dtype) == "torch.uint16"
    else:
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
            what = f"shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise DataError(f"face detection input: expected an H×W or H×W×C image array, got {what}")
        sixteen = image.dtype == np.uint16
        t = torch.from_numpy(
            np.ascontiguousarray(image, dtype=None if image.dtype == np.uint8 else np.float32)
        )
    if t.ndim == 2:
        t = t[:, :, None]
    if t.ndim != 3 or t.shape[2] not in (1, 3, 4) or t.numel() == 0:
        raise DataError(f"face detection input: expected H×W×1, 3 or 4 channels, got shape {tuple(t.shape)}")
    t = t.float()
    if sixteen or float(t.max()) > 256:  # 16-bit range, scaled as FaceRestoreHelper.read_image does
        t = t / 65535 * 255
    t = t[:, :, :3].expand(-1, -1, 3) if t.shape[2] == 1 else t[:, :, :3]
    if order == "bgr":
        t = t.flip(2)
    return t.permute(2, 0, 1).contiguous()


def default_weights_dir() -> Path | None:
    """The ``data`` folder of an installed facenet-pytorch wheel, found without importing it."""
    try:
        spec = importlib.util.find_spec("facenet_pytorch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        folder = Path(loc) / "data"
        if folder.is_dir():
            return folder
    return None


def load_mtcnn(
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    **options,
) -> MTCNN:
    """MTCNN with its three weight files strictly loaded from the folder ``weights``.

    ``None`` means the facenet-pytorch wheel's ``data`` folder (``pip install --no-deps
    facenet-pytorch==2.6.0``; only its files are read). A missing folder or file is one
    ``WeightsError`` line naming the file and the ``--detector-weights`` option.
    """
    folder = Path(weights).expanduser() if weights is not None else default_weights_dir()
    if folder is None:
        raise WeightsError(
            "MTCNN weights: no folder given and no facenet-pytorch wheel data folder found; "
            f"pass --detector-weights FOLDER holding {', '.join(WEIGHT_FILES)} "
            "(or pip install --no-deps facenet-pytorch==2.6.0)"
        )
    if not folder.is_dir():
        kind = "is a file, not a folder" if folder.exists() else "does not exist"
        raise WeightsError(
            f"MTCNN weights folder {folder} {kind}: pass --detector-weights FOLDER holding "
            f"{', '.join(WEIGHT_FILES)}"
        )
    holding = f"pass --detector-weights FOLDER holding {', '.join(WEIGHT_FILES)}"
    model = MTCNN(**options)
    for name, prefix in zip(WEIGHT_FILES, ("pnet.", "rnet.", "onet.")):
        path = folder / name
        if not path.is_file():
            raise WeightsError(f"MTCNN weights: {path} is missing: {holding}")
        sd, _ = read_state_dict(path)
        check_finite(sd, path)
        load_into(model, sd, "strict", path, prefix=prefix)
    return model.to(device).eval()
