"""Durable file writes: write to a temporary file, fsync, rename, fsync the directory."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator, Union


def fsync_path(path: Union[str, Path]) -> None:
    """Flush the file or directory at ``path`` to disk."""
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Union[str, Path]) -> None:
    """Make a rename or new entry in ``path`` durable."""
    fsync_path(path)


@contextlib.contextmanager
def atomic_writer(path: Union[str, Path], mode: int = 0o640) -> Iterator[BinaryIO]:
    """Stream into ``path``: yields a binary file that replaces ``path`` (fsync + rename) when the block ends.

    If the block raises, ``path`` is left as it was and the temporary file is removed.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=str(target.parent))
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(target.parent)


def atomic_write_bytes(path: Union[str, Path], data: bytes, mode: int = 0o640) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new content, never a mix."""
    with atomic_writer(path, mode) as handle:
        handle.write(data)


def atomic_write_text(path: Union[str, Path], text: str, mode: int = 0o640) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"), mode)
