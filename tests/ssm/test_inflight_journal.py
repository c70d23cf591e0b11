"""The in-flight journal: a sender killed at any point leaves no lock the next run cannot take back at once.

dirq breaks a lock only after ``stale_lock`` seconds (it cannot tell a dead locker from a slow one).
The sender therefore writes each name it is about to lock to its journal, durably, *before* it takes
the lock; the next run unlocks every journalled name that is still locked and passes over the names
whose lock is absent (intended but never taken, or released).  A name the sender found locked by
another program is struck from the journal again, so the next run leaves that lock alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ssm_helpers import fill_queue, ssm_yaml

from fedcloud_site.cli import main
from fedcloud_site.log import configure_logging, get_logger
from fedcloud_site.queue import MessageQueue
from fedcloud_site.ssm.sender import InflightJournal

REPO = Path(__file__).resolve().parents[2]

#: ``fedcloud-site ssm once`` that SIGKILLs itself right after dirq linked the first ``.lck`` file: the
#: audit hook sees dirq's ``os.link`` (the lock) and kills the process at the next audited operation,
#: which is dirq's own ``os.utime`` inside ``lock()`` -- the earliest moment a lock exists.
KILLED_AFTER_FIRST_LOCK = r"""
import os, signal, sys
state = {"lock": None, "dying": False}
def hook(event, args):
    if state["dying"]:
        return
    if event == "os.link" and str(args[1]).endswith(".lck"):
        state["lock"] = str(args[1])
    elif state["lock"] is not None and os.path.exists(state["lock"]):
        state["dying"] = True
        sys.stdout.write("killed holding " + state["lock"] + "\n")
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(hook)
from fedcloud_site.cli import main
sys.exit(main(["--config", sys.argv[1], "ssm", "once"]))
"""


def test_a_sender_killed_right_after_taking_a_lock_leaves_it_to_the_next_run(tmp_path, test_pki, broker, destination,
                                                                            consume, outgoing):
    queued = fill_queue(outgoing, 5, size=500)
    consumer = consume(broker.port, destination)
    config = ssm_yaml(tmp_path, test_pki, outgoing, brokers=[f"localhost:{broker.tls_port}"],
                      destination=destination)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    killed = subprocess.run([sys.executable, "-c", KILLED_AFTER_FIRST_LOCK, str(config)], env=env,
                            capture_output=True, timeout=120, check=False)
    assert killed.returncode == -9, killed.stdout.decode() + killed.stderr.decode()
    locks = sorted(outgoing.path.rglob("*.lck"))
    assert len(locks) == 1 and b"killed holding" in killed.stdout  # the kill point was reached
    assert consumer.messages == []  # nothing was sent before it

    assert main(["--config", str(config), "ssm", "once"]) == 0  # at once, not after stale_lock (600 s)

    received = consumer.wait_for(len(queued))
    assert sorted(m.headers["empa-id"] for m in received) == sorted(queued)
    assert outgoing.count() == 0
    assert not list(outgoing.path.rglob("*.lck"))


# -- the journal on its own (no broker) ------------------------------------------------------------
@pytest.fixture
def queue(tmp_path) -> MessageQueue:
    queue = MessageQueue(tmp_path / "queue")
    for index in range(4):
        queue.add(f"message {index}\n")
    return queue


def test_recovery_unlocks_journalled_locks_and_passes_over_names_never_locked_or_gone(tmp_path, queue):
    held, intended, gone, foreign = list(queue.names())
    journal = InflightJournal(tmp_path / "inflight", get_logger("test"))
    journal.intend([held, intended, gone, foreign])
    assert queue.lock(held)  # the killed run took this lock ...
    # ... was killed before locking `intended`; `gone` was sent and deleted by it
    assert queue.lock(gone)
    queue.remove(gone)
    assert queue.lock(foreign)  # locked by another program: the killed run found it busy and said so
    journal.retract(foreign)

    after_crash = InflightJournal(tmp_path / "inflight", get_logger("test"))
    assert after_crash.recover(queue) == 1
    assert not (queue.path / f"{held}.lck").exists()
    assert not (queue.path / f"{intended}.lck").exists() and (queue.path / intended).exists()
    assert (queue.path / f"{foreign}.lck").exists()  # not ours: left to its holder (and stale_lock)
    assert sorted(queue.names()) == sorted([held, intended, foreign])
    assert not (tmp_path / "inflight").exists()  # the journal is cleared once recovered


def test_an_intent_is_on_disk_before_intend_returns(tmp_path, queue):
    names = list(queue.names())
    journal = InflightJournal(tmp_path / "state" / "inflight", get_logger("test"))
    journal.intend(names[:2])
    # another process (the next run after a kill) reads it while this one still holds the file open
    assert (tmp_path / "state" / "inflight").read_text(encoding="ascii").split() == names[:2]
    journal.intend(names[2:3])
    journal.retract(names[0])
    reader = InflightJournal(tmp_path / "state" / "inflight", get_logger("test"))
    for name in names[1:3]:
        assert queue.lock(name)
    assert queue.lock(names[0])
    assert reader.recover(queue) == 2  # names[1] and names[2]; names[0] was retracted
    assert (queue.path / f"{names[0]}.lck").exists()
    journal.clear()


def test_a_journal_that_cannot_be_written_is_reported_once_and_the_run_goes_on(tmp_path, queue, capsys):
    configure_logging()  # onto this test's stderr
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    journal = InflightJournal(blocker / "inflight", get_logger("test"))
    journal.intend(list(queue.names())[:1])
    journal.intend(list(queue.names())[1:2])
    journal.retract(list(queue.names())[0])
    assert journal.recover(queue) == 0
    assert capsys.readouterr().err.count("cannot write the in-flight journal") == 1
