"""Record types: sanitising for the wire, mandatory fields, keys the APEL server knows."""

from __future__ import annotations

import json

import pytest
from apel_loader import CLOUD_KEYS, parse_cloud_record, parse_message

from fedcloud_site.accounting.messages import STORAGE_FORMAT
from fedcloud_site.accounting.records import (
    AcceleratorRecord,
    BadRecord,
    CloudRecord,
    IPRecord,
    StorageRecord,
    format_number,
    wire_text,
)

BASE = dict(vm_uuid="vm-1", site_name="SITE", fqan="vo.example.org", status="started", start_time=1_700_000_000,
            measurement_time=1_700_086_400, wall_duration=86400)


@pytest.mark.parametrize("raw, expected", [
    ("Jörg's Ångström VM", "Jorg's Angstrom VM"),
    ("two\nlines\r\nhere", "two lines here"),
    ("tab\there", "tab here"),
    ("50%% off %%%% now", "50% off % now"),
    ("Ж日本", ""),
    ("  padded  ", "padded"),
    ("\x00null\x7f", "null"),
])
def test_wire_text_is_ascii_single_line_without_record_separator(raw, expected):
    assert wire_text(raw) == expected


def test_wire_text_cuts_values_to_the_database_column_width():
    assert wire_text("x" * 300) == "x" * 255
    assert wire_text("y" * 80, 50) == "y" * 50


@pytest.mark.parametrize("value, text", [(2.0, "2"), (0.5, "0.5"), (10.5, "10.5"), (1.23456, "1.235"), (8, "8")])
def test_numbers_are_rendered_without_needless_decimals(value, text):
    assert format_number(value) == text


def test_cloud_record_renders_sorted_known_keys_and_parses_like_the_server():
    record = CloudRecord(**BASE, machine_name="Jörg\n%%", cpu_count=2.0, memory=2048, disk=20, benchmark=10.5,
                         benchmark_type="HEPSPEC06", image_id="img", cloud_type="fedcloud-site")
    text = record.render()
    keys = [line.split(":", 1)[0] for line in text.splitlines()]
    assert keys == sorted(keys)
    assert set(keys) <= CLOUD_KEYS
    assert "MachineName: Jorg %\n" in text
    parsed = parse_cloud_record(text)
    assert parsed["CpuCount"] == 2.0 and parsed["WallDuration"] == 86400 and parsed["RecordCreateTime"] == 1_700_086_400


def test_optional_fields_without_value_are_left_out():
    text = CloudRecord(**BASE, machine_name="None", global_user_name="", image_id=None).render()
    assert "MachineName" not in text and "GlobalUserName" not in text and "ImageId" not in text
    assert "EndTime" not in text


@pytest.mark.parametrize("change, problem", [
    ({"fqan": ""}, "FQAN"),
    ({"fqan": "null"}, "FQAN"),
    ({"site_name": "\n"}, "SiteName"),
    ({"status": "running"}, "Status"),
    ({"status": "completed"}, "EndTime"),
    ({"end_time": 1_700_090_000}, "EndTime"),
    ({"status": "completed", "end_time": 1_600_000_000}, "before StartTime"),
    ({"wall_duration": -5}, "negative"),
])
def test_records_the_server_would_reject_or_misfile_raise_bad_record_naming_the_vm(change, problem):
    record = CloudRecord(**dict(BASE, **change))
    with pytest.raises(BadRecord, match=problem) as info:
        record.render()
    assert "vm-1" in str(info.value)


def test_benchmark_type_is_cut_to_its_column_width():
    text = CloudRecord(**BASE, benchmark_type="B" * 60, benchmark=1.0).render()
    assert "BenchmarkType: " + "B" * 50 + "\n" in text


def test_ip_record_json_has_the_schema_keys_only():
    record = IPRecord(measurement_time=1, site_name="S", cloud_compute_service="C", cloud_type="T", local_user="u",
                      local_group="g", global_user_name="/DC=x/CN=Ü", fqan="vo", ip_version=6, ip_count=3)
    data = record.as_json()
    assert set(data) == {"MeasurementTime", "SiteName", "CloudComputeService", "CloudType", "LocalUser",
                         "LocalGroup", "GlobalUserName", "FQAN", "IPVersion", "IPCount"}
    assert data["GlobalUserName"] == "/DC=x/CN=U"
    with pytest.raises(BadRecord):
        IPRecord(**dict(vars(record), ip_version=5)).as_json()


@pytest.mark.parametrize("kind, sent", [("GPU", "GPU"), ("gpu", "GPU"), ("fpga", "FPGA"), ("TPU", "Other")])
def test_accelerator_types_are_mapped_to_the_schema_enumeration(kind, sent):
    record = AcceleratorRecord(measurement_month=11, measurement_year=2026, associated_record="vm-1", fqan="vo",
                               site_name="S", count=2, available_duration=100, type=kind, model="NVIDIA A100")
    data = record.as_json()
    assert data["Type"] == sent
    assert "CloudType" not in data and "CloudComputeService" not in data  # unknown to the APEL record
    message = parse_message(json.dumps({"Type": "APEL-accelerator-message", "Version": "0.1",
                                        "UsageRecords": [data]}).encode())
    assert message.records[0]["Count"] == 2


def test_storage_record_is_escaped_star_xml():
    record = StorageRecord(record_id="S/vol-1/2026-11", create_time=1_795_168_800, storage_system="svc <&>",
                           site="S", group="vo&co", start_time=1_793_491_200, end_time=1_795_168_800,
                           resource_capacity_used=10 << 30, local_user="u", local_group="g")
    message = STORAGE_FORMAT.assemble([record.as_xml()])
    parsed = parse_message(message.encode("ascii"))
    assert parsed.records[0]["StorageSystem"] == "svc <&>"
    assert parsed.records[0]["Group"] == "vo&co"
    assert parsed.records[0]["ResourceCapacityUsed"] == 10 << 30
    assert parsed.records[0]["StartTime"] == "2026-11-01T00:00:00Z"
