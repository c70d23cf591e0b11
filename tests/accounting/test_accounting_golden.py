"""Golden messages: a fixed data set on the static backend gives exactly these bytes, and every
message passes the APEL-server-like loader."""

from __future__ import annotations

import re

import pytest
from accounting_support import GOLDEN_DIR
from apel_loader import CloudDB, parse_message

NOW = "2026-11-20T10:00:00Z"
GOLDEN = GOLDEN_DIR / "static-2026-11-20.txt"


def split_printed(text: str) -> list:
    """Messages of a dry-run print, without the ``# message`` lines."""
    parts = re.split(r"^# message \d+: .*\n", text, flags=re.M)
    return [part[:-1] if not part.startswith("APEL-cloud-message") else part for part in parts if part]


def test_dry_run_prints_exactly_the_golden_messages(make_site, golden_site_data):
    site = make_site(golden_site_data)
    assert site.dry_run(NOW) == GOLDEN.read_text(encoding="ascii")


def test_dry_run_writes_neither_queue_nor_state(make_site, golden_site_data):
    site = make_site(golden_site_data)
    site.dry_run(NOW)
    assert not site.queue_dir.exists()
    assert not site.storage_queue_dir.exists()
    assert not list(site.state_dir.rglob("*.json")) if site.state_dir.exists() else True


def test_queue_holds_the_golden_messages_in_order(make_site, golden_site_data):
    site = make_site(golden_site_data)
    summary = site.run(NOW)
    expected = split_printed(GOLDEN.read_text(encoding="ascii"))
    by_kind = {kind: [m for m in expected if parse_message(m.encode("ascii")).kind == kind]
               for kind in ("cloud", "storage", "ip", "accelerator")}
    assert all(by_kind.values()) and sum(map(len, by_kind.values())) == len(expected)
    for kind, messages in by_kind.items():  # each record type in its own queue, in order
        assert [m.decode("ascii") for m in site.messages(kind=kind)] == messages, kind
    assert summary["cloud_records"] == 10  # not the VM still queued for its first boot
    assert summary["messages"] == len(expected)


def test_every_golden_message_is_accepted_by_the_apel_loader():
    for message in split_printed(GOLDEN.read_text(encoding="ascii")):
        parsed = parse_message(message.encode("ascii"))
        assert parsed.records


def test_golden_cloud_records_carry_every_mandatory_field_and_month_end_snapshots():
    db = CloudDB()
    for message in split_printed(GOLDEN.read_text(encoding="ascii")):
        db.load_message(message.encode("ascii"))
    for row in db.rows.values():
        for key in ("VMUUID", "SiteName", "FQAN", "Status", "StartTime"):
            assert row.get(key) not in (None, ""), key
    months = {(key[0], key[1], key[2]) for key in db.rows}
    long_runner = "3f2e1d0c-9b8a-4765-8432-10fedcba9876"
    assert (long_runner, 2026, 10) in months and (long_runner, 2026, 11) in months
    usage = db.monthly_usage()
    # October: from the VM's start (Sep 15 06:00) to Oct 31 23:59:59; November: the rest up to NOW
    assert usage[(long_runner, 2026, 10)] == 4039199
    assert usage[(long_runner, 2026, 11)] == 5716800 - 4039199


@pytest.mark.parametrize("vm_id", ["d4e5f6a7-b8c9-4d0e-8f1a-3b4c5d6e7f8a", "e5f6a7b8-c9d0-4e1f-8a2b-4c5d6e7f8a9b"])
def test_vms_gone_before_the_window_or_created_after_it_get_no_record(vm_id):
    assert vm_id not in GOLDEN.read_text(encoding="ascii")
