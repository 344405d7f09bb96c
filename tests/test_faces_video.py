"""Video through PyAV (``restorekit.faces.video``) and temporal landmark smoothing (``.smoothing``).

The test videos are written here with PyAV: the astronaut's face (scikit-image) drifting up,
a four-bit frame index drawn as black/white blocks along the bottom (survives H.264), and a
440 Hz sine as audio, so order, count, timing and audio can all be checked on the output.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import skimage.data

from restorekit.errors import DataError, RestorekitError
from restorekit.faces.smoothing import LandmarkSmoother, OneEuroFilter
from restorekit.faces.types import Face
from restorekit.faces.video import probe_video, restore_video

pytestmark = pytest.mark.usefixtures("one_thread")

FPS, FRAMES, SIZE, RATE = 24, 12, 96, 48000
BITS = 4  # frame index blocks: 4 × 24 px along the bottom 16 rows


def frame_image(i: int, size: int = SIZE) -> np.ndarray:
    """Frame ``i``: the astronaut's face moved up by 2 px (source pixels) per frame + the index blocks."""
    crop = skimage.data.astronaut()[40 + 2 * i : 240 + 2 * i, 120:320]
    img = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
    img[-16:] = 0
    w = size // BITS
    for b in range(BITS):
        if i >> b & 1:
            img[-16:, b * w : (b + 1) * w] = 255
    return img


def read_index(img: np.ndarray) -> int:
    """The frame index drawn by ``frame_image``, at any scale of the frame."""
    h, w = img.shape[:2]
    band = img[h - h // 8 :].mean(axis=(0, 2))  # the bottom 12 of 96 rows: inside the blocks
    bw = w // BITS
    return sum(int(band[b * bw + bw // 4 : (b + 1) * bw - bw // 4].mean() > 128) << b for b in range(BITS))


def make_video(path: Path, frames: int = FRAMES, audio: str | None = "aac", codec: str = "libx264") -> Path:
    """A short test video with the index pattern and (unless ``audio`` is None) a sine track."""
    out = av.open(str(path), "w")
    v = out.add_stream(codec, rate=FPS)
    v.width = v.height = SIZE
    v.pix_fmt = "yuv420p"
    if codec == "libx264":
        v.options = {"crf": "10"}
    a = out.add_stream(audio, rate=RATE, layout="mono") if audio else None
    for i in range(frames):
        f = av.VideoFrame.from_ndarray(frame_image(i), format="rgb24")
        f.pts = i
        for p in v.encode(f):
            out.mux(p)
    if a is not None:
        n = RATE * frames // FPS
        wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / RATE)).astype(np.float32)
        fmt = "s16" if audio.startswith("pcm") else "fltp"
        data = (wave * 32767).astype(np.int16) if fmt == "s16" else wave
        for k in range(0, n, 1024):
            af = av.AudioFrame.from_ndarray(data[None, k : k + 1024], format=fmt, layout="mono")
            af.sample_rate, af.pts = RATE, k
            for p in a.encode(af):
                out.mux(p)
        for p in a.encode():
            out.mux(p)
    for p in v.encode():
        out.mux(p)
    out.close()
    return path


def decoded(path: Path) -> tuple[list[np.ndarray], float | None]:
    """All frames (RGB) and the audio's decoded duration in seconds (None: no audio)."""
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return frames, None
        s = c.streams.audio[0]
        samples = sum(f.samples for f in c.decode(audio=0))
        return frames, samples / s.rate


def upscale2(img: np.ndarray) -> np.ndarray:
    return cv2.resize(img, (img.shape[1] * 2, img.shape[0] * 2), interpolation=cv2.INTER_LINEAR)


@pytest.mark.parametrize(("ext", "audio_in", "mode"), [
    (".mp4", "aac", "copied (aac)"),
    (".mkv", "pcm_s16le", "copied (pcm_s16le)"),
    (".webm", "aac", "transcoded (aac -> libopus)"),
    (".mov", None, None),
])  # fmt: skip
def test_frames_in_order_audio_kept(tmp_path: Path, ext: str, audio_in: str | None, mode: str | None) -> None:
    src = make_video(tmp_path / ("in.mkv" if audio_in == "pcm_s16le" else "in.mp4"), audio=audio_in)
    _, audio_src = decoded(src)
    seen: list[int] = []
    shapes: set[tuple[int, ...]] = set()

    def process(frame: np.ndarray) -> np.ndarray:  # one frame at a time, in order
        assert frame.dtype == np.uint8 and frame.shape == (SIZE, SIZE, 3)
        seen.append(read_index(frame))
        shapes.add(frame.shape)
        return upscale2(frame)

    dst = tmp_path / f"out{ext}"
    info = restore_video(src, dst, process, progress=False)
    assert seen == list(range(FRAMES))
    assert info["frames"] == FRAMES and info["size"] == [2 * SIZE, 2 * SIZE] and info["audio"] == mode
    assert info["fps"] == pytest.approx(FPS)
    frames, audio_out = decoded(dst)
    assert [read_index(f) for f in frames] == list(range(FRAMES))
    assert frames[0].shape == (2 * SIZE, 2 * SIZE, 3)
    assert np.abs(frames[3].astype(float) - upscale2(frame_image(3))).mean() < 6  # the content, not noise
    if audio_in is None:
        assert audio_out is None
    else:
        assert audio_src is not None and audio_out is not None
        assert abs(audio_out - audio_src) <= 1 / FPS
        assert abs(audio_out - FRAMES / FPS) <= 1 / FPS + 1024 / RATE  # AAC frames round up
    probe = probe_video(dst)
    assert probe["fps"] == pytest.approx(FPS) and (probe["width"], probe["height"]) == (2 * SIZE, 2 * SIZE)
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file was renamed


def test_copied_audio_is_bit_identical(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4")
    dst = tmp_path / "out.mp4"
    restore_video(src, dst, lambda f: f, progress=False)

    def packets(path: Path) -> list[bytes]:
        with av.open(str(path)) as c:
            return [bytes(p) for p in c.demux(audio=0) if p.size]

    assert packets(dst) == packets(src)


def test_odd_size_is_padded_and_transcoded_audio_into_mp4(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mkv", audio="pcm_s16le")
    info = restore_video(src, tmp_path / "o.mp4", lambda f: f[:95, :93], progress=False)
    assert info["audio"] == "transcoded (pcm_s16le -> aac)"
    assert info["size"] == [94, 96] and info["processed_size"] == [93, 95]  # the file vs the frames
    frames, audio = decoded(tmp_path / "o.mp4")
    assert len(frames) == FRAMES and frames[0].shape == (96, 94, 3) and audio is not None


def test_errors_are_one_line_and_nothing_is_left(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 50)
    with pytest.raises(DataError, match=r"bad\.mp4: is not a readable video") as err:
        restore_video(bad, tmp_path / "o.mp4", lambda f: f, progress=False)
    assert "\n" not in str(err.value)
    good = make_video(tmp_path / "in.mp4")
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(DataError, match=r"cut\.mp4: is not a readable video"):
        restore_video(truncated, tmp_path / "o.mp4", lambda f: f, progress=False)
    with pytest.raises(DataError, match=r"missing\.mp4: video does not exist"):
        restore_video(tmp_path / "missing.mp4", tmp_path / "o.mp4", lambda f: f, progress=False)
    existing = tmp_path / "mine.mp4"
    existing.write_bytes(b"the user's file")
    with pytest.raises(RestorekitError, match="already exists; pass --overwrite"):
        restore_video(good, existing, lambda f: f, progress=False)
    assert existing.read_bytes() == b"the user's file"

    def fails(frame: np.ndarray) -> np.ndarray:
        raise RestorekitError("stop")

    with pytest.raises(RestorekitError, match="stop"):
        restore_video(good, tmp_path / "o.mp4", fails, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4", "cut.mp4", "in.mp4", "mine.mp4"]


# ------------------------------------------------------------------ smoothing
BASE = np.array([[40, 50], [60, 50], [50, 60], [42, 70], [58, 70]], dtype=np.float64)


def _face(points: np.ndarray, score: float = 0.99) -> Face:
    return Face(np.r_[points.min(0) - 10, points.max(0) + 10], score, points)


def _run(speed: float, noise: float, seed: int = 0, frames: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Landmark errors (raw, smoothed) of a 40 px face moving ``speed`` px/s at 25 fps."""
    rng = np.random.default_rng(seed)
    smoother = LandmarkSmoother(fps=25)
    raw, out = [], []
    for i in range(frames):
        truth = BASE + np.array([speed * i / 25, 0.0])
        noisy = truth + rng.normal(0, noise, truth.shape)
        raw.append(noisy - truth)
        out.append(smoother([_face(noisy)])[0].landmarks - truth)
    return np.array(raw[25:]), np.array(out[25:])


def test_smoothing_reduces_jitter_of_a_still_face() -> None:
    raw, out = _run(0.0, 1.0)
    ratio = raw.std() / out.std()
    assert ratio > 2.5, ratio  # measured 2.86
    assert np.abs(out.mean(axis=(0, 1))).max() < 0.2  # no bias


def test_smoothing_follows_motion_with_small_lag() -> None:
    _, out = _run(120.0, 0.0)  # 3 face widths per second, no noise: pure lag
    lag = -out[..., 0].mean()
    assert 0 < lag < 3.0, lag  # measured 2.2 px
    raw, out = _run(40.0, 1.0)
    assert out.std() < raw.std() * 1.1


def test_smoother_matches_faces_and_resets_on_a_new_one() -> None:
    smoother = LandmarkSmoother(fps=25)
    far = BASE + 200
    rng = np.random.default_rng(1)
    for _ in range(10):
        smoother([_face(BASE + rng.normal(0, 1, BASE.shape))])
    # the old face (listed second, jittered) is matched to its track; the far one is new and passes through
    jitter = BASE + 3.0
    a, b = smoother([_face(far, 0.9), _face(jitter)])
    np.testing.assert_allclose(a.landmarks, far, atol=1e-4)
    assert np.abs(b.landmarks - BASE).max() < 2.0  # pulled back towards the track
    smoother.reset()
    np.testing.assert_allclose(smoother([_face(jitter)])[0].landmarks, jitter, atol=1e-4)


def test_smoother_keeps_a_face_through_a_missed_frame_and_uses_frame_times() -> None:
    """A one-frame detector miss used to restart the face's filter (the crop jumped to the raw
    points); and time came from the frame count, wrong for variable-frame-rate video."""
    jitter = BASE + 3.0
    for keep, pulled in ((3, True), (0, False)):
        smoother = LandmarkSmoother(fps=25, keep_missed=keep)
        for _ in range(10):
            smoother([_face(BASE)])
        assert smoother([]) == []  # the missed frame
        out = smoother([_face(jitter)])[0].landmarks
        assert bool(np.abs(out - BASE).max() < 2.0) is pulled, (keep, out)  # filtered vs restarted
    # with frame times the filter sees the real gaps: a 1 s gap smooths far less than 1/25 s
    slow, fast = LandmarkSmoother(fps=25), LandmarkSmoother(fps=25)
    for i in range(10):
        slow.time, fast.time = float(i), i / 25
        slow([_face(BASE)]), fast([_face(BASE)])
    slow.time, fast.time = 10.0, 10 / 25
    moved_slow = np.abs(slow([_face(jitter)])[0].landmarks - BASE).mean()
    moved_fast = np.abs(fast([_face(jitter)])[0].landmarks - BASE).mean()
    assert moved_slow > 2 * moved_fast, (moved_slow, moved_fast)
    slow.reset()
    assert slow.time is None


def test_one_euro_filter_basics() -> None:
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0, freq=30)
    x0 = np.array([1.0, 2.0])
    np.testing.assert_allclose(f(x0), x0)  # the first sample passes
    y = f(np.array([2.0, 2.0]))
    alpha = 1 / (1 + 30 / (2 * np.pi))  # a first-order low-pass at 1 Hz, 30 samples/s
    np.testing.assert_allclose(y, [1 + alpha, 2.0])
    with pytest.raises(RestorekitError, match="min_cutoff"):
        OneEuroFilter(min_cutoff=0)
