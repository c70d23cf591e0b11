"""``fedcloud-site check images``: the images daemon's sqlite state, written through its own StateDB."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from fedcloud_site.images.state import StateDB
from fedcloud_site.timeutil import iso_utc, utcnow

ENDORSER = "/DC=org/DC=example/CN=appdb.example.org"


@pytest.fixture
def config(site_config):
    return site_config(f"""
        images:
          interval: 1h
          grace_period: 1d
          subscriptions:
            - name: appdb-vo
              url: https://appdb.example.org/store/vo/image.list
              endorser_dn: {ENDORSER}
              ca_dn: /DC=org/DC=example/CN=Test CA
        """)


@pytest.fixture
def db(tmp_path):
    state = StateDB(Path(tmp_path) / "state" / "images" / "images.sqlite")
    yield state
    state.close()


def _ago(**delta) -> str:
    return iso_utc(utcnow() - timedelta(**delta))


def _good_list(db: StateDB, hours_ago: float = 1, expires_in_days: float = 30) -> None:
    db.save_subscription("appdb-vo", state="ok", reason=None, last_success=_ago(hours=hours_ago),
                         last_checked=_ago(hours=hours_ago), signer_dn=ENDORSER,
                         list_expires=iso_utc(utcnow() + timedelta(days=expires_in_days)))


def _image(db: StateDB, identifier: str, state: str, **values) -> None:
    db.add_image("appdb-vo", identifier, identifier * 8, state, title=f"Image {identifier}", version="1", **values)


def test_fresh_verified_list_with_registered_images_is_ok(config, db, probe):
    _good_list(db)
    _image(db, "a1", "registered", image_id="img-1")
    db.close()
    run = probe(config, "images")
    assert run.status == "OK", run.line
    assert f"list appdb-vo (signed by {ENDORSER}) verified 1h" in run.text
    assert run.perf("images_registered") == "1;;;0"


def test_list_failing_since_a_few_hours_is_warning(config, db, probe):
    _good_list(db, hours_ago=5)
    db.save_subscription("appdb-vo", state="failed", reason="signature: signer is not the endorser")
    db.close()
    run = probe(config, "images")
    assert run.status == "WARNING", run.line
    assert "list appdb-vo failing: signature: signer is not the endorser; last good fetch 5h" in run.text


def test_list_without_a_good_fetch_for_a_day_is_critical(config, db, probe):
    _good_list(db, hours_ago=30)
    db.save_subscription("appdb-vo", state="failed", reason="HTTP 503")
    db.close()
    assert probe(config, "images").status == "CRITICAL"


def test_expired_list_whose_images_are_still_registered_is_critical(config, db, probe):
    _good_list(db, expires_in_days=-2)
    _image(db, "a1", "registered", image_id="img-1")
    db.close()
    run = probe(config, "images")
    assert run.status == "CRITICAL", run.line
    assert "list appdb-vo expired 2d" in run.text and "1 of its images are still registered" in run.text


def test_image_waiting_to_be_registered_for_two_days_is_warning(config, db, probe):
    _good_list(db)
    _image(db, "a1", "registered", image_id="img-1")
    _image(db, "b2", "failed", reason="download: HTTP 404", first_seen=_ago(days=2))
    db.close()
    run = probe(config, "images")
    assert run.status == "WARNING", run.line
    assert "oldest appdb-vo/Image b2 (failed, download: HTTP 404) listed 2d" in run.text
    assert run.perf("images_pending").startswith("1")


def test_retired_image_kept_long_after_the_grace_period_is_warning(config, db, probe):
    _good_list(db)
    _image(db, "c3", "deprecated", image_id="img-3", deprecated_at=_ago(days=3))
    db.close()
    run = probe(config, "images")
    assert run.status == "WARNING", run.line
    assert "1 retired image(s) still in the cloud after the grace period of 1d" in run.text


def test_subscription_never_fetched_is_critical(config, db, probe):
    db.save_subscription("appdb-vo", state="never", reason=None)
    db.close()
    run = probe(config, "images")
    assert run.status == "CRITICAL"
    assert "list appdb-vo never fetched successfully" in run.text


def test_no_state_yet_is_critical(config, probe):
    run = probe(config, "images")
    assert run.status == "CRITICAL"
    assert "the images daemon has not run yet" in run.text


def test_probe_does_not_write_next_to_the_database(config, db, probe, tmp_path):
    _good_list(db)
    db.close()
    before = sorted(p.name for p in (tmp_path / "state" / "images").iterdir())
    probe(config, "images")
    assert sorted(p.name for p in (tmp_path / "state" / "images").iterdir()) == before


def test_invalid_subscription_is_unknown(site_config, probe):
    config = site_config("images: {subscriptions: [{name: x, url: 'ftp://x', endorser_dn: /CN=a, ca_dn: /CN=b}]}\n")
    run = probe(config, "images")
    assert run.status == "UNKNOWN"
    assert "images.subscriptions" in run.text
