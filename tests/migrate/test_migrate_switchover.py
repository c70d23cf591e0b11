"""The switch-over the issue asks for, end to end, with the real cASO 5.2.2 (from PyPI, own virtualenv).

cASO runs twice against the OpenStack simulator over two months (VMs booted and deleted in between),
writing its APEL messages into its dirq queue and its ``lastrun.<project>`` files; then
``fedcloud-site migrate`` reads cASO's configuration (its own sample, filled) and apel-ssm's shipped
sender.cfg (pointed at the same queue, AMS), and our extractor continues to a later instant.  Then
``fedcloud-site ssm once`` delivers the queue (cASO's messages and ours) to the AMS simulator, and the
APEL-like loader checks what arrived: no gap, no double count, no re-extraction, order-independent.
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Optional, Tuple

import pytest

from fedcloud_site.accounting.daemon import run_extraction
from fedcloud_site.accounting.settings import Settings as AccountingSettings
from fedcloud_site.cli import main
from fedcloud_site.cloud import open_backend
from fedcloud_site.config import load_config
from fedcloud_site.log import get_logger
from fedcloud_site.ssm.settings import Settings as SSMSettings
from fedcloud_site.timeutil import month_start, next_month, to_epoch
from fedcloud_testing.caso import caso_conf, ensure_caso, run_caso
from fedcloud_testing.openstack import ADMIN_PASSWORD, ADMIN_USER, OpenStackSim
from fedcloud_testing.openstack.dataset import add_admin
from fedcloud_testing.openstack.model import CloudData
from fedcloud_testing.peers import PeerUnavailable

pytestmark = pytest.mark.slow
VOS = {"project-a": "vo-a.example.org", "project-b": "vo-b.example.org"}


@pytest.fixture(scope="module")
def apel_loader() -> ModuleType:
    """tests/accounting/apel_loader.py (the APEL-server-like loader), loaded from its file."""
    path = Path(__file__).resolve().parents[1] / "accounting" / "apel_loader.py"
    spec = importlib.util.spec_from_file_location("apel_loader_for_migration", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def caso_exe() -> Path:
    try:
        return ensure_caso()
    except PeerUnavailable as exc:
        pytest.skip(str(exc))


def as_the_server_reads(message: bytes) -> bytes:
    """cASO writes ``EndTime: 0`` into started records; the APEL server reads it as 1970 and, the record not
    being completed, measures it by StartTime + SuspendDuration + WallDuration, so the field changes nothing.
    The test loader refuses any EndTime on a started record (a check on OUR records): drop cASO's zero."""
    text = message.decode("ascii")
    head, _, body = text.partition("\n")
    records = []
    for record in body.split("%%"):
        if "Status: completed" not in record:
            record = record.replace("\nEndTime: 0\n", "\n")
        records.append(record)
    return (head + "\n" + "%%".join(records)).encode("ascii")


class Lifetimes:
    """The truth: when each VM started and ended, to compare what APEL ends up with against."""

    def __init__(self) -> None:
        self.spans: Dict[str, Tuple[datetime, Optional[datetime]]] = {}

    def wall(self, vm: str, at: datetime) -> int:
        start, end = self.spans[vm]
        stop = min(end, at) if end is not None else at
        return max(0, int((stop - start).total_seconds()))


def build_history(data: CloudData, t0: datetime, e1: datetime, e2: datetime, t: datetime,
                  runs: List[Tuple[datetime, object]], truth: Lifetimes, projects: Dict[str, str]) -> None:
    """Boot and delete VMs along the timeline; call each run (cASO) at its instant."""
    flavor = "m1-small-id"
    user = data.find_user(ADMIN_USER)
    assert user is not None
    events: List[Tuple[datetime, str, str, str]] = [
        (t0, "boot", "long-a", "project-a"), (t0, "boot", "long-b", "project-b"),
        (t0 + timedelta(hours=3), "boot", "old-gone", "project-a"),
        (t0 + timedelta(days=1), "boot", "mid-gone", "project-a"),
        (t0 + timedelta(days=10), "delete", "old-gone", ""),
        (e1 + timedelta(days=5), "delete", "mid-gone", ""),
        (e1 + timedelta(days=5, hours=2), "boot", "between", "project-a"),
        (e1 + timedelta(days=7), "boot", "short", "project-b"),
        (e1 + timedelta(days=9), "delete", "short", ""),
        (e2 + timedelta(days=3), "delete", "between", ""),
        (e2 + timedelta(days=10), "boot", "after", "project-b"),
    ]
    ids: Dict[str, str] = {}
    pending = sorted(runs, key=lambda r: r[0])
    for when, action, name, project in sorted(events, key=lambda e: e[0]):
        while pending and pending[0][0] < when:
            moment, run = pending.pop(0)
            data.set_now(moment)
            run()  # type: ignore[operator]
        data.set_now(when)
        if action == "boot":
            server = data.boot_server(projects[project], user.id, flavor, name=name, created=when)
            ids[name] = server.id
            truth.spans[server.id] = (when, None)
        else:
            data.delete_server(ids[name])
            truth.spans[ids[name]] = (truth.spans[ids[name]][0], when)
    for moment, run in pending:
        data.set_now(moment)
        run()  # type: ignore[operator]
    data.set_now(t)


def test_cASO_then_fedcloud_site_gap_free_and_nothing_twice(tmp_path: Path, caso_exe: Path, apel_loader, ams_site):
    t = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    t0 = month_start(t - timedelta(days=100)) + timedelta(days=3, hours=5)
    e1 = t - timedelta(days=62, minutes=17)
    e2 = t - timedelta(days=31, hours=5, minutes=3)
    data = CloudData(now=t0, region="RegionOne")
    add_admin(data)
    data.add_flavor("m1-small-id", "m1.small", 2, 2048, 20)
    projects = {name: data.add_project(name, extra={"egi.VO": vo}).id for name, vo in VOS.items()}
    admin = data.find_user(ADMIN_USER)
    assert admin is not None
    for project_id in projects.values():  # cASO's project-scoped sessions need a role there, as in production
        data.grant(admin.id, "reader", project_id=project_id)
    spool, outgoing = tmp_path / "caso-spool", tmp_path / "outgoing"
    spool.mkdir()
    truth = Lifetimes()
    with OpenStackSim(data) as sim:
        conf = caso_conf(tmp_path / "caso.conf", "TEST-SITE", sim.auth_url, ADMIN_USER, ADMIN_PASSWORD,
                         list(projects.values()), spool, outgoing, extra={("DEFAULT", "vo_property"): "egi.VO"})
        caso_runs = []

        def caso_at(moment: datetime):
            def run() -> None:
                result = run_caso(caso_exe, conf, moment, tmp_path / "caso-work")
                assert result.returncode == 0, result.stderr[-3000:]
                caso_runs.append(moment)
            return run

        build_history(data, t0, e1, e2, t, [(e1, caso_at(e1)), (e2, caso_at(e2))], truth, projects)
        assert caso_runs == [e1, e2]
        caso_messages = apel_loader.read_queue(outgoing)
        assert caso_messages, "cASO wrote no message"
        for project_id in projects.values():
            assert (spool / f"lastrun.{project_id}").exists()

        # -- the switch-over: stop cASO (it is not run again), migrate, run ours --------------------------
        sender = ams_site.sender_cfg(outgoing)
        etc = tmp_path / "etc"
        (etc / "conf.d").mkdir(parents=True)
        (etc / "fedcloud-site.yaml").write_text(
            f"accounting: {{state_dir: {tmp_path / 'state'}}}\nssm: {{state_dir: {tmp_path / 'ssm-state'}}}\n"
            f"cloud: {{openstack: {{retry_delay: 0.01}}}}\n", encoding="utf-8")
        main_config = ["-c", str(etc / "fedcloud-site.yaml")]
        assert main([*main_config, "migrate", "--from", f"caso={conf}", "--from", f"ssm={sender}"]) == 0
        config = load_config(etc / "fedcloud-site.yaml")
        assert config.section(AccountingSettings).queue_dir == outgoing
        assert config.section(SSMSettings).queues[0].queue_dir == outgoing

        last = {p: datetime.fromisoformat((spool / f"lastrun.{p}").read_text()) - timedelta(seconds=1)
                for p in projects.values()}
        assert all(moment.replace(microsecond=0) == e2 for moment in last.values())
        before = len(caso_messages)
        summary = run_extraction(config, open_backend(config), t, get_logger("accounting"))
        assert summary["projects_failed"] == 0
        all_messages = apel_loader.read_queue(outgoing)
        ours = all_messages[before:] if all_messages[:before] == caso_messages else None
        assert ours is not None, "our messages did not come after cASO's in the queue"

        # a second run at the same instant extracts nothing: the state reached T
        run_extraction(config, open_backend(config), t, get_logger("accounting"))
        assert apel_loader.read_queue(outgoing) == all_messages

        # -- delivery: the ssm daemon drains the adopted queue once ---------------------------------
        assert main([*main_config, "ssm", "once"]) == 0
        delivered = sorted(ams_site.delivered())
        assert len(delivered) == len(all_messages)
        assert apel_loader.read_queue(outgoing) == []
        assert main([*main_config, "ssm", "once"]) == 0
        assert len(ams_site.delivered()) == len(all_messages)  # delivered once
        assert delivered == sorted(all_messages)

    # -- what the APEL server makes of it ------------------------------------------------------------------
    db = apel_loader.CloudDB()
    for message in delivered:
        db.load_message(as_the_server_reads(message))
    reverse = apel_loader.CloudDB()
    for message in reversed(all_messages):
        reverse.load_message(as_the_server_reads(message))
    assert reverse.rows == db.rows, "the same VM-month and measurement carried different values"

    our_records = [r for m in ours for r in apel_loader.parse_message(m).records]  # ours: no leniency
    assert our_records
    for record in our_records:  # nothing re-extracted: every measurement is after cASO's last extract_to
        measured = record["EndTime"] if record["Status"] == "completed" else record["RecordCreateTime"]
        assert measured > to_epoch(e2), record
    caso_uuids = {r["VMUUID"] for m in caso_messages
                  for r in apel_loader.parse_message(as_the_server_reads(m)).records}
    for vm, (start, end) in truth.spans.items():
        if end is not None and end <= e2:
            assert vm not in {r["VMUUID"] for r in our_records}, f"{vm} ended before the switch-over, sent again"
        alive_during_caso = start <= e2 and (end is None or end >= t0)
        if alive_during_caso:
            assert vm in caso_uuids, f"cASO never reported {vm}"
        latest = db.latest(vm)
        assert latest is not None, f"no record at all for {vm}"
        assert latest["WallDuration"] == truth.wall(vm, t), vm  # cumulative: nothing lost at the end
        assert (latest["Status"] == "completed") == (end is not None and end <= t), vm
        usage = db.monthly_usage()
        assert sum(v for k, v in usage.items() if k[0] == vm) == truth.wall(vm, t), f"gap or double count: {vm}"
        # every month after the switch-over's month is attributed exactly (our month boundaries)
        month = next_month(e2)
        while month < month_start(t):
            end_of_month = next_month(month)
            expected = truth.wall(vm, end_of_month) - truth.wall(vm, month)
            if expected:
                assert usage.get((vm, month.year, month.month)) == expected, (vm, month)
            month = end_of_month
