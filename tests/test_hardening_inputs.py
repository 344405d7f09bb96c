"""Untrusted files and inputs (issue 14): each test reproduces one problem that used to happen.

YAML configs (duplicate keys, alias bombs, unknown keys hidden by reference errors), export
metadata that describes a huge network, pickled weights with a payload, NaN weights, failed
writes leaving temporary files, and gray + alpha PNGs turned into RGBA.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from restorekit.archs.export import MAX_METADATA_BYTES, export_network, read_header, read_network
from restorekit.cli import main
from restorekit.config import load_config
from restorekit.config.loader import MAX_ALIAS_NODES, parse_override, read_yaml
from restorekit.errors import ConfigError, RestorekitError, WeightsError
from restorekit.inference import files
from restorekit.inference.gray_alpha import encode_gray_alpha_png, is_gray_alpha_png
from restorekit.registry import ARCHS

# ---------------------------------------------------------------------------------------------
# 1. YAML


CONFIG = """\
name: run1
seed: 0
scale: 2
network_g: {type: EDSR, num_in_ch: 3, num_out_ch: 3, upscale: "${scale}"}
data:
  train:
    dataset: {type: PairedImageDataset, dataroot_gt: gt, dataroot_lq: lq}
    batch_size: 4
train:
  total_iter: 10
  optim_g: {type: Adam, lr: 0.001}
  losses: {pixel: {type: L1Loss}}
"""


def write_text(tmp_path: Path, text: str, name: str = "cfg.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def config_error(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, list(overrides))
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_duplicate_top_level_key_names_both_lines(tmp_path: Path) -> None:
    path = write_text(tmp_path, CONFIG + "seed: 5\n")  # line 13; PyYAML alone silently gives 5
    assert config_error(path) == f"{path}: line 13: duplicate key 'seed' (first at line 2)"


def test_second_block_is_a_duplicate_not_a_misleading_schema_error(tmp_path: Path) -> None:
    path = write_text(tmp_path, CONFIG + "train:\n  total_iter: 20\n")
    assert config_error(path) == f"{path}: line 13: duplicate key 'train' (first at line 9)"


def test_nested_and_flow_duplicates(tmp_path: Path) -> None:
    nested = CONFIG.replace("  total_iter: 10\n", "  total_iter: 10\n  total_iter: 11\n")
    path = write_text(tmp_path, nested)
    assert config_error(path) == f"{path}: line 11: duplicate key 'total_iter' (first at line 10)"
    flow = CONFIG.replace("lr: 0.001}", "lr: 0.001, lr: 0.1}")
    path = write_text(tmp_path, flow, "flow.yml")
    assert config_error(path) == f"{path}: line 11: duplicate key 'lr' (first at line 11)"
    with pytest.raises(ConfigError, match=r"override 'a=\{x: 1, x: 2\}': duplicate key 'x'"):
        parse_override("a={x: 1, x: 2}")


def test_overrides_and_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    cfg = load_config(write_text(tmp_path, CONFIG), ["seed=5", "train.total_iter=7"])
    assert cfg.seed == 5 and cfg.train is not None and cfg.train.total_iter == 7
    merged = "base: &b {a: 1, b: 2}\nmid:\n  <<: *b\n  a: 3\ntop:\n  b: 4\n  <<: *b\n"
    data = read_yaml(write_text(tmp_path, merged, "merge.yml"))  # explicit keys win over merged
    assert data["mid"] == {"a": 3, "b": 2} and data["top"] == {"a": 1, "b": 4}
    # distinct keys that only look alike are not duplicates
    assert read_yaml(write_text(tmp_path, "1: x\n'1': y\n", "ints.yml")) == {1: "x", "1": "y"}


def billion_laughs(levels: int = 9) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "name: x\n" + "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_fast(tmp_path: Path) -> None:
    text = billion_laughs()
    assert len(text) < 1500  # ~1.3 KB that expands to 9**10 strings
    path = write_text(tmp_path, text)
    start = time.perf_counter()
    msg = config_error(path)
    assert time.perf_counter() - start < 2.0  # was 120 s and 3.3 GB
    assert msg.startswith(f"{path}: line ") and f"aliases expand to more than {MAX_ALIAS_NODES}" in msg
    # ordinary aliases (a block reused a few times) still work
    ok = "block: &b {a: [1, 2, 3]}\nx: *b\ny: *b\nz: [*b, *b]\n"
    assert read_yaml(write_text(tmp_path, ok, "ok.yml"))["z"] == [{"a": [1, 2, 3]}] * 2


def test_recursive_alias_and_deep_nesting_are_one_line(tmp_path: Path) -> None:
    path = write_text(tmp_path, "a: &a [1, *a]\n")
    assert config_error(path) == f"{path}: line 1: alias *a refers to a node that contains it"
    path = write_text(tmp_path, "a: " + "[" * 2000 + "]" * 2000 + "\n", "deep.yml")
    assert "nested too deeply" in config_error(path)


def test_unknown_key_is_reported_before_references_are_expanded(tmp_path: Path) -> None:
    # the typo is why the reference misses: report the typo, not the reference
    text = CONFIG.replace("  total_iter: 10\n", "  total_itr: 10\n  ema_start: ${train.total_iter}\n")
    path = write_text(tmp_path, text)
    msg = config_error(path)
    assert msg.startswith(f"{path}: train.total_itr: unknown key"), msg
    assert "refers to a missing key" not in msg
    # an unknown key elsewhere also wins over a reference error
    text = CONFIG.replace('upscale: "${scale}"', 'upscale: "${scael}"') + "seeed: 3\n"
    msg = config_error(write_text(tmp_path, text, "two.yml"))
    assert "seeed: unknown key (did you mean 'seed'?)" in msg
    # with no unknown key, the reference error is still reported
    text = CONFIG.replace('upscale: "${scale}"', 'upscale: "${scael}"')
    assert "${scael} refers to a missing key" in config_error(write_text(tmp_path, text, "ref.yml"))


# ---------------------------------------------------------------------------------------------
# 2. Export metadata is untrusted input

SPEC = {"type": "EDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "upscale": 2}


def tiny_export(path: Path, **changes: object) -> torch.nn.Module:
    torch.manual_seed(0)
    net = ARCHS.build({**SPEC, **changes}).eval()
    export_network(net, path)
    return net


def rewrite(src: Path, dst: Path, state: dict | None = None, **meta: str) -> Path:
    """``src``'s tensors (or ``state``) with its metadata updated by ``meta``."""
    old_meta, _ = read_header(src)
    save_file(state if state is not None else load_file(str(src)), str(dst), metadata={**old_meta, **meta})
    return dst


@pytest.fixture
def export(tmp_path: Path) -> Path:
    tiny_export(tmp_path / "model.safetensors")
    return tmp_path / "model.safetensors"


def weights_error(path: Path) -> str:
    with pytest.raises(RestorekitError) as info:
        read_network(path)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{path}: "), msg
    return msg


def _kwargs(**changes: object) -> str:
    return json.dumps({k: v for k, v in {**SPEC, **changes}.items() if k != "type"})


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ("[1, 2]", "metadata 'kwargs' must be a JSON object, got list"),
        ('"EDSR"', "metadata 'kwargs' must be a JSON object, got str"),
        ("{not json", "metadata 'kwargs' is not valid JSON"),
        ("[" * 20000 + "]" * 20000, "metadata 'kwargs' is not valid JSON"),
        (_kwargs(num_blok=2), "metadata kwargs.num_blok: unknown argument for architecture 'EDSR'"),
        (_kwargs(num_feat="wide"), "metadata kwargs.num_feat:"),
        (_kwargs(num_feat=-4), "EDSR cannot be built from its metadata kwargs"),
        (_kwargs(num_feat=16), "shape mismatch (file vs model) conv_first.weight (8, 3, 3, 3) vs (16, 3,"),
    ],
)
def test_bad_metadata_kwargs_are_one_line(export: Path, tmp_path: Path, kwargs: str, fragment: str) -> None:
    bad = rewrite(export, tmp_path / "bad.safetensors", kwargs=kwargs)
    assert fragment in weights_error(bad)


def test_unknown_arch_and_disagreeing_info(export: Path, tmp_path: Path) -> None:
    bad = rewrite(export, tmp_path / "arch.safetensors", arch="EDSRR")
    assert "metadata 'arch': unknown architecture 'EDSRR' (did you mean 'EDSR'?)" in weights_error(bad)
    info = json.loads(read_header(export)[0]["info"])
    bad = rewrite(export, tmp_path / "info.safetensors", info=json.dumps({**info, "scale": 64}))
    assert "metadata 'info' says scale 64 but EDSR built from its kwargs has 2" in weights_error(bad)


BIGGER = "describe a network larger than the file (EDSR with more than"


def test_huge_num_block_is_refused_before_anything_is_allocated(
    export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import restorekit.archs.export as archs_export

    def no_real_read(*_: object, **__: object) -> None:
        raise AssertionError("tensors were read before the metadata was checked")

    monkeypatch.setattr(archs_export, "read_state_dict", no_real_read)
    for kwargs, fragment in (
        (_kwargs(num_block=10**9), BIGGER),  # was 85 s and 5 GB, then bad_alloc
        (_kwargs(num_block=1e9), BIGGER),
        (_kwargs(num_feat=10**6), "shape mismatch"),  # 10**12-element tensors: only on meta
        (_kwargs(num_feat=10**9), "EDSR cannot be built"),  # more bytes than int64 counts
    ):
        bad = rewrite(export, tmp_path / "big.safetensors", kwargs=kwargs)
        start = time.perf_counter()
        assert fragment in weights_error(bad)
        assert time.perf_counter() - start < 5.0


def test_metadata_size_is_bounded(export: Path, tmp_path: Path) -> None:
    bad = rewrite(export, tmp_path / "fat.safetensors", padding="x" * (MAX_METADATA_BYTES + 1))
    assert f"over {MAX_METADATA_BYTES}); not an export" in weights_error(bad)


def test_every_shipped_arch_survives_the_meta_build(tmp_path: Path) -> None:
    """The ghost build on the meta device must work for every architecture, fast: spectral norm
    once took 5 s there (its first ``normalize`` on meta imported torch._dynamo)."""
    from test_arch_info import SMALL_KWARGS

    for name, variants in SMALL_KWARGS.items():
        for i, kwargs in enumerate(variants):
            net = ARCHS.build({"type": name, **kwargs})
            path = tmp_path / f"{name}{i}.safetensors"
            export_network(net, path)
            start = time.perf_counter()
            back, _ = read_network(path)
            assert time.perf_counter() - start < 2.0, name
            want, got = net.state_dict(), back.state_dict()
            assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want), name


def test_checkpoint_config_cannot_build_a_huge_network(tmp_path: Path) -> None:
    from restorekit.inference.export import load_checkpoint_network

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    net = ARCHS.build(SPEC)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(ckpt / "net_g.safetensors"))
    (ckpt / "config.yaml").write_text(yaml.safe_dump({"network_g": {**SPEC, "num_block": 10**9}}))
    start = time.perf_counter()
    with pytest.raises(WeightsError, match=r"config\.yaml network_g " + re.escape(BIGGER)):
        load_checkpoint_network(ckpt)
    assert time.perf_counter() - start < 5.0


# ---------------------------------------------------------------------------------------------
# 3. Pickled weights with a payload


class Payload:
    """Unpickling this would create the marker file: the test passes only if it never runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, ...]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def evil(tmp_path: Path) -> tuple[Path, Path, Path]:
    marker = tmp_path / "MARKER"
    zipped = tmp_path / "evil.pth"
    torch.save({"conv.weight": torch.zeros(1), "x": Payload(marker)}, zipped)
    legacy = tmp_path / "legacy.pth"  # plain pickle protocol 4: torch warns about it on stderr
    with open(legacy, "wb") as fh:
        pickle.dump({"x": Payload(marker)}, fh, protocol=4)
    return zipped, legacy, marker


def test_pickle_payload_never_runs_and_is_one_line(
    evil: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zipped, legacy, marker = evil
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(2):
        cv2.imwrite(str(imgs / f"{i}.png"), np.full((16, 16, 3), 40 * i, np.uint8))
    for weights in (zipped, legacy):
        lines = []
        for args in (
            ["metrics", "fid", str(imgs), str(imgs), "--weights", str(weights), "--device", "cpu"],
            ["infer", "--weights", str(weights), "-i", str(imgs), "-o", str(tmp_path / "out")],
        ):
            capsys.readouterr()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                assert main(args) == 2
            err = capsys.readouterr().err
            assert [str(w.message) for w in caught] == []  # torch's pickle-protocol warning was a 2nd line
            assert err.count("\n") == 1 and "refused to load" in err and "weights_only=False" not in err
            lines.append(err)
        assert lines[0] == lines[1]  # fid and infer say the same thing
    assert not marker.exists()


def test_every_weights_reader_refuses_the_payload(evil: tuple[Path, Path, Path]) -> None:
    from restorekit.archs.inception import FIDInception
    from restorekit.inference.export import load_any
    from restorekit.weights import read_state_dict

    zipped, legacy, marker = evil
    for weights in (zipped, legacy):
        for load in (read_state_dict, load_any, lambda p: FIDInception(weights_path=p, dims=64)):
            with pytest.raises(WeightsError) as info:
                load(weights)
            assert "weights_only=False" not in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# 4. Non-finite weights


def test_nan_weights_are_refused_by_infer_and_export(
    export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = load_file(str(export))
    state["conv_first.weight"][0, 0, 0, 0] = float("nan")
    state["conv_last.bias"][0] = float("inf")
    bad = rewrite(export, tmp_path / "nan.safetensors", state=state)
    src = tmp_path / "in.png"
    cv2.imwrite(str(src), np.full((8, 8, 3), 100, np.uint8))
    capsys.readouterr()
    assert (
        main(["infer", "--quiet", "--weights", str(bad), "-i", str(src), "-o", str(tmp_path / "o.png")]) == 2
    )
    err = capsys.readouterr().err
    assert (
        err == f"error: {bad}: 2 of {len(state)} tensors hold NaN or Inf values; refusing these weights "
        "(did training diverge? use an earlier checkpoint)\n"
    )
    assert not (tmp_path / "o.png").exists()  # was a black image with exit status 0
    assert main(["export", str(bad), "-o", str(tmp_path / "re.safetensors")]) == 2
    assert "2 of" in capsys.readouterr().err and not (tmp_path / "re.safetensors").exists()
    # an official-style file without metadata goes through the same check
    plain = tmp_path / "plain.pth"
    torch.save(state, plain)
    assert "2 of" in weights_error(plain)


def test_export_network_refuses_to_write_nan(tmp_path: Path) -> None:
    net = ARCHS.build(SPEC)
    with torch.no_grad():
        net.conv_first.weight.fill_(float("nan"))
    out = tmp_path / "nan.safetensors"
    with pytest.raises(WeightsError, match=r"refusing to write weights with NaN or Inf values \(1 of"):
        export_network(net, out)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# 5. Failed writes leave no temporary file


def _one_image(tmp_path: Path) -> Path:
    src = tmp_path / "in" / "a.png"
    src.parent.mkdir()
    cv2.imwrite(str(src), np.full((8, 8, 3), 100, np.uint8))
    return src


def test_full_disk_is_one_line_and_leaves_no_temp_file(
    export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _one_image(tmp_path)
    out = tmp_path / "out"

    def full_disk(path: Path, data: memoryview) -> None:
        with open(path, "wb") as fh:
            fh.write(bytes(data)[:10])  # part of the file made it before the disk filled
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files, "_write_bytes", full_disk)
    capsys.readouterr()
    assert main(["infer", "--quiet", "--weights", str(export), "-i", str(src.parent), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(
        re.escape(f"error: {out / 'a.png'}: no space left on device") + r" \(needed ~\d+ MB\)\n", err
    )
    assert list(out.iterdir()) == []  # no .a.png.tmpPID


def test_read_only_output_folder_leaves_no_temp_file(
    export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _one_image(tmp_path)
    out = tmp_path / "out"

    def refuse(a: object, b: object) -> None:  # the folder became read-only after the tmp write
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(files.os, "replace", refuse)
    capsys.readouterr()
    assert main(["infer", "--quiet", "--weights", str(export), "-i", str(src), "-o", str(out / "a.png")]) == 2
    assert capsys.readouterr().err == f"error: {out / 'a.png'}: permission denied\n"
    assert list(out.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# 6. Gray + alpha PNG stays gray + alpha


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gray_alpha_png_stays_gray_alpha(export: Path, tmp_path: Path, dtype: type) -> None:
    top = np.iinfo(dtype).max
    rng = np.random.default_rng(1)
    la = rng.integers(0, top + 1, size=(9, 11, 2)).astype(dtype)
    src = tmp_path / "la.png"
    src.write_bytes(encode_gray_alpha_png(la))
    gray = tmp_path / "gray.png"
    cv2.imwrite(str(gray), la[..., 0])
    for image, result in ((src, "o.png"), (gray, "g.png")):
        args = ["-i", str(image), "-o", str(tmp_path / result)]
        assert main(["infer", "--quiet", "--weights", str(export), *args]) == 0
    out = tmp_path / "o.png"
    assert is_gray_alpha_png(out)  # colour type 4 in the header: two channels, not RGBA
    got = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)  # OpenCV expands it to BGRA on reading
    assert got.dtype == dtype and got.shape == (18, 22, 4)
    assert (got[..., 0] == cv2.imread(str(tmp_path / "g.png"), cv2.IMREAD_UNCHANGED)).all()
    alpha = cv2.resize(la[..., 1].astype(np.float32) / top, (22, 18), interpolation=cv2.INTER_CUBIC)
    assert np.abs(got[..., 3].astype(int) - np.round(np.clip(alpha, 0, 1) * top)).max() <= 1


# ---------------------------------------------------------------------------------------------
# 7. export -o that cannot be written


def test_export_output_errors_are_one_line(
    export: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "dir.safetensors"
    folder.mkdir()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = [
        (folder, "is a directory"),
        (a_file / "sub" / "m.safetensors", f"cannot be created: {a_file} is a file, not a folder"),
    ]
    for out, fragment in cases:
        for extra in ((), ("--overwrite",)):
            capsys.readouterr()
            assert main(["export", str(export), "-o", str(out), *extra]) == 2
            err = capsys.readouterr().err
            assert err.startswith(f"error: {out}: ") and fragment in err and err.count("\n") == 1
    assert folder.is_dir() and list(folder.iterdir()) == []
    # export_network itself (as training calls it) is one line too
    with pytest.raises(WeightsError, match="cannot write the export"):
        export_network(ARCHS.build(SPEC), a_file / "m.safetensors")
