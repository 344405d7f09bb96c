"""Prefetchers and the device-agnostic batch helpers (restorekit.data.prefetch)."""

from __future__ import annotations

import logging
from collections import namedtuple

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from restorekit.data import prefetch
from restorekit.data.prefetch import CPUPrefetcher, CUDAPrefetcher, iter_tensors, move_to
from restorekit.errors import RestorekitError


def make_loader(n: int = 5, pin_memory: bool = False) -> DataLoader:
    data = torch.arange(n * 2, dtype=torch.float32).reshape(n, 2)
    return DataLoader(TensorDataset(data), batch_size=2, pin_memory=pin_memory)


def test_cpu_prefetcher_next_none_and_reset() -> None:
    pf = CPUPrefetcher(make_loader())
    got = []
    while (batch := pf.next()) is not None:
        got.append(batch[0])
    assert [b.shape[0] for b in got] == [2, 2, 1]
    assert torch.equal(torch.cat(got), torch.arange(10.0).reshape(5, 2))
    assert pf.next() is None  # stays exhausted until reset
    pf.reset()
    first = pf.next()
    assert first is not None and torch.equal(first[0], got[0])
    assert len(list(pf)) == 2  # __iter__ continues from the current position


def test_move_to_keeps_structure_and_non_tensors() -> None:
    Pair = namedtuple("Pair", "a b")
    batch = {
        "lq": torch.ones(2, 3),
        "paths": ["x.png", "y.png"],
        "nested": (torch.zeros(1, dtype=torch.int64), {"k": Pair(torch.ones(1), 7)}),
    }
    moved = move_to(batch, "meta")  # the meta device proves tensors really move
    assert moved["lq"].device.type == "meta" and moved["lq"].shape == (2, 3)
    assert moved["paths"] == ["x.png", "y.png"]
    assert isinstance(moved["nested"], tuple) and moved["nested"][0].dtype == torch.int64
    pair = moved["nested"][1]["k"]
    assert isinstance(pair, Pair) and pair.a.device.type == "meta" and pair.b == 7
    assert batch["lq"].device.type == "cpu"  # the input is untouched
    assert len(list(iter_tensors(moved))) == 3


def test_cuda_prefetcher_constructs_anywhere_and_fails_clearly_without_cuda(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="restorekit.data.prefetch"):
        pf = CUDAPrefetcher(make_loader(pin_memory=False), "cuda")
    assert "pin_memory=False" in caplog.text
    monkeypatch.setattr(prefetch.torch.cuda, "is_available", lambda: False)
    with pytest.raises(RestorekitError, match="CUDA is not available"):
        pf.next()
    with pytest.raises(RestorekitError, match="CUDAPrefetcher needs a CUDA device, got cpu"):
        CUDAPrefetcher(make_loader(), "cpu")


class _FakeStream:
    """Stands in for torch.cuda streams so the prefetch protocol can be checked on a CPU."""

    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def wait_stream(self, other: _FakeStream) -> None:
        self.log.append(f"{self.name} waits {other.name}")


def test_cuda_prefetcher_protocol_with_fake_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    current = _FakeStream(events, "current")
    cuda = prefetch.torch.cuda
    monkeypatch.setattr(cuda, "is_available", lambda: True)
    monkeypatch.setattr(cuda, "Stream", lambda device=None: _FakeStream(events, "side"))
    monkeypatch.setattr(cuda, "current_stream", lambda device=None: current)

    class _Ctx:
        def __init__(self, stream: _FakeStream) -> None:
            self.stream = stream

        def __enter__(self) -> None:
            events.append(f"enter {self.stream.name}")

        def __exit__(self, *exc: object) -> None:
            events.append("exit")

    monkeypatch.setattr(cuda, "stream", _Ctx)

    def fake_move(batch, device, non_blocking=False):
        assert non_blocking and device == torch.device("cuda")
        events.append(f"copy {int(batch[0][0, 0])}")
        return [t.clone() for t in batch]

    monkeypatch.setattr(prefetch, "move_to", fake_move)
    monkeypatch.setattr(torch.Tensor, "record_stream", lambda self, s: events.append(f"record {s.name}"))

    pf = CUDAPrefetcher(make_loader(), "cuda")
    first = pf.next()
    assert first is not None and torch.equal(first[0], torch.tensor([[0.0, 1.0], [2.0, 3.0]]))
    # batch 0 copied on the side stream, the consumer waited, marked it, then batch 1 was queued
    assert events == [
        "enter side", "copy 0", "exit",
        "current waits side", "record current",
        "enter side", "copy 4", "exit",
    ]  # fmt: skip
    rest = list(pf)
    assert [int(b[0][0, 0]) for b in rest] == [4, 8]
    assert pf.next() is None
