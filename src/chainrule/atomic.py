"""Atomic writes: the bytes go to a temporary file beside the target, then ``os.replace``.

A reader (or a crash in the middle) sees the old file or the new one, never half of one.

The temporary file is named ``.chainrule-partial-<pid>-<target name>-<random>``: a write killed
before its ``os.replace`` (SIGKILL, power loss) leaves a file that says what it is and which
process wrote it; :func:`remove_stale_partials` deletes those of processes no longer running.
Errors name the target path, never the hidden temporary file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes", "remove_stale_partials", "PARTIAL_PREFIX", "naming_target"]

#: Every temporary file of an atomic write starts with this (then the writer's process id).
PARTIAL_PREFIX = ".chainrule-partial-"


def naming_target(e: OSError, path: str | os.PathLike[str], verb: str = "write") -> OSError:
    """The same kind of OSError, its message naming ``path`` (not a temporary file)."""
    if e.errno is None:
        return type(e)(f"cannot {verb} {path}: {e}")
    return type(e)(e.errno, f"cannot {verb} {path}: {e.strerror}")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f"{PARTIAL_PREFIX}{os.getpid()}-{path.name}-"
        )
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise naming_target(e, path) from e
        raise
    return path


def _running(pid: int) -> bool:
    if pid == os.getpid():  # ours: at clean-up time this process has no write under way
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    return True


def remove_stale_partials(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporary files of killed atomic writes in ``folder``; return their paths.

    Only files named by :func:`atomic_write_bytes` whose writing process is gone are removed.
    """
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        if not p.name.startswith(PARTIAL_PREFIX):
            continue
        pid = p.name[len(PARTIAL_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)) and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed
