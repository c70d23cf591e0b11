"""Benchmark: diff and plan 10,000 Perun users against 10,000 existing cloud users.

The existing users are what an earlier sync made; the new input changes a realistic share of them
(e-mail or key changes, DN renewals, members leaving, newcomers, suspensions).  Prints the wall time
(best and median of 5 plans) and the Python memory peak (tracemalloc, separate pass) of parsing the
propagation file and of planning (goal: plan < 1 s), and the plan's counts.

Usage: python benchmarks/perun_plan.py [N_USERS]
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
import tracemalloc
from datetime import timedelta
from typing import Any, Dict, List

from fedcloud_site.cloud.base import Quota, User
from fedcloud_site.perun.formats import parse_snapshot
from fedcloud_site.perun.plan import MANAGED_VALUE, PERUN_ID_PROPERTY, Planner, VOTarget
from fedcloud_site.timeutil import utcnow

VOS = ("vo.alpha.eu", "vo.beta.eu", "vo.gamma.eu")
MARK = "FEDCLOUD_SITE_MANAGED"


def _record(i: int, vo: str, status: str = "VALID", email_suffix: str = "", dn_ca: str = "example") -> Dict[str, Any]:
    return {"id": f"user{i:06d}@egi.eu", "display_name": f"User {i}", "email": f"user{i}{email_suffix}@example.org",
            "x509_dns": [f"/DC=org/DC={dn_ca}/CN=User {i}"], "ssh_keys": [f"ssh-ed25519 AAAAC3Nza{i:012d} user{i}"],
            "memberships": [{"vo": vo, "status": status, "roles": ["member"]}], "banned": False}


def build(n: int) -> tuple:
    """(propagation file bytes, existing users): ~2% updates, 1% leave, 1% new, 0.5% suspended."""
    records: List[Dict[str, Any]] = []
    existing: List[User] = []
    group = {vo: str(100 + k) for k, vo in enumerate(VOS)}
    for i in range(n):
        vo = VOS[i % len(VOS)]
        existing.append(User(id=f"uid-{i}", name=f"user{i:06d}@egi.eu", email=f"user{i}@example.org",
                             display_name=f"User {i}", enabled=True, groups=(group[vo],),
                             x509_dns=(f"/DC=org/DC=example/CN=User {i}",),
                             ssh_keys=(f"ssh-ed25519 AAAAC3Nza{i:012d} user{i}",),
                             properties={MARK: MANAGED_VALUE, PERUN_ID_PROPERTY: f"user{i:06d}@egi.eu"},
                             quota=Quota(instances=10, cores=20) if vo == VOS[0] else None))
        if i % 100 == 7:
            continue  # left the VO: disable
        if i % 200 == 3:
            records.append(_record(i, vo, status="SUSPENDED"))
        elif i % 100 == 11:
            records.append(_record(i, vo, email_suffix=".new"))
        elif i % 100 == 13:
            records.append(_record(i, vo, dn_ca="renewed-ca"))
        else:
            records.append(_record(i, vo))
    for j in range(n, n + n // 100):
        records.append(_record(j, VOS[j % len(VOS)]))
    doc = {"version": "1.0.0", "facility": "bench", "generated_at": "2026-01-01T00:00:00Z", "vos": list(VOS),
           "users": records}
    return json.dumps(doc).encode("utf-8"), existing, group


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    data, existing, group = build(n)
    targets = {vo: VOTarget(vo, group[vo], Quota(instances=10, cores=20) if vo == VOS[0] else None) for vo in VOS}
    planner = Planner(targets=targets, grace_period=timedelta(days=30))

    started = time.perf_counter()
    snapshot = parse_snapshot(data, "bench.json")
    parse_s = time.perf_counter() - started
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        plan = planner.plan(snapshot, VOS, existing, utcnow(), {}, (), lambda user: 0)
        timings.append(time.perf_counter() - started)
    plan_s = statistics.median(timings)

    # memory in a second, traced pass (tracemalloc slows the code it watches down)
    tracemalloc.start()
    parse_snapshot(data, "bench.json")
    _, parse_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    planner.plan(snapshot, VOS, existing, utcnow(), {}, (), lambda user: 0)
    _, plan_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    figures = {
        "input_users": len(snapshot.users), "existing_users": len(existing), "input_bytes": len(data),
        "parse_seconds": round(parse_s, 3), "parse_peak_mb": round(parse_peak / 2**20, 1),
        "plan_seconds_median": round(plan_s, 3), "plan_seconds_best": round(min(timings), 3),
        "plan_peak_mb": round((plan_peak - base) / 2**20, 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **plan.counts, "unchanged": plan.unchanged, "goal_plan_under_1s": plan_s < 1.0,
    }
    print(json.dumps(figures, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
