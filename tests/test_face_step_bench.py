"""benchmarks/face_step.py compares like with like: its bare loop is the face task's step.

With the StyleGAN2 noise fixed (``randomize_noise: False``) one iteration of the hand-written loop
and one ``FaceTask.train_step`` from the same weights on the same batch give the same G loss and
leave G, D and every component D with identical weights; otherwise the benchmark's ratio would
measure a different computation, not the framework's overhead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import face_step


def test_bare_loop_equals_the_task_step(tmp_path: Path) -> None:
    args = argparse.Namespace(device="cpu", size=32, batch=2)
    task, bare, batches = face_step.build(args, tmp_path)
    task.noise_kw = bare.noise_kw = {"randomize_noise": False}
    before = [p.detach().clone() for p in bare.g.parameters()]
    logs = task.train_step([batches[0]], 1)
    bare.step(batches[0])
    g_loss = sum(float(v) for k, v in logs.items() if k.startswith(("l_g_", "l_p_", "l_identity")))
    assert abs(g_loss - float(bare.g_loss)) < 1e-5 * max(1.0, g_loss)
    pairs = [("net_g", bare.g), ("net_d", bare.d)] + [(f"net_d_{c}", m) for c, m in bare.comps.items()]
    for role, module in pairs:
        for (name, a), b in zip(task.networks[role].named_parameters(), module.parameters(), strict=True):
            assert torch.equal(a, b), (role, name)
    assert any(not torch.equal(p, q) for p, q in zip(bare.g.parameters(), before, strict=True))
