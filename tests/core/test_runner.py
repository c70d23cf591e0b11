"""The shared daemon runner: once mode, failure isolation, overlap, lock, signals, systemd notify."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from fedcloud_site.accounting.settings import Settings as AccountingSettings
from fedcloud_site.config import load_config
from fedcloud_site.errors import AlreadyRunning, FedcloudSiteError, JobIncomplete, JobRefused
from fedcloud_site.filelock import FileLock
from fedcloud_site.runner import Job, Runner

MINIMAL = "site: {name: TEST-SITE}\n"


@pytest.fixture
def config(write_config, tmp_path):
    return load_config(write_config(MINIMAL + f"accounting: {{state_dir: {tmp_path / 'state'}}}\n"))


def make_runner(config, jobs, **kwargs):
    return Runner("accounting", None, config=config, jobs_factory=lambda cfg: jobs, **kwargs)


def test_once_runs_every_job_and_reports_success(config):
    ran = []
    jobs = [Job("a", lambda ctx: ran.append("a") or {"records": 3}, 60),
            Job("b", lambda ctx: ran.append("b"), 60)]
    assert make_runner(config, jobs).run_once() == 0
    assert ran == ["a", "b"]


def test_a_failing_job_does_not_stop_the_others(config):
    ran = []

    def broken(ctx):
        raise RuntimeError("cloud exploded")

    jobs = [Job("broken", broken, 60), Job("fine", lambda ctx: ran.append("fine"), 60)]
    assert make_runner(config, jobs).run_once() == FedcloudSiteError.exit_status
    assert ran == ["fine"]


def test_incomplete_and_refused_jobs_have_their_exit_status(config):
    def incomplete(ctx):
        raise JobIncomplete("3 messages left", {"remaining": 3})

    def refused(ctx):
        raise JobRefused("input empty")

    assert make_runner(config, [Job("i", incomplete, 60)]).run_once() == FedcloudSiteError.exit_status
    assert make_runner(config, [Job("r", refused, 60)]).run_once() == JobRefused.exit_status


def test_job_context_gives_settings_options_and_cloud(config):
    seen = {}

    def job(ctx):
        seen["queue"] = ctx.settings.queue_dir
        seen["option"] = ctx.options.get("project")
        seen["projects"] = list(ctx.cloud.list_projects())
        seen["dry_run"] = ctx.dry_run

    make_runner(config, [Job("j", job, 60)], options={"project": "p1"}, dry_run=True).run_once()
    queue = config.section(AccountingSettings).queue_dir
    assert seen == {"queue": queue, "option": "p1", "projects": [], "dry_run": True}


def test_overlapping_runs_of_one_job_are_skipped(config):
    started = threading.Event()
    release = threading.Event()
    calls = []

    def slow(ctx):
        calls.append(1)
        started.set()
        release.wait(10)

    job = Job("slow", slow, 60)
    runner = make_runner(config, [job])
    first = threading.Thread(target=runner.run_job, args=[job])
    first.start()
    assert started.wait(5)
    assert runner.run_job(job) == 0  # skipped, not run twice
    release.set()
    first.join(5)
    assert calls == [1]


def test_lock_prevents_a_second_instance(tmp_path):
    path = tmp_path / "daemon.lock"
    with FileLock(path):
        probe = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(f"""
                from pathlib import Path
                from fedcloud_site.errors import AlreadyRunning
                from fedcloud_site.filelock import FileLock
                try:
                    FileLock(Path({str(path)!r})).acquire()
                except AlreadyRunning as exc:
                    print("locked:", exc)
            """)], capture_output=True, text=True, timeout=30)
        assert f"locked: another instance is running: {path} is locked by process {os.getpid()}" in probe.stdout
    FileLock(path).acquire()  # free again once released


def test_lock_in_process_raises(tmp_path):
    path = tmp_path / "x.lock"
    first = FileLock(path)
    first.acquire()
    with pytest.raises(AlreadyRunning):
        FileLock(path).acquire()
    first.release()


DAEMON_SCRIPT = """
import sys, time, threading
from pathlib import Path
from fedcloud_site.runner import Runner, Job
from fedcloud_site.log import configure_logging
from fedcloud_site.config import load_config
from fedcloud_site.accounting.settings import Settings as AccountingSettings

marker = Path(sys.argv[2])

def tick(ctx):
    marker.write_text(f"{ctx.config.section(AccountingSettings).interval}\\n")
    # a unit of work that checks the stop flag
    for _ in range(20):
        if ctx.stopping():
            marker.with_suffix(".abandoned").write_text("yes")
            return {"abandoned": 1}
        time.sleep(0.05)
    return {"done": 1}

def failing(ctx):
    raise RuntimeError("always broken")

config = load_config(Path(sys.argv[1]))
configure_logging(config.logging)
runner = Runner("accounting", Path(sys.argv[1]), config=config,
                jobs_factory=lambda cfg: [Job("tick", tick, 1), Job("failing", failing, 1)])
sys.exit(runner.run_forever())
"""


@contextlib.contextmanager
def running_daemon(tmp_path, config_path, env=None):
    """The test daemon in a child process and its marker file; killed if the test leaves it running."""
    script = tmp_path / "daemon.py"
    script.write_text(DAEMON_SCRIPT)
    marker = tmp_path / "marker.txt"
    proc = subprocess.Popen([sys.executable, str(script), str(config_path), str(marker)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, **(env or {})))
    try:
        yield proc, marker
    finally:
        if proc.poll() is None:
            proc.kill()


def stop_daemon(proc):
    """SIGTERM, then the daemon's output once it has exited."""
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=20)
    return output


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_sighup_with_bad_config_keeps_old_config_then_good_config_applies(write_config, tmp_path):
    path = write_config(MINIMAL + "accounting: {interval: 1}\n")
    messages = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify.sock"))
        sock.settimeout(0.2)
        with running_daemon(tmp_path, path, {"NOTIFY_SOCKET": str(tmp_path / "notify.sock")}) as (proc, marker):
            assert wait_for(lambda: marker.exists() and marker.read_text().strip() == "1.0")
            path.write_text(MINIMAL + "accounting: {interval: 1, bogus: 1}\n")
            proc.send_signal(signal.SIGHUP)
            # the daemon says when it has read (and refused) the bad file: only then may the good one replace it
            _receive_until(sock, messages, "reload failed")
            assert any("reload failed" in m for m in messages), messages
            assert proc.poll() is None, "a bad reload must not stop the daemon"
            marker.unlink()
            assert wait_for(marker.exists), "the daemon keeps running its jobs after a failed reload"
            assert marker.read_text().strip() == "1.0"
            path.write_text(MINIMAL + "accounting: {interval: 2}\n")
            proc.send_signal(signal.SIGHUP)
            assert wait_for(lambda: marker.exists() and marker.read_text().strip() == "2.0")
            output = stop_daemon(proc)
    assert proc.returncode == 0
    assert "configuration reload failed, keeping the previous configuration" in output
    assert "accounting.bogus: unknown key" in output
    assert "configuration reloaded" in output
    assert "always broken" in output and "retry scheduled" in output, "failing job is logged and retried"
    assert "daemon stopped" in output


@pytest.mark.parametrize("cloud", ["true", "0.1", "[[backend, static]]", "[[1, [2]]]"])
def test_sighup_with_a_malformed_section_keeps_the_daemon_and_its_config(write_config, tmp_path, cloud):
    path = write_config(MINIMAL + "accounting: {interval: 1}\n")
    messages = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify.sock"))
        sock.settimeout(0.2)
        with running_daemon(tmp_path, path, {"NOTIFY_SOCKET": str(tmp_path / "notify.sock")}) as (proc, marker):
            assert wait_for(lambda: marker.exists() and marker.read_text().strip() == "1.0")
            path.write_text(MINIMAL + f"accounting: {{interval: 2}}\ncloud: {cloud}\n")
            proc.send_signal(signal.SIGHUP)
            _receive_until(sock, messages, "reload failed")
            assert any("reload failed" in m for m in messages), messages
            marker.unlink()
            assert wait_for(marker.exists), "the daemon keeps running its jobs after a failed reload"
            assert proc.poll() is None, "a malformed reload must not stop the daemon"
            assert marker.read_text().strip() == "1.0", "the previous configuration stays in force"
            output = stop_daemon(proc)
    assert proc.returncode == 0
    assert "configuration reload failed, keeping the previous configuration" in output
    assert f"{path}: cloud: expected a mapping" in output


def test_sigterm_lets_the_running_unit_of_work_stop_safely(write_config, tmp_path):
    path = write_config(MINIMAL + "accounting: {interval: 1}\n")
    with running_daemon(tmp_path, path) as (proc, marker):
        assert wait_for(marker.exists)
        time.sleep(0.2)
        output = stop_daemon(proc)
    assert proc.returncode == 0
    assert "stopping: waiting for running jobs" in output
    assert "daemon stopped" in output


def _receive_until(sock, messages, wanted, timeout=15.0):
    """Append the datagrams ``sock`` receives to ``messages`` until one contains ``wanted`` (or time is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not any(wanted in m for m in messages):
        try:
            messages.append(sock.recv(4096).decode())
        except socket.timeout:
            pass


def test_a_notify_listener_that_stopped_reading_never_hangs_the_daemon(write_config, tmp_path):
    path = write_config(MINIMAL + "accounting: {interval: 1}\n")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify.sock"))
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as filler:  # the listener's queue is full
            filler.connect(str(tmp_path / "notify.sock"))
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                for _ in range(100_000):
                    filler.send(b"STATUS=queued by the test")
        with running_daemon(tmp_path, path, {"NOTIFY_SOCKET": str(tmp_path / "notify.sock")}) as (proc, marker):
            assert wait_for(marker.exists)
            proc.send_signal(signal.SIGHUP)
            marker.unlink()
            assert wait_for(marker.exists), "jobs go on while notifications cannot be delivered"
            output = stop_daemon(proc)  # nobody ever reads the socket
    assert proc.returncode == 0 and "daemon stopped" in output


def test_systemd_notify_ready_watchdog_and_stopping(write_config, tmp_path):
    sock_path = tmp_path / "notify.sock"
    messages = []
    path = write_config(MINIMAL + "accounting: {interval: 1}\n")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(0.2)
        env = {"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1000000"}
        with running_daemon(tmp_path, path, env) as (proc, _):
            _receive_until(sock, messages, "WATCHDOG=1")
            proc.send_signal(signal.SIGTERM)
            _receive_until(sock, messages, "STOPPING=1")
            proc.communicate(timeout=20)
    joined = "\n".join(messages)
    assert "READY=1" in joined
    assert "WATCHDOG=1" in joined
    assert "STATUS=" in joined
    assert "STOPPING=1" in joined


STUCK_SCRIPT = """
import sys, time
from pathlib import Path
from fedcloud_site.runner import Runner, Job
from fedcloud_site.log import configure_logging
from fedcloud_site.config import load_config

release = Path(sys.argv[2])

def hangs(ctx):
    # a run that never ends by itself (a spinning library, a peer that never answers) until released
    while not release.exists() and not ctx.stopping():
        time.sleep(0.05)
    return {}

config = load_config(Path(sys.argv[1]))
configure_logging(config.logging)
runner = Runner("accounting", Path(sys.argv[1]), config=config,
                jobs_factory=lambda cfg: [Job("hangs", hangs, 3600, max_run_time=1.0)])
sys.exit(runner.run_forever())
"""


def test_a_stuck_job_stops_the_watchdog_pings_until_it_ends(write_config, tmp_path):
    script = tmp_path / "stuck.py"
    script.write_text(STUCK_SCRIPT)
    release = tmp_path / "release"
    path = write_config(MINIMAL)
    messages = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify.sock"))
        sock.settimeout(0.2)
        env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify.sock"), WATCHDOG_USEC="400000")
        proc = subprocess.Popen([sys.executable, str(script), str(path), str(release)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env)
        try:
            _receive_until(sock, messages, "STATUS=stuck: hangs running for")
            assert any("STATUS=stuck" in m for m in messages), messages
            # while the run hangs: no ping for several watchdog periods (systemd would restart the daemon)
            after_stuck = []
            _receive_until(sock, after_stuck, "WATCHDOG=1", timeout=1.5)
            assert not any("WATCHDOG=1" in m for m in after_stuck), after_stuck
            assert any("STATUS=stuck" in m for m in after_stuck), "the stuck status is repeated"
            release.touch()  # the run ends: the pings come back
            resumed = []
            _receive_until(sock, resumed, "WATCHDOG=1")
            assert any("WATCHDOG=1" in m for m in resumed), resumed
            output = stop_daemon(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0
    assert "job stuck: no more watchdog pings" in output and "job='hangs'" in output


def test_a_job_is_stuck_past_its_own_bound_or_several_intervals():
    assert Job("a", lambda ctx: None, 60, max_run_time=5).run_time_bound() == 5
    assert Job("b", lambda ctx: None, 6 * 3600).run_time_bound() == 4 * 6 * 3600
    assert Job("c", lambda ctx: None, 60).run_time_bound() == 3600, "never less than an hour by default"


def test_daemon_cli_reports_lock_held(write_config, tmp_path):
    state = tmp_path / "state"
    path = write_config(MINIMAL + f"accounting: {{state_dir: {state}}}\n")
    with FileLock(Path(state) / "accounting.lock"):
        result = subprocess.run([sys.executable, "-m", "fedcloud_site.cli", "--config", str(path),
                                 "accounting", "once"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    assert "another instance is running" in result.stderr


def test_idle_runs_log_their_summary_at_debug_level(config, tmp_path):
    from fedcloud_site.config import LoggingSettings
    from fedcloud_site.log import configure_logging
    from fedcloud_site.runner import IDLE

    log_file = tmp_path / "runner.log"
    configure_logging(LoggingSettings(file=log_file))
    try:
        runner = make_runner(config, [Job("poll", lambda ctx: {IDLE: True, "sent": 0}, 60),
                                      Job("work", lambda ctx: {"sent": 5}, 60)])
        assert runner.run_once() == 0
    finally:
        configure_logging(LoggingSettings())
    text = log_file.read_text()
    assert "job='work'" in text and "sent=5" in text
    assert "job='poll'" not in text


def test_unusable_lock_directory_is_a_clear_error(write_config, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    path = write_config(MINIMAL + f"accounting: {{state_dir: {blocker / 'state'}}}\n")
    result = subprocess.run([sys.executable, "-m", "fedcloud_site.cli", "--config", str(path), "accounting", "once"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == FedcloudSiteError.exit_status
    assert f"cannot create lock file {blocker / 'state' / 'accounting.lock'}" in result.stderr


def test_a_dry_run_previews_beside_a_running_instance(write_config, tmp_path):
    state = tmp_path / "state"
    path = write_config(MINIMAL + f"accounting: {{state_dir: {state}}}\n")
    with FileLock(Path(state) / "accounting.lock"):
        result = subprocess.run([sys.executable, "-m", "fedcloud_site.cli", "--config", str(path),
                                 "accounting", "once", "--dry-run"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "another instance is running" not in result.stderr
