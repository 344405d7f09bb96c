"""DiffAugment (lightweight-gan semantics) and ADA's adaptive p.

Pixel-level references are written here as plain loops, from lightweight-gan's own index
arithmetic (zero-padded gather for translation, clamped box indices for cutout), not from our
gather/mask code.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from restorekit.data.degradations import AdaptiveP, DiffAugment, auto_aug_prob, diff_augment
from restorekit.data.degradations.diffaugment import (
    AUG_TYPES,
    P_MAX,
    brightness,
    contrast,
    cutout,
    cutout_box,
    draw,
    roll,
    saturation,
    translate,
)
from restorekit.errors import ConfigError, DataError


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(b: int = 4, c: int = 3, h: int = 8, w: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=_gen(seed)) * 0.98 + 0.01  # no exact zeros


# ----------------------------------------------------------------------------- references
def ref_translate(x: torch.Tensor, ty: list[int], tx: list[int]) -> torch.Tensor:
    """lightweight-gan: pad by 1 with zeros, index ``clamp(i + t + 1, 0, size + 1)``."""
    b, c, h, w = x.shape
    pad = torch.zeros(b, c, h + 2, w + 2)
    pad[:, :, 1:-1, 1:-1] = x
    out = torch.empty_like(x)
    for n in range(b):
        for i in range(h):
            for j in range(w):
                pi = min(max(i + ty[n] + 1, 0), h + 1)
                pj = min(max(j + tx[n] + 1, 0), w + 1)
                out[n, :, i, j] = pad[n, :, pi, pj]
    return out


def ref_cutout(x: torch.Tensor, cy: list[int], cx: list[int]) -> torch.Tensor:
    """lightweight-gan: zero ``mask[clamp(c - box//2 + k, 0, size - 1)]`` for k < box, per axis."""
    b, _, h, w = x.shape
    bh, bw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
    mask = torch.ones(b, h, w)
    for n in range(b):
        for ki in range(bh):
            for kj in range(bw):
                i = min(max(cy[n] - bh // 2 + ki, 0), h - 1)
                j = min(max(cx[n] - bw // 2 + kj, 0), w - 1)
                mask[n, i, j] = 0
    return x * mask[:, None]


# ----------------------------------------------------------------------------- pixel-level ops
@pytest.mark.parametrize("hw", [(8, 8), (6, 10)])
def test_translation_matches_zero_padded_reference(hw: tuple[int, int]) -> None:
    h, w = hw
    x = _images(6, 2, h, w)
    ty, tx = [-3, -1, 0, 1, 2, 3], [2, 0, -2, 1, -1, 3]
    assert torch.equal(translate(x, torch.tensor(ty), torch.tensor(tx)), ref_translate(x, ty, tx))
    shifted = translate(x, torch.tensor(ty), torch.tensor(tx))
    assert torch.equal(shifted[1, :, 1:, :], x[1, :, :-1, :])  # ty=-1: content moves down
    assert (shifted[1, :, 0, :] == 0).all()


@pytest.mark.parametrize("hw", [(8, 8), (5, 6), (7, 9)])
def test_cutout_matches_clamped_box_reference(hw: tuple[int, int]) -> None:
    h, w = hw
    bh, bw = cutout_box(h, w)
    assert (bh, bw) == (int(h / 2 + 0.5), int(w / 2 + 0.5))
    cys = list(range(h + 1 - bh % 2))  # every centre the draw can give
    cxs = [(3 * k) % (w + 1 - bw % 2) for k in range(len(cys))]
    x = _images(len(cys), 3, h, w)
    out = cutout(x, torch.tensor(cys), torch.tensor(cxs))
    assert torch.equal(out, ref_cutout(x, cys, cxs))
    zeros = (out == 0).all(dim=1).flatten(1).sum(1)
    assert zeros.max() == bh * bw and zeros.min() >= ((bh + 1) // 2) * ((bw + 1) // 2)


def test_offset_rolls_each_image_like_torch_roll() -> None:
    x = _images(3, 2, 6, 8)
    dy, dx = torch.tensor([0, -6, 4]), torch.tensor([8, 2, -4])
    out = roll(x, dy, dx)
    for n in range(3):
        assert torch.equal(out[n], torch.roll(x[n], (int(dy[n]), int(dx[n])), dims=(1, 2)))
    assert torch.equal(roll(x, None, dx)[2], torch.roll(x[2], -4, dims=2))


def test_color_on_a_flat_image_is_the_brightness_draw() -> None:
    x = torch.full((6, 3, 4, 4), 0.5)  # saturation and contrast leave a flat image alone
    out = diff_augment(x, ["color"], _gen(2))
    u = torch.rand(6, generator=_gen(2))
    assert torch.allclose(out, u.view(6, 1, 1, 1).expand_as(out), atol=1e-6)


def test_color_ops_follow_lightweight_gan_formulas() -> None:
    x = _images(2)
    u = torch.tensor([0.0, 0.75])
    assert torch.allclose(brightness(x, u), x + torch.tensor([-0.5, 0.25]).view(2, 1, 1, 1))
    sat = saturation(x, u)
    assert torch.allclose(sat[0], x[0].mean(0, keepdim=True).expand(3, -1, -1))  # factor 0: gray
    assert torch.allclose(sat.mean(1), x.mean(1), atol=1e-6)  # channel mean is kept
    con = contrast(x, u)
    assert torch.allclose(con[1] - con[1].mean(), 1.25 * (x[1] - x[1].mean()), atol=1e-6)
    assert torch.allclose(con.mean(dim=[1, 2, 3]), x.mean(dim=[1, 2, 3]), atol=1e-6)


# ----------------------------------------------------------------------------- draws and batches
def test_draw_sequence_is_the_documented_one() -> None:
    x = _images(5, 3, 8, 12)
    types = ["color", "translation", "offset_h", "cutout", "offset"]
    out = diff_augment(x, types, _gen(3))
    g = _gen(3)
    u = [torch.rand(5, generator=g) for _ in range(3)]
    ty, tx = torch.randint(-1, 2, (5,), generator=g), torch.randint(-2, 3, (5,), generator=g)
    oh = torch.randint(0, 13, (5,), generator=g) * 2 - 12
    cy, cx = torch.randint(0, 9, (5,), generator=g), torch.randint(0, 13, (5,), generator=g)
    odx, ody = (
        torch.randint(0, 13, (5,), generator=g) * 2 - 12,
        torch.randint(0, 9, (5,), generator=g) * 2 - 8,
    )
    ref = contrast(saturation(brightness(x, u[0]), u[1]), u[2])
    ref = roll(translate(ref, ty, tx), None, oh)
    ref = roll(cutout(ref, cy, cx), ody, odx)
    assert torch.equal(out, ref)


def test_drawn_ranges_cover_lightweight_gan_ranges() -> None:
    (_, (ty, tx)), (_, (dy, dx)), (_, (cy, cx)) = draw(
        ["translation", "offset", "cutout"], (4000, 3, 16, 24), "cpu", _gen(0)
    )
    assert set(ty.tolist()) == set(range(-2, 3)) and set(tx.tolist()) == set(range(-3, 4))
    assert set(dx.tolist()) == set(range(-24, 25, 2)) and set(dy.tolist()) == set(range(-16, 17, 2))
    assert set(cy.tolist()) == set(range(17)) and set(cx.tolist()) == set(range(25))  # even boxes
    ((_, (cy, _)),) = draw(["cutout"], (4000, 3, 5, 5), "cpu", _gen(1))  # box 3 (odd): 0..4
    assert set(cy.tolist()) == set(range(5))


@pytest.mark.parametrize("t", AUG_TYPES)
def test_each_type_shape_seeds_and_gradients(t: str) -> None:
    x = _images(8, 3, 8, 8).requires_grad_(True)
    out = diff_augment(x, [t], _gen(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    if t == "color":
        assert out.min() >= -5.5 and out.max() <= 6.5  # ±0.5, ×[0,2), ×[0.5,1.5) on [0,1]
    else:  # moves or zeroes pixels, never invents values
        allowed = torch.cat([x.detach().flatten(), torch.zeros(1)])
        assert torch.isin(out.detach(), allowed).all()
    assert torch.equal(out, diff_augment(x, [t], _gen(1)))
    assert not torch.equal(out, diff_augment(x, [t], _gen(2)))
    same = _images(1, 3, 8, 8).expand(16, -1, -1, -1)  # one image, 16 times
    varied = diff_augment(same, [t], _gen(4))
    assert any(not torch.equal(varied[0], varied[n]) for n in range(1, 16))  # per-image draws
    out.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_cutout_gradient_is_zero_exactly_in_the_box() -> None:
    x = _images(2).requires_grad_(True)
    out = cutout(x, torch.tensor([4, 0]), torch.tensor([2, 8]))
    out.sum().backward()
    assert torch.equal(x.grad, (out != 0).to(x.dtype))


def test_translation_draws_differ_per_image() -> None:
    x = torch.ones(64, 1, 8, 8)
    zeros = (diff_augment(x, ["translation"], _gen(0)) == 0).flatten(1).sum(1)
    assert set(zeros.tolist()) == {0, 8, 15}  # shift 1 on 8 px: none, one axis, both axes


def test_whole_batch_decision_and_flip() -> None:
    x = _images(6)
    seen = set()
    for seed in range(60):
        out = DiffAugment([], prob=0.5)(x, _gen(seed))
        kind = "same" if torch.equal(out, x) else "flip" if torch.equal(out, x.flip(3)) else "mixed"
        seen.add(kind)
    assert seen == {"same", "flip"}  # never some images flipped and others not


def test_apply_rate_follows_prob_and_draws_do_not_depend_on_it() -> None:
    x = torch.ones(2, 1, 8, 8)
    aug = DiffAugment(["cutout"], prob=0.3)
    hits = sum(not torch.equal(aug(x, _gen(s)), x) for s in range(400))
    assert 90 < hits < 150  # 120 expected
    states = []
    for prob in (0.0, 0.3, 1.0, torch.tensor(0.0), torch.tensor(0.7)):
        g = _gen(5)
        aug(x, g, prob=prob)
        states.append(g.get_state())
    assert all(torch.equal(s, states[0]) for s in states)


def test_prob_zero_is_the_identity_and_tensor_prob_matches_float() -> None:
    x = _images(3).requires_grad_(True)
    aug = DiffAugment(["color", "translation", "cutout", "offset"], prob=0.0)
    assert aug(x, _gen(0)) is x
    assert torch.equal(aug(x, _gen(0), prob=torch.tensor(0.0)), x)
    full = aug(x, _gen(9), prob=1.0)
    assert not torch.equal(full, x)
    assert torch.equal(aug(x, _gen(9), prob=torch.tensor(1.0)), full)
    full.sum().backward()
    assert x.grad.abs().sum() > 0


def test_bad_types_and_prob_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"'cutot'.*did you mean 'cutout'"):
        DiffAugment(["cutot"], 0.5)
    with pytest.raises(ConfigError, match="string"):
        DiffAugment("cutout", 0.5)
    with pytest.raises(ConfigError, match=r"aug_prob.*1\.5"):
        DiffAugment(["cutout"], 1.5)


def test_auto_aug_prob_is_lightweight_gans_rule() -> None:
    assert auto_aug_prob(1000) == pytest.approx(0.297)
    assert auto_aug_prob(50_000) == pytest.approx(0.15)
    assert auto_aug_prob(1) == pytest.approx(0.299997)
    assert auto_aug_prob(99_999) == pytest.approx(3e-6)
    assert auto_aug_prob(100_000) == 0.0 and auto_aug_prob(10**6) == 0.0
    with pytest.raises(DataError, match="at least one image"):
        auto_aug_prob(0)


# ----------------------------------------------------------------------------- adaptive p
def _feed(ada: AdaptiveP, logits: torch.Tensor, steps: int) -> list[float]:
    ps = []
    for _ in range(steps):
        ada.accumulate(logits)
        ada.step()
        ps.append(float(ada.p))
    return ps


def test_adaptive_p_rises_on_confident_reals_every_interval() -> None:
    ada = AdaptiveP(batch_size=16)
    assert ada.adjustment == pytest.approx(16 * 4 / 500_000)
    ps = _feed(ada, torch.full((16, 1), 3.0), 8)
    assert ps[:3] == [0.0] * 3
    assert ps[3] == pytest.approx(ada.adjustment) and ps[3:7] == [ps[3]] * 4
    assert ps[7] == pytest.approx(2 * ada.adjustment)


def test_adaptive_p_falls_and_holds_at_target() -> None:
    ada = AdaptiveP(batch_size=16, p=0.5)
    assert _feed(ada, -torch.ones(16), 4)[-1] == pytest.approx(0.5 - ada.adjustment)
    at_target = torch.tensor([1.0, 1.0, 1.0, 1.0, -1.0])  # E[sign] = 0.6 exactly
    assert _feed(ada, at_target, 4)[-1] == pytest.approx(0.5 - ada.adjustment)
    # below target but positive on average: still falls (sign of E[sign] − 0.6)
    assert _feed(ada, torch.tensor([1.0, -1.0, 1.0]), 4)[-1] == pytest.approx(0.5 - 2 * ada.adjustment)


def test_adaptive_p_hinge_orientation() -> None:
    ada = AdaptiveP(batch_size=16, real_positive=False)  # lightweight-gan hinge: real → below −1
    assert _feed(ada, torch.full((16,), -2.0), 4)[-1] > 0


def test_adaptive_p_stays_in_zero_one() -> None:
    fast = AdaptiveP(batch_size=10**6, interval=1)  # adjustment 2 per step
    ps = _feed(fast, torch.ones(4), 3) + _feed(fast, -torch.ones(4), 3)
    assert max(ps) == pytest.approx(P_MAX) and P_MAX < 1.0 and all(0.0 <= p < 1.0 for p in ps)
    assert ps[-1] == 0.0
    assert float(AdaptiveP(batch_size=1, p=1.0).p) < 1.0
    empty = AdaptiveP(batch_size=4, p=0.25, interval=1)
    empty.step()  # no logits seen: p is left alone (ADA would make it NaN)
    assert float(empty.p) == 0.25


def test_adaptive_p_state_round_trips_mid_interval() -> None:
    a = AdaptiveP(batch_size=32)
    _feed(a, torch.tensor([2.0, 1.0, -1.0]), 6)
    a.accumulate(torch.ones(7))
    b = AdaptiveP(batch_size=32)
    b.load_state_dict(a.state_dict())
    for ada in (a, b):
        _feed(ada, torch.tensor([1.0, 1.0, 1.0, -1.0]), 5)
    assert a.state_dict() == b.state_dict() and float(a.p) > 0


def test_adaptive_p_all_reduces_under_torch_distributed(tmp_path) -> None:
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        ada = AdaptiveP(batch_size=8, interval=2)
        assert _feed(ada, torch.ones(8), 2)[-1] == pytest.approx(ada.adjustment)
        ada.step()
        ada.step()  # no logits on any rank: p is kept
        assert float(ada.p) == pytest.approx(ada.adjustment)
    finally:
        dist.destroy_process_group()


def test_adaptive_p_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        AdaptiveP(batch_size=0)
    with pytest.raises(ConfigError, match=r"ada\.p"):
        AdaptiveP(batch_size=4, p=-0.1)


def test_no_host_reads_in_the_training_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy for "no device sync": nothing converts a tensor to a Python value on the way."""
    x = _images(4).requires_grad_(True)
    aug, ada = DiffAugment(list(AUG_TYPES), prob=0.5), AdaptiveP(batch_size=4, interval=2)

    def host_read(*_: object) -> None:
        raise AssertionError("a tensor was read on the host")

    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, host_read)
    for _ in range(4):
        aug(x, _gen(0), prob=ada.p).sum().backward()
        ada.accumulate(torch.randn(4, 1))
        ada.step()
    monkeypatch.undo()
    assert 0.0 <= float(ada.p) < 1.0


def test_channels_last_input_keeps_its_layout() -> None:
    x = _images(2, 3, 8, 8)
    out = diff_augment(x.to(memory_format=torch.channels_last), ["translation", "cutout"], _gen(0))
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, diff_augment(x, ["translation", "cutout"], _gen(0)))
