"""``fedcloud-site check accounting``: extraction state and outgoing queue written by the real modules."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from fedcloud_site.accounting.state import StateStore
from fedcloud_site.queue import MessageQueue
from fedcloud_site.timeutil import utcnow

HOUR = 3600


@pytest.fixture
def config(site_config, tmp_path):
    return site_config("accounting: {interval: 6h}\n")


def _extracted(tmp_path: Path, project: str, hours_ago: float) -> None:
    StateStore(tmp_path / "state" / "accounting").save(project, utcnow() - timedelta(hours=hours_ago),
                                                      vo="vo.example.org")


def _queue_message(tmp_path: Path, hours_ago: float, monkeypatch: pytest.MonkeyPatch) -> None:
    """A message added by the real queue code as if ``hours_ago`` (dirq names carry the add time)."""
    real = time.time
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", lambda: real() - hours_ago * HOUR)
        MessageQueue(tmp_path / "spool" / "outgoing").add("APEL-cloud-message: v0.4\nVMUUID: x\n")


def test_recent_extraction_and_empty_queue_is_ok(tmp_path, config, probe):
    _extracted(tmp_path, "p1", 1)
    run = probe(config, "accounting")
    assert run.status == "OK", run.line
    assert "project p1 extracted 1h" in run.text
    assert run.perf("projects") == "1;;;0"
    assert run.perf("queue_messages").startswith("0")


def test_extraction_older_than_two_intervals_is_warning(tmp_path, config, probe):
    _extracted(tmp_path, "p1", 13)
    run = probe(config, "accounting")
    assert run.status == "WARNING", run.line
    assert "(warning 12h)" in run.text
    assert probe(config, "accounting", "--warning", "1d", "--critical", "2d").status == "OK"


def test_the_stalest_project_decides(tmp_path, config, probe):
    _extracted(tmp_path, "fresh", 1)
    _extracted(tmp_path, "stuck", 30)
    run = probe(config, "accounting")
    assert run.status == "CRITICAL", run.line
    assert "stalest of 2 projects (stuck) extracted 1d6h ago (critical 1d)" in run.text


def test_unsent_messages_waiting_too_long_are_reported(tmp_path, config, probe, monkeypatch):
    _extracted(tmp_path, "p1", 1)
    _queue_message(tmp_path, 7, monkeypatch)
    _queue_message(tmp_path, 0.1, monkeypatch)
    run = probe(config, "accounting")
    assert run.status == "WARNING", run.line
    assert "queue: 2 unsent message(s), oldest queued 7h" in run.text
    assert run.perf("queue_messages").startswith("2")
    _queue_message(tmp_path, 25, monkeypatch)
    assert probe(config, "accounting").status == "CRITICAL"


def test_rejected_messages_need_an_operator(tmp_path, config, probe):
    _extracted(tmp_path, "p1", 1)
    reject = tmp_path / "spool" / "outgoing.reject"
    reject.mkdir(parents=True)
    (reject / "66a0b1c2-66a0b1c2f0a1b3").write_text("APEL-cloud-message: v0.4\n")
    (reject / "66a0b1c2-66a0b1c2f0a1b3.reason").write_text("message too large\n")
    run = probe(config, "accounting")
    assert run.status == "WARNING", run.line
    assert "1 rejected message(s)" in run.text


def test_no_state_yet_is_critical(config, probe):
    run = probe(config, "accounting")
    assert run.status == "CRITICAL"
    assert "has not completed a run yet" in run.text


def test_corrupt_state_file_is_critical_and_named(tmp_path, config, probe):
    _extracted(tmp_path, "p1", 1)
    bad = tmp_path / "state" / "accounting" / "projects" / "p2.json"
    bad.write_text('{"project": "p2"}', encoding="utf-8")
    run = probe(config, "accounting")
    assert run.status == "CRITICAL"
    assert str(bad) in run.text


def test_invalid_accounting_settings_are_unknown(site_config, probe):
    config = site_config("accounting: {interval: soon}\n")
    run = probe(config, "accounting")
    assert run.status == "UNKNOWN"
    assert "accounting.interval" in run.text
