"""Atomic file writes: a file appears under its name complete, or not at all.

Data go to a temporary name in the target's folder and are renamed into place when
complete, so a crash or kill never leaves a truncated file under the name. The finished
file gets the permissions an ordinary ``open(path, "w")`` would give it (0o666 less the
umask); the temporary file itself is private (``tempfile.mkstemp``'s 0o600). Folders
(zarr stores) are handled by `oscsim.io.write_trajectory` itself.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process's umask."""
    with _umask_lock:  # os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


@contextmanager
def atomic_target(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; on success give it the usual
    permissions and rename it to ``path``, on any exception remove it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(text: str, path: str | os.PathLike[str]) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_target(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
