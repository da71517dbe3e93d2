"""The project lock (core layer): one omg command at a time writes a project's shared state.

Every verb that writes shared project state (splits, feature sets, models and their aliases,
bundles, deployment and monitoring state, retraining) runs under :func:`project_lock`, taken in
one place: the command registry (``omgmagics.commands._registry.execute``).

- The lock is an exclusive ``fcntl.flock`` on ``ROOT/.omg/lock``. The operating system releases it
  when the holding process ends, however it ends (SIGKILL included), so a lock file left behind
  never blocks anybody: its content is only informative.
- The holder writes who it is into the file as JSON (``id``, ``pid``, ``verb``, ``started``,
  ``host``), so a refused command names it: :class:`~omgmagics.errors.BusyError`.
- Reentrant: within one process (any thread) a nested :func:`project_lock` on the same project is a no-op (a verb
  calling another verb in-process). A child process (the papermill kernels of ``omg ml run``, which
  run ``%omgdata split`` and friends) inherits the holder's lock id through the environment variable
  ``OMG_LOCK_HELD``; a command whose ``OMG_LOCK_HELD`` names the id recorded in the lock file of a
  held lock is let in without taking it. A stale id (its holder gone) matches nothing.
- Waiting: a refused command polls for ``wait`` seconds (default :data:`DEFAULT_WAIT`, or the
  environment variable ``OMG_LOCK_WAIT``; 0 refuses at once), then raises.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import clock
from .errors import BusyError, ConfigError

LOCK_DIR = ".omg"
LOCK_FILE = "lock"
LOCK_ENV = "OMG_LOCK_HELD"  # lock ids held by an ancestor process, comma-separated
WAIT_ENV = "OMG_LOCK_WAIT"  # seconds a refused command waits before it gives up
DEFAULT_WAIT = 5.0
POLL = 0.05


@dataclass
class _Held:
    token: str
    fd: int | None  # None: held by an ancestor process (OMG_LOCK_HELD), nothing to release here
    depth: int = 1


_held: dict[str, _Held] = {}
_guard = threading.Lock()


def lock_path(root: str | os.PathLike) -> Path:
    """``ROOT/.omg/lock``."""
    return Path(root) / LOCK_DIR / LOCK_FILE


def holder(root: str | os.PathLike) -> dict[str, Any] | None:
    """What the lock file records about its holder (or the last one): None when empty or unreadable.

    The record says nothing about whether the lock is held now: only ``flock`` knows."""
    try:
        text = lock_path(root).read_text(encoding="utf-8")
        info = json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def default_wait() -> float:
    """``OMG_LOCK_WAIT`` seconds, else :data:`DEFAULT_WAIT`."""
    text = os.environ.get(WAIT_ENV)
    if text is None or not text.strip():
        return DEFAULT_WAIT
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0:
        raise ConfigError(f"{WAIT_ENV}='{text}' is not a number of seconds of 0 or more. Set it to, "
                          f"say, {WAIT_ENV}=30 (0: refuse at once), or unset it (default "
                          f"{DEFAULT_WAIT:g} s).")
    return value


def _env_tokens() -> list[str]:
    return [t for t in os.environ.get(LOCK_ENV, "").split(",") if t]


def _set_env_tokens(tokens: list[str]) -> None:
    if tokens:
        os.environ[LOCK_ENV] = ",".join(tokens)
    else:
        os.environ.pop(LOCK_ENV, None)


def busy_message(root: str | os.PathLike, info: dict[str, Any] | None) -> str:
    """The refusal: which command holds the lock, its process and since when, and what to do."""
    fix = ("Wait for it to finish, or stop it; the lock is released when that process ends.")
    if not info:
        return (f"Another omg command holds this project's lock ({lock_path(root)}; its holder is not "
                f"recorded). {fix}")
    since = str(info.get("started", "?"))
    try:
        started = dt.datetime.fromisoformat(since).astimezone()
        since = started.strftime("%H:%M:%S" if started.date() == clock.today() else "%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError):
        pass
    host = info.get("host")
    where = f" on {host}" if host and host != socket.gethostname() else ""
    return (f"Another omg command holds this project's lock: '{info.get('verb', '?')}' "
            f"(pid {info.get('pid', '?')}{where}, since {since}). {fix}")


@contextlib.contextmanager
def project_lock(root: str | os.PathLike, verb: str, wait: float | None = None) -> Iterator[str]:
    """Hold the project's lock for the block; yields the lock id.

    Parameters
    ----------
    root : path-like
        The project folder (the one holding ``omg.yaml``).
    verb : str
        What holds it, as a refused command shows it, e.g. ``"ml run"``.
    wait : float, optional
        Seconds to wait for a held lock (polling); default ``OMG_LOCK_WAIT``, else
        :data:`DEFAULT_WAIT`. 0 refuses at once.

    Raises
    ------
    BusyError
        Another process holds the lock after `wait` seconds.
    """
    key = str(Path(root).resolve())
    with _guard:
        held = _held.get(key)
        if held is not None:
            held.depth += 1
    if held is not None:  # reentrant: this process holds it already
        try:
            yield held.token
        finally:
            with _guard:
                held.depth -= 1
        return
    held = _acquire(Path(key), verb, default_wait() if wait is None else float(wait))
    with _guard:
        _held[key] = held
    tokens = _env_tokens()
    if held.fd is not None:  # children (papermill kernels, subprocesses) inherit the id
        _set_env_tokens([*tokens, held.token])
    try:
        yield held.token
    finally:
        with _guard:
            _held.pop(key, None)
        if held.fd is not None:
            _set_env_tokens([t for t in _env_tokens() if t != held.token])
            _release(held.fd)


def _acquire(root: Path, verb: str, wait: float) -> _Held:
    import fcntl

    path = lock_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    deadline = time.monotonic() + max(wait, 0.0)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                info = holder(root)
                if info and info.get("id") and info["id"] in _env_tokens():
                    os.close(fd)  # an ancestor process holds it for us
                    return _Held(token=str(info["id"]), fd=None)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BusyError(busy_message(root, info)) from None
                time.sleep(min(POLL, left))
        token = uuid.uuid4().hex
        record = {"id": token, "pid": os.getpid(), "verb": verb,
                  "started": clock.stamp(),
                  "host": socket.gethostname()}
        data = (json.dumps(record) + "\n").encode()
        os.ftruncate(fd, 0)  # the same inode stays locked: written in place, never replaced
        os.pwrite(fd, data, 0)
        return _Held(token=token, fd=fd)
    except BaseException:
        os.close(fd)
        raise


def _release(fd: int) -> None:
    import fcntl

    try:
        os.ftruncate(fd, 0)  # the holder is gone: nothing to report any more
    except OSError:
        pass
    try:
        # unlocks the open file description, also for a forked child that shares it
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
