"""Property-based tests of every reader of the old tools' files: any input gives a result or a MigrationError
naming the file, never another exception; what a well-formed INI file says is read back exactly."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedcloud_site.migrate import atrope, caso, cloudinfo, ssm, vmcatcher
from fedcloud_site.migrate.errors import MigrationError
from fedcloud_site.migrate.ini import read_ini
from fedcloud_site.migrate.report import Report

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_0123456789", min_size=1, max_size=12)
values = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r\n\x0b\x0c\x1c\x1d"
                                        "\x1e\x85\u2028\u2029"), max_size=30).map(str.strip)
known_caso = st.sampled_from([("DEFAULT", "site_name"), ("DEFAULT", "projects"), ("DEFAULT", "extractor"),
                              ("DEFAULT", "messengers"), ("DEFAULT", "vo_property"), ("DEFAULT", "mapping_file"),
                              ("DEFAULT", "service_name"), ("DEFAULT", "dry_run"), ("DEFAULT", "spooldir"),
                              ("keystone_auth", "auth_type"), ("keystone_auth", "timeout"),
                              ("keystone_auth", "insecure"), ("keystone_auth", "system_scope"),
                              ("ssm", "output_path"), ("ssm", "max_size"), ("messenger_ssm", "record_types")])
known_ssm = st.sampled_from([("sender", "protocol"), ("broker", "host"), ("broker", "port"), ("broker", "use_ssl"),
                             ("broker", "bdii"), ("certificates", "certificate"), ("certificates", "server_cert"),
                             ("messaging", "destination"), ("messaging", "path"), ("messaging", "path_type"),
                             ("messaging", "token"), ("daemon", "pidfile")])


def _in_tmp(text: Any, reader: Callable[[Path], Any], binary: bool = False) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input"
        if binary:
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        try:
            return reader(path)
        except MigrationError as exc:
            assert exc.file == str(path)
            return exc


def _ini(options: Dict[Any, str]) -> str:
    sections: Dict[str, Dict[str, str]] = {}
    for (section, option), value in options.items():
        sections.setdefault(section, {})[option] = value
    return "".join(f"[{s}]\n" + "".join(f"{o} = {v}\n" for o, v in opts.items()) for s, opts in sections.items())


@SETTINGS
@given(st.text(max_size=400))
def test_any_text_is_an_ini_file_or_a_named_error(text: str):
    _in_tmp(text, read_ini)


@SETTINGS
@given(st.binary(max_size=200))
def test_any_bytes_are_an_ini_file_or_a_named_error(data: bytes):
    _in_tmp(data, read_ini, binary=True)


@SETTINGS
@given(st.dictionaries(st.tuples(names.map(str.upper) | st.just("DEFAULT"), names), values, max_size=12))
def test_a_well_formed_ini_file_reads_back_exactly(options: Dict[Any, str]):
    ini = _in_tmp(_ini(options), read_ini)
    assert not isinstance(ini, MigrationError)
    for (section, option), value in options.items():
        assert ini.raw(section, option) == value


@SETTINGS
@given(st.dictionaries(known_caso | st.tuples(st.sampled_from(["DEFAULT", "keystone_auth", "x"]), names),
                       values | st.sampled_from(["$site_name", "${spooldir}/x", "true", "nova,cinder", "ssm", "-1"]),
                       max_size=10))
def test_any_caso_conf_is_migrated_or_a_named_error(options: Dict[Any, str]):
    result = _in_tmp(_ini(options), lambda p: caso.migrate(p, Report()))
    if not isinstance(result, MigrationError):
        assert result.shared["site"]["name"]
        assert result.sections["accounting"]["record_types"]


@SETTINGS
@given(st.dictionaries(known_ssm | st.tuples(st.sampled_from(["sender", "broker", "y"]), names),
                       values | st.sampled_from(["AMS", "STOMP", "dirq", "directory", "443", "true"]), max_size=10))
def test_any_sender_cfg_is_migrated_or_a_named_error(options: Dict[Any, str]):
    result = _in_tmp(_ini(options), lambda p: ssm.migrate(p, Report()))
    if not isinstance(result, MigrationError):
        assert result.sections["ssm"]["transport"] in ("ams", "stomp")
        assert result.sections["ssm"]["queue_dir"]


yaml_data = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                         lambda children: st.lists(children, max_size=4)
                         | st.dictionaries(st.text(max_size=10), children, max_size=4), max_leaves=20)
cip_like = st.fixed_dictionaries({}, optional={
    "gocdb": yaml_data | st.just("SITE"), "endpoint": yaml_data | st.just("https://x.example.org:5000/v3"),
    "region": yaml_data, "vos": yaml_data | st.lists(st.fixed_dictionaries({}, optional={
        "name": yaml_data | st.just("vo.example"), "auth": yaml_data | st.fixed_dictionaries(
            {}, optional={"project_id": yaml_data | st.just("p1")})}), max_size=3)})
atrope_entry = st.fixed_dictionaries({}, optional={
    "url": yaml_data | st.just("https://lists.example.org/l"), "enabled": yaml_data,
    "endorser": yaml_data | st.fixed_dictionaries({"dn": st.just("/CN=a") | yaml_data,
                                                   "ca": st.just("/CN=b") | yaml_data}),
    "token": yaml_data, "images": yaml_data, "prefix": yaml_data, "project": yaml_data})


@SETTINGS
@given(cip_like | yaml_data)
def test_any_site_file_is_migrated_or_a_named_error(data: Any):
    result = _in_tmp(yaml.safe_dump(data), lambda p: cloudinfo.migrate(p, Report()))
    if not isinstance(result, MigrationError):
        assert result.sections["cloudinfo"]["service_id"].endswith("_cloud.compute")


@SETTINGS
@given(st.dictionaries(st.text(max_size=12), atrope_entry | yaml_data, max_size=4) | yaml_data)
def test_any_atrope_sources_file_is_migrated_or_a_named_error(data: Any):
    result = _in_tmp(yaml.safe_dump(data), lambda p: atrope.migrate(p, Report()))
    if not isinstance(result, MigrationError):
        subscriptions = result.sections["images"]["subscriptions"]
        assert len({s["name"] for s in subscriptions}) == len(subscriptions)


@SETTINGS
@given(st.text(max_size=200))
def test_any_yaml_text_is_read_or_a_named_error(text: str):
    _in_tmp(text, lambda p: atrope.migrate(p, Report()))


@SETTINGS
@given(st.binary(max_size=60) | st.datetimes().map(str))
def test_any_lastrun_file_is_a_time_or_a_named_error(content: Any):
    data = content if isinstance(content, bytes) else content.encode()
    result = _in_tmp(data, caso.parse_lastrun, binary=True)
    if not isinstance(result, MigrationError):
        assert result.tzinfo is not None


@SETTINGS
@given(st.lists(st.sampled_from(["--os-auth-url", "--os-password=x", "--insecure", "--only-appdb-images",
                                 "--select-flavors", "public", "--middleware", "site.yaml", "--os-auth-type",
                                 "password", "-x"]) | st.text(max_size=30), max_size=12))
def test_any_argument_file_is_migrated_or_a_named_error(args: List[str]):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cip.args"
        path.write_text("--os-username\nu\n" + "\n".join(args) + "\n", encoding="utf-8")
        (path.parent / "site.yaml").write_text("gocdb: S\nendpoint: https://x.example.org:5000/v3\nvos: []\n",
                                               encoding="utf-8")
        try:
            cloudinfo.migrate(path, Report())
        except MigrationError as exc:  # the argument file, or the site file it names
            assert exc.file and str(exc).startswith(exc.file)


@SETTINGS
@given(st.binary(max_size=300) | st.just(b"SQLite format 3\x00").map(lambda head: head + bytes(84)))
def test_any_file_given_as_vmcatchers_database_is_read_or_a_named_error(data: bytes):
    _in_tmp(data, lambda p: vmcatcher.migrate(p, Report()), binary=True)
