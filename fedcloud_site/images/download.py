"""Streamed image downloads: sha512 while downloading, HTTP Range resume, size and time limits.

Bytes go to ``<file>.part``; only a complete file with the right size and sha512 is renamed to ``<file>``.
An interrupted transfer keeps the partial file and resumes from its end (``Range: bytes=N-``), within the
same run (a few attempts) or in a later one, even after the process was killed: the hash of the bytes
already there is recomputed first. A checksum mismatch deletes the partial file (retried in a later run).

Hashing runs in a second thread fed through a small bounded queue, so hashing overlaps receiving and
writing (``hashlib`` releases the GIL on large buffers): throughput stays close to the hash speed and
memory stays at a few chunks whatever the image size.
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Optional

import requests
import urllib3

from ..atomic import fsync_dir
from .fetch import local_path

CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class DownloadError(Exception):
    """The download failed; a partial file may be kept for resuming (``partial_kept``)."""

    def __init__(self, message: str, partial_kept: bool = False) -> None:
        super().__init__(message)
        self.partial_kept = partial_kept


class ChecksumMismatch(DownloadError):
    """Complete but wrong bytes: the partial file was deleted."""


class DownloadStopped(DownloadError):
    """Shutdown requested; the partial file is kept."""


@dataclass
class DownloadResult:
    path: Path
    size: int
    resumed_from: int  # bytes that were already there when this run started
    requests: int  # HTTP requests made (1 + resumes)


class _Hasher:
    """sha512 in a helper thread; ``feed`` blocks when the thread is a few chunks behind."""

    def __init__(self) -> None:
        self.digest = hashlib.sha512()
        self._queue: queue.Queue[Optional[bytes]] = queue.Queue(maxsize=8)
        self._thread = threading.Thread(target=self._run, name="sha512", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            self.digest.update(chunk)

    def feed(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def hexdigest(self) -> str:
        self._queue.put(None)
        self._thread.join()
        return self.digest.hexdigest()


def _hash_existing(handle: BinaryIO, hasher: _Hasher, length: int) -> None:
    handle.seek(0)
    remaining = length
    while remaining > 0:
        chunk = handle.read(min(CHUNK, remaining))
        if not chunk:
            raise DownloadError("partial file shrank while reading it")
        hasher.feed(chunk)
        remaining -= len(chunk)


def download(url: str, dest: Path, size: int, sha512: str, session: requests.Session, *,
             http_timeout: float = 60, total_timeout: float = 6 * 3600, attempts: int = 3,
             stop: Optional[threading.Event] = None,
             on_progress: Optional[Callable[[int], None]] = None) -> DownloadResult:
    """Fetch ``url`` into ``dest`` checking ``size`` and ``sha512`` on the fly."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if dest.exists() and dest.stat().st_size == size:
        return DownloadResult(dest, size, size, 0)
    deadline = time.monotonic() + total_timeout
    hasher = _Hasher()
    requests_made = 0
    try:
        with open(part, "a+b") as handle:
            offset = handle.seek(0, os.SEEK_END)
            if offset > size:
                handle.truncate(0)
                offset = 0
            _hash_existing(handle, hasher, offset)
            handle.seek(offset)
            started_at = offset
            failure = ""
            for attempt in range(max(attempts, 1)):
                if offset >= size:
                    break
                if stop is not None and stop.is_set():
                    raise DownloadStopped(f"stopped at byte {offset} of {size}", partial_kept=True)
                if time.monotonic() > deadline:
                    raise DownloadError(f"took longer than download_timeout ({total_timeout:g} s) at byte "
                                        f"{offset} of {size}", partial_kept=True)
                requests_made += 1
                try:
                    for chunk, restart in _chunks(url, session, offset, http_timeout):
                        if restart:  # the server ignored our Range: start over
                            handle.truncate(0)
                            handle.seek(0)
                            offset = 0
                            hasher.hexdigest()
                            hasher = _Hasher()
                            continue
                        if offset + len(chunk) > size:
                            handle.truncate(0)
                            raise DownloadError(f"server sent more than hv:size ({size} bytes); partial deleted")
                        try:
                            handle.write(chunk)
                        except OSError as exc:
                            raise DownloadError(f"cannot write {part}: {exc.strerror or exc}",
                                                partial_kept=True) from None
                        hasher.feed(chunk)
                        offset += len(chunk)
                        if on_progress is not None:
                            on_progress(offset)
                        if stop is not None and stop.is_set():
                            handle.flush()
                            raise DownloadStopped(f"stopped at byte {offset} of {size}", partial_kept=True)
                        if time.monotonic() > deadline:
                            handle.flush()
                            raise DownloadError(f"took longer than download_timeout ({total_timeout:g} s) at "
                                                f"byte {offset} of {size}", partial_kept=True)
                except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                    handle.flush()
                    failure = f"{type(exc).__name__}: {exc}"
                    if attempt + 1 < attempts:
                        time.sleep(min(0.2 * (attempt + 1), 2))
                    continue
                except _HTTPStatus as exc:
                    failure = str(exc)
                    if exc.status in (404, 401, 403, 410):
                        break
                    continue
                if offset < size:
                    failure = f"connection closed at byte {offset} of {size}"
            handle.flush()
            if offset < size:
                raise DownloadError(f"incomplete after {requests_made} request(s): {failure}; "
                                    f"{offset} of {size} bytes kept for resuming", partial_kept=offset > 0)
            os.fsync(handle.fileno())
        actual = hasher.hexdigest()
        if actual != sha512.lower():
            part.unlink(missing_ok=True)
            raise ChecksumMismatch(f"sha512 mismatch: list says {sha512[:16]}..., downloaded bytes have "
                                   f"{actual[:16]}...; partial file deleted")
        os.replace(part, dest)
        fsync_dir(dest.parent)
        return DownloadResult(dest, size, started_at, requests_made)
    finally:
        if hasher._thread.is_alive():
            hasher.hexdigest()


class _HTTPStatus(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _chunks(url: str, session: requests.Session, offset: int, timeout: float) -> Iterator[tuple]:
    """``(chunk, False)`` from ``offset`` on; ``(b"", True)`` first when the server restarts at 0."""
    if url.startswith("file://"):
        with open(local_path(url), "rb") as source:
            source.seek(offset)
            for chunk in iter(lambda: source.read(CHUNK), b""):
                yield chunk, False
        return
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with session.get(url, headers=headers, stream=True, timeout=(min(timeout, 30), timeout)) as response:
        if response.status_code == 416:
            yield b"", True  # our partial file is not a prefix of theirs: start over
            return
        if response.status_code not in (200, 206):
            raise _HTTPStatus(response.status_code, f"GET {url}: HTTP {response.status_code} {response.reason}")
        if offset and response.status_code == 200:
            yield b"", True
        elif offset:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                raise _HTTPStatus(response.status_code, f"GET {url}: bad Content-Range "
                                                        f"{response.headers.get('Content-Range')!r} for byte {offset}")
        raw = response.raw
        while True:  # read1: whatever arrived, so bytes before a dropped connection are kept
            chunk = raw.read1(CHUNK, decode_content=True)
            if not chunk:
                break
            yield chunk, False
