"""DiffAugment as lightweight-gan 1.2.1 applies it to real and fake batches before D.

Why here: these are batched, differentiable torch ops on the training device, like the rest of
``data/degradations``; a generation task applies one :class:`DiffAugment` to the real batch and
another call to the fake batch (independently), and G receives gradients through them.

Semantics (lightweight-gan's ``diff_augment.py`` and ``AugWrapper``), for ``(B, C, H, W)``:

* the whole batch is augmented or left alone (one draw ``u < prob``); if augmented, the whole
  batch is flipped left-right with probability 1/2, then each type runs in the given order;
* ``color``: per image, brightness ``x + (u - 0.5)``; saturation ``(x - m_c)·2u + m_c`` with
  ``m_c`` the channel mean per pixel; contrast ``(x - m)·(u + 0.5) + m`` with ``m`` the image
  mean (three separate uniforms). Nothing is clamped, as in lightweight-gan;
* ``translation``: per image an integer shift in ``[-s, s]`` per axis, ``s = int(size/8 + 0.5)``;
  ``out[i, j] = x[i + ty, j + tx]`` where that is inside the image, else 0 (zero fill);
* ``offset`` / ``offset_h`` / ``offset_v``: per image a circular roll (wrap-around) by
  ``2k - n``, ``k`` uniform in ``0..n`` for an axis of ``n`` pixels (so the shift is even when
  ``n`` is even, and ``±n`` is no shift); ``offset`` rolls both axes, the others one.
  lightweight-gan sizes the horizontal roll by the height and vice versa; on its square images
  that is the same thing, and here each axis uses its own size;
* ``cutout``: per image a box of ``int(size/2 + 0.5)`` per axis centred at ``c`` (``c`` uniform
  in ``0..size`` for an even box, ``0..size-1`` for an odd one; the box starts at
  ``c - box//2`` and is clipped to the image) is multiplied by 0.

Randomness: every draw comes from the ``generator`` argument (on the images' device), never a
global RNG, in this order for ``DiffAugment(types, prob)(x, generator)`` with ``B = len(x)``:

1. ``rand(2)`` — ``u[0]``: augment the batch iff ``u[0] < prob``; ``u[1]``: flip it iff
   ``u[1] >= 0.5`` (lightweight-gan: ``if 0.5 > random(): keep``);
2. ``draw``: per type in order — ``color``: ``rand(B)`` ×3 (brightness, saturation, contrast);
   ``translation``: ``randint(-s_h, s_h + 1, (B,))`` (rows), then the same for columns;
   ``offset``: ``randint(0, W + 1, (B,))`` (horizontal), then ``randint(0, H + 1, (B,))``;
   ``offset_h`` / ``offset_v``: only the horizontal / vertical one; ``cutout``:
   ``randint(0, H + 1 - box_h % 2, (B,))`` (rows), then the same for columns.

Uniforms are drawn in float32 whatever the images' dtype, so the stream is the same under AMP.
All of them are drawn whatever ``prob`` is — even at ``prob = 0`` — so the generator's state
after a step depends only on the batch shape and the types, and resuming with another p (ADA)
stays exact. The decision stays on the device (``torch.where``), so no step waits on the host;
the price is that the augmentations are computed for every batch when ``prob`` is a tensor or a
positive float. A Python ``prob == 0`` returns the input itself (the identity, bitwise).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from restorekit.errors import ConfigError, DataError, did_you_mean

AUG_TYPES = ("color", "translation", "offset", "offset_h", "offset_v", "cutout")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


# ----------------------------------------------------------------------------- deterministic ops
def brightness(x: Tensor, u: Tensor) -> Tensor:
    """Add ``u - 0.5`` per image (``u`` (B,) in [0, 1))."""
    return x + (u.to(x.dtype).view(-1, 1, 1, 1) - 0.5)


def saturation(x: Tensor, u: Tensor) -> Tensor:
    """Scale each pixel's deviation from its channel mean by ``2u`` per image."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (u.to(x.dtype).view(-1, 1, 1, 1) * 2) + mean


def contrast(x: Tensor, u: Tensor) -> Tensor:
    """Scale the deviation from the image mean by ``u + 0.5`` per image."""
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (u.to(x.dtype).view(-1, 1, 1, 1) + 0.5) + mean


def _gather_rows(x: Tensor, index: Tensor) -> Tensor:
    """``out[b, :, i, :] = x[b, :, index[b, i], :]`` (differentiable)."""
    b, c, h, w = x.shape
    return x.gather(2, index.view(b, 1, h, 1).expand(b, c, h, w))


def _gather_cols(x: Tensor, index: Tensor) -> Tensor:
    b, c, h, w = x.shape
    return x.gather(3, index.view(b, 1, 1, w).expand(b, c, h, w))


def translate(x: Tensor, ty: Tensor, tx: Tensor) -> Tensor:
    """``out[b, :, i, j] = x[b, :, i + ty[b], j + tx[b]]`` inside the image, else 0."""
    _, _, h, w = x.shape
    rows = torch.arange(h, device=x.device) + ty.view(-1, 1)
    cols = torch.arange(w, device=x.device) + tx.view(-1, 1)
    row_ok, col_ok = (rows >= 0) & (rows < h), (cols >= 0) & (cols < w)
    out = _gather_cols(_gather_rows(x, rows.clamp(0, h - 1)), cols.clamp(0, w - 1))
    inside = row_ok[:, None, :, None] & col_ok[:, None, None, :]
    return torch.where(inside, out, out.new_zeros(()))


def roll(x: Tensor, dy: Tensor | None, dx: Tensor | None) -> Tensor:
    """Per-image ``torch.roll`` by ``dy[b]`` rows and ``dx[b]`` columns (``None``: that axis stays)."""
    _, _, h, w = x.shape
    if dy is not None:
        x = _gather_rows(x, (torch.arange(h, device=x.device) - dy.view(-1, 1)).remainder(h))
    if dx is not None:
        x = _gather_cols(x, (torch.arange(w, device=x.device) - dx.view(-1, 1)).remainder(w))
    return x


def cutout_box(h: int, w: int) -> tuple[int, int]:
    """The cutout box size for an ``h × w`` image (lightweight-gan: ``int(size · 0.5 + 0.5)``)."""
    return int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)


def cutout(x: Tensor, cy: Tensor, cx: Tensor) -> Tensor:
    """Zero a :func:`cutout_box`-sized box starting at ``(cy - bh//2, cx - bw//2)``, clipped."""
    _, _, h, w = x.shape
    bh, bw = cutout_box(h, w)
    top, left = (cy - bh // 2).view(-1, 1), (cx - bw // 2).view(-1, 1)
    rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_rows = (rows >= top) & (rows < top + bh)
    in_cols = (cols >= left) & (cols < left + bw)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return x * keep.unsqueeze(1).to(x.dtype)


def hflip(x: Tensor) -> Tensor:
    """Flip left-right (lightweight-gan's ``random_hflip`` flips dim 3 of the whole batch)."""
    return x.flip(3)


# ----------------------------------------------------------------------------- draws
def check_types(types: Sequence[str], key: str = "aug_types") -> tuple[str, ...]:
    """The types as a tuple, or a ConfigError naming ``key`` and the unknown value."""
    if isinstance(types, str):
        raise ConfigError(f"{key}: expected a list of augmentation types, got the string {types!r}")
    for t in types:
        if t not in AUG_TYPES:
            raise ConfigError(
                f"{key}: unknown augmentation {t!r}{did_you_mean(str(t), AUG_TYPES)}; "
                f"expected some of {', '.join(AUG_TYPES)}"
            )
    return tuple(types)


Draws = list[tuple[str, tuple[Tensor | None, ...]]]


def draw(
    types: Sequence[str], shape: Sequence[int], device: torch.device | str, generator: torch.Generator | None
) -> Draws:
    """Every random value :func:`diff_augment` needs for a batch of ``shape``, in stream order.

    Kept apart from :func:`apply` so a batch that is not augmented still consumes exactly the
    same draws (step 2 of the module docstring).
    """
    b, _, h, w = shape

    def rand() -> Tensor:
        return torch.rand((b,), generator=generator, device=device, dtype=torch.float32)

    def randint(low: int, high: int) -> Tensor:
        return torch.randint(low, high, (b,), generator=generator, device=device)

    out: Draws = []
    for t in check_types(types):
        if t == "color":
            out.append((t, (rand(), rand(), rand())))
        elif t == "translation":
            sh, sw = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
            ty = randint(-sh, sh + 1)
            out.append((t, (ty, randint(-sw, sw + 1))))
        elif t == "cutout":
            bh, bw = cutout_box(h, w)
            cy = randint(0, h + 1 - bh % 2)
            out.append((t, (cy, randint(0, w + 1 - bw % 2))))
        else:  # offset, offset_h, offset_v: (dy, dx), None where the axis does not roll
            dx = randint(0, w + 1) * 2 - w if t in ("offset", "offset_h") else None
            dy = randint(0, h + 1) * 2 - h if t in ("offset", "offset_v") else None
            out.append((t, (dy, dx)))
    return out


def apply(x: Tensor, draws: Draws) -> Tensor:
    """Apply the drawn augmentations in order (the deterministic half of :func:`diff_augment`)."""
    keep_nhwc = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    for t, params in draws:
        if t == "color":
            x = contrast(saturation(brightness(x, params[0]), params[1]), params[2])
        elif t == "translation":
            x = translate(x, *params)
        elif t == "cutout":
            x = cutout(x, *params)
        else:
            x = roll(x, *params)
    return x.contiguous(memory_format=torch.channels_last if keep_nhwc else torch.contiguous_format)


def diff_augment(x: Tensor, types: Sequence[str], generator: torch.Generator | None) -> Tensor:
    """lightweight-gan's ``DiffAugment(x, types)``: every type in order, always applied.

    ``generator=None`` uses torch's default generator (tests and quick experiments only;
    training passes its checkpointed one).
    """
    return apply(x, draw(types, x.shape, x.device, generator))


class DiffAugment:
    """lightweight-gan's ``AugWrapper`` augmentation: whole-batch decision, hflip, then types.

    ``DiffAugment(types, prob)(x, generator)``; ``prob`` may be overridden per call with a float
    or a 0-dim device tensor (:class:`AdaptiveP` ``.p``).
    Real and fake batches are separate calls, so they get independent decisions and draws, as in
    lightweight-gan. Differentiable w.r.t. ``x``; wrap the fake batch of D's step in
    ``torch.no_grad`` yourself if it needs no graph (lightweight-gan's ``detach=True``).
    """

    def __init__(self, types: Sequence[str] = ("cutout", "translation"), prob: float = 0.0) -> None:
        self.types = check_types(types)
        self.prob = check_prob(prob)

    def __repr__(self) -> str:
        return f"DiffAugment(types={list(self.types)}, prob={self.prob})"

    def __call__(
        self, x: Tensor, generator: torch.Generator | None, prob: float | Tensor | None = None
    ) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f"DiffAugment: expected a (B, C, H, W) batch, got shape {tuple(x.shape)}")
        prob = self.prob if prob is None else prob
        u = torch.rand((2,), generator=generator, device=x.device, dtype=torch.float32)
        draws = draw(self.types, x.shape, x.device, generator)
        if not isinstance(prob, Tensor) and prob <= 0:
            return x
        out = apply(torch.where(u[1] >= 0.5, hflip(x), x), draws)
        return torch.where(u[0] < prob, out, x)


def check_prob(prob: float, key: str = "aug_prob") -> float:
    if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0.0 <= float(prob) <= 1.0:
        raise ConfigError(f"{key}: expected a probability in [0, 1], got {prob!r}")
    return float(prob)


def auto_aug_prob(num_images: int) -> float:
    """lightweight-gan's ``aug_prob`` when none is given: ``min(0.5, (1e5 - N) · 3e-6)`` below
    100k images, else 0 (its ``Trainer.set_data_src``).

    Note the cap of 0.5 is never reached: the rule peaks at 0.3 for a tiny data set (≈0.297 at
    1000 images, 0.15 at 50k) — the numbers lightweight-gan actually trains with.
    """
    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1:
        raise DataError(f"auto aug_prob: the data set must hold at least one image, got {num_images!r}")
    if num_images >= 100_000:
        return 0.0
    return min(0.5, (1e5 - num_images) * 3e-6)


# ----------------------------------------------------------------------------- ADA's adaptive p
P_MAX = 1.0 - 2.0**-24  # the largest float32 below 1


class AdaptiveP:
    """StyleGAN2-ADA's adaptive augmentation probability (``training_loop.py``'s ADA heuristic).

    Every ``interval`` iterations: ``p += sign(E[sign(D(real))] - target) · batch · interval /
    (kimg · 1000)``, so p moves by at most one unit per ``kimg`` thousand real images shown;
    the expectation is over every real logit seen since the last adjustment. p is clamped to
    ``[0, P_MAX]`` (ADA clamps only below; above 1 means "always" for :class:`DiffAugment`).

    Call :meth:`accumulate` with D's logits on the real batch (every micro-batch, any head you
    choose — ADA uses D's single output), then :meth:`step` once per iteration. Signs are summed
    in a device tensor and the element count on the host, and the update runs on the device, so
    nothing waits on the host; ``float(ada.p)`` is the only read, for logging. Under an
    initialised ``torch.distributed`` the sums are all-reduced at each update (ADA averages over
    all GPUs), so every rank keeps the same p.

    ``batch_size`` is the number of real images per iteration over all ranks and accumulation
    steps (ADA's ``batch_size``). ``real_positive=False`` flips the logits first: lightweight-gan's
    hinge drives D(real) *below* −1, so there "confidently real" is negative (its dual contrastive
    loss keeps ADA's orientation). The state (p, iteration, the partial sums) round-trips through
    :meth:`state_dict`; the partial sums are this rank's, so either save them per rank or save at
    a multiple of ``interval``, where they are empty. ADA resumes with ``ada_kimg = 100`` because it
    restarts p at 0; with p restored exactly the default 500 is kept.
    """

    def __init__(
        self,
        batch_size: int,
        target: float = 0.6,
        interval: int = 4,
        kimg: float = 500.0,
        p: float = 0.0,
        real_positive: bool = True,
        device: torch.device | str = "cpu",
    ) -> None:
        if batch_size < 1 or interval < 1 or kimg <= 0:
            raise ConfigError(
                f"ada: expected batch_size >= 1, interval >= 1 and kimg > 0, "
                f"got {batch_size}, {interval} and {kimg}"
            )
        self.target = float(target)
        self.interval = int(interval)
        self.batch_size = int(batch_size)
        self.kimg = float(kimg)
        self.real_positive = bool(real_positive)
        self.p = torch.tensor(min(max(check_prob(p, "ada.p"), 0.0), P_MAX), device=device)
        self.iteration = 0
        self._signs = torch.zeros((), device=device)
        self._count = 0

    @property
    def adjustment(self) -> float:
        """The largest change of p per update: ``batch · interval / (kimg · 1000)``."""
        return self.batch_size * self.interval / (self.kimg * 1000)

    def accumulate(self, real_logits: Tensor) -> None:
        signs = real_logits.detach().float().sign()
        self._signs += signs.sum() if self.real_positive else -signs.sum()
        self._count += real_logits.numel()

    def step(self) -> None:
        """End of one iteration; adjusts p (on the device) when ``interval`` of them have passed."""
        self.iteration += 1
        if self.iteration % self.interval:
            return
        # torch.full passes the count as a kernel argument: no host-to-device copy, no sync
        count = torch.full((), float(self._count), device=self._signs.device)
        stats = torch.stack([self._signs, count])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(stats)
        elif self._count == 0:
            return  # nothing seen: leave p (ADA would turn it into NaN)
        mean = stats[0] / stats[1].clamp_min(1)
        new_p = (self.p + torch.sign(mean - self.target) * self.adjustment).clamp(0.0, P_MAX)
        self.p.copy_(torch.where(stats[1] > 0, new_p, self.p))
        self._signs.zero_()
        self._count = 0

    def state_dict(self) -> dict[str, float | int]:
        return {
            "p": float(self.p),
            "iteration": self.iteration,
            "sign_sum": float(self._signs),
            "count": self._count,
        }

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        self.p.fill_(float(state["p"]))
        self.iteration = int(state["iteration"])
        self._signs.fill_(float(state["sign_sum"]))
        self._count = int(state["count"])
