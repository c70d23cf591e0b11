"""Property: any record values render to a message the APEL server accepts and that reads back to the same
field values (after the documented sanitising: ASCII, no control characters, no ``%%``, column widths), or
the record is refused with a named BadRecord.  Values come from other parties' clouds (VM names, user
names, image ids, counters), so nothing about them is trusted."""

from __future__ import annotations

import math
from typing import Any, Dict, List

from apel_loader import Rejected, parse_message
from hypothesis import given, settings
from hypothesis import strategies as st

from fedcloud_site.accounting.messages import (
    ACCELERATOR_FORMAT,
    CLOUD_FORMAT,
    IP_FORMAT,
    STORAGE_FORMAT,
    Batcher,
    MessageFormat,
    MessageSink,
)
from fedcloud_site.accounting.records import (
    _CLOUD_FIELDS,
    AcceleratorRecord,
    BadRecord,
    CloudRecord,
    IPRecord,
    StorageRecord,
    wire_text,
)
from fedcloud_site.timeutil import iso_utc, parse_time


class ListSink(MessageSink):
    def __init__(self) -> None:
        self.messages: List[str] = []

    def put(self, kind: str, message: str, records: int) -> None:
        self.messages.append(message)


def render(fmt: MessageFormat, record: Any) -> Any:
    """The one message holding ``record`` as the extractor would write it, parsed as the APEL server does;
    or the BadRecord that refused it (it must name the record)."""
    sink = ListSink()
    batcher = Batcher(fmt, sink, max_records=100, max_bytes=700 * 1024)
    try:
        batcher.add(record)
    except BadRecord as exc:
        assert str(exc), "a refusal says why"
        return exc
    batcher.flush()
    assert len(sink.messages) == 1
    message = sink.messages[0]
    message.encode("ascii")  # the queue takes ASCII only
    try:
        return parse_message(message)
    except Rejected as exc:  # pragma: no cover - the assertion explains
        raise AssertionError(f"the APEL server would reject this message ({exc}):\n{message}") from None


hostile_text = st.one_of(
    st.text(max_size=40), st.text(max_size=300),
    st.sampled_from(["", " ", "none", "NULL", "%%", "a%%b", "50%%%", "x\n%%\ny", "Key: value", "café", "\u2028",
                     "\x00\x1f\x7f", " padded ", "\ud7ff", "ﬁ"]))
hostile_int = st.one_of(st.integers(min_value=-5, max_value=10 ** 12), st.integers(), st.sampled_from(
    [0, 2 ** 63 - 1, 2 ** 63, 2 ** 64, -1]))
hostile_number = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 10 ** 9),
                           st.floats(min_value=0, max_value=10 ** 6), st.sampled_from([0.0005, 9999999.999, 1e7]))
hostile_time = st.one_of(st.integers(min_value=0, max_value=4102444800), st.integers(),
                         st.sampled_from([0, 253402300799, 253402300800, -1, 2 ** 63]))

CLOUD_KINDS = {attr: kind for _, attr, kind, _ in _CLOUD_FIELDS}
HOSTILE = {"text": hostile_text, "int": hostile_int, "number": hostile_number, "time": hostile_time}
#: values a cloud plausibly reports (any Unicode text, counters and times in range)
PLAUSIBLE = {
    "text": st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=60)
    | st.text(min_size=1, max_size=60).filter(lambda t: wire_text(t) not in ("", "none", "null")),
    "int": st.integers(0, 10 ** 12),
    "number": st.floats(min_value=0, max_value=10 ** 6),
    "time": st.integers(10 ** 9, 4102444800),
}


@st.composite
def cloud_records(draw: Any) -> CloudRecord:
    """A record of plausible values with one or two hostile ones (so that most records get rendered)."""
    hostile = set(draw(st.lists(st.sampled_from(sorted(CLOUD_KINDS)), min_size=1, max_size=2)))
    values: Dict[str, Any] = {}
    for attr, kind in CLOUD_KINDS.items():
        if attr in ("status", "end_time"):
            continue
        mandatory = attr in ("vm_uuid", "site_name", "fqan", "start_time", "measurement_time")
        if mandatory or draw(st.booleans()):
            values[attr] = draw(HOSTILE[kind] if attr in hostile else PLAUSIBLE[kind])
    status = draw(st.sampled_from(["started", "completed", "suspended"] * 3 + ["deleted", "Started"]))
    end_time = None
    if status == "completed" or draw(st.sampled_from([False] * 19 + [True])):
        end_time = draw(hostile_time) if "end_time" in hostile else values["start_time"] + draw(
            st.integers(0, 10 ** 8))
    return CloudRecord(status=status, end_time=end_time, **values)


#: what the APEL database columns hold (MySQL refuses the whole message otherwise): BIGINT counters,
#: DECIMAL(10,3) numbers, DATETIME up to the end of year 9999
MAX_BIGINT = 2 ** 63 - 1
MAX_DECIMAL = 9999999.999
MAX_DATETIME = 253402300799
CLOUD_INT_KEYS = {key for key, _, kind, _ in _CLOUD_FIELDS if kind == "int"}
CLOUD_DECIMAL_KEYS = {key for key, _, kind, _ in _CLOUD_FIELDS if kind == "number"}
CLOUD_TIME_KEYS = {key for key, _, kind, _ in _CLOUD_FIELDS if kind == "time"}


def check_columns(parsed: Dict[str, Any]) -> None:
    for key, value in parsed.items():
        if key in CLOUD_INT_KEYS:
            assert 0 <= value <= MAX_BIGINT, f"{key} {value} does not fit the server's BIGINT column"
        elif key in CLOUD_DECIMAL_KEYS:
            assert math.isfinite(value) and 0 <= value <= MAX_DECIMAL, f"{key} {value} does not fit DECIMAL(10,3)"
        elif key in CLOUD_TIME_KEYS:
            assert 0 <= value <= MAX_DATETIME, f"{key} {value} is not a DATETIME"


def _expected_cloud(record: CloudRecord) -> Dict[str, Any]:
    """What the server should read: each field as sanitised for the wire, NULLs left out."""
    expected: Dict[str, Any] = {}
    for key, attr, kind, limit in _CLOUD_FIELDS:
        value = getattr(record, attr)
        if value is None:
            continue
        if kind == "text":
            text = wire_text(value, limit)
            if text.lower() not in ("", "none", "null"):
                expected[key] = text
        else:
            expected[key] = value
    return expected


@settings(max_examples=400, deadline=None)
@given(cloud_records())
def test_any_cloud_record_reads_back_or_is_refused_by_name(record):
    result = render(CLOUD_FORMAT, record)
    if isinstance(result, BadRecord):
        return
    (parsed,) = result.records
    parsed = {key: value for key, value in parsed.items() if value is not None}
    check_columns(parsed)
    expected = _expected_cloud(record)
    assert set(parsed) == set(expected)
    for key, value in expected.items():
        if key in ("CpuCount", "Benchmark"):  # DECIMAL(10,3): three decimals
            assert math.isclose(parsed[key], value, abs_tol=0.0005 + 1e-9), key
        else:
            assert parsed[key] == value, key


@st.composite
def ip_records(draw: Any) -> IPRecord:
    return IPRecord(measurement_time=draw(hostile_time), site_name=draw(hostile_text),
                    cloud_compute_service=draw(hostile_text), cloud_type=draw(hostile_text),
                    local_user=draw(hostile_text), local_group=draw(hostile_text),
                    global_user_name=draw(hostile_text), fqan=draw(hostile_text),
                    ip_version=draw(st.sampled_from([4, 6, 5, 0])), ip_count=draw(hostile_int))


@settings(max_examples=300, deadline=None)
@given(ip_records())
def test_any_ip_record_reads_back_or_is_refused_by_name(record):
    result = render(IP_FORMAT, record)
    if isinstance(result, BadRecord):
        return
    (parsed,) = result.records
    assert parsed["MeasurementTime"] == record.measurement_time
    assert (parsed["IPVersion"], parsed["IPCount"]) == (record.ip_version, record.ip_count)
    for key, attr in (("SiteName", "site_name"), ("LocalUser", "local_user"), ("FQAN", "fqan"),
                      ("GlobalUserName", "global_user_name"), ("CloudType", "cloud_type")):
        assert parsed[key] == wire_text(getattr(record, attr)), key


@st.composite
def accelerator_records(draw: Any) -> AcceleratorRecord:
    return AcceleratorRecord(
        measurement_month=draw(st.one_of(st.integers(1, 12), st.integers())),
        measurement_year=draw(st.one_of(st.integers(2000, 2100), st.integers())),
        associated_record=draw(hostile_text), fqan=draw(hostile_text), site_name=draw(hostile_text),
        count=draw(hostile_number), available_duration=draw(hostile_int),
        type=draw(st.sampled_from(["GPU", "gpu", "FPGA", "TPU", " other "])),
        model=draw(st.none() | hostile_text), global_user_name=draw(st.none() | hostile_text))


@settings(max_examples=300, deadline=None)
@given(accelerator_records())
def test_any_accelerator_record_reads_back_or_is_refused_by_name(record):
    result = render(ACCELERATOR_FORMAT, record)
    if isinstance(result, BadRecord):
        return
    (parsed,) = result.records
    assert (parsed["MeasurementMonth"], parsed["MeasurementYear"]) == (record.measurement_month,
                                                                      record.measurement_year)
    assert parsed["AvailableDuration"] == record.available_duration
    assert math.isclose(parsed["Count"], record.count, abs_tol=0.0005 + 1e-9)
    assert parsed["FQAN"] == wire_text(record.fqan) and parsed["SiteName"] == wire_text(record.site_name)


@st.composite
def storage_records(draw: Any) -> StorageRecord:
    return StorageRecord(
        record_id=draw(hostile_text), create_time=draw(hostile_time), storage_system=draw(hostile_text),
        site=draw(hostile_text), group=draw(hostile_text), start_time=draw(hostile_time),
        end_time=draw(hostile_time), resource_capacity_used=draw(hostile_int),
        local_user=draw(st.none() | hostile_text), local_group=draw(st.none() | hostile_text),
        user_identity=draw(st.none() | hostile_text))


@settings(max_examples=300, deadline=None)
@given(storage_records())
def test_any_storage_record_reads_back_or_is_refused_by_name(record):
    result = render(STORAGE_FORMAT, record)
    if isinstance(result, BadRecord):
        return
    (parsed,) = result.records
    assert parsed["RecordId"] == wire_text(record.record_id)
    assert parsed["ResourceCapacityUsed"] == record.resource_capacity_used
    for tag, epoch in (("CreateTime", record.create_time), ("StartTime", record.start_time),
                       ("EndTime", record.end_time)):
        assert parsed[tag] == iso_utc(parse_time(epoch)), tag
    for tag, attr in (("StorageSystem", "storage_system"), ("Site", "site"), ("Group", "group"),
                      ("LocalUser", "local_user")):
        text = wire_text(getattr(record, attr)) if getattr(record, attr) else ""
        assert parsed.get(tag, "") == text, tag
