"""Error types the CLI turns into one clear line.

Anything a user can get wrong (a config key, a file, a weight file) raises a subclass of
``RestorekitError`` whose message already names the file, key or value and what was expected.
The CLI prints ``error: <message>`` and exits non-zero; ``--debug`` shows the traceback.
Internal bugs stay ordinary exceptions so they are never disguised as user errors.
"""

from __future__ import annotations

import difflib
import errno
import math
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class RestorekitError(Exception):
    """Base class for errors caused by user input (config, files, arguments)."""


class ConfigError(RestorekitError):
    """A config file or override is malformed, unknown or out of range."""


class DataError(RestorekitError):
    """A data set folder or file is missing, empty, unreadable or inconsistent."""


class WeightsError(RestorekitError):
    """A weights file is missing, unrecognised or does not fit the architecture."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean X?)' for a near miss among ``choices``, else ''."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


# ------------------------------------------------------------------ a write that failed
# Here, at the bottom of the import flow, so that every writer (checkpoints, logs, exports in
# ``archs``, ``infer`` output in ``inference``) words a full disk the same way.
E = TypeVar("E", bound=RestorekitError)
DISK_ERRORS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
}


def size_mb(nbytes: int) -> int:
    """Whole megabytes, rounded up (at least 1: "needed ~0 MB" would read as "nothing")."""
    return max(1, math.ceil(nbytes / 2**20))


def write_error(
    exc: OSError, path: Path | str, needed: int | None = None, cls: type[E] = RestorekitError
) -> E:
    """The one line for a failed write of ``path``: ``PATH: no space left on device (needed ~N MB)``.

    ``needed`` is the caller's estimate of the bytes the write takes: the one number a user with
    a full disk needs (how much to free). Every write site passes one; without it a full disk
    still gets its line, only without the size. ``cls`` keeps the caller's error type (an export
    raises ``WeightsError``); a read-only file system has no size to state.
    """
    what = DISK_ERRORS.get(exc.errno or 0)
    if what is None:
        return cls(f"{path}: cannot be written ({exc.strerror or exc})")
    if exc.errno != errno.EROFS and needed is not None:
        what += f" (needed ~{size_mb(needed)} MB)"
    return cls(f"{path}: {what}")


_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def os_error_of(exc: BaseException) -> OSError | None:
    """The ``OSError`` behind ``exc``, also when a library wrapped it in its own type; else None.

    safetensors reports a full disk as ``SafetensorError('Error while serializing: I/O error: No
    space left on device (os error 28)')``, which no ``except OSError`` catches: without this a
    real full disk was a traceback while a simulated one (an ``OSError``) was one line.
    """
    if isinstance(exc, OSError):
        return exc
    m = _OS_ERROR.search(str(exc))
    if m is None:
        return None
    code = int(m.group(1))
    return OSError(code, os.strerror(code))


def raising_os_errors(fn: Callable[[], T]) -> T:
    """``fn()``, with a library's wrapped I/O error (see ``os_error_of``) raised as its ``OSError``."""
    try:
        return fn()
    except Exception as exc:
        err = os_error_of(exc)
        if err is None or err is exc:
            raise
        raise err from None


def guarded_write(path: Path | str, fn: Callable[[], T], needed: int | None = None) -> T:
    """``fn()``, with an ``OSError`` turned into ``write_error``'s one line."""
    try:
        return fn()
    except OSError as exc:
        raise write_error(exc, path, needed) from None
