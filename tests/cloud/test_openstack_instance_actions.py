"""Nova instance actions -> VM state changes: every answer either reads or is a BadCloudData naming it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fedcloud_site.cloud.base import BadCloudData, StateChange, VMState
from fedcloud_site.cloud.openstack import INSTANCE_ACTION_STATES, state_change
from fedcloud_site.timeutil import parse_time

WHAT = "instance actions of server s-1"
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                                   max_size=3), max_leaves=8)
TIMES = st.datetimes().map(lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%S.%f")) | st.sampled_from(
    [10 ** 30, float("inf"), -(10 ** 20), "2026-13-01T00:00:00", ""])
ACTIONS = st.fixed_dictionaries({}, optional={
    "action": st.sampled_from(sorted(INSTANCE_ACTION_STATES) + ["create", "resize", "attach_volume"]) | JSON,
    "message": st.sampled_from([None, "Error", ""]) | JSON,
    "start_time": TIMES | JSON, "updated_at": TIMES | JSON, "request_id": st.text(max_size=20)})


@given(st.one_of(ACTIONS, JSON))
def test_any_answer_is_read_or_refused_naming_the_server(raw):
    try:
        change = state_change(raw, WHAT)
    except BadCloudData as exc:
        assert WHAT in str(exc)
        return
    if isinstance(change, tuple):
        assert raw["action"] == "create" and change[0].state in (VMState.RUNNING, VMState.ERROR)
    elif change is not None:
        assert change.state is INSTANCE_ACTION_STATES[raw["action"]]
        assert str(raw.get("message") or "").lower() != "error"


def test_a_successful_create_starts_running_when_the_build_ended():
    raw = {"action": "create", "message": None, "start_time": "2026-11-01T00:00:00.000000",
           "updated_at": "2026-11-01T00:05:00.000000"}
    assert state_change(raw, WHAT) == (StateChange(parse_time("2026-11-01T00:05:00Z"),
                                                                     VMState.RUNNING),)


def test_failed_and_power_neutral_actions_change_nothing():
    base = {"start_time": "2026-11-01T00:00:00.000000"}
    assert state_change(dict(base, action="suspend", message="Error"), WHAT) is None
    assert state_change(dict(base, action="resize"), WHAT) is None
    assert state_change(dict(base, action="suspend"), WHAT) == StateChange(
        parse_time("2026-11-01T00:00:00Z"), VMState.SUSPENDED)
