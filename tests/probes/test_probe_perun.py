"""``fedcloud-site check perun``: state written by real ``fedcloud-site perun once`` runs (static backend)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from fedcloud_site import cli
from fedcloud_site.timeutil import iso_utc, utcnow

REPO = Path(__file__).resolve().parents[2]
DEMO_SITE = REPO / "etc" / "fedcloud-site" / "demo-site.yaml"
DEMO_PERUN = REPO / "etc" / "fedcloud-site" / "demo-perun.json"


def _site(site_config, tmp_path: Path, generated_hours_ago: float = 1, users: bool = True,
          extra_vo: str = "") -> Path:
    data = json.loads(DEMO_PERUN.read_text(encoding="utf-8"))
    data["generated_at"] = iso_utc(utcnow() - timedelta(hours=generated_hours_ago))
    if not users:
        data["users"] = []
    push = tmp_path / "perun" / "users.json"
    push.parent.mkdir(parents=True, exist_ok=True)
    push.write_text(json.dumps(data), encoding="utf-8")
    return site_config(f"""
        cloud:
          backend: static
          static: {{site_file: {DEMO_SITE}, state_file: {tmp_path}/static-state.json}}
        vos:
          fedcloud.egi.eu: {{projects: [3a1f0c2e9d7b4e7f8a6b5c4d3e2f1a0b]}}
          biomed: {{projects: [biomed-cloud]}}
          {extra_vo or "biomed"}: {{projects: [biomed-cloud]}}
        perun:
          interval: 15m
          file: {push}
        """)


def _sync(config: Path) -> int:
    return cli.main(["--config", str(config), "perun", "once"])


def test_recent_successful_sync_of_fresh_data_is_ok(site_config, tmp_path, probe):
    config = _site(site_config, tmp_path)
    assert _sync(config) == 0
    run = probe(config, "perun")
    assert run.status == "OK", run.line
    assert "last sync ok (3 managed users, 3 changed)" in run.text
    assert "Perun data generated 1h" in run.text
    assert run.perf("managed") == "3;;;0"


def test_sync_older_than_the_threshold_is_warning(site_config, tmp_path, probe):
    config = _site(site_config, tmp_path)
    _sync(config)
    run = probe(config, "perun", "--warning", "0s")
    assert run.status == "WARNING", run.line
    assert "(warning 0s)" in run.text


def test_incomplete_sync_is_warning(site_config, tmp_path, probe):
    # a VO whose local group does not exist in the cloud: the other VOs are synced, the run is incomplete
    config = _site(site_config, tmp_path, extra_vo="extra.vo.example.org")
    assert _sync(config) == 1
    run = probe(config, "perun")
    assert run.status == "WARNING", run.line
    assert "last sync incomplete: VO extra.vo.example.org: local group" in run.text


def test_perun_data_not_refreshed_for_days_is_warning(site_config, tmp_path, probe):
    config = _site(site_config, tmp_path, generated_hours_ago=4 * 24)
    assert _sync(config) == 0
    run = probe(config, "perun")
    assert run.status == "WARNING", run.line
    assert "Perun data generated 4d" in run.text
    assert probe(config, "perun", "--input-critical", "84h").status == "CRITICAL"


def test_sync_refused_by_a_safety_check_is_critical(site_config, tmp_path, probe):
    config = _site(site_config, tmp_path)
    _sync(config)
    empty = _site(site_config, tmp_path, users=False)
    assert _sync(empty) == 4
    run = probe(empty, "perun")
    assert run.status == "CRITICAL", run.line
    assert "last sync refused by a safety check" in run.text


def test_no_sync_yet_is_critical(site_config, tmp_path, probe):
    run = probe(_site(site_config, tmp_path), "perun")
    assert run.status == "CRITICAL"
    assert "the perun daemon has not run yet" in run.text


def test_unreadable_state_is_critical(site_config, tmp_path, probe):
    config = _site(site_config, tmp_path)
    state = tmp_path / "state" / "perun" / "perun-state.json"
    state.parent.mkdir(parents=True)
    state.write_text("{not json", encoding="utf-8")
    run = probe(config, "perun")
    assert run.status == "CRITICAL"
    assert "unreadable state" in run.text


def test_invalid_perun_settings_are_unknown(site_config, probe):
    run = probe(site_config("perun: {max_change_fraction: 2}\n"), "perun")
    assert run.status == "UNKNOWN"
    assert "max_change_fraction" in run.text
