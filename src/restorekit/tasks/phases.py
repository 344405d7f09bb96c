"""Phases with their own intervals, and values that change at given iterations.

GAN recipes interleave several updates at different rates: StyleGAN2-ADA runs a D step every
iteration and its R1 penalty every 16 ("lazy regularisation"), BasicSR steps G every
``net_d_iters`` after ``net_d_init_iters`` of D warm-up, lightweight-gan's gradient penalty runs
every 4. Writing each as ``it % k == 0 and it > start`` inside every task hides the rhythm in
the step's body and forgets to count; a :class:`Phases` table states it once, counts how often
each phase ran (saved in the checkpoint, so counters survive resume) and answers ``due(name, it)``.

:class:`StepValue` is a loss weight (or any number) that changes at given iterations, like
GFPGAN's pyramid loss weight that drops to 1e-12 after ``remove_pyramid_loss`` iterations.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from restorekit.errors import ConfigError


@dataclass
class Phase:
    """Runs at iterations ``it > start`` with ``it % every == 0`` (``it`` is 1-based)."""

    every: int = 1
    start: int = 0
    runs: int = 0

    def due(self, it: int) -> bool:
        return it > self.start and it % self.every == 0


class Phases:
    """Named phases; ``due(name, it)`` is pure, ``run(name, it)`` also counts the run."""

    def __init__(self) -> None:
        self._phases: dict[str, Phase] = {}

    def add(self, name: str, every: int = 1, start: int = 0, where: str = "") -> Phase:
        if every < 1:
            raise ConfigError(f"{where or name}: a phase interval must be >= 1, got {every}")
        if start < 0:
            raise ConfigError(f"{where or name}: a phase start must be >= 0, got {start}")
        phase = Phase(every=every, start=start)
        self._phases[name] = phase
        return phase

    def __getitem__(self, name: str) -> Phase:
        return self._phases[name]

    def __contains__(self, name: object) -> bool:
        return name in self._phases

    def due(self, name: str, it: int) -> bool:
        return self._phases[name].due(it)

    def run(self, name: str, it: int) -> bool:
        """True (and counted) when ``name`` is due at ``it``."""
        phase = self._phases[name]
        if not phase.due(it):
            return False
        phase.runs += 1
        return True

    def state_dict(self) -> dict[str, Any]:
        return {name: {"runs": p.runs} for name, p in self._phases.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name, saved in state.items():
            if name in self._phases:
                self._phases[name].runs = int(saved["runs"])


class StepValue:
    """A number that takes ``value`` from iteration 1 and ``changes[k]`` once ``it > k``.

    ``StepValue(1.0, {2000: 1e-12})`` is GFPGAN's pyramid-loss weight with
    ``remove_pyramid_loss: 2000``. Pure in ``it``, so nothing needs saving for resume.
    """

    def __init__(self, value: float, changes: Mapping[int, float] | None = None) -> None:
        items = sorted((int(k), float(v)) for k, v in (changes or {}).items())
        self._at = [k for k, _ in items]
        self._values = [float(value), *(v for _, v in items)]

    def at(self, it: int) -> float:
        return self._values[bisect.bisect_left(self._at, it)]
