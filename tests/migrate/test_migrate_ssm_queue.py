"""apel-ssm's outgoing queue after ``migrate --from ssm``: drained by our sender, every message delivered once.

The queue is written with the dirq library apel-ssm itself reads it with (``dirq.QueueSimple``), as APEL
clients and cASO write it; one element is left locked by an apel-ssm that crashed 20 minutes ago, one by an
apel-ssm that is still sending.  Delivery goes to the AMS simulator (HTTPS, the real ``requests`` client).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Dict

from dirq.QueueSimple import QueueSimple

from fedcloud_site.cli import main

TOPIC = "eu-egi-cloud-accounting"


def _message(index: int) -> bytes:
    return (f"APEL-cloud-message: v0.4\nVMUUID: vm-{index}\nSiteName: TEST-SITE\nFQAN: vo.example.org\n"
            f"Status: started\nStartTime: 1780000000\nWallDuration: {index}\n%%\n").encode("ascii")


def test_the_old_queue_is_delivered_once_and_a_live_lock_is_respected(tmp_path: Path, ams_site):
    queue_dir = tmp_path / "outgoing"
    queue = QueueSimple(str(queue_dir))
    names: Dict[str, bytes] = {}
    for index in range(6):
        names[queue.add(_message(index))] = _message(index)
    crashed, sending = sorted(names)[:2]
    assert queue.lock(crashed) and queue.lock(sending)
    old = time.time() - 1200
    os.utime(queue_dir / f"{crashed}.lck", (old, old))  # apel-ssm died while sending it

    sender = ams_site.sender_cfg(queue_dir)
    etc = tmp_path / "etc"
    (etc / "conf.d").mkdir(parents=True)
    (etc / "fedcloud-site.yaml").write_text(
        f"site: {{name: TEST-SITE}}\nssm: {{state_dir: {tmp_path / 'ssm-state'}}}\n", encoding="utf-8")
    config = ["-c", str(etc / "fedcloud-site.yaml")]
    assert main([*config, "migrate", "--from", f"ssm={sender}"]) == 0

    assert main([*config, "ssm", "once"]) == 1  # work left: the message apel-ssm still holds
    delivered = ams_site.delivered()
    assert sorted(delivered) == sorted(body for name, body in names.items() if name != sending)
    left = {str(p.relative_to(queue_dir)) for p in queue_dir.glob("*/*") if p.suffix != ".lck"}
    assert left == {sending}  # still apel-ssm's: not sent by us

    queue.unlock(sending)  # apel-ssm gave up on it (or was stopped) without sending it
    assert main([*config, "ssm", "once"]) == 0
    delivered = ams_site.delivered()
    assert sorted(delivered) == sorted(names.values())  # each exactly once
    assert not list(queue_dir.glob("*/*"))
