"""The outgoing dirq queue: apel/ssm-compatible layout, durable adds, reject area, stats."""

from __future__ import annotations

import os
import re
import stat
import time

from dirq.QueueSimple import QueueSimple

from fedcloud_site.queue import MessageQueue


def test_added_messages_have_the_dirq_layout_and_are_readable_by_dirq(tmp_path):
    queue = MessageQueue(tmp_path / "outgoing")
    names = [queue.add(f"APEL-cloud-message: v0.4\nVMUUID: {i}\n") for i in range(3)]
    for name in names:
        assert re.fullmatch(r"[0-9a-f]{8}/[0-9a-f]{14}", name)
    # read back exactly as apel/ssm's sender does
    dirq = QueueSimple(str(tmp_path / "outgoing"))
    seen = []
    name = dirq.first()
    while name:
        assert dirq.lock(name)
        seen.append(dirq.get(name))
        dirq.remove(name)
        name = dirq.next()
    assert seen == [f"APEL-cloud-message: v0.4\nVMUUID: {i}\n".encode() for i in range(3)]
    assert queue.count() == 0


def test_lock_get_remove_cycle_and_locked_elements_are_skipped_by_others(tmp_path):
    queue = MessageQueue(tmp_path / "q")
    name = queue.add(b"payload")
    assert queue.lock(name)
    assert not MessageQueue(tmp_path / "q").lock(name)
    assert queue.get(name) == b"payload"
    queue.remove(name)
    assert list(queue.names()) == []


def test_non_ascii_text_is_refused_at_add(tmp_path):
    queue = MessageQueue(tmp_path / "q")
    try:
        queue.add("MachineName: caf\u00e9\n")
    except UnicodeEncodeError:
        pass
    else:  # pragma: no cover
        raise AssertionError("non-ASCII text must not enter the queue")
    assert queue.count() == 0


def test_reject_moves_the_element_aside_with_its_reason(tmp_path):
    queue = MessageQueue(tmp_path / "q")
    name = queue.add(b"garbage")
    assert queue.lock(name)
    target = queue.reject(name, "not an APEL message")
    assert target.read_bytes() == b"garbage"
    assert target.with_name(target.name + ".reason").read_text() == "not an APEL message\n"
    assert target.parent == tmp_path / "q.reject"
    assert queue.count() == 0


def test_stale_locks_are_recovered_by_purge(tmp_path):
    queue = MessageQueue(tmp_path / "q")
    name = queue.add(b"m")
    assert queue.lock(name)
    old = time.time() - 3600
    os.utime(tmp_path / "q" / f"{name}.lck", (old, old))
    os.utime(tmp_path / "q" / name, (old, old))
    queue.purge(max_lock=600)
    assert MessageQueue(tmp_path / "q").lock(name)


def test_stats_give_depth_bytes_and_oldest_age(tmp_path):
    queue = MessageQueue(tmp_path / "q")
    assert queue.stats().count == 0 and queue.stats().oldest_age is None
    queue.add(b"12345")
    queue.add(b"678")
    stats = queue.stats()
    assert stats.count == 2 and stats.bytes == 8
    assert stats.oldest_age is not None and 0 <= stats.oldest_age < 60


def _fsynced_paths(monkeypatch):
    """Record every directory fsync'ed by path, every file as ``file:<inode>`` (it is synced before its link)."""
    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        info = os.fstat(fd)
        synced.append(os.path.realpath(f"/proc/self/fd/{fd}") if stat.S_ISDIR(info.st_mode) else
                      f"file:{info.st_ino}")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    return synced


def _file(path):
    return f"file:{os.stat(path).st_ino}"


def test_add_syncs_file_and_directory_always_and_the_root_only_for_a_new_directory(tmp_path, monkeypatch):
    synced = _fsynced_paths(monkeypatch)
    for attempt in range(5):  # a minute boundary between the two adds makes a second directory: retry then
        root = tmp_path / f"q{attempt}"
        queue = MessageQueue(root)
        synced.clear()
        first, second = queue.add(b"one"), queue.add(b"two")
        if first.split("/")[0] == second.split("/")[0]:
            break
    else:  # pragma: no cover
        raise AssertionError("every attempt crossed a minute boundary")
    directory = str(root / first.split("/")[0])
    # the add made the directory for the first message: the root is synced; not for the second
    assert synced == [_file(root / first), directory, str(root), _file(root / second), directory]
    # the directory disappears (a reader purged it) and the next add makes it again: its entry in the root is synced
    for name in list(queue.names()):
        assert queue.lock(name)
        queue.remove(name)
    for entry in root.iterdir():
        entry.rmdir()
    synced.clear()
    third = queue.add(b"three")
    assert synced == [_file(root / third), str(root / third.split("/")[0]), str(root)]


def test_a_new_writer_syncs_the_root_once_even_for_a_directory_someone_else_made(tmp_path, monkeypatch):
    root = tmp_path / "q"
    MessageQueue(root).add(b"by another writer")
    writer = MessageQueue(root)
    synced = _fsynced_paths(monkeypatch)
    name = writer.add(b"mine")
    assert synced[-1] == str(root) and _file(root / name) in synced
