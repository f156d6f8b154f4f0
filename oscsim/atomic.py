"""Atomic writes: a file or folder appears under its name complete, or not at all.

The one writer every part of oscsim uses (trajectories, checkpoints, metrics, reports,
cached data). It imports only the standard library, so `oscsim.analysis` can use it
without pulling in torch or the rest of the core.

How a write goes:

1. `check_output_path` refuses, before any work, a target that cannot be written: its
   folder is a file or is not writable, its name is too long for the file system, a folder
   stands where a file goes, or a regular file (or a folder that is not a zarr store)
   stands where a store goes.
2. Temporaries left by writers of ours that were killed (``kill -9``) are removed: they are
   named ``.oscsim-<tag>-<pid>-<random>.tmp`` beside the target, ``<tag>`` a short digest
   of the target's name, and removed only when process ``<pid>`` no longer runs, so a
   concurrent writer's temporary is left alone. The name is about 40 bytes whatever the
   target's length, so a target with a 255-byte name still works.
3. The data go to the temporary; on success it gets the permissions an ordinary
   ``open(path, "w")`` (or ``mkdir``) would give (0o666/0o777 less the umask) and is
   renamed onto the target. A folder (a zarr store) replacing an existing one is swapped
   in with one ``renameat2(RENAME_EXCHANGE)`` on Linux, so a reader sees the old store or
   the new, never none; elsewhere two renames leave a moment without it.
4. On any exception the temporary is removed. SIGINT and SIGTERM arriving during the write
   are held until the temporary is removed (so no library between us and the disk, such
   as h5py, swallows them), then delivered: the CLI exits 130 or 143 without residue. A
   second identical signal during the same write is delivered at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import re
import secrets
import shutil
import signal
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

_umask_lock = threading.Lock()

#: Suffix of every temporary of ours; with the ``.oscsim-`` prefix it identifies them.
TEMP_SUFFIX = ".tmp"
_TEMP_PATTERN = re.compile(r"^\.oscsim-([0-9a-f]{8})-(\d+)-[0-9a-f]{8}\.tmp$")
#: Names of files that mark a folder as a zarr store (v2 and v3).
ZARR_MARKERS = (".zgroup", ".zarray", ".zattrs", "zarr.json")
_HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class OutputPathError(ValueError):
    """An output path cannot be written; the message names it and says what is allowed."""


def current_umask() -> int:
    """The process's umask (read by setting it, under a lock)."""
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _tag(name: str) -> str:
    return f"{zlib.crc32(name.encode('utf-8', 'surrogateescape')):08x}"


def temp_name(target: Path) -> Path:
    """A fresh temporary path beside ``target`` in our naming (about 40 bytes)."""
    return target.with_name(
        f".oscsim-{_tag(target.name)}-{os.getpid()}-{secrets.token_hex(4)}{TEMP_SUFFIX}"
    )


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove temporaries of ours for ``target`` whose writing process is gone.

    Returns the paths removed. Temporaries of live processes (a concurrent writer, or this
    process) are kept.
    """
    folder = target.parent
    tag = _tag(target.name)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_PATTERN.match(entry.name)
        if match is None or match.group(1) != tag:
            continue
        if _pid_alive(int(match.group(2))):
            continue
        path = Path(entry.path)
        _remove(path)
        removed.append(path)
    return removed


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # e.g. a name too long: it cannot exist
        return False


def _name_max(folder: Path) -> int:
    probe = folder
    while not _exists(probe) and probe != probe.parent:
        probe = probe.parent
    try:
        return int(os.pathconf(probe, "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


def is_zarr_store(path: Path) -> bool:
    """Whether the folder ``path`` holds a zarr store (v2 or v3 marker files)."""
    return path.is_dir() and any((path / marker).exists() for marker in ZARR_MARKERS)


def check_output_path(
    path: str | os.PathLike[str], *, directory: bool = False, replace: bool = True
) -> Path:
    """Refuse, before any work, an output path that cannot be written atomically.

    Parameters
    ----------
    path
        The target file (or folder, with ``directory=True``, e.g. a zarr store).
    directory
        Whether the target is a folder.
    replace
        For a folder: whether it is written as a whole and replaces an existing one (a zarr
        store), or is a folder that files are written into (a run folder, a report folder).

    Returns
    -------
    Path
        ``path`` as a `Path`.

    Raises
    ------
    OutputPathError
        If a component of the folder is a file, the folder is not writable, a name is
        longer than the file system allows, a folder stands where a file goes, or a
        regular file (or a folder that is not a zarr store) stands where a folder goes.
    """
    target = Path(path)
    if target.name in ("", ".", ".."):
        raise OutputPathError(f"output path {str(target)!r} names no file; give a file name")
    limit = _name_max(target.parent)
    for part in target.parts:
        size = len(part.encode("utf-8", "surrogateescape"))
        if size > limit:
            raise OutputPathError(
                f"output path {str(target)[:60]!r}…: the name {part[:40]!r}… is {size} bytes, "
                f"the file system allows at most {limit}; choose a shorter name"
            )
    folder = target.parent
    probe = folder
    while not probe.exists():
        if probe == probe.parent:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OutputPathError(
            f"output path {str(target)!r}: {str(probe)!r} is a file, not a folder"
        )
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise OutputPathError(
            f"output path {str(target)!r}: the folder {str(probe)!r} is not writable"
        )
    if directory:
        if target.exists() and not target.is_dir():
            raise OutputPathError(
                f"output path {str(target)!r} exists and is not a folder; a store is a folder: "
                "remove the file or choose another name"
            )
        if replace and target.is_dir() and any(target.iterdir()) and not is_zarr_store(target):
            raise OutputPathError(
                f"output path {str(target)!r} is a folder that is not a zarr store; it would be "
                "replaced: choose another name"
            )
    elif target.is_dir():
        raise OutputPathError(
            f"output path {str(target)!r} is a folder; give a file name (e.g. "
            f"{str(target / 'run.nc')!r})"
        )
    return target


class _HeldSignals:
    """Hold SIGINT/SIGTERM during a write (main thread only) and deliver them after."""

    def __init__(self) -> None:
        self.pending: list[int] = []
        self.previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        if signum in self.pending:  # asked twice: stop now
            self.restore()
            self._deliver(signum)
        self.pending.append(signum)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in _HELD_SIGNALS:
            if signal.getsignal(signum) == signal.SIG_IGN:
                continue  # ignored signals stay ignored
            try:
                self.previous[signum] = signal.signal(signum, self._handler)
            except (ValueError, OSError):  # not allowed here (embedded interpreter)
                continue

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}

    @staticmethod
    def _deliver(signum: int) -> None:
        handler = signal.getsignal(signum)
        if callable(handler):
            handler(signum, None)
        elif handler == signal.SIG_IGN:
            return
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt
        else:
            signal.raise_signal(signum)

    def deliver_pending(self) -> None:
        pending, self.pending = self.pending, []
        for signum in pending[:1]:
            self._deliver(signum)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); False where that is unavailable."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _install(tmp: Path, target: Path, directory: bool) -> None:
    os.chmod(tmp, (0o777 if directory else 0o666) & ~current_umask())
    if not directory or not target.exists():
        os.replace(tmp, target)
        return
    if _exchange(tmp, target):  # tmp now holds the old store
        _remove(tmp)
        return
    old = temp_name(target)
    os.replace(target, old)
    os.replace(tmp, target)
    _remove(old)


@contextmanager
def atomic_target(path: str | os.PathLike[str], *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    Parameters
    ----------
    path
        The target file, or folder with ``directory=True`` (the temporary is then a fresh
        empty folder).
    directory
        Whether the target is a folder (a zarr store).

    Raises
    ------
    OutputPathError
        From `check_output_path`, before anything is written.
    """
    target = check_output_path(path, directory=directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    held = _HeldSignals()
    held.install()
    tmp = temp_name(target)
    try:
        if directory:
            tmp.mkdir(mode=0o700)
        else:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
        yield tmp
        if held.pending:
            raise _Interrupted
        _install(tmp, target, directory)
    except BaseException:
        _remove(tmp)
        held.restore()
        held.deliver_pending()
        raise
    held.restore()
    held.deliver_pending()


class _Interrupted(Exception):
    """A held signal arrived during the write: the temporary is dropped, then it is delivered."""


def write_text_atomic(text: str, path: str | os.PathLike[str]) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_target(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes_atomic(data: bytes, path: str | os.PathLike[str]) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_target(path) as tmp:
        tmp.write_bytes(data)
