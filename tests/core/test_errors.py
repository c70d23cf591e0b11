"""Errors: one base class carrying the exit status; causes kept and shown under --verbose."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest
from structlog.testing import capture_logs

import fedcloud_site
from fedcloud_site import errors
from fedcloud_site.cli import main
from fedcloud_site.config import load_config
from fedcloud_site.errors import (
    AlreadyRunning,
    ConfigError,
    FedcloudSiteError,
    JobIncomplete,
    JobRefused,
    LockUnavailable,
    UsageError,
    cause_chain,
    describe,
)
from fedcloud_site.filelock import FileLock
from fedcloud_site.runner import Job, Runner

README = Path(__file__).resolve().parents[2] / "README.rst"
MINIMAL = "site: {name: TEST-SITE}\n"

#: the exit status of each error class, as README.rst's "Exit statuses" table documents it
DOCUMENTED = [
    (FedcloudSiteError, 1, "a job failed or left work undone"),
    (JobIncomplete, 1, "a job failed or left work undone"),
    (LockUnavailable, 1, "a job failed or left work undone"),
    (ConfigError, 2, "invalid configuration or command line"),
    (UsageError, 2, "invalid configuration or command line"),
    (AlreadyRunning, 3, "another instance of this daemon is running"),
    (JobRefused, 4, "a safety check refused to apply changes"),
]

#: exceptions that are control flow inside one module, never reported as errors
CONTROL_FLOW = {"fedcloud_site.accounting.extractor.Stopped", "fedcloud_site.probes.cli.ProbeTimeout"}


def readme_exit_statuses() -> dict[int, str]:
    section = README.read_text(encoding="utf-8").split("Exit statuses\n", 1)[1].split("\n\n\n", 1)[0]
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^(\d)\s+(.+)$", section, re.M)}


@pytest.mark.parametrize("error_class, status, meaning", DOCUMENTED, ids=[c.__name__ for c, _, _ in DOCUMENTED])
def test_each_error_class_exits_with_its_documented_status(error_class, status, meaning):
    assert error_class.exit_status == status
    assert readme_exit_statuses()[status].startswith(meaning)
    listed = re.search(rf"^\* {status} - .*$", errors.__doc__ or "", re.M)
    assert listed and f":class:`{error_class.__name__}`" in listed.group(0)


def test_the_documented_statuses_are_exactly_success_and_the_error_classes():
    assert set(readme_exit_statuses()) == {0} | {status for _, status, _ in DOCUMENTED}


def test_every_error_of_the_product_derives_from_the_base_error():
    strays = []
    for module_info in pkgutil.walk_packages(fedcloud_site.__path__, "fedcloud_site."):
        if module_info.name.startswith("fedcloud_testing"):
            continue  # the simulators' own errors are protocol faults, not fedcloud-site's
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, Exception) and value.__module__ == module.__name__
                    and not name.startswith("_") and f"{module.__name__}.{name}" not in CONTROL_FLOW
                    and not issubclass(value, FedcloudSiteError)):
                strays.append(f"{module.__name__}.{name}")
    assert strays == []


def test_a_domain_error_keeps_the_failed_status_of_the_base():
    from fedcloud_site.cloud.base import CloudUnavailable

    assert CloudUnavailable.exit_status == 1 and CloudUnavailable.outcome == "failed"


def test_cause_chain_lists_every_cause_nearest_first():
    try:
        try:
            try:
                raise OSError(28, "No space left on device")
            except OSError as exc:
                raise ValueError("cannot write state") from exc
        except ValueError as exc:
            raise FedcloudSiteError("accounting state not saved") from exc
    except FedcloudSiteError as exc:
        caught = exc
    assert cause_chain(caught) == ["ValueError: cannot write state", "OSError: [Errno 28] No space left on device"]
    assert describe(caught, verbose=False) == "accounting state not saved"
    assert describe(caught, verbose=True).splitlines() == [
        "accounting state not saved",
        "  caused by: ValueError: cannot write state",
        "  caused by: OSError: [Errno 28] No space left on device"]


def test_a_suppressed_cause_is_not_shown():
    try:
        try:
            raise KeyError("id")
        except KeyError:
            raise FedcloudSiteError("no id") from None
    except FedcloudSiteError as exc:
        assert cause_chain(exc) == []


# -- the command line ends with the error's status --------------------------------------------


def test_invalid_configuration_exits_2_and_verbose_shows_the_parser_error(write_config, capsys):
    path = write_config("site: {name: [unclosed\n")
    assert main(["--config", str(path), "check-config"]) == 2
    quiet = capsys.readouterr().err
    assert f"invalid configuration: {path}: invalid YAML" in quiet
    assert "caused by" not in quiet
    assert main(["--config", str(path), "--verbose", "check-config"]) == 2
    verbose = capsys.readouterr().err
    assert "caused by: ParserError:" in verbose or "caused by: ScannerError:" in verbose


def test_an_unusable_command_line_exits_2(write_config, tmp_path, capsys):
    path = write_config(MINIMAL + f"accounting: {{state_dir: {tmp_path / 'state'}}}\n")
    assert main(["--config", str(path), "accounting", "republish", "--from", "2024-05", "--to", "2024-03"]) == 2
    assert "fedcloud-site accounting republish: --to is before --from" in capsys.readouterr().err


def test_a_held_lock_exits_3(write_config, tmp_path, capsys):
    state = tmp_path / "state"
    path = write_config(MINIMAL + f"accounting: {{state_dir: {state}}}\n")
    with FileLock(state / "accounting.lock"):
        assert main(["--config", str(path), "accounting", "once"]) == 3
    assert "another instance is running" in capsys.readouterr().err


# -- the runner: the worst status of the run, causes logged under --verbose ---------------------


def _runner(write_config, tmp_path, jobs, verbose=False):
    config = load_config(write_config(MINIMAL + f"accounting: {{state_dir: {tmp_path / 'state'}}}\n"))
    return Runner("accounting", None, config=config, jobs_factory=lambda cfg: jobs, verbose=verbose)


def _failing_with_a_cause(ctx):
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except OSError as exc:
        raise FedcloudSiteError("cloud unreachable") from exc


def test_the_runner_exits_with_the_worst_error_status(write_config, tmp_path):
    def refused(ctx):
        raise JobRefused("mass change")

    def bug(ctx):
        raise KeyError("a bug")

    jobs = [Job("bug", bug, 60), Job("refused", refused, 60), Job("fine", lambda ctx: None, 60)]
    assert _runner(write_config, tmp_path, jobs).run_once() == 4
    assert _runner(write_config, tmp_path, [Job("bug", bug, 60)]).run_once() == 1


def test_verbose_runs_log_the_cause_chain_of_a_failed_job(write_config, tmp_path):
    with capture_logs() as quiet:
        _runner(write_config, tmp_path, [Job("j", _failing_with_a_cause, 60)]).run_once()
    with capture_logs() as verbose:
        _runner(write_config, tmp_path, [Job("j", _failing_with_a_cause, 60)], verbose=True).run_once()
    summary = [e for e in quiet if e["event"] == "run summary"][0]
    assert summary["error"] == "FedcloudSiteError: cloud unreachable" and "causes" not in summary
    summary = [e for e in verbose if e["event"] == "run summary"][0]
    assert summary["causes"] == ["ConnectionRefusedError: [Errno 111] Connection refused"]


def test_no_translated_error_of_the_product_drops_its_cause():
    """``raise ... from None`` would hide the lower-level error from --verbose: the product never uses it."""
    package = Path(fedcloud_site.__file__).parent
    dropped = []
    for path in sorted(package.rglob("*.py")):
        if "testing" in path.relative_to(package).parts:
            continue  # the simulators answer like the real services, they report to no operator
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and isinstance(node.cause, ast.Constant) and node.cause.value is None:
                dropped.append(f"{path.relative_to(package.parent)}:{node.lineno}")
    assert dropped == []
