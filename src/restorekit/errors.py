"""Error types the CLI turns into one clear line.

Anything a user can get wrong (a config key, a file, a weight file) raises a subclass of
``RestorekitError`` whose message already names the file, key or value and what was expected.
The CLI prints ``error: <message>`` and exits non-zero; ``--debug`` shows the traceback.
Internal bugs stay ordinary exceptions so they are never disguised as user errors.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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
