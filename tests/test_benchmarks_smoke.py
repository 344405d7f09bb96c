"""Each benchmark script runs in its --quick mode and produces a well-formed results table.

Scripts that write ``benchmarks/RESULTS.md`` are pointed at a temporary file (``--results``) and
must replace only their own ``## <name>`` section; scripts whose --quick mode writes nothing must
print their section. No timing is asserted: speed is reported in RESULTS.md, never tested.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"

pytestmark = pytest.mark.slow  # each test starts a Python process that imports torch and trains


def run_quick(script: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), "--quick", *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def section(text: str, name: str) -> str:
    match = re.search(rf"^## {name}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert match, f"no '## {name}' section in:\n{text}"
    return match.group(1)


def table_rows(body: str) -> tuple[list[str], list[list[str]]]:
    """Header cells and data rows of the first Markdown table in ``body``, checked for shape."""
    lines = []
    for ln in body.splitlines():
        if ln.startswith("|"):
            lines.append(ln)
        elif lines:
            break
    assert len(lines) >= 3, body
    cells = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines]
    header, rule, rows = cells[0], cells[1], cells[2:]
    assert all(c and set(c) <= set("-:") for c in rule), lines[1]
    assert all(len(r) == len(header) == len(rule) for r in rows), lines
    for row in rows:  # every row carries a measurement
        assert any(re.fullmatch(r"[\d.]+(×|–[\d.]+)?", c) for c in row[1:]), row
    return header, rows


def machine_line(body: str) -> None:
    """The machine is described: CPU model, cores, torch version."""
    assert re.search(r"\d+ logical CPUs .+torch \d+\.\d+", body), body


def seeded_results(path: Path, name: str) -> None:
    """A results file with this benchmark's stale section between two others."""
    path.write_text(
        f"# Benchmark results\n\n## other_before\n\nkeep me 1\n\n## {name}\n\nstale numbers\n\n"
        "## other_after\n\nkeep me 2\n",
        encoding="utf-8",
    )


def replaced_in_place(path: Path, name: str) -> str:
    text = path.read_text(encoding="utf-8")
    assert text.count(f"## {name}") == 1 and "stale numbers" not in text
    assert "keep me 1" in text and "keep me 2" in text
    assert text.index("## other_before") < text.index(f"## {name}") < text.index("## other_after")
    body = section(text, name)
    machine_line(body)
    return body


def test_train_step_quick_writes_its_section_and_keeps_the_others(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    seeded_results(results, "train_step")
    run_quick("train_step.py", "--results", str(results))
    body = replaced_in_place(results, "train_step")
    assert re.search(r"\d+ torch thread", body), body
    header, rows = table_rows(body)
    assert header[:4] == ["network", "EMA", "bare ms/step", "trainer ms/iter"]
    # two tiny networks, EMA off and on
    assert [(r[0].split()[0], r[1]) for r in rows] == [
        ("EDSR", "off"),
        ("EDSR", "on"),
        ("MSRResNet", "off"),
        ("MSRResNet", "on"),
    ]
    for row in rows:
        bare, trainer, ratio_wall, spread_wall, ratio_cpu, spread_cpu = row[2:]
        assert float(bare) > 0 and float(trainer) > 0
        for ratio, spread in ((ratio_wall, spread_wall), (ratio_cpu, spread_cpu)):
            low, high = (float(x) for x in spread.split("–"))
            assert 0 < low <= float(ratio) <= high, row
    # the second table: EMA.update timed in the trainer and the bare loop, for the EMA-on rows
    ema_header, ema_rows = table_rows(body[body.index("EMA's own cost") :])
    assert ema_header[0] == "network" and [r[0] for r in ema_rows] == [r[0] for r in rows if r[1] == "on"]
    for row in ema_rows:
        assert float(row[1]) > 0 and float(row[2]) > 0 and row[3].endswith("%")


def test_speed_options_quick(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    seeded_results(results, "speed_options")
    run_quick("speed_options.py", "--results", str(results))
    header, rows = table_rows(replaced_in_place(results, "speed_options"))
    assert header[0] == "option" and "trainer/bare wall" in header
    names = [r[0] for r in rows]
    assert names[0] == "fp32" and len(names) >= 2
    for row in rows:
        assert float(row[header.index("trainer/bare wall")]) > 0
    assert rows[0][header.index("bare speed-up vs fp32")] == "1.00×"


def test_swinir_train_quick(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    seeded_results(results, "swinir_train")
    run_quick("swinir_train.py", "--results", str(results))
    body = replaced_in_place(results, "swinir_train")
    assert "tiny SwinIR x4" in body and "--results" not in body, body
    header, rows = table_rows(body)
    assert header[:3] == ["precision", "bare ms/step", "trainer ms/iter"] and [r[0] for r in rows] == ["fp32"]
    for row in rows:
        for col in ("trainer/bare wall", "trainer/bare CPU"):
            ratio = float(row[header.index(col)])
            low, high = (float(x) for x in row[header.index(col) + 1].split("–"))
            assert 0 < low <= ratio <= high, row


def test_lightweight_gan_attention_quick(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    seeded_results(results, "lightweight_gan_attention")
    run_quick("lightweight_gan_attention.py", "--results", str(results))
    body = replaced_in_place(results, "lightweight_gan_attention")
    header, rows = table_rows(body)
    assert header[0] == "attention (heads × dim_head)" and len(rows) == 3
    assert [r[0] for r in rows] == ["8 × 64, one pass", "8 × 64, CPU slices", "2 × 16 (toy)"]
    assert all(float(r[1]) > 0 and float(r[3].rstrip("×")) > 0 for r in rows)


def test_gan_step_quick(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    seeded_results(results, "gan_step")
    run_quick("gan_step.py", "--results", str(results))
    header, rows = table_rows(replaced_in_place(results, "gan_step"))
    assert "task / bare" in header and len(rows) >= 1
    for row in rows:
        assert float(row[header.index("task / bare")].rstrip("×")) > 0


def test_gan_generation_quick(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    seeded_results(results, "gan_generation")
    run_quick("gan_generation.py", "--results", str(results), "--toy-note", "toy line 1.5 s/iteration")
    body = replaced_in_place(results, "gan_generation")
    assert "sizes reduced" in body and "toy line 1.5 s/iteration" in body, body
    header, rows = table_rows(body)
    assert header[:3] == ["size", "networks", "batch"] and "task / bare" in header
    assert [r[0] for r in rows] == ["32 px"]
    for row in rows:
        task_ms, bare_ms = float(row[header.index("task (ms/it)")]), float(row[header.index("bare (ms/it)")])
        assert task_ms > 0 and bare_ms > 0
        # images/s is batch / (s per iteration), on both sides
        ips = float(row[header.index("task img/s")])
        assert ips == pytest.approx(int(row[header.index("batch")]) / (task_ms / 1000), rel=0.02)
        ratio = float(row[header.index("task / bare")].rstrip("×"))
        low, high = (float(x) for x in row[header.index("range")].rstrip("×").split("–"))
        assert 0 < low <= ratio <= high, row


def test_dataloader_quick(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    seeded_results(results, "dataloader")
    run_quick("dataloader.py", "--results", str(results))
    body = replaced_in_place(results, "dataloader")
    assert re.search(r"Parallelism available .+: [\d.]+× → [\d.]+×", body), body
    header, rows = table_rows(body)
    assert header[:2] == ["variant", "samples/s (median)"]
    assert any(r[0].startswith("PairedImageDataset") for r in rows)
    assert any("LQ on device" in r[0] for r in rows)
    assert all(float(r[1]) > 0 for r in rows)


def test_ddp_scaling_quick_two_processes(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    seeded_results(results, "ddp_scaling")
    run_quick("ddp_scaling.py", "--results", str(results))
    header, rows = table_rows(replaced_in_place(results, "ddp_scaling"))
    by_name = {r[0]: r for r in rows}
    assert set(by_name) == {"1 proc × 1 thread", "2 proc × 1 thread"}
    two = by_name["2 proc × 1 thread"]
    assert int(two[header.index("global batch")]) == 2 * int(by_name["1 proc × 1 thread"][1])
    assert float(two[header.index("efficiency")]) > 0


def test_ddp_scaling_efficiency_is_per_process_throughput(monkeypatch: pytest.MonkeyPatch) -> None:
    """efficiency = samples/s(N) / (N × samples/s(1)), with samples/s = N × batch × it/s."""
    monkeypatch.syspath_prepend(str(BENCH))
    ddp = importlib.import_module("ddp_scaling")
    one, two = ddp.Variant(1, 1), ddp.Variant(2, 1)
    # two processes each at 3/4 of one process's it/s: 1.5x the samples/s, efficiency 0.75
    its = {one: [2.0, 4.0], two: [1.5, 3.0]}
    args = argparse.Namespace(
        device="cpu",
        load_before="0",
        load_after="0",
        network="EDSR tiny x4",
        batch=2,
        patch=8,
        print_freq=2,
        intervals=1,
        rounds=2,
        quick=True,
        series="scaling",
        nproc=[1, 2],
        parallel=[1.5, 1.25],  # the parallelism probe before → after
    )
    text = ddp.table(its, [], args)
    assert "1.50× → 1.25×" in text
    header, rows = table_rows(section(text, "ddp_scaling"))
    row = {r[0]: r for r in rows}[two.name]
    assert row[header.index("efficiency")] == "0.75"
    assert row[header.index("samples/s")] == f"{2 * 2 * 2.25:.2f}"  # median it/s 2.25, 2 procs × batch 2


@pytest.mark.parametrize(
    ("script", "name"), [("degradation.py", "degradation"), ("infer.py", "infer"), ("metrics.py", "metrics")]
)
def test_quick_prints_its_section(script: str, name: str) -> None:
    """These scripts' --quick runs write nothing and print the section they would write."""
    if not (BENCH / script).exists():
        pytest.fail(f"benchmarks/{script} is gone; drop it from this test")
    proc = run_quick(script)
    body = section(proc.stdout, name)
    machine_line(body)
    table_rows(body)
