"""Whether a static site's VM ever ran and its state history (``launched``, ``run_periods``, ``history``):
any value reads or is a BadCloudData naming the VM."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedcloud_site.cloud.base import BadCloudData, VMState
from fedcloud_site.cloud.static import StaticBackend, StaticSettings
from fedcloud_site.timeutil import parse_time

VM = {"id": "vm-1", "project": "p1", "user": "u1", "created": "2026-11-01T00:00:00Z", "status": "running"}
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=25),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                   max_size=3), max_leaves=8)
TIMES = st.sampled_from(["2026-11-02T00:00:00Z", "2026-11-03T12:00:00Z", 1793577600, "yesterday", None, 10 ** 30])
ENTRIES = st.lists(st.lists(TIMES | st.sampled_from([s.value for s in VMState] + ["asleep"]), max_size=3), max_size=4)


def backend(tmp_path: Path, vm: dict) -> StaticBackend:
    site = tmp_path / "site.json"
    site.write_text(json.dumps({"projects": [{"id": "p1", "name": "p"}], "vms": [vm]}), encoding="utf-8")
    return StaticBackend(StaticSettings(site_file=site))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60)
@given(launched=TIMES | JSON, history=st.none() | ENTRIES | JSON)
def test_any_launched_and_history_read_or_are_refused_naming_the_vm(tmp_path, launched, history):
    try:
        (vm,) = backend(tmp_path, dict(VM, launched=launched, history=history)).list_vms()
    except BadCloudData as exc:
        assert "vms[0] (vm-1)" in str(exc)
        return
    assert vm.ever_ran is (launched not in (None, ""))
    assert vm.state_history is None or all(change.state in VMState for change in vm.state_history)


def test_launched_null_or_no_run_periods_mean_never_ran(tmp_path):
    (never,) = backend(tmp_path, dict(VM, status="error", launched=None)).list_vms()
    assert never.ever_ran is False
    (idle,) = backend(tmp_path, dict(VM, run_periods=[])).list_vms()
    assert idle.ever_ran is False
    (ran,) = backend(tmp_path, dict(VM, run_periods=[["2026-11-02T00:00:00Z", None]])).list_vms()
    assert ran.ever_ran is True and ran.first_ran_at == parse_time("2026-11-02T00:00:00Z")
    (unknown,) = backend(tmp_path, dict(VM)).list_vms()
    assert unknown.ever_ran is None and unknown.first_ran_at is None
