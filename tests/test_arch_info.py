"""ArchInfo: declared for every registered architecture, true to a forward pass, kept in exports.

The consistency test builds each architecture with the small arguments of ``test_archs`` and
checks the declaration against what the network actually does: the channels it accepts and
returns, its scale, that its ``size_multiple`` / ``input_size`` are real constraints. The
inference tests check what the declaration is for: ``restorekit infer`` refuses networks it
cannot run (naming the right command) and never tiles a network that is not tileable.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from conftest import shipped_archs
from restorekit.archs.export import export_network, load_network
from restorekit.archs.info import ArchInfo, arch_info, find_arch_info, record_info
from restorekit.cli import main
from restorekit.errors import ConfigError, RestorekitError, WeightsError
from restorekit.inference.upscale import Upscaler
from restorekit.registry import ARCHS
from test_archs import SMALL_KWARGS, first_output, logits_of

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: small nets run faster on one thread


def test_every_registered_arch_declares_info() -> None:
    names = shipped_archs()
    assert {"EDSR", "MSRResNet", "RRDBNet", "SRVGGNetCompact", "WDSR_A", "WDSR_B"} <= set(names)
    assert {"VGGStyleDiscriminator", "UNetDiscriminatorSN"} <= set(names)
    missing = [n for n in names if "info" not in ARCHS.meta(n)]
    assert not missing, f"register these with info=...: {missing}"


def _side(info: ArchInfo) -> int:
    """An odd multiple of ``size_multiple``: a network that really needs 2× (or 4×) that fails."""
    return info.input_size if info.input_size is not None else 5 * info.size_multiple


@pytest.mark.parametrize("name", shipped_archs())
def test_info_matches_a_forward_pass(name: str) -> None:
    for kwargs in SMALL_KWARGS[name]:
        torch.manual_seed(0)
        net = ARCHS.build({"type": name, **kwargs}).eval()
        info = arch_info(net)
        assert info == arch_info({"type": name, **kwargs})  # module and spec agree
        if info.purpose == "generator":  # latent vectors in, images out
            assert info.latent_dim == info.in_channels and info.tileable is False
            with torch.no_grad():
                y = net(torch.randn(2, info.in_channels))
            assert y.dim() == 4 and y.shape[:2] == (2, info.out_channels), (name, kwargs)
            with pytest.raises((RuntimeError, ValueError)):
                net(torch.randn(1, info.in_channels + 1))
            continue
        side = _side(info)
        x = torch.rand(2, info.in_channels, side, side)
        with torch.no_grad():
            y = logits_of(net(x)) if info.purpose == "discriminator" else first_output(net(x))
        if info.purpose == "face":
            assert y.shape == (2, info.out_channels, side, side) and info.value_range == (-1.0, 1.0)
        elif info.purpose == "feature":
            assert y.shape == (2, info.out_channels), (name, kwargs)
        elif info.purpose == "discriminator":
            assert y.shape[:2] == (2, info.out_channels), (name, kwargs)
            if y.dim() == 4:  # a per-pixel map at the input's size
                assert y.shape[2:] == (side * info.scale, side * info.scale)
        else:
            assert info.purpose == "restoration"
            assert y.shape == (2, info.out_channels, side * info.scale, side * info.scale), (name, kwargs)
        with pytest.raises((RuntimeError, ValueError)):  # wrong channel count is really wrong
            net(torch.rand(1, info.in_channels + 1, side, side))
        if info.size_multiple > 1:  # the declared multiple is a real constraint
            with pytest.raises((RuntimeError, ValueError)):
                net(torch.rand(1, info.in_channels, side + 1, side))
        if info.input_size is not None:
            with pytest.raises((RuntimeError, ValueError)):
                net(torch.rand(1, info.in_channels, side // 2, side // 2))


def test_info_depends_on_the_built_arguments() -> None:
    assert arch_info({"type": "RRDBNet", "num_in_ch": 1, "num_out_ch": 1, "scale": 1}) == ArchInfo(
        "restoration", 1, 1, scale=1, size_multiple=4
    )
    assert arch_info({"type": "RRDBNet", "num_in_ch": 3, "num_out_ch": 3}).size_multiple == 1  # default ×4
    assert arch_info({"type": "EDSR", "num_in_ch": 3, "num_out_ch": 3}).scale == 4  # the default upscale
    vgg = arch_info({"type": "VGGStyleDiscriminator", "input_size": 256})
    assert (vgg.purpose, vgg.input_size, vgg.tileable) == ("discriminator", 256, False)
    assert arch_info({"type": "UNetDiscriminatorSN"}).size_multiple == 8


def test_arch_info_errors_are_one_line() -> None:
    with pytest.raises(ConfigError, match="unknown architecture 'Nope'"):
        arch_info({"type": "Nope"})
    with pytest.raises(ConfigError, match="not built from the registry"):
        arch_info(torch.nn.Conv2d(3, 3, 3))
    assert find_arch_info(torch.nn.Conv2d(3, 3, 3)) is None
    with pytest.raises(ValueError, match="purpose"):
        ArchInfo("painting", 3, 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="value_range"):
        ArchInfo("restoration", 3, 3, value_range=(0.0, 255.0))


def test_json_round_trip_and_bad_json() -> None:
    info = ArchInfo("face", 3, 3, input_size=512, value_range=(-1, 1), tileable=False)
    again = ArchInfo.from_json(info.to_json())
    assert again == info and again.value_range == (-1.0, 1.0)
    newer = json.loads(info.to_json()) | {"from_the_future": 1}
    assert ArchInfo.from_json(json.dumps(newer)) == info
    with pytest.raises(WeightsError, match=r"m\.safetensors: the 'info' entry is not a valid ArchInfo"):
        ArchInfo.from_json('{"purpose": "restoration"}', "m.safetensors")


def _edsr() -> torch.nn.Module:
    torch.manual_seed(0)
    spec = {"type": "EDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 4, "num_block": 1, "upscale": 2}
    return ARCHS.build(spec).eval()


def test_export_stores_info_and_reads_it_back(tmp_path: Path) -> None:
    net = _edsr()
    path = tmp_path / "m.safetensors"
    export_network(net, path)
    with safe_open(str(path), framework="pt") as f:
        stored = ArchInfo.from_json(f.metadata()["info"])
    assert stored == arch_info(net) == ArchInfo("restoration", 3, 3, scale=2)
    # what the file declares is what the loaded module reports
    face = dataclasses.replace(stored, purpose="face", tileable=False)
    record_info(net, face)
    export_network(net, path)
    assert arch_info(load_network(path)) == face


def test_old_export_without_info_is_recomputed(tmp_path: Path) -> None:
    net = _edsr()
    path = tmp_path / "old.safetensors"
    export_network(net, path)
    with safe_open(str(path), framework="pt") as f:
        meta = {k: v for k, v in f.metadata().items() if k != "info"}
    save_file(load_file(str(path)), str(path), metadata=meta)
    loaded = load_network(path)
    assert arch_info(loaded) == ArchInfo("restoration", 3, 3, scale=2)


def _infer(weights: Path, img: Path, out: Path) -> int:
    return main(["infer", "--quiet", "--weights", str(weights), "-i", str(img), "-o", str(out)])


def _export_as(tmp_path: Path, purpose: str) -> Path:
    net = _edsr()
    record_info(net, dataclasses.replace(arch_info(net), purpose=purpose, tileable=purpose != "face"))
    path = tmp_path / f"{purpose}.safetensors"
    export_network(net, path)
    return path


@pytest.mark.parametrize(
    ("purpose", "fragment"),
    [("face", "use `restorekit faces`"), ("generator", "use `restorekit generate`")],
)
def test_infer_names_the_right_command(
    purpose: str, fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    img = tmp_path / "in.png"
    cv2.imwrite(str(img), np.zeros((8, 8, 3), np.uint8))
    weights = _export_as(tmp_path, purpose)
    assert _infer(weights, img, tmp_path / "o") == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "EDSR" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_infer_refuses_a_discriminator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    net = ARCHS.build({"type": "UNetDiscriminatorSN", "num_feat": 4})
    weights = tmp_path / "netD.safetensors"
    export_network(net, weights)
    img = tmp_path / "in.png"
    cv2.imwrite(str(img), np.zeros((8, 8, 3), np.uint8))
    assert _infer(weights, img, tmp_path / "o") == 2
    err = capsys.readouterr().err.strip()
    assert "UNetDiscriminatorSN is a discriminator network" in err and len(err.splitlines()) == 1
    with pytest.raises(RestorekitError, match="discriminator"):
        Upscaler(net)


def test_a_face_model_is_never_tiled(tmp_path: Path) -> None:
    net = load_network(_export_as(tmp_path, "face"))
    calls: list[tuple[int, ...]] = []
    net.register_forward_hook(lambda m, inp, out: calls.append(tuple(inp[0].shape)))
    up = Upscaler(net, tile=8, tile_overlap=2)  # the Python API may run a face model, whole
    img = np.random.default_rng(0).random((20, 30, 3), dtype=np.float32)
    assert up.tile == 0 and up.count_tiles(img) == 1
    out = up.restore(img).color
    assert calls == [(1, 3, 20, 30)]
    with torch.no_grad():
        want = net(torch.from_numpy(img).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out, want, atol=1e-6)
