"""The static backend: a site described in YAML, writes kept in a state file."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from fedcloud_site.cloud import backend_class, backend_names, open_backend
from fedcloud_site.cloud.base import BadCloudData, ImageSpec, NotFound, UserSpec, VMState
from fedcloud_site.cloud.static import StaticBackend, StaticSettings
from fedcloud_site.config import load_config

REPO = Path(__file__).resolve().parents[2]
DEMO_SITE = REPO / "etc" / "fedcloud-site" / "demo-site.yaml"


@pytest.fixture
def demo(tmp_path) -> StaticBackend:
    return StaticBackend(StaticSettings(site_file=DEMO_SITE, state_file=tmp_path / "state.json"))


def test_builtin_backends_are_discovered_through_entry_points():
    assert {"static", "openstack", "opennebula"} <= set(backend_names())
    assert backend_class("static") is StaticBackend


def test_a_site_can_register_its_own_backend_by_entry_point(tmp_path, monkeypatch):
    plugin_dir = tmp_path / "plugin"
    (plugin_dir / "mysite_backend-1.0.dist-info").mkdir(parents=True)
    (plugin_dir / "mysite_backend.py").write_text(
        "from fedcloud_site.cloud.static import StaticBackend\n"
        "class MySiteBackend(StaticBackend):\n    name = 'mysite'\n")
    (plugin_dir / "mysite_backend-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: mysite-backend\nVersion: 1.0\n")
    (plugin_dir / "mysite_backend-1.0.dist-info" / "entry_points.txt").write_text(
        "[fedcloud_site.cloud_backends]\nmysite = mysite_backend:MySiteBackend\n")
    monkeypatch.syspath_prepend(str(plugin_dir))
    assert "mysite" in backend_names()
    config_file = tmp_path / "c.yaml"
    config_file.write_text(f"site: {{name: X}}\ncloud: {{backend: mysite, mysite: {{site_file: {DEMO_SITE}}}}}\n")
    backend = open_backend(load_config(config_file))
    assert backend.name == "mysite"
    assert len(list(backend.list_projects())) == 3


def test_embedded_default_is_an_empty_static_site(write_config):
    backend = open_backend(load_config(write_config("site: {name: X}\n")))
    assert backend.name == "static"
    assert list(backend.list_projects()) == []
    assert list(backend.list_vms()) == []


def test_flavours_decode_gpu_and_benchmark(demo):
    flavors = {f.id: f for f in demo.list_flavors()}
    assert flavors["m1.large"].benchmark_type == "HEPSPEC06"
    assert flavors["m1.large"].benchmark_value == 10.5
    gpu = flavors["g1.a100"].accelerator
    assert gpu is not None and (gpu.type, gpu.vendor, gpu.model, gpu.count) == ("GPU", "NVIDIA", "A100", 1)
    assert flavors["g1.a100"].public is False


def test_deleted_vms_only_appear_when_active_since_covers_them(demo):
    current = {vm.name for vm in demo.list_vms()}
    assert "short-job" not in current
    since_november = {vm.name for vm in demo.list_vms(active_since=datetime(2026, 11, 1, tzinfo=timezone.utc))}
    assert "short-job" in since_november
    since_december = {vm.name for vm in demo.list_vms(active_since=datetime(2026, 12, 1, tzinfo=timezone.utc))}
    assert "short-job" not in since_december


def test_vm_fields_come_from_vm_and_flavour(demo):
    vm = next(v for v in demo.list_vms() if v.name == "worker-1")
    assert vm.state is VMState.RUNNING
    assert vm.created_at == datetime(2026, 10, 20, 8, tzinfo=timezone.utc)
    assert (vm.vcpus, vm.ram_mb, vm.disk_gb) == (4, 8192, 100)
    assert vm.public_ip_count == 1
    assert vm.benchmark_value == 10.5
    assert vm.user_name == "/DC=org/DC=example/CN=Jane Doe"


def test_project_filter(demo):
    vms = list(demo.list_vms(project_id="7c9e2b4a6d8f4a1c9e3b5d7f9a2c4e6b"))
    assert {vm.name for vm in vms} == {"analysis", "training"}


def test_bad_vm_record_names_the_vm(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("vms:\n  - {id: vm-7, project: p, user: u, created: yesterday}\n")
    backend = StaticBackend(StaticSettings(site_file=site))
    with pytest.raises(BadCloudData, match=r"vms\[0\] \(vm-7\): not an ISO 8601 time: 'yesterday'"):
        list(backend.list_vms())


def test_while_skipping_bad_records_a_bad_vm_goes_to_the_handler_and_afterwards_fails_again(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("vms:\n  - {id: vm-7, project: p, user: u, created: yesterday}\n"
                    "  - {id: vm-9, project: p, user: u, created: 2026-01-01T00:00:00Z}\n")
    backend = StaticBackend(StaticSettings(site_file=site))
    skipped = []
    with backend.skipping_bad_records(skipped.append):
        assert [vm.id for vm in backend.list_vms()] == ["vm-9"]
    assert len(skipped) == 1 and "vm-7" in str(skipped[0])
    assert backend.on_bad_record is None
    with pytest.raises(BadCloudData, match="vm-7"):
        list(backend.list_vms())


def test_unknown_vm_status_is_an_error(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("vms:\n  - {id: vm-8, project: p, user: u, created: 2026-01-01T00:00:00Z, status: zombie}\n")
    with pytest.raises(BadCloudData, match=r"vm-8.*status 'zombie' is not one of"):
        list(StaticBackend(StaticSettings(site_file=site)).list_vms())


def test_image_lifecycle_is_kept_in_the_state_file(demo, tmp_path):
    spec = ImageSpec(name="new", disk_format="qcow2", owner="p1", properties={"appdb_id": "abc"})
    image = demo.create_image(spec, io.BytesIO(b"x" * 1000))
    assert image.size == 1000 and image.status == "active"
    # a fresh backend instance sees it: it is persisted
    again = StaticBackend(StaticSettings(site_file=DEMO_SITE, state_file=tmp_path / "state.json"))
    assert again.get_image(image.id).properties == {"appdb_id": "abc"}
    updated = again.update_image(image.id, {"appdb_id": None, "version": "2"}, name="renamed")
    assert updated.properties == {"version": "2"} and updated.name == "renamed"
    again.set_image_active(image.id, False)
    assert again.get_image(image.id).status == "deactivated"
    again.delete_image(image.id)
    with pytest.raises(NotFound):
        again.get_image(image.id)
    assert json.loads((tmp_path / "state.json").read_text())["deleted_images"] == [image.id]


def test_images_described_in_the_site_file_can_be_updated_and_deleted(demo):
    image_id = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
    assert demo.image_in_use(image_id) is True
    demo.update_image(image_id, {"x": "1"})
    assert demo.get_image(image_id).properties == {"x": "1"}
    demo.delete_image(image_id)
    assert image_id not in {i.id for i in demo.list_images()}


def test_user_lifecycle(demo):
    user = demo.create_user(UserSpec(name="jane", groups=["100"], email="j@x", x509_dns=["/CN=Jane"],
                                     properties={"managed": "yes"}))
    assert user.enabled and user.groups == ("100",)
    with pytest.raises(BadCloudData, match="already exists"):
        demo.create_user(UserSpec(name="jane", groups=[]))
    demo.set_user_enabled(user.id, False)
    assert not next(u for u in demo.list_users() if u.id == user.id).enabled
    demo.update_user(user.id, UserSpec(name="jane", groups=["101"], email="new@x"))
    changed = next(u for u in demo.list_users() if u.id == user.id)
    assert changed.email == "new@x" and changed.groups == ("101",)
    demo.delete_user(user.id)
    assert user.id not in {u.id for u in demo.list_users()}
    assert {g.name for g in demo.list_groups()} == {"fedcloud.egi.eu", "biomed"}


def test_capacity_and_quota(demo):
    assert demo.capacity().total_vcpus == 512
    assert demo.quota("7c9e2b4a6d8f4a1c9e3b5d7f9a2c4e6b").instances == 10
    assert demo.quota("unknown").instances is None


def test_request_counter(demo):
    list(demo.list_projects())
    list(demo.list_vms())
    assert demo.request_count()["projects"] == 1
    assert demo.request_count()["vms"] == 1
