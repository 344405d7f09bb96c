"""ResNetArcFace and RestoreFormer: keys, forward vs GFPGAN, detection, errors.

Key lists (``tests/data/arcface_resnet18_keys.txt``, ``restoreformer_keys.txt``) and the
reference numbers come from GFPGAN 7552a77's own ``gfpgan/archs/arcface_arch.py`` and
``restoreformer_arch.py``, run once in a scratch folder (basicsr's registry stubbed), on models
filled by ``fill`` and inputs from ``seeded``; they are written here as numbers and nothing
from that folder is imported.

``fill``'s rule: state-dict keys in sorted order; every float tensor is ``randn`` from a CPU
``torch.Generator`` seeded with ``crc32(key)``, times 0.05, plus 1 for the scales of BatchNorm and
GroupNorm and for BatchNorm running variances (a 0.05 scale would shrink every norm's output
×20 and make the deep ArcFace blind to its input; a negative variance is undefined); integer
buffers (``num_batches_tracked``) are kept.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import restorekit.archs  # noqa: F401  (registers the architectures)
from restorekit.archs import arcface, restoreformer
from restorekit.archs.arcface import ResNetArcFace
from restorekit.archs.detect import build_recognised, detect_arch
from restorekit.archs.info import ArchInfo, arch_info
from restorekit.archs.restoreformer import RestoreFormer
from restorekit.errors import ConfigError
from restorekit.registry import ARCHS
from restorekit.weights import load_into, read_state_dict

pytestmark = pytest.mark.usefixtures("one_thread")
DATA = Path(__file__).parent / "data"
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (in addition to the CPU tests)")

ARC_RELEASE = {"block": "IRBlock", "layers": (2, 2, 2, 2), "use_se": False}  # arcface_resnet18.pth
RF_DEFAULTS = {  # RestoreFormer(): RestoreFormer.pth
    "n_embed": 1024, "embed_dim": 256, "ch": 64, "out_ch": 3, "ch_mult": (1, 2, 2, 4, 4, 8),
    "num_res_blocks": 2, "attn_resolutions": (16,), "dropout": 0.0, "in_channels": 3,
    "resolution": 512, "z_channels": 256, "double_z": False, "enable_mid": True,
    "fix_decoder": False, "fix_codebook": True, "fix_encoder": False, "head_size": 8,
}  # fmt: skip
# small RestoreFormers: the release's pattern (attention at the lowest level, 16 px), and one
# with three levels, two blocks per level, 8 heads and other channel counts in and out
S1 = dict(n_embed=64, embed_dim=16, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(16,),
          resolution=32, z_channels=32, head_size=4)  # fmt: skip
S2 = dict(n_embed=32, embed_dim=8, ch=32, ch_mult=(1, 2, 2), num_res_blocks=2, attn_resolutions=(16,),
          resolution=64, z_channels=16, head_size=8, out_ch=1, in_channels=2)  # fmt: skip

NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)


def fill(model: nn.Module) -> nn.Module:
    """Every state-dict entry by the module docstring's rule; returns ``model.eval()``."""
    ones = set()
    for name, m in model.named_modules():
        if isinstance(m, NORMS):
            ones.add(f"{name}.weight")
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                ones.add(f"{name}.running_var")
    sd = model.state_dict()
    new = {}
    for key in sorted(sd):
        t = sd[key]
        if not t.is_floating_point():
            new[key] = t.clone()
            continue
        gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        new[key] = torch.randn(t.shape, generator=gen) * 0.05 + (1.0 if key in ones else 0.0)
    model.load_state_dict(new)
    return model.eval()


def seeded(*shape: int, seed: int = 0) -> torch.Tensor:
    """Uniform in [-1, 1] (both networks take [-1, 1] inputs)."""
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def assert_summary(t: torch.Tensor, expected: tuple[float, float, list[float]], atol: float) -> None:
    """Sum, sum of magnitudes and the values at flat indices 0, 1234 % n, n-1 (the reference's)."""
    f = t.detach().double().cpu().flatten()
    n = f.numel()
    total, magnitude, values = expected
    assert f.sum().item() == pytest.approx(total, rel=1e-5, abs=1e-4)
    assert f.abs().sum().item() == pytest.approx(magnitude, rel=1e-5, abs=1e-4)
    got = [f[i].item() for i in (0, 1234 % n, n - 1)]
    np.testing.assert_allclose(got, values, rtol=1e-5, atol=atol)


def read_key_list(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """``(key, shape)`` lines of ``tests/data/<name>``; ``-`` is a 0-d tensor, ``#`` a comment."""
    out = []
    for line in (DATA / name).read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape = line.split()
            out.append((key, () if shape == "-" else tuple(int(d) for d in shape.split(","))))
    return out


def meta_layout(make: Any) -> list[tuple[str, tuple[int, ...]]]:
    with torch.device("meta"):
        model = make()
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


# --------------------------------------------------------------------------------- layouts
def test_release_layouts_equal_the_reference_key_lists() -> None:
    arc = meta_layout(lambda: ResNetArcFace(**ARC_RELEASE))
    assert arc == read_key_list("arcface_resnet18_keys.txt")
    assert len(arc) == 181  # stem 7, 8 IR blocks × 18, 3 projections × 6, head 12
    assert ("fc5.weight", (512, 512 * 8 * 8)) in arc
    rf = meta_layout(RestoreFormer)
    assert rf == read_key_list("restoreformer_keys.txt")
    assert len(rf) == 405 and ("quantize.embedding.weight", (1024, 256)) in rf


def test_release_layouts_are_recognised_as_released() -> None:
    with torch.device("meta"):
        arc = ResNetArcFace(**ARC_RELEASE).state_dict()
        rf = RestoreFormer().state_dict()
    assert detect_arch(arc) == ("ResNetArcFace", ARC_RELEASE)
    assert detect_arch({"params_ema": rf}) == ("RestoreFormer", RF_DEFAULTS)
    assert arcface.recognize(rf) is None and restoreformer.recognize(arc) is None


# --------------------------------------------------------------------------------- ArcFace
@torch.no_grad()
@pytest.mark.parametrize(
    ("use_se", "expected"),
    [
        (False, (1742.160747, 211087.59859, [232.3422089, -124.0788803, -510.970459])),
        (True, (-527.848027, 10634.430955, [6.2227235, 5.7524686, -11.7511501])),
    ],
)
def test_arcface_forward_equals_the_reference(use_se: bool, expected: Any) -> None:
    net = fill(ResNetArcFace("IRBlock", [2, 2, 2, 2], use_se=use_se))
    x = seeded(2, 1, 128, 128)
    emb = net(x)
    assert emb.shape == (2, 512)
    assert_summary(emb, expected, atol=1e-4)


@torch.no_grad()
def test_arcface_identical_faces_give_identical_embeddings() -> None:
    net = fill(ResNetArcFace(**ARC_RELEASE))
    face, other = seeded(1, 1, 128, 128, seed=4), seeded(1, 1, 128, 128, seed=5)
    emb = net(torch.cat([face, face.clone(), other]))
    torch.testing.assert_close(emb[0], emb[1], rtol=0, atol=1e-6)  # the same face in one batch
    # and alone (another batch size may take other kernels: float32 rounding of values ~100)
    torch.testing.assert_close(net(face)[0], emb[0], rtol=1e-4, atol=1e-3)
    assert (emb[0] - emb[2]).abs().max() > 1.0  # a different face is not the same identity
    nudged = face.clone()
    nudged[..., 60:68, 60:68] += 0.2
    assert (net(nudged)[0] - emb[0]).abs().max() > 1e-3  # the embedding sees the pixels


def test_arcface_round_trip_strict(tmp_path: Path) -> None:
    for kwargs in (ARC_RELEASE, {"block": "IRBlock", "layers": (1, 2, 3, 1), "use_se": True}):
        torch.manual_seed(0)
        net = ResNetArcFace(**kwargs).eval()  # GFPGAN's random init
        path = tmp_path / "arcface.pth"
        torch.save(net.state_dict(), path)
        state, _ = read_state_dict(path)
        assert detect_arch(state, str(path)) == ("ResNetArcFace", kwargs)
        rebuilt, notes = build_recognised(state, str(path))
        assert notes == []  # everything is read from the weights
        x = seeded(2, 1, 128, 128, seed=2)
        with torch.no_grad():
            assert torch.equal(rebuilt(x), net(x))
        load_into(rebuilt, state, "strict", path)


def test_arcface_info_and_errors() -> None:
    info = arch_info({"type": "ResNetArcFace", **ARC_RELEASE})
    assert info == ArchInfo("feature", 1, 512, input_size=128, value_range=(-1, 1), tileable=False)
    with pytest.raises(ConfigError, match="block"):
        ARCHS.build({"type": "ResNetArcFace", "block": "BasicBlock", "layers": [2, 2, 2, 2]})
    with pytest.raises(ConfigError, match=r"layers: expected four positive block counts, got \[2, 2\]"):
        ResNetArcFace("IRBlock", [2, 2])
    net = ResNetArcFace(**ARC_RELEASE).eval()
    with pytest.raises(RuntimeError):  # fc5 fixes the side: 128 only
        net(torch.zeros(1, 1, 64, 64))


# ---------------------------------------------------------------------------- RestoreFormer
@torch.no_grad()
@pytest.mark.parametrize(
    ("cfg", "expected", "index_sum", "loss", "perplexity"),
    [
        (S1, (7.905112, 2394.838706, [0.1914713, 0.4234401, 0.4705986]), 15328, 0.04542889, 31.089573),
        (S2, (1486.524439, 2867.028923, [0.3847999, 0.5530157, 0.2058328]), 9022, 0.02585806, 13.233889),
    ],
)
def test_restoreformer_forward_equals_the_reference(
    cfg: dict[str, Any], expected: Any, index_sum: int, loss: float, perplexity: float
) -> None:
    net = fill(RestoreFormer(**cfg))
    side = cfg["resolution"]
    x = seeded(2, cfg.get("in_channels", 3), side, side, seed=1)
    out, none = net(x, return_rgb=False, weight=0.5)  # GFPGAN's inference kwargs: ignored
    assert none is None and out.shape == (2, cfg.get("out_ch", 3), side, side)
    assert_summary(out, expected, atol=5e-5)
    quant, emb_loss, (perp, one_hot, indices, dist), hs = net.encode(x)
    assert int(indices.sum()) == index_sum  # the same codebook entries as GFPGAN's
    assert emb_loss.item() == pytest.approx(loss, rel=1e-5)
    assert perp.item() == pytest.approx(perplexity, rel=1e-5)
    assert one_hot.shape == (indices.numel(), cfg["n_embed"]) and dist.shape == one_hot.shape
    assert {"in", "out", "mid_atten", f"block_{len(cfg['ch_mult']) - 1}_atten"} <= set(hs)
    torch.testing.assert_close(net.decode(quant, hs), out)
    entry = net.quantize.get_codebook_entry(indices.flatten(), (*quant.shape[:1], *quant.shape[2:], -1))
    torch.testing.assert_close(entry, quant)


def test_restoreformer_round_trip_and_gradients(tmp_path: Path) -> None:
    net = fill(RestoreFormer(**S1))
    path = tmp_path / "RestoreFormer.pth"
    torch.save(net.state_dict(), path)  # a plain state dict, as released
    state, _ = read_state_dict(path)
    name, kwargs = detect_arch(state, str(path))
    assert name == "RestoreFormer"
    assert kwargs == {**RF_DEFAULTS, **S1, "head_size": 8}  # heads: not in the weights, the release's
    rebuilt, notes = build_recognised(state, str(path), {"head_size": 4})
    assert notes == []
    _, assumed = build_recognised(state, str(path))
    assert "head_size=8 assumed" in assumed[0]
    x = seeded(1, 3, 32, 32, seed=3)
    with torch.no_grad():
        assert torch.equal(rebuilt(x)[0], net(x)[0])
    load_into(RestoreFormer(**S1), state, "strict", path)
    # training: the straight-through quantiser passes gradients to the encoder; the codebook is
    # frozen by default (fix_codebook), the decoder trains
    train = RestoreFormer(**S1)
    out, _ = train(x)
    out.square().mean().backward()
    assert train.quantize.embedding.weight.grad is None
    assert train.encoder.conv_in.weight.grad.abs().sum() > 0
    assert train.decoder.conv_out.weight.grad.abs().sum() > 0


def test_restoreformer_fix_flags() -> None:
    def frozen(**kw: Any) -> set[str]:
        with torch.device("meta"):
            net = RestoreFormer(**S1, **kw)
        return {n.split(".")[0] for n, p in net.named_parameters() if not p.requires_grad}

    assert frozen() == {"quantize"}
    assert frozen(fix_codebook=False) == set()
    assert frozen(fix_decoder=True) == {"decoder", "post_quant_conv", "quantize"}
    assert frozen(fix_codebook=False, fix_encoder=True) == {"encoder"}


def test_restoreformer_info_and_errors() -> None:
    info = arch_info({"type": "RestoreFormer"})
    assert info == ArchInfo("face", 3, 3, input_size=512, value_range=(-1, 1), tileable=False)
    small = arch_info({"type": "RestoreFormer", **S2})
    assert (small.in_channels, small.out_channels, small.input_size) == (2, 1, 64)
    net = RestoreFormer(**S1).eval()
    with pytest.raises(ValueError, match=r"expected \(B, C, 32, 32\) faces"):
        net(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ConfigError, match="double_z: must be False"):
        RestoreFormer(**S1 | {"double_z": True})
    with pytest.raises(ConfigError, match="decoder can attend only at its lowest level"):
        RestoreFormer(**S1 | {"attn_resolutions": (32,)})
    with pytest.raises(ConfigError, match="enable_mid=False"):
        RestoreFormer(**S1 | {"enable_mid": False})
    with pytest.raises(ConfigError, match="multiples of 32"):
        RestoreFormer(**S1 | {"ch": 48})
    with pytest.raises(ConfigError, match="head_size: 5 does not divide"):
        RestoreFormer(**S1 | {"head_size": 5})
    with pytest.raises(ConfigError, match="ch_mult"):
        ARCHS.build({"type": "RestoreFormer", "ch_mult": "wide"})


@CUDA
@torch.no_grad()
def test_cuda_matches_cpu() -> None:
    rf = fill(RestoreFormer(**S2))
    x = seeded(2, 2, 64, 64, seed=1)
    torch.testing.assert_close(rf.cuda()(x.cuda())[0].cpu(), rf.cpu()(x)[0], rtol=1e-4, atol=1e-4)
    arc = fill(ResNetArcFace(**ARC_RELEASE))
    g = seeded(2, 1, 128, 128)
    torch.testing.assert_close(arc.cuda()(g.cuda()).cpu(), arc.cpu()(g), rtol=1e-4, atol=1e-2)
