"""Format detection and conversion (qemu-img), vmcatcher-compatible hooks, HTTPS and file:// lists."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from fedcloud_site.demo.http import server_ssl_context
from fedcloud_site.images.convert import ConvertError, detect_format, prepare
from fedcloud_testing.image_server import ImageServer


def qemu_image(path: Path, fmt: str, size: str = "1M") -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(path), size], check=True, timeout=60)
    return path


def serve_file(world, path: Path, name: str, **fields):
    url = world.server.put(f"/images/{name}", path)
    data = path.read_bytes()
    entry = {"dc:identifier": name, "dc:title": name, "hv:uri": url, "hv:size": str(len(data)),
             "sl:checksum:sha512": hashlib.sha512(data).hexdigest(), "hv:version": "1", "sl:osname": "Ubuntu"}
    entry.update(fields)
    return entry


def make_ova(tmp_path: Path, disks) -> Path:
    ova = tmp_path / "appliance.ova"
    ovf = tmp_path / "appliance.ovf"
    ovf.write_text("<Envelope/>")
    with tarfile.open(ova, "w") as archive:
        archive.add(ovf, arcname="appliance.ovf")
        for disk in disks:
            archive.add(disk, arcname=disk.name)
    return ova


def test_detect_format_reads_magic_bytes_not_the_list(tmp_path):
    assert detect_format(qemu_image(tmp_path / "a.img", "qcow2")) == "qcow2"
    assert detect_format(qemu_image(tmp_path / "b.img", "vmdk")) == "vmdk"
    raw = tmp_path / "c.img"
    raw.write_bytes(b"\0" * 4096)
    assert detect_format(raw) == "raw"
    assert detect_format(make_ova(tmp_path, [tmp_path / "b.img"])) == "ova"


def test_accepted_format_is_not_converted(tmp_path):
    prepared = prepare(qemu_image(tmp_path / "a", "qcow2"), ["qcow2", "raw"], allow_convert=True)
    assert prepared.disk_format == "qcow2" and not prepared.converted and prepared.path == tmp_path / "a"


def test_other_format_is_converted_to_the_preferred_one(tmp_path):
    prepared = prepare(qemu_image(tmp_path / "a", "vmdk"), ["qcow2"], allow_convert=True)
    assert prepared.converted and prepared.disk_format == "qcow2" and detect_format(prepared.path) == "qcow2"
    with pytest.raises(ConvertError, match="conversion is disabled"):
        prepare(qemu_image(tmp_path / "b", "vmdk"), ["qcow2"], allow_convert=False)


def test_ova_with_one_disk_is_unpacked_and_converted(tmp_path):
    ova = make_ova(tmp_path, [qemu_image(tmp_path / "disk1.vmdk", "vmdk")])
    prepared = prepare(ova, ["qcow2"], allow_convert=True)
    assert prepared.disk_format == "qcow2" and len(prepared.extra_files) == 2


def test_ova_with_several_disks_is_refused(tmp_path):
    ova = make_ova(tmp_path, [qemu_image(tmp_path / "d1.vmdk", "vmdk"), qemu_image(tmp_path / "d2.vmdk", "vmdk")])
    with pytest.raises(ConvertError, match="exactly one disk"):
        prepare(ova, ["qcow2"], allow_convert=True)


def test_subscribed_vmdk_is_registered_as_qcow2_when_the_cloud_wants_qcow2(world, tmp_path):
    entry = serve_file(world, qemu_image(tmp_path / "app.vmdk", "vmdk"), "app.vmdk", **{"hv:format": "QCOW2"})
    world.publish(world.image_list([entry]))
    world.write_config(formats=["qcow2"])
    assert world.sync() == 0
    [image] = world.cloud_images()
    assert image.disk_format == "qcow2"
    assert not list((world.tmp / "cache").rglob("*.qcow2"))  # converted copy removed after upload


def test_hooks_get_vmcatcher_environment_for_each_event(world, tmp_path):
    log = tmp_path / "events.jsonl"
    script = tmp_path / "hook.sh"
    script.write_text("#!/bin/sh\npython3 -c 'import json,os; print(json.dumps({k: v for k, v in os.environ.items()"
                      " if k.startswith((\"VMCATCHER_\", \"FEDCLOUD_SITE_\"))}))' >> " + str(log) + "\n")
    script.chmod(0o755)
    entry = world.image("a.raw")
    world.publish(world.image_list([entry]))
    world.write_config(hooks=[{"command": str(script)}])
    assert world.sync() == 0
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["VMCATCHER_EVENT_TYPE"] for e in events] == [
        "ProcessPrefix", "SubscriptionImageNew", "AvailablePrefix", "AvailablePostfix", "ProcessPostfix"]
    available = events[3]
    assert available["VMCATCHER_EVENT_DC_IDENTIFIER"] == entry["dc:identifier"]
    assert available["VMCATCHER_EVENT_AD_MPURI"] == entry["ad:mpuri"]
    assert available["VMCATCHER_EVENT_SL_CHECKSUM_SHA512"] == entry["sl:checksum:sha512"]
    assert available["VMCATCHER_EVENT_VO"] == "fedcloud.egi.eu"
    assert Path(available["VMCATCHER_EVENT_FILENAME"]).exists()
    assert available["FEDCLOUD_SITE_IMAGE_ID"]
    log.write_text("")
    world.publish(world.image_list([], version="20250101000000"))
    world.write_config(hooks=[{"command": str(script), "events": ["ExpirePrefix", "ExpirePostfix"]}])
    assert world.sync() == 0
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["VMCATCHER_EVENT_TYPE"] for e in events] == ["ExpirePrefix", "ExpirePostfix"]
    assert events[1]["VMCATCHER_EVENT_DC_IDENTIFIER"] == entry["dc:identifier"]


def test_slow_or_failing_hook_is_killed_and_does_not_stop_the_sync(world):
    world.publish(world.image_list([world.image("a.raw")]))
    world.write_config(hooks=[{"command": "sleep 30", "timeout": 0.3, "events": ["AvailablePostfix"]},
                              {"command": "exit 3"}])
    assert world.sync() == 0
    assert world.by_state("registered")


def test_list_over_https_with_a_grid_ca_server_certificate(world, tmp_path):
    server_cred = world.pki.ca.server()
    files = server_cred.write(tmp_path / "tls")
    with ImageServer(ssl_context=server_ssl_context(files.cert, files.key)) as https:
        world.server = https
        world.publish(world.image_list([world.image("a.raw")]))
        world.write_config()
        assert world.sync() == 0  # trusted through capath, the IGTF-style directory
        assert world.by_state("registered")


def test_file_url_list_and_images_work_offline(world, tmp_path):
    image = tmp_path / "offline.raw"
    image.write_bytes(b"x" * 5000)
    entry = {"dc:identifier": "offline", "dc:title": "Offline", "hv:uri": image.as_uri(), "hv:size": "5000",
             "sl:checksum:sha512": hashlib.sha512(image.read_bytes()).hexdigest(), "hv:version": "1"}
    signed = tmp_path / "image.list"
    signed.write_bytes(world.sign(world.image_list([entry])))
    world.subscription["url"] = signed.as_uri()
    world.write_config()
    assert world.sync() == 0
    assert world.by_state("registered")
    assert world.sync() == 0
    assert world.list_state()["state"] == "ok"


def test_a_local_list_rewritten_within_the_same_second_is_read_again(world, tmp_path):
    import os

    from fedcloud_site.images.fetch import fetch_list, make_session

    second = 1_800_000_000 * 10**9
    signed = tmp_path / "image.list"
    signed.write_bytes(b"first version")
    os.utime(signed, ns=(second, second + 100))
    with make_session() as session:
        first = fetch_list(session, signed.as_uri(), 1000, 5)
        assert not first.not_modified and first.etag
        assert fetch_list(session, signed.as_uri(), 1000, 5, etag=first.etag,
                          last_modified=first.last_modified).not_modified
        signed.write_bytes(b"second version!")
        os.utime(signed, ns=(second, second + 200))  # the same second: the same Last-Modified
        again = fetch_list(session, signed.as_uri(), 1000, 5, etag=first.etag, last_modified=first.last_modified)
    assert again.last_modified == first.last_modified
    assert not again.not_modified and again.body == b"second version!"
