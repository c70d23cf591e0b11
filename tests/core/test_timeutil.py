"""UTC time helpers never depend on the host's TZ."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedcloud_site.timeutil import iso_utc, month_start, next_month, parse_month, parse_time, to_epoch


def test_parse_time_accepts_iso_z_offsets_naive_and_epoch():
    expected = datetime(2023, 5, 21, 0, 0, tzinfo=timezone.utc)
    assert parse_time("2023-05-21T00:00:00Z") == expected
    assert parse_time("2023-05-21T02:00:00+02:00") == expected
    assert parse_time("2023-05-21T00:00:00") == expected  # naive = UTC, as OpenStack means it
    assert parse_time(1684627200) == expected
    with pytest.raises(ValueError, match="not an ISO 8601 time"):
        parse_time("21/05/2023")


def test_epoch_is_the_same_under_any_host_timezone():
    code = ("from fedcloud_site.timeutil import parse_time, to_epoch;"
            "print(to_epoch(parse_time('2023-05-20T00:00:00Z')), to_epoch(parse_time('2023-05-20T00:00:00')))")
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                              env=dict(os.environ, TZ=tz)).stdout for tz in ("UTC", "Europe/Madrid", "America/Lima")}
    assert outputs == {"1684540800 1684540800\n"}


def test_naive_datetimes_are_refused_for_epochs():
    with pytest.raises(ValueError):
        to_epoch(datetime(2023, 1, 1))


def test_month_boundaries():
    moment = datetime(2026, 12, 31, 23, 59, tzinfo=timezone.utc)
    assert month_start(moment) == datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert next_month(moment) == datetime(2027, 1, 1, tzinfo=timezone.utc)
    assert parse_month("2026-01") == (2026, 1)
    with pytest.raises(ValueError):
        parse_month("2026-13")
    assert iso_utc(moment) == "2026-12-31T23:59:00Z"


@pytest.mark.parametrize("value", [10 ** 30, -(10 ** 20), 67_768_036_191_676_800, float("inf"), 1e300, True])
def test_an_epoch_out_of_range_is_a_value_error(value):
    with pytest.raises(ValueError, match="not a time"):
        parse_time(value)


@given(st.integers() | st.floats(allow_nan=False))
def test_any_number_is_a_time_or_a_value_error(value):
    try:
        moment = parse_time(value)
    except ValueError:
        return
    assert moment.tzinfo is not None
