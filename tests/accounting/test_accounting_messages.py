"""Messages: chunked by record count and byte size, wire formats the APEL server parses."""

from __future__ import annotations

import io
import json

import pytest
from apel_loader import parse_message, read_queue

from fedcloud_site.accounting.messages import (
    ACCELERATOR_FORMAT,
    CLOUD_FORMAT,
    IP_FORMAT,
    Batcher,
    BufferBudget,
    MessageSink,
    PrintSink,
    QueueSink,
)
from fedcloud_site.accounting.records import AcceleratorRecord, BadRecord, CloudRecord, IPRecord
from fedcloud_site.queue import MessageQueue


class ListSink(MessageSink):
    def __init__(self) -> None:
        self.messages: list = []

    def put(self, kind: str, message: str, records: int) -> None:
        self.messages.append((kind, message, records))


def cloud(i: int, name: str = "vm") -> CloudRecord:
    return CloudRecord(vm_uuid=f"vm-{i}", site_name="SITE", fqan="vo", status="started", start_time=1_700_000_000,
                       measurement_time=1_700_000_000 + i, wall_duration=i, machine_name=name)


def test_messages_hold_at_most_max_records():
    sink = ListSink()
    batcher = Batcher(CLOUD_FORMAT, sink, max_records=100, max_bytes=1 << 20)
    for i in range(250):
        batcher.add(cloud(i))
    batcher.flush()
    assert [records for _, _, records in sink.messages] == [100, 100, 50]
    seen = [r["VMUUID"] for _, text, _ in sink.messages for r in parse_message(text.encode()).records]
    assert seen == [f"vm-{i}" for i in range(250)]
    assert batcher.records == 250 and batcher.messages == 3


def test_messages_stay_under_max_bytes():
    sink = ListSink()
    batcher = Batcher(CLOUD_FORMAT, sink, max_records=1000, max_bytes=8192)
    for i in range(100):
        batcher.add(cloud(i, name="n" * 200))
    batcher.flush()
    assert len(sink.messages) > 1
    assert all(len(text) <= 8192 for _, text, _ in sink.messages)
    assert sum(records for _, _, records in sink.messages) == 100


def test_a_record_larger_than_a_message_is_refused():
    batcher = Batcher(CLOUD_FORMAT, ListSink(), max_records=10, max_bytes=300)
    with pytest.raises(BadRecord, match="larger than max_message_bytes"):
        batcher.add(cloud(1, name="n" * 250))


def test_cloud_message_has_header_and_a_separator_after_each_record():
    sink = ListSink()
    batcher = Batcher(CLOUD_FORMAT, sink, max_records=10, max_bytes=1 << 20)
    batcher.add(cloud(1))
    batcher.add(cloud(2))
    batcher.flush()
    text = sink.messages[0][1]
    assert text.startswith("APEL-cloud-message: v0.4\n")
    assert text.endswith("\n%%\n")
    assert text.count("%%\n") == 2


def test_json_messages_are_exactly_what_json_dumps_gives():
    sink = ListSink()
    ips = Batcher(IP_FORMAT, sink, max_records=2, max_bytes=1 << 20)
    for version in (4, 6, 4):
        ips.add(IPRecord(measurement_time=1, site_name="S", cloud_compute_service="C", cloud_type="T",
                         local_user="u", local_group="g", global_user_name="u", fqan="vo", ip_version=version,
                         ip_count=1))
    ips.flush()
    accs = Batcher(ACCELERATOR_FORMAT, sink, max_records=5, max_bytes=1 << 20)
    accs.add(AcceleratorRecord(measurement_month=1, measurement_year=2026, associated_record="vm", fqan="vo",
                               site_name="S", count=1, available_duration=5, type="GPU"))
    accs.flush()
    for _, text, _ in sink.messages:
        assert json.dumps(json.loads(text)) == text
        parse_message(text.encode("ascii"))
    assert [records for _, _, records in sink.messages] == [2, 1, 1]
    assert json.loads(sink.messages[0][1])["Version"] == "v0.2"


def test_queue_sink_messages_are_read_back_by_dirq_as_apel_ssm_does(tmp_path):
    sink = QueueSink(MessageQueue(tmp_path / "q"))
    batcher = Batcher(CLOUD_FORMAT, sink, max_records=3, max_bytes=1 << 20)
    for i in range(7):
        batcher.add(cloud(i))
    batcher.flush()
    messages = read_queue(tmp_path / "q", remove=True)
    assert len(messages) == 3
    assert [r["VMUUID"] for m in messages for r in parse_message(m).records] == [f"vm-{i}" for i in range(7)]
    assert read_queue(tmp_path / "q") == []


def test_print_sink_labels_each_message():
    stream = io.StringIO()
    batcher = Batcher(CLOUD_FORMAT, PrintSink(stream), max_records=1, max_bytes=1 << 20)
    batcher.add(cloud(1))
    batcher.add(cloud(2))
    batcher.flush()
    lines = [line for line in stream.getvalue().splitlines() if line.startswith("# message")]
    assert lines[0].startswith("# message 1: cloud, 1 records") and lines[1].startswith("# message 2: cloud")


def test_a_buffer_budget_bounds_what_many_batchers_hold_and_loses_no_record():
    sink = ListSink()
    budget = BufferBudget(20_000)
    batchers = [Batcher(CLOUD_FORMAT, sink, max_records=100, max_bytes=1 << 20, budget=budget) for _ in range(40)]
    fragment_sizes = set()
    for i in range(4000):  # 40 projects x 100 records: without the budget ~1 MB held before the first message
        record = cloud(i, name=f"project-{i % 40}")
        fragment_sizes.add(len(CLOUD_FORMAT.fragment(record)))
        batchers[i % 40].add(record)
        assert budget.held == sum(b.pending_bytes for b in batchers)
    assert budget.peak <= 20_000 + max(fragment_sizes)
    assert budget.early_messages > 0
    for batcher in batchers:
        batcher.flush()
    assert budget.held == 0
    seen = sorted(int(r["VMUUID"][3:]) for _, text, _ in sink.messages for r in parse_message(text.encode()).records)
    assert seen == list(range(4000))
    for _, text, _ in sink.messages:  # each message still holds the records of one batcher (one project)
        assert len({r["MachineName"] for r in parse_message(text.encode()).records}) == 1


def test_under_its_budget_batchers_send_only_full_messages():
    sink = ListSink()
    budget = BufferBudget(1 << 20)
    batchers = [Batcher(CLOUD_FORMAT, sink, max_records=10, max_bytes=1 << 20, budget=budget) for _ in range(3)]
    for i in range(90):
        batchers[i % 3].add(cloud(i))
    assert [records for _, _, records in sink.messages] == [10] * 6 and budget.early_messages == 0
