"""``LazyMembers``: an image's members read from the cloud on first use, behaving as a tuple."""

from __future__ import annotations

import copy
import pickle
import threading
import time

import pytest

from fedcloud_site.cloud.base import CloudUnavailable, Image, LazyMembers


class Reader:
    """Counts reads; fails the first ``failures`` of them."""

    def __init__(self, members=("p1", "p2"), failures: int = 0, delay: float = 0.0) -> None:
        self.members = members
        self.failures = failures
        self.delay = delay
        self.reads = 0

    def __call__(self):
        self.reads += 1
        time.sleep(self.delay)
        if self.reads <= self.failures:
            raise CloudUnavailable("members of image i1: the cloud answered 503")
        return iter(self.members)


def test_members_are_read_once_on_first_use():
    reader = Reader()
    members = LazyMembers(reader)
    assert reader.reads == 0 and not members.loaded and "not read yet" in repr(members)
    assert "p2" in members and "p3" not in members
    assert list(members) == ["p1", "p2"] and len(members) == 2 and members[0] == "p1" and members[1:] == ("p2",)
    assert reader.reads == 1 and members.loaded and repr(members) == "('p1', 'p2')"


def test_they_compare_equal_to_tuples_and_lists_in_records():
    assert LazyMembers(Reader()) == ("p1", "p2") and ("p1", "p2") == LazyMembers(Reader())
    assert LazyMembers(Reader()) == ["p1", "p2"] and LazyMembers(Reader()) != ("p1",)
    assert Image(id="i1", name="x", members=LazyMembers(Reader())) == Image(id="i1", name="x", members=("p1", "p2"))
    assert hash(LazyMembers(Reader())) == hash(("p1", "p2"))


def test_copies_and_pickles_are_plain_tuples():
    image = Image(id="i1", name="x", visibility="shared", members=LazyMembers(Reader()))
    assert copy.deepcopy(image).members == ("p1", "p2") and type(copy.deepcopy(image).members) is tuple
    assert type(copy.copy(image.members)) is tuple
    assert pickle.loads(pickle.dumps(image)).members == ("p1", "p2")


def test_a_failed_read_is_raised_where_members_are_used_and_asked_again_next_time():
    reader = Reader(failures=1)
    members = LazyMembers(reader)
    with pytest.raises(CloudUnavailable, match="image i1"):
        _ = "p1" in members
    assert not members.loaded
    assert "p1" in members and reader.reads == 2


def test_concurrent_first_uses_read_once():
    reader = Reader(delay=0.05)  # slow enough that unguarded first uses would overlap
    members = LazyMembers(reader)
    threads = [threading.Thread(target=lambda: len(members)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert reader.reads == 1
