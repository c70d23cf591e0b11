"""The OpenNebula XML-RPC simulator, spoken to through pyone (and raw XML-RPC where the wire matters)."""

from __future__ import annotations

import socket
import time
import xmlrpc.client
from pathlib import Path
from typing import Iterator

import pyone
import pytest
import requests

from fedcloud_testing.opennebula import OneFault, OpenNebulaSimulator, SimCloud, from_static, generate
from fedcloud_testing.opennebula.render import vm_pool
from fedcloud_testing.opennebula.server import (
    ACTION,
    AUTHENTICATION,
    INTERNAL,
    NO_EXISTS,
    XML_RPC_API,
)
from fedcloud_testing.opennebula.templates import TemplateSyntaxError, parse, render

REPO = Path(__file__).resolve().parents[2]
DEMO_SITE = REPO / "etc" / "fedcloud-site" / "demo-site.yaml"
NOW = 1_800_000_000
DONE = int(pyone.VM_STATE.DONE)


@pytest.fixture(scope="module")
def server() -> Iterator[OpenNebulaSimulator]:
    with OpenNebulaSimulator(generate(n_vms=500, seed=9, now=NOW)) as sim:
        yield sim


@pytest.fixture
def one(server):
    return pyone.OneServer(server.url, session="oneadmin:opennebula")


@pytest.fixture
def fresh() -> Iterator[OpenNebulaSimulator]:
    with OpenNebulaSimulator(generate(n_vms=20, seed=3, now=NOW)) as sim:
        yield sim


def raw_call(sim: OpenNebulaSimulator, method: str, *params):
    return getattr(xmlrpc.client.ServerProxy(sim.url), method)(*params)


def ids(pool) -> list:
    return [vm.ID for vm in pool.VM]


# -- wire format and authentication -----------------------------------------------------------------------
def test_success_answers_are_true_value_zero(server):
    assert raw_call(server, "one.system.version", "oneadmin:opennebula") == [True, "6.10.0", 0]


def test_a_bad_session_gets_the_authentication_failure_array(server):
    answer = raw_call(server, "one.vmpool.info", "oneadmin:wrong", -2, -1, -1, -1)
    assert answer == [False, "[one.vmpool.info] User couldn't be authenticated, aborting call.", AUTHENTICATION,
                      -1, -1]
    with pytest.raises(pyone.OneAuthenticationException):
        pyone.OneServer(server.url, session="nobody:x").userpool.info()


def test_unknown_methods_are_xml_rpc_faults(server):
    with pytest.raises(xmlrpc.client.Fault, match="not defined"):
        raw_call(server, "one.nothing.here", "oneadmin:opennebula")


def test_missing_objects_answer_no_exists(one):
    with pytest.raises(pyone.OneNoExistsException, match=r"\[one.vm.info\] Error getting virtual machine \[4242\]"):
        one.vm.info(4242)
    with pytest.raises(pyone.OneNoExistsException, match="image"):
        one.image.info(4242)


def test_only_loopback_addresses_are_served():
    with pytest.raises(ValueError, match="loopback"):
        OpenNebulaSimulator(SimCloud(), host="0.0.0.0")


def test_the_simulator_listens_on_ipv6_loopback_too():
    try:
        socket.socket(socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6")
    with OpenNebulaSimulator(generate(n_vms=2, now=NOW), host="::1") as sim:
        assert pyone.OneServer(sim.url, session="oneadmin:opennebula").system.version() == "6.10.0"


# -- every answer parses with pyone's bindings --------------------------------------------------------------
def test_every_info_answer_parses_into_pyone_objects(one, server):
    assert one.system.config().API_LIST_ORDER == ["ASC"]
    vm = one.vm.info(0)
    assert vm.ID == 0 and isinstance(vm.TEMPLATE, dict) and vm.HISTORY_RECORDS is not None
    assert len(one.vmpool.info(-2, -1, -1, -2).VM) == 500
    assert len(one.vmpool.infoextended(-2, -1, -1, -2).VM) == 500
    assert one.vmpool.accounting(-2, -1, -1).HISTORY[0].RSTIME > 0
    images = one.imagepool.info(-2, -1, -1).IMAGE
    assert images[0].TEMPLATE["VMCATCHER_EVENT_AD_MPURI"].startswith("https://")
    assert one.image.info(images[0].ID).NAME == images[0].NAME
    assert {d.NAME for d in one.datastorepool.info().DATASTORE} == {"system", "default", "files"}
    templates = one.templatepool.info(-2, -1, -1).VMTEMPLATE
    assert one.template.info(templates[0].ID).TEMPLATE["MEMORY"] == templates[0].TEMPLATE["MEMORY"]
    users = one.userpool.info().USER
    assert one.user.info(users[1].ID).NAME == users[1].NAME and one.user.info(-1).NAME == "oneadmin"
    groups = one.grouppool.info().GROUP
    assert one.group.info(groups[2].ID).NAME == groups[2].NAME
    hosts = one.hostpool.info().HOST
    assert hosts and hosts[0].HOST_SHARE.TOTAL_CPU >= 6400
    assert one.clusterpool.info().CLUSTER[0].NAME == "default"


def test_pool_bodies_are_short_extended_bodies_carry_the_last_history_record_and_vm_info_all(one, server):
    vm_id = next(v.id for v in server.cloud.vms.values() if len(v.history) > 1)
    short = next(v for v in one.vmpool.info(-2, vm_id, vm_id, -2).VM)
    node = short.HISTORY_RECORDS.HISTORY[0].gds_elementtree_node_
    assert node.find("RSTIME") is None and short.TEMPLATE.keys() <= {"CPU", "MEMORY", "VCPU", "DISK", "NIC"}
    extended = next(v for v in one.vmpool.infoextended(-2, vm_id, vm_id, -2).VM)
    records = extended.HISTORY_RECORDS.HISTORY
    assert len(records) == 1 and records[0].SEQ == len(server.cloud.vms[vm_id].history) - 1
    assert records[0].gds_elementtree_node_.findtext("RSTIME") != "0"
    full = one.vm.info(vm_id)
    assert [h.SEQ for h in full.HISTORY_RECORDS.HISTORY] == list(range(len(server.cloud.vms[vm_id].history)))
    assert full.MONITORING.NETRX is not None


# -- pool filters and paging ----------------------------------------------------------------------------------
def test_state_filter_minus_two_is_everything_minus_one_everything_but_done(one, server):
    everything = ids(one.vmpool.infoextended(-2, -1, -1, -2))
    not_done = ids(one.vmpool.infoextended(-2, -1, -1, -1))
    done = ids(one.vmpool.infoextended(-2, -1, -1, DONE))
    assert everything == sorted(server.cloud.vms)
    assert sorted(not_done + done) == everything and done
    assert all(server.cloud.vms[i].state == DONE for i in done)
    with pytest.raises(pyone.OneApiException, match="Incorrect state filter"):
        one.vmpool.infoextended(-2, -1, -1, 99)


def test_start_and_end_ids_select_an_id_range(one):
    assert ids(one.vmpool.infoextended(-2, 10, 19, -2)) == list(range(10, 20))
    assert ids(one.vmpool.infoextended(-2, 495, -1, -2)) == list(range(495, 500))


def test_a_negative_end_id_makes_start_an_offset_and_the_end_a_page_size(one, server):
    not_done = ids(one.vmpool.infoextended(-2, -1, -1, -1))
    assert ids(one.vmpool.infoextended(-2, 0, -25, -1)) == not_done[:25]
    assert ids(one.vmpool.infoextended(-2, 25, -25, -1)) == not_done[25:50]  # an offset, not an id
    assert ids(one.vmpool.infoextended(-2, len(not_done), -25, -1)) == []


def test_filter_flags_select_owner_and_group(one, server):
    uid = 5
    mine = ids(one.vmpool.info(uid, -1, -1, -2))
    assert mine and all(server.cloud.vms[i].uid == uid for i in mine)
    assert ids(one.vmpool.info(-3, -1, -1, -2)) == []  # oneadmin owns none
    with pytest.raises(pyone.OneApiException, match="Incorrect filter_flag"):
        one.vmpool.info(-5, -1, -1, -2)


def test_a_non_admin_user_sees_only_what_is_shared_with_it(server):
    server.cloud.users[30] = type(server.cloud.users[0])(id=30, name="plain", password="pw", gid=100, groups=[100])
    try:
        plain = pyone.OneServer(server.url, session="plain:pw")
        assert ids(plain.vmpool.info(-2, -1, -1, -2)) == []  # VMs are owner-only
        assert {i.GID for i in plain.imagepool.info(-2, -1, -1).IMAGE} == {100}  # group-shared images
        with pytest.raises(pyone.OneAuthorizationException):
            plain.user.allocate("x", "y", "core", [])
    finally:
        del server.cloud.users[30]


def test_accounting_selects_history_records_overlapping_the_window(one, server):
    start, end = NOW - 40 * 86400, NOW - 20 * 86400
    records = one.vmpool.accounting(-2, start, end).HISTORY
    expected = [(vm.id, h.seq) for vm_id in sorted(server.cloud.vms) for vm in [server.cloud.vms[vm_id]]
                for h in vm.history if (h.etime > start or h.etime == 0) and h.stime < end]
    assert [(h.OID, h.SEQ) for h in records] == expected and expected
    assert records[0].VM is not None


# -- writes --------------------------------------------------------------------------------------------------
def test_templates_in_text_and_xml_form_are_parsed_like_oned():
    text = ('NAME = "a \\"quoted\\" name"\n# comment\nDISK = [ IMAGE_ID = "3", size = 10 ]\n'
            'DISK=[IMAGE_ID="4"]\nempty=\nNEXT=x')
    assert parse(text) == {"NAME": 'a "quoted" name', "DISK": [{"IMAGE_ID": "3", "SIZE": "10"}, {"IMAGE_ID": "4"}],
                           "EMPTY": "", "NEXT": "x"}
    assert parse("<TEMPLATE><A><![CDATA[x]]></A><V><B>1</B></V></TEMPLATE>") == {"A": "x", "V": {"B": "1"}}
    with pytest.raises(TemplateSyntaxError):
        parse('NAME = "unterminated')
    with pytest.raises(TemplateSyntaxError):
        parse("BAD:NAME = 1")
    assert render("T", {"A": "]]>"}) == "<T><A><![CDATA[]]]]><![CDATA[>]]></A></T>"


def test_image_allocate_reads_the_staged_file_and_turns_ready(fresh, tmp_path):
    one = pyone.OneServer(fresh.url, session="oneadmin:opennebula")
    path = tmp_path / "disk.qcow2"
    path.write_bytes(b"x" * (3 << 20))
    fresh.image_copy_reads = 1  # the copy lasts one poll (a wall-clock copy time races a loaded machine)
    image_id = one.image.allocate(f'NAME="new"\nPATH="{path}"\nDRIVER="qcow2"', 1)
    assert one.image.info(image_id).STATE == int(pyone.IMAGE_STATES.LOCKED)
    image = one.image.info(image_id)
    assert image.STATE == int(pyone.IMAGE_STATES.READY) and image.SIZE == 3 and image.TEMPLATE["DRIVER"] == "qcow2"
    with pytest.raises(pyone.OneException, match="NAME is already taken"):
        one.image.allocate(f'NAME="new"\nPATH="{path}"', 1)
    with pytest.raises(pyone.OneException, match="SYSTEM or FILE datastore"):
        one.image.allocate(f'NAME="other"\nPATH="{path}"', 0)
    one.image.chmod(image_id, -1, -1, -1, 1, -1, -1, 1, -1, -1)
    one.image.chown(image_id, -1, 101)
    one.image.rename(image_id, "renamed")
    one.image.update(image_id, 'EXTRA="1"', 1)
    image = one.image.info(image_id)
    assert (image.PERMISSIONS.GROUP_U, image.PERMISSIONS.OTHER_U, image.GID, image.NAME) == (1, 1, 101, "renamed")
    assert image.TEMPLATE["EXTRA"] == "1" and image.TEMPLATE["DRIVER"] == "qcow2"
    one.image.update(image_id, 'ONLY="this"', 0)
    assert one.image.info(image_id).TEMPLATE == {"ONLY": "this"}
    one.image.enable(image_id, False)
    assert one.image.info(image_id).STATE == int(pyone.IMAGE_STATES.DISABLED)
    one.image.delete(image_id)
    with pytest.raises(pyone.OneNoExistsException):
        one.image.info(image_id)


def test_user_and_group_writes(fresh):
    one = pyone.OneServer(fresh.url, session="oneadmin:opennebula")
    gid = one.group.allocate("newvo")
    uid = one.user.allocate("alice", "/CN=alice", "x509", [gid])
    one.user.update(uid, 'EMAIL="a@x"', 1)
    one.user.addgroup(uid, 100)
    one.user.chgrp(uid, 100)
    one.user.delgroup(uid, gid)
    one.user.chauth(uid, "x509", "/CN=alice|/CN=alice2")
    one.user.enable(uid, False)
    user = one.user.info(uid)
    assert (user.GID, list(user.GROUPS.ID), user.ENABLED, user.PASSWORD) == (100, [100], 0, "/CN=alice|/CN=alice2")
    assert user.TEMPLATE["EMAIL"] == "a@x" and user.AUTH_DRIVER == "x509"
    with pytest.raises(pyone.OneActionException, match="primary group"):
        one.user.delgroup(uid, 100)
    with pytest.raises(pyone.OneException, match="already taken"):
        one.group.allocate("newvo")
    one.user.delete(uid)
    with pytest.raises(pyone.OneNoExistsException):
        one.user.info(uid)
    tid = one.template.allocate('NAME="t"\nCPU="1"\nMEMORY="512"')
    one.template.update(tid, 'VCPU="2"', 1)
    assert one.template.info(tid).TEMPLATE == {"CPU": "1", "MEMORY": "512", "VCPU": "2"}
    one.template.delete(tid)
    with pytest.raises(pyone.OneNoExistsException):
        one.template.info(tid)


def test_template_ownership_permissions_rename_and_delete_like_oned(fresh, tmp_path):
    one = pyone.OneServer(fresh.url, session="oneadmin:opennebula")
    path = tmp_path / "disk.raw"
    path.write_bytes(b"x" * 1024)
    image_id = one.image.allocate(f'NAME="disk"\nPATH="{path}"', 1)
    tid = one.template.allocate(f'NAME="vm"\nMEMORY="512"\nDISK=[IMAGE_ID="{image_id}"]')
    one.template.chown(tid, -1, 101)
    one.template.chmod(tid, -1, -1, -1, 1, -1, -1, 0, -1, -1, False)  # 6.x: a trailing 'recursive' flag
    one.template.chmod(tid, -1, -1, -1, -1, -1, -1, -1, -1, -1)  # ... which older clients leave out
    one.template.rename(tid, "vm2")
    template = one.template.info(tid)
    assert (template.GID, template.PERMISSIONS.GROUP_U, template.PERMISSIONS.OTHER_U, template.NAME) == \
        (101, 1, 0, "vm2")
    assert template.TEMPLATE["DISK"] == {"IMAGE_ID": str(image_id)}
    with pytest.raises(pyone.OneNoExistsException):
        one.template.chown(tid, -1, 999)
    with pytest.raises(pyone.OneException, match="NAME is already taken by TEMPLATE"):
        one.template.allocate('NAME="vm2"\nMEMORY="1"')
    one.template.delete(tid, False)
    assert one.image.info(image_id).NAME == "disk"  # not recursive: the image stays
    tid = one.template.allocate(f'NAME="again"\nDISK=[IMAGE_ID="{image_id}"]')
    one.template.delete(tid, True)
    with pytest.raises(pyone.OneNoExistsException):
        one.image.info(image_id)


def test_ids_of_deleted_objects_are_not_given_again(fresh):
    one = pyone.OneServer(fresh.url, session="oneadmin:opennebula")
    first = one.template.allocate('NAME="a"')
    one.template.delete(first)
    assert one.template.allocate('NAME="a"') == first + 1


@pytest.mark.parametrize("name, problem", [("a/b", "char '/' is not allowed"), ("x:y", "char ':' is not allowed"),
                                           ("n" * 129, "max length is 128")])
def test_names_oned_refuses_are_refused_for_images_and_templates(fresh, tmp_path, name, problem):
    one = pyone.OneServer(fresh.url, session="oneadmin:opennebula")
    path = tmp_path / "disk.raw"
    path.write_bytes(b"x")
    with pytest.raises(pyone.OneException, match=problem):
        one.image.allocate(f'NAME="{name}"\nPATH="{path}"', 1)
    with pytest.raises(pyone.OneException, match=problem):
        one.template.allocate(f'NAME="{name}"')
    image_id = one.image.allocate(f'NAME="fine"\nPATH="{path}"', 1)
    with pytest.raises(pyone.OneException, match=problem):
        one.image.rename(image_id, name)


# -- data sets ------------------------------------------------------------------------------------------------
def test_generated_sites_are_deterministic_and_scale():
    a, b = generate(n_vms=300, seed=4, now=NOW), generate(n_vms=300, seed=4, now=NOW)
    assert vm_pool(a.vms.values(), True) == vm_pool(b.vms.values(), True)
    assert vm_pool(a.vms.values(), True) != vm_pool(generate(n_vms=300, seed=5, now=NOW).vms.values(), True)
    big = generate(n_vms=20_000, seed=1, now=NOW)
    assert len(big.vms) == 20_000
    states = {vm.state for vm in big.vms.values()}
    assert {int(pyone.VM_STATE[s]) for s in ("ACTIVE", "DONE", "POWEROFF", "UNDEPLOYED", "CLONING")} <= states
    for vm in list(big.vms.values())[:2000]:
        assert vm.stime <= NOW and all(h.rstime <= (h.retime or NOW) <= NOW for h in vm.history)
        if vm.state == DONE and vm.history:
            assert vm.etime == vm.history[-1].etime


def test_a_static_site_description_becomes_the_same_site():
    cloud = from_static(DEMO_SITE, now=NOW)
    group_ids = cloud.id_map["group"]
    fedcloud = cloud.groups[group_ids["3a1f0c2e9d7b4e7f8a6b5c4d3e2f1a0b"]]
    assert fedcloud.name == "fedcloud" and fedcloud.template == {"EGI_VO": "fedcloud.egi.eu"}
    vm = cloud.vms[cloud.id_map["vm"]["2a4c6e8a-0b2d-4f6b-8d0f-2b4d6f8b0d2f"]]
    assert vm.state == DONE and vm.etime - vm.stime == 2 * 86400 and len(vm.history) == 1
    large = cloud.templates[cloud.id_map["template"]["m1.large"]]
    assert large.template["BENCHMARK_TYPE"] == "HEPSPEC06"
    gpu = cloud.templates[cloud.id_map["template"]["g1.a100"]]
    assert gpu.template["ACCELERATOR_MODEL"] == "A100" and gpu.permissions[6] == 0
    jane = cloud.users[cloud.id_map["user"]["u-jane"]]
    assert jane.auth_driver == "x509" and jane.template["X509_DN"] == "/DC=org/DC=example/CN=Jane Doe"


# -- clock ------------------------------------------------------------------------------------------------------
def test_the_clock_can_be_frozen_moved_and_released():
    cloud = SimCloud(now=100)
    assert cloud.now() == 100 and cloud.advance(50) == 150
    cloud.set_now(None)
    assert abs(cloud.now() - time.time()) < 2


# -- faults and counters -------------------------------------------------------------------------------------
def test_calls_are_counted_per_method(fresh):
    one = pyone.OneServer(fresh.url, session="oneadmin:opennebula")
    fresh.reset_counts()
    one.vmpool.infoextended(-2, 0, -5, -1)
    one.vmpool.infoextended(-2, 5, -5, -1)
    one.userpool.info()
    assert fresh.calls == {"one.vmpool.infoextended": 2, "one.userpool.info": 1}
    assert fresh.total_calls == 3


def test_an_injected_error_answers_like_oned_then_clears(fresh):
    one = pyone.OneServer(fresh.url, session="oneadmin:opennebula")
    fresh.inject(OneFault("error", method="one.userpool.info", code=INTERNAL, count=2))
    for _ in range(2):
        with pytest.raises(pyone.OneInternalException, match="Internal error"):
            one.userpool.info()
    assert one.userpool.info().USER
    fresh.inject(OneFault("error", code=NO_EXISTS, message="gone"))
    with pytest.raises(pyone.OneNoExistsException):
        one.grouppool.info()
    fresh.inject(OneFault("error", code=ACTION))
    with pytest.raises(pyone.OneActionException):
        one.hostpool.info()
    fresh.inject(OneFault("error", code=XML_RPC_API))
    with pytest.raises(pyone.OneApiException):
        one.hostpool.info()


def test_http_errors_drops_truncation_and_delays(fresh):
    one = pyone.OneServer(fresh.url, session="oneadmin:opennebula")
    fresh.inject(OneFault("http", status=502))
    with pytest.raises(xmlrpc.client.ProtocolError) as info:
        one.hostpool.info()
    assert info.value.errcode == 502
    fresh.inject(OneFault("drop"))
    with pytest.raises(requests.ConnectionError):
        one.hostpool.info()
    fresh.inject(OneFault("truncate", method="one.hostpool.info"))
    with pytest.raises((requests.RequestException, xmlrpc.client.ResponseError, Exception)):
        one.hostpool.info()
    fresh.inject(OneFault("delay", delay=0.3))
    started = time.monotonic()
    assert one.hostpool.info().HOST
    assert time.monotonic() - started >= 0.3
    assert fresh.faults == []


def test_lifecycle_operations_write_history_records_like_oned(fresh):
    cloud = fresh.cloud
    vm_id = next(i for i, v in cloud.vms.items() if v.state == int(pyone.VM_STATE.ACTIVE) and v.history)
    before = len(cloud.vms[vm_id].history)
    cloud.advance(100)
    cloud.poweroff(vm_id)
    one = pyone.OneServer(fresh.url, session="oneadmin:opennebula")
    vm = one.vm.info(vm_id)
    last = vm.HISTORY_RECORDS.HISTORY[-1]
    assert vm.STATE == int(pyone.VM_STATE.POWEROFF)
    assert last.RETIME == cloud.now() and last.ACTION == int(pyone.HISTORY_ACTION["poweroff"])
    cloud.advance(100)
    cloud.resume(vm_id)
    cloud.advance(100)
    cloud.terminate(vm_id)
    vm = one.vm.info(vm_id)
    assert len(vm.HISTORY_RECORDS.HISTORY) == before + 1
    assert vm.STATE == DONE and vm.ETIME == cloud.now()
    assert vm.HISTORY_RECORDS.HISTORY[-1].ACTION == int(pyone.HISTORY_ACTION["terminate"])
