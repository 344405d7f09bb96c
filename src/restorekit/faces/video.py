"""Video in, video out, one frame at a time: what ``restorekit faces`` does with a video input.

``restore_video(src, dst, process_frame)`` demuxes ``src`` with PyAV, decodes each video frame
to RGB uint8 in presentation order, calls ``process_frame`` on it and encodes the result as it
comes, so memory is a few frames whatever the video's length (never a list of frames). Around
that loop:

* **Timing**: each output frame keeps its input timestamp (the input stream's time base, or
  1/fps when an encoder cannot take it: MPEG-4 Part 2 allows denominators ≤ 65535), so frame
  rate, variable frame rates and A/V sync survive.
* **Codec**: the container family of ``dst`` (its extension): H.264 (libx264) for .mp4 / .mov /
  .mkv, VP9 (else VP8) for .webm, MPEG-4 Part 2 for .avi and wherever libx264 is missing from
  the PyAV build. Odd sizes are padded by one edge-replicated row/column: 4:2:0 needs even sides.
* **Audio**: the first audio stream's packets are copied unchanged (no generation loss) when the
  output container can hold the codec; otherwise it is transcoded (AAC; Opus for .webm; PCM for
  .avi) and the result says so.
* **Files**: written to ``.NAME.tmpPID.EXT`` beside ``dst`` and renamed when complete, so a
  failure or Ctrl-C leaves neither a half video nor a replaced one; an existing ``dst`` needs
  ``overwrite=True``. A corrupt or unreadable input is one ``DataError`` line naming it.

PyAV is an optional dependency (``pip install restorekit[video]``), imported when a video is
actually opened.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from restorekit.errors import DataError, RestorekitError

__all__ = ["VIDEO_EXTENSIONS", "import_av", "is_video_file", "probe_video", "restore_video"]

VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".mkv", ".avi")
#: video encoders to try per container, best first
_VIDEO_CODECS = {
    ".mp4": ("libx264", "mpeg4"),
    ".mov": ("libx264", "mpeg4"),
    ".mkv": ("libx264", "mpeg4"),
    ".webm": ("libvpx-vp9", "libvpx"),
    ".avi": ("mpeg4",),
}
_CODEC_OPTIONS = {
    "libx264": {"crf": "18", "preset": "medium"},
    "libvpx-vp9": {"crf": "30", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"},
    "libvpx": {"crf": "10", "b": "4M", "deadline": "good", "cpu-used": "4"},
}
#: audio codecs each container takes as they are (None: any)
_AUDIO_COPYABLE: dict[str, set[str] | None] = {
    ".mp4": {"aac", "mp3", "alac", "opus", "flac", "ac3", "eac3"},
    ".mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_f32le"},
    ".mkv": None,
    ".webm": {"opus", "vorbis"},
    ".avi": {"mp3", "ac3", "pcm_s16le", "pcm_u8"},
}
_AUDIO_TRANSCODE = {".webm": ("libopus", "opus"), ".avi": ("pcm_s16le",)}
_AUDIO_DEFAULT = ("aac",)


def is_video_file(path: str | os.PathLike[str]) -> bool:
    """True when the name ends with one of ``VIDEO_EXTENSIONS`` (any case)."""
    return os.fspath(path).lower().endswith(VIDEO_EXTENSIONS)


def import_av() -> Any:
    """The ``av`` module, or one line saying how to install it."""
    try:
        import av
    except ImportError:
        raise RestorekitError(
            "video input needs PyAV, which is not installed: pip install restorekit[video]"
        ) from None
    return av


def _unreadable(path: Path, exc: BaseException, where: str = "") -> DataError:
    why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    why = why.replace(f": '{path}'", "").strip().rstrip(".")
    return DataError(f"{path}: is not a readable video{where} ({why[:1].lower()}{why[1:]})")


def _open_input(av: Any, path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: video does not exist")
    try:
        container = av.open(str(path), "r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise _unreadable(path, exc) from None
    if not container.streams.video:
        container.close()
        raise DataError(f"{path}: has no video stream")
    return container


def probe_video(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Size, frame rate, frame count (0 when the container does not say), codecs of a video."""
    av = import_av()
    path = Path(path)
    with _open_input(av, path) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0] if c.streams.audio else None
        rate = v.average_rate or v.guessed_rate or Fraction(25)
        return {
            "width": v.codec_context.width, "height": v.codec_context.height, "fps": float(rate),
            "frames": int(v.frames or 0), "codec": v.codec_context.name,
            "audio": a.codec_context.name if a is not None else None,
        }  # fmt: skip


def _pick_encoder(av: Any, ext: str, preferred: str | None) -> str:
    names = (preferred,) if preferred else _VIDEO_CODECS.get(ext, ("libx264", "mpeg4"))
    for name in names:
        try:
            av.Codec(name, "w")
            return name
        except Exception:  # not in this PyAV build
            continue
    raise RestorekitError(f"{ext} output: none of the encoders {', '.join(names)} is in this PyAV build")


class _Writer:
    """The output side: streams are made once the first processed frame gives the size."""

    def __init__(self, av: Any, out: Any, dst: Path, vin: Any, ain: Any, codec: str | None) -> None:
        self.av, self.out, self.dst, self.vin, self.ain = av, out, dst, vin, ain
        self.ext = dst.suffix.lower()
        self.codec_name = _pick_encoder(av, self.ext, codec)
        self.rate = vin.average_rate or vin.guessed_rate or Fraction(25)
        tb = vin.time_base or Fraction(1, 1) / self.rate  # AVI is constant-rate: 1/fps
        if self.ext == ".avi" or (self.codec_name == "mpeg4" and tb.denominator > 65535):
            tb = Fraction(1, 1) / self.rate
        self.in_tb, self.tb = vin.time_base, tb
        self.vout: Any = None
        self.aout: Any = None
        self.audio_mode: str | None = None
        self.pending: list[Any] = []  # audio packets that came before the first video frame
        self.size: tuple[int, int] | None = None
        self.encoded_size: tuple[int, int] | None = None
        self.frames = 0
        self.last_pts: int | None = None

    def _open(self, h: int, w: int) -> None:
        self.size = (w, h)
        self.encoded_size = (w + w % 2, h + h % 2)  # 4:2:0 needs even sides (see video())
        vout = self.out.add_stream(
            self.codec_name, rate=self.rate, options=_CODEC_OPTIONS.get(self.codec_name, {})
        )
        vout.width, vout.height = self.encoded_size
        vout.pix_fmt = "yuv420p"
        vout.time_base = self.tb
        vout.codec_context.time_base = self.tb
        if self.codec_name == "mpeg4":
            vout.bit_rate = int(max(2e6, w * h * float(self.rate) * 0.2))
        self.vout = vout
        if self.ain is not None:
            name = self.ain.codec_context.name
            allowed = _AUDIO_COPYABLE.get(self.ext, set())
            if allowed is None or name in allowed:
                self.aout = self.out.add_stream_from_template(self.ain)
                self.audio_mode = f"copied ({name})"
            else:
                target = _pick_audio_encoder(self.av, self.ext)
                rate = self.ain.rate if target not in ("libopus", "opus") else 48000
                layout = "mono" if self.ain.layout.nb_channels == 1 else "stereo"  # names encoders take
                self.aout = self.out.add_stream(target, rate=rate, layout=layout)
                self.audio_mode = f"transcoded ({name} -> {target})"
        for packet in self.pending:
            self.audio(packet)
        self.pending.clear()

    @contextlib.contextmanager
    def _writing(self) -> Any:
        """Encoder and muxer errors are about the output file, not the input."""
        try:
            yield
        except self.av.FFmpegError as exc:
            raise DataError(f"{self.dst}: cannot be written ({exc})") from None

    def video(self, frame: Any, img: np.ndarray) -> None:
        if not (
            isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        ):
            got = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
            raise RestorekitError(f"{self.dst}: a processed video frame must be H×W×3 uint8 RGB, got {got}")
        h, w = img.shape[:2]
        if self.vout is None:
            with self._writing():
                self._open(h, w)
        elif (w, h) != self.size:
            raise RestorekitError(f"{self.dst}: frame {self.frames} is {w}×{h}, the first was {self.size}")
        if w % 2 or h % 2:
            img = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        out = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
        out.pts, out.time_base = self._pts(frame), self.tb
        with self._writing():
            for packet in self.vout.encode(out):
                self.out.mux(packet)
        self.frames += 1

    def _pts(self, frame: Any) -> int:
        """The frame's timestamp in the output time base; strictly increasing."""
        if frame.pts is not None and self.in_tb is not None:
            pts = round(frame.pts * self.in_tb / self.tb)
        else:  # no timestamp (some AVI files): one frame interval after the last
            pts = (self.last_pts + round(1 / (self.rate * self.tb))) if self.last_pts is not None else 0
        if self.last_pts is not None and pts <= self.last_pts:
            pts = self.last_pts + 1
        self.last_pts = pts
        return pts

    def audio(self, packet: Any) -> None:
        if self.vout is None:
            self.pending.append(packet)
            return
        if self.audio_mode is not None and self.audio_mode.startswith("copied"):
            if packet.dts is None or packet.size == 0:
                return  # the demuxer's flush packet: nothing to copy
            packet.stream = self.aout
            with self._writing():
                self.out.mux(packet)
            return
        for frame in self.ain.codec_context.decode(packet):
            frame.pts = None  # the encoder's resampler numbers its own frames
            with self._writing():
                for out in self.aout.encode(frame):
                    self.out.mux(out)

    def finish(self) -> None:
        if self.vout is None:
            raise DataError(f"{self.vin.container.name}: has no decodable video frames")
        with self._writing():
            for packet in self.vout.encode():
                self.out.mux(packet)
            if self.audio_mode is not None and self.audio_mode.startswith("transcoded"):
                # the demuxer's last (empty) packet already flushed the decoder; flush the encoder
                for packet in self.aout.encode():
                    self.out.mux(packet)


def _pick_audio_encoder(av: Any, ext: str) -> str:
    names = _AUDIO_TRANSCODE.get(ext, _AUDIO_DEFAULT)
    for name in names:
        try:
            av.Codec(name, "w")
            return name
        except Exception:
            continue
    raise RestorekitError(f"{ext} output: no audio encoder ({', '.join(names)}) in this PyAV build")


def restore_video(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    process_frame: Callable[[np.ndarray], np.ndarray],
    *,
    progress: bool = True,
    overwrite: bool = False,
    codec: str | None = None,
    desc: str | None = None,
    on_frame_time: Callable[[float | None], None] | None = None,
) -> dict[str, Any]:
    """Run ``process_frame`` (H×W×3 uint8 RGB → H'×W'×3 uint8 RGB) on every frame of ``src``.

    ``on_frame_time`` is told each frame's presentation time (s, or None) before its processing.

    Returns ``{"input", "output", "frames", "fps", "size": [w, h], "codec", "audio", "seconds"}``
    (``audio``: None, ``"copied (aac)"`` or ``"transcoded (pcm_s16le -> aac)"``). ``size`` is what
    the file holds; an odd-sided result is padded to even sides and ``processed_size`` says its
    own size. See the module docstring for timing, codecs, audio and the temporary file.
    """
    av = import_av()
    src, dst = Path(src), Path(dst)
    if dst.suffix.lower() not in VIDEO_EXTENSIONS:
        raise RestorekitError(f"{dst}: video output must end in one of {', '.join(VIDEO_EXTENSIONS)}")
    if src.exists() and dst.exists() and dst.resolve() == src.resolve():
        raise RestorekitError(f"{dst}: output would replace its input; choose another output")
    if dst.exists() and not overwrite:
        raise RestorekitError(f"{dst}: already exists; pass --overwrite to replace")
    from tqdm import tqdm

    t0 = time.perf_counter()
    tmp = dst.with_name(f".{dst.stem}.tmp{os.getpid()}{dst.suffix}")
    try:
        with _open_input(av, src) as inp:
            vin = inp.streams.video[0]
            vin.thread_type = "AUTO"
            ain = inp.streams.audio[0] if inp.streams.audio else None
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                out = av.open(str(tmp), "w")
            except (av.FFmpegError, OSError) as exc:
                raise DataError(f"{dst}: cannot be written ({exc})") from None
            writer = _Writer(av, out, dst, vin, ain, codec)
            show = progress and sys.stderr.isatty()
            with (
                out,
                tqdm(total=vin.frames or None, unit="frame", desc=desc or src.name, disable=not show) as bar,
            ):
                streams = [vin] + ([ain] if ain is not None else [])
                try:
                    for packet in inp.demux(*streams):
                        if packet.stream.type == "video":
                            for frame in packet.decode():
                                if on_frame_time is not None:
                                    on_frame_time(frame.time)
                                writer.video(frame, process_frame(frame.to_ndarray(format="rgb24")))
                                bar.update(1)
                        elif packet.stream.type == "audio":
                            writer.audio(packet)
                    writer.finish()
                except av.FFmpegError as exc:  # decoding: the writer's own errors are DataErrors
                    raise _unreadable(src, exc, f" at frame {writer.frames}") from None
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    assert writer.size is not None and writer.encoded_size is not None
    info = {
        "input": str(src), "output": str(dst), "frames": writer.frames, "fps": float(writer.rate),
        "size": list(writer.encoded_size), "codec": writer.codec_name, "audio": writer.audio_mode,
        "seconds": round(time.perf_counter() - t0, 3),
    }  # fmt: skip
    if writer.encoded_size != writer.size:  # the file holds padded frames: say what was restored
        info["processed_size"] = list(writer.size)
    return info
