"""The one error tree of the kit (core layer).

Every failure a user can cause raises an :class:`OmgError` subclass whose message says what failed,
the offending value and what to do next. Each subclass also inherits the matching built-in
(``ValueError``, ``FileNotFoundError`` ...) so library callers can catch either.

In IPython, ``_render_traceback_`` makes the notebook show the message alone, not a traceback;
papermill still stops a run on it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class OmgError(Exception):
    """Base class of every error the kit raises on purpose.

    Attributes
    ----------
    exit_code : int
        What the ``omg`` command exits with: 2 for usage errors, 1 otherwise.
    """

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def _render_traceback_(self) -> list[str]:
        # IPython shows exactly these lines instead of the traceback.
        return [f"\x1b[31m{type(self).__name__}\x1b[0m: {self.message}"]


class UsageError(OmgError, ValueError):
    """A command line that cannot be parsed: unknown verb, bad flag, bad option value."""

    exit_code = 2


class ConfigError(OmgError, ValueError):
    """``omg.yaml`` or another YAML configuration is malformed or has unknown keys."""


class ProjectError(OmgError, FileNotFoundError):
    """No project where one is needed, or a project that cannot be created."""


class DataError(OmgError, ValueError):
    """Input data that cannot be used: not a table, empty, missing columns, single class ..."""


class NotImplementedYetError(OmgError, NotImplementedError):
    """A registered verb whose implementation lands with a later issue."""


class PhaseFailedError(OmgError, RuntimeError):
    """A lifecycle phase notebook failed; names the phase, cell, exception and saved notebook."""


class GateFailedError(OmgError, RuntimeError):
    """A phase ran but its quality gate did not pass."""


class BusyError(OmgError, RuntimeError):
    """Another omg command holds the project's lock (``.omg/lock``); names it and its process."""


def did_you_mean(value: str, choices: Iterable[str], n: int = 3) -> str:
    """Return ``" Did you mean: x?"`` for near misses of `value` among `choices`, or ``""``."""
    matches = difflib.get_close_matches(str(value), [str(c) for c in choices], n=n, cutoff=0.6)
    return f" Did you mean: {', '.join(matches)}?" if matches else ""


def unknown_choice(kind: str, value: str, choices: Iterable[str]) -> str:
    """The standard message for an unknown name: the value, the sorted options, a near miss."""
    choices = sorted(str(c) for c in choices)
    return f"Unknown {kind} '{value}'. Available: {', '.join(choices)}.{did_you_mean(value, choices)}"
