"""The queue when the file system refuses: a named error at once, never a spin, the umask kept, nothing left.

Each refusal is real: a minute directory left root-owned (written by a process that dropped root), too many
open files (RLIMIT_NOFILE), no inode left, a read-only file system and a full one (tmpfs mounted in a
private mount namespace, gone with the process).  Every add runs in a child bounded by a wall clock: dirq's
own writer retried such errors for ever at 100 % CPU.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BOUND = 60  # seconds a refused add may take at most (it takes milliseconds; a spin never ends)
NOBODY = 65534

CHILD = r"""
import errno, json, os, resource, subprocess, sys, time
from pathlib import Path
from fedcloud_site.queue import MessageQueue

mode, root = sys.argv[1], Path(sys.argv[2])
queue_dir = root / "q"


def minute_dirs():
    # this minute's directory and the next ones exist: the add cannot escape into a directory of its own
    now = int(time.time())
    now -= now % 60
    for start in range(now - 60, now + 900, 60):
        (queue_dir / f"{start:08x}").mkdir(exist_ok=True)


def mount_tmpfs(options):
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(root)], check=True)


def fill(make):
    for i in range(1_000_000):
        try:
            make(i)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                return
            raise


held = []
if mode == "eacces":
    queue = MessageQueue(queue_dir)
    minute_dirs()  # root-owned, 0755: what `accounting once` run as root leaves behind
    os.chown(queue_dir, 65534, 65534)
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
elif mode == "emfile":
    queue = MessageQueue(queue_dir)
    resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))
    while True:
        try:
            held.append(os.open(os.devnull, os.O_RDONLY))
        except OSError as exc:
            assert exc.errno == errno.EMFILE, exc
            break
elif mode == "inodes":
    mount_tmpfs("size=4m,nr_inodes=64")
    queue = MessageQueue(queue_dir)
    minute_dirs()
    fill(lambda i: (root / f"filler-{i}").touch())
elif mode == "readonly":
    mount_tmpfs("size=4m")
    queue = MessageQueue(queue_dir)
    minute_dirs()
    subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)
elif mode == "full":
    mount_tmpfs("size=256k")
    queue = MessageQueue(queue_dir)
    minute_dirs()
    filler = os.open(root / "filler", os.O_WRONLY | os.O_CREAT)
    fill(lambda i: os.write(filler, b"x" * 4096))
    os.close(filler)
os.umask(0o022)
try:
    result = {"added": queue.add(b"APEL-cloud-message: v0.4\n" + b"x" * 65536)}
except Exception as exc:
    result = {"error": type(exc).__name__, "errno": getattr(exc, "errno", None), "message": str(exc),
              "is_oserror": isinstance(exc, OSError)}
for fd in held:
    os.close(fd)
result["umask"] = os.umask(0o022)
result["leftovers"] = sorted(str(p.relative_to(queue_dir)) for p in queue_dir.rglob("*") if p.is_file())
print(json.dumps(result))
"""


def namespaces_available() -> bool:
    """True when this test may mount a tmpfs in a private mount namespace (root with CAP_SYS_ADMIN)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs", "tmpfs",
                            "/mnt"], capture_output=True, timeout=30)
    return probe.returncode == 0


needs_mounts = pytest.mark.skipif(not namespaces_available(), reason="needs root to mount a tmpfs in a namespace")


def refused_add(tmp_path: Path, mode: str, private_mounts: bool = False) -> dict:
    """Run one add in a child (``mode`` sets up the refusal); its outcome.  A spin fails the test at BOUND s."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    root = tmp_path / "fs"
    root.mkdir()
    for directory in (root, *root.parents):  # another user must reach the queue (pytest makes 0700 dirs)
        directory.chmod(directory.stat().st_mode | 0o111)
        if directory.name.startswith("pytest-of-"):
            break
    command = [sys.executable, str(script), mode, str(root)]
    if private_mounts:
        command = ["unshare", "--mount", "--propagation", "private", *command]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=BOUND,
                                env=dict(os.environ, PYTHONPATH=str(REPO)))
    except subprocess.TimeoutExpired:
        pytest.fail(f"queue add did not return within {BOUND} s ({mode}): it spins instead of failing")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def assert_named_refusal(outcome: dict, expected_errno: int, root: Path) -> None:
    assert outcome.get("error") == "QueueWriteError", outcome
    assert outcome["errno"] == expected_errno, outcome
    assert outcome["is_oserror"], "callers catching OSError keep working"
    assert str(root / "q") in outcome["message"] and errno.errorcode[expected_errno] in outcome["message"]
    assert outcome["umask"] == 0o022, "the process umask is the one it was before the add"
    assert outcome["leftovers"] == [], "a refused add leaves no temporary file behind"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a directory another user cannot write")
def test_a_minute_directory_left_root_owned_is_a_named_error(tmp_path):
    assert_named_refusal(refused_add(tmp_path, "eacces"), errno.EACCES, tmp_path / "fs")


def test_too_many_open_files_is_a_named_error(tmp_path):
    assert_named_refusal(refused_add(tmp_path, "emfile"), errno.EMFILE, tmp_path / "fs")


@needs_mounts
def test_no_inode_left_is_a_named_error(tmp_path):
    assert_named_refusal(refused_add(tmp_path, "inodes", private_mounts=True), errno.ENOSPC, tmp_path / "fs")


@needs_mounts
def test_a_read_only_file_system_is_a_named_error(tmp_path):
    assert_named_refusal(refused_add(tmp_path, "readonly", private_mounts=True), errno.EROFS, tmp_path / "fs")


@needs_mounts
def test_a_full_file_system_is_a_named_error_and_the_partial_element_is_removed(tmp_path):
    assert_named_refusal(refused_add(tmp_path, "full", private_mounts=True), errno.ENOSPC, tmp_path / "fs")


READ_ONLY_EXEC = r"""
import os, subprocess, sys, time
from pathlib import Path

queue_dir = Path(sys.argv[1])
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(queue_dir)], check=True)
now = int(time.time())
now -= now % 60
for start in range(now - 60, now + 900, 60):
    (queue_dir / f"{start:08x}").mkdir()
subprocess.run(["mount", "-o", "remount,ro", str(queue_dir)], check=True)
os.execv(sys.executable, [sys.executable, "-m", "fedcloud_site.cli", *sys.argv[2:]])
"""


@needs_mounts
def test_accounting_once_fails_with_status_1_when_its_queue_is_read_only(tmp_path):
    etc = tmp_path / "etc"
    shutil.copytree(REPO / "etc" / "fedcloud-site", etc)
    config = yaml.safe_load((etc / "demo.yaml").read_text(encoding="utf-8"))
    queue_dir = tmp_path / "outgoing"
    queue_dir.mkdir()
    config["accounting"]["queue_dir"] = str(queue_dir)
    (etc / "demo.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    script = tmp_path / "readonly_exec.py"
    script.write_text(READ_ONLY_EXEC)
    try:
        result = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, str(script),
                                 str(queue_dir), "--config", str(etc / "demo.yaml"), "accounting", "once"],
                                capture_output=True, text=True, timeout=120, cwd=str(tmp_path),
                                env=dict(os.environ, PYTHONPATH=str(REPO)))
    except subprocess.TimeoutExpired:
        pytest.fail("accounting once did not end within 120 s with a read-only queue")
    assert result.returncode == 1, result.stderr
    assert str(queue_dir) in result.stderr and "Read-only file system" in result.stderr
