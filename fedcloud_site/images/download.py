"""Streamed image downloads: sha512 while downloading, HTTP Range resume, size and time limits.

Bytes go to ``<file>.part``; only a complete file with the right size and sha512 is renamed to ``<file>``.
The data is not fsync'ed (that would cost a full write-back of the image at disk speed): instead a cached
file found at the start of a later download is hashed again before it is used, so a file damaged by a crash
before the page cache reached the disk is fetched again, never registered.
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

from ..errors import FedcloudSiteError
from .fetch import FetchError, bounded_reads, local_path

CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class DownloadError(FedcloudSiteError):
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


class _WriteFailed(Exception):
    """Writing the partial file failed (kept apart from network OSErrors)."""


class _Stage:
    """Consumes chunks in its own thread (hashing or writing); ``feed`` blocks when 8 chunks behind.

    An exception in the thread is re-raised in the caller by the next ``feed``/``drain``."""

    def __init__(self, name: str, consume: Callable[[bytes], object]) -> None:
        self._consume = consume
        self.error: Optional[BaseException] = None
        self._queue: queue.Queue[Optional[bytes]] = queue.Queue(maxsize=8)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            chunk = self._queue.get()
            try:
                if chunk is None:
                    return
                if self.error is None:
                    self._consume(chunk)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                self.error = exc
            finally:
                self._queue.task_done()

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def feed(self, chunk: bytes) -> None:
        self.check()
        self._queue.put(chunk)

    def drain(self) -> None:
        """Wait until everything fed so far is consumed."""
        self._queue.join()
        self.check()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


class _Hasher(_Stage):
    def __init__(self) -> None:
        self.digest = hashlib.sha512()
        super().__init__("sha512", self.digest.update)

    def hexdigest(self) -> str:
        self.drain()
        self.close()
        return self.digest.hexdigest()


class _Writer(_Stage):
    def __init__(self, handle: BinaryIO, path: Path) -> None:
        self.handle = handle
        self.path = path
        super().__init__("image-writer", self._write)

    def _write(self, chunk: bytes) -> None:
        try:
            self.handle.write(chunk)
        except OSError as exc:
            raise _WriteFailed(f"cannot write {self.path}: {exc.strerror or exc}") from exc


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
             allow_local: bool = False, http_timeout: float = 60, total_timeout: float = 6 * 3600, attempts: int = 3,
             stop: Optional[threading.Event] = None,
             on_progress: Optional[Callable[[int], None]] = None) -> DownloadResult:
    """Fetch ``url`` into ``dest`` checking ``size`` and ``sha512`` on the fly.

    Receiving, writing and hashing run in three threads connected by small bounded queues. A ``file://`` URL
    is read only when ``allow_local`` (the list itself is local): a remote list must not publish local files.
    """
    if url.startswith("file://") and not allow_local:
        raise DownloadError(f"hv:uri {url}: file:// image URIs are accepted only from local lists (list_file or a "
                            f"file:// subscription), never from a list fetched over the network")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if dest.exists():
        if dest.stat().st_size == size and _file_sha512(dest) == sha512.lower():
            return DownloadResult(dest, size, size, 0)
        dest.unlink()  # damaged (e.g. by a crash before the page cache reached the disk): fetch again
    with open(part, "a+b") as handle:
        transfer = _Transfer(url, session, handle, part, size, http_timeout, total_timeout, stop, on_progress)
        try:
            transfer.resume_partial()
            started_at = transfer.offset
            transfer.run(attempts)
            transfer.writer.drain()
            handle.flush()
            actual = transfer.hasher.hexdigest()
        except _WriteFailed as exc:
            raise DownloadError(str(exc), partial_kept=True) from exc
        finally:
            transfer.close()
    if actual != sha512.lower():
        part.unlink(missing_ok=True)
        raise ChecksumMismatch(f"sha512 mismatch: list says {sha512[:16]}..., downloaded bytes have "
                               f"{actual[:16]}...; partial file deleted")
    os.replace(part, dest)
    return DownloadResult(dest, size, started_at, transfer.requests)


def _file_sha512(path: Path) -> str:
    hasher = _Hasher()
    try:
        with open(path, "rb") as source:
            for chunk in iter(lambda: source.read(CHUNK), b""):
                hasher.feed(chunk)
        return hasher.hexdigest()
    finally:
        hasher.close()


class _Transfer:
    """The request/resume loop of one download, feeding the writer and hasher stages."""

    def __init__(self, url: str, session: requests.Session, handle: BinaryIO, part: Path, size: int,
                 http_timeout: float, total_timeout: float, stop: Optional[threading.Event],
                 on_progress: Optional[Callable[[int], None]]) -> None:
        self.url, self.session, self.handle, self.size = url, session, handle, size
        self.http_timeout, self.total_timeout = http_timeout, total_timeout
        self.deadline = time.monotonic() + total_timeout
        self.stop, self.on_progress = stop, on_progress
        self.hasher = _Hasher()
        self.writer = _Writer(handle, part)
        self.offset = 0
        self.requests = 0

    def close(self) -> None:
        self.writer.close()
        self.hasher.close()

    def resume_partial(self) -> None:
        """Hash the bytes a previous attempt left in the partial file, then append after them."""
        self.offset = self.handle.seek(0, os.SEEK_END)
        if self.offset > self.size:
            self.handle.truncate(0)
            self.offset = 0
        _hash_existing(self.handle, self.hasher, self.offset)
        self.handle.seek(self.offset)

    def _kept(self, message: str, kind: type = DownloadError) -> DownloadError:
        self.writer.drain()
        self.handle.flush()
        return kind(message, partial_kept=True)  # type: ignore[no-any-return]

    def _restart(self) -> None:
        self.writer.drain()
        self.handle.truncate(0)
        self.handle.seek(0)
        self.offset = 0
        self.hasher.close()
        self.hasher = _Hasher()

    def _check_limits(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise self._kept(f"stopped at byte {self.offset} of {self.size}", DownloadStopped)
        if time.monotonic() > self.deadline:
            raise self._kept(f"took longer than download_timeout ({self.total_timeout:g} s) at byte "
                             f"{self.offset} of {self.size}")

    def run(self, attempts: int) -> None:
        failure = ""
        for attempt in range(max(attempts, 1)):
            if self.offset >= self.size:
                break
            self._check_limits()
            self.requests += 1
            try:
                for chunk, restart in _chunks(self.url, self.session, self.offset, self.http_timeout, self.deadline,
                                              self.total_timeout):
                    if restart:  # the server ignored our Range (or refused it): start over
                        self._restart()
                        continue
                    if self.offset + len(chunk) > self.size:
                        self.writer.drain()
                        self.handle.truncate(0)
                        raise DownloadError(f"server sent more than hv:size ({self.size} bytes); partial deleted")
                    self.writer.feed(chunk)
                    self.hasher.feed(chunk)
                    self.offset += len(chunk)
                    if self.on_progress is not None:
                        self.on_progress(self.offset)
                    self._check_limits()
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                self.writer.drain()
                self.handle.flush()
                failure = f"{type(exc).__name__}: {exc}"
                if attempt + 1 < attempts:
                    time.sleep(min(0.2 * (attempt + 1), 2))
                continue
            except DownloadError:
                self.writer.drain()
                self.handle.flush()
                raise
            except _HTTPStatus as exc:
                failure = str(exc)
                if exc.status in (404, 401, 403, 410):
                    break
                continue
            if self.offset < self.size:
                failure = f"connection closed at byte {self.offset} of {self.size}"
        if self.offset < self.size:
            self.writer.drain()
            self.handle.flush()
            raise DownloadError(f"incomplete after {self.requests} request(s): {failure}; {self.offset} of "
                                f"{self.size} bytes kept for resuming", partial_kept=self.offset > 0)


class _HTTPStatus(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _chunks(url: str, session: requests.Session, offset: int, timeout: float, deadline: float,
            total_timeout: float) -> Iterator[tuple]:
    """``(chunk, False)`` from ``offset`` on; ``(b"", True)`` first when the server restarts at 0. Every read
    waits at most ``timeout`` (stall) and never past ``deadline`` (the whole download's wall clock)."""
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
        # whatever arrived, as it arrives: bytes before a dropped connection are kept, a drip cannot stall us
        try:
            for chunk in bounded_reads(response, deadline, timeout, f"GET {url}",
                                       f"download_timeout ({total_timeout:g} s)"):
                yield chunk, False
        except FetchError as exc:
            raise DownloadError(f"{exc} (stalled reads are limited by http_timeout {timeout:g} s)",
                                partial_kept=True) from exc
