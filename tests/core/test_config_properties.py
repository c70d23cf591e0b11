"""Property: any YAML document gives a Config or a ConfigError naming the file and key path, nothing else.

The configuration is written by the operator, but it is also the first thing a daemon reads on SIGHUP: a value
of an unexpected shape anywhere (a scalar where a section belongs, a list where a key is expected, a huge or
non-finite number, an odd path) must be a named error, never a crash of ``check-config`` or of the daemon.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Tuple

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedcloud_site.cloud import backend_settings_class
from fedcloud_site.config import (
    CloudSettings,
    Config,
    LoggingSettings,
    SiteSettings,
    VOSettings,
    load_config,
)
from fedcloud_site.errors import ConfigError
from fedcloud_site.registry import daemon_names, section_schemas


def _section_keys() -> Dict[str, List[str]]:
    """Every key path the loader knows: ``section`` -> its keys (the schema drives the search)."""
    keys: Dict[str, List[str]] = {
        "site": [f.name for f in dataclasses.fields(SiteSettings)],
        "cloud": [f.name for f in dataclasses.fields(CloudSettings)] + ["static", "openstack", "opennebula"],
        "logging": [f.name for f in dataclasses.fields(LoggingSettings)],
        "vos": ["ops", "vo.example.org"],
    }
    for daemon in daemon_names():
        keys[daemon] = [f.name for f in dataclasses.fields(section_schemas()[daemon])]
    for backend in ("static", "openstack", "opennebula"):
        keys[f"cloud.{backend}"] = [f.name for f in dataclasses.fields(backend_settings_class(backend))]
    keys["vos.ops"] = [f.name for f in dataclasses.fields(VOSettings)]
    return keys


KEYS = _section_keys()

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10 ** 400), max_value=10 ** 400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["", "~", "~nobody-such-user/x", "a\0b", "30s", "99999999999999999999999d", "static",
                     "openstack", "2021-13-45", "0 0 * * *", "* * *", "-1", "1e999", "/", ".", ".."]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.text(max_size=8), st.sampled_from(
        ["backend", "name", "static", "projects", "interval"])), inner, max_size=3)), max_leaves=8)


DEMO_DIR = Path(__file__).resolve().parents[2] / "etc" / "fedcloud-site"
BASE = yaml.safe_load((DEMO_DIR / "demo.yaml").read_text(encoding="utf-8"))


def _paths(node: Any, prefix: Tuple[Any, ...] = ()) -> List[Tuple[Any, ...]]:
    """Every key/index path in a parsed document."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, prefix + (index,))
    return found


BASE_PATHS = _paths(BASE)
SECTIONS = [path for path in BASE_PATHS if len(path) == 1]
SECTION_KEYS = [path for path in BASE_PATHS if len(path) == 2]


def _parent(doc: Any, path: Tuple[Any, ...]) -> Any:
    node = doc
    for part in path[:-1]:
        node = node[part]
    return node


@st.composite
def documents(draw: Any) -> Any:
    """The demo configuration with random values at paths the loader knows, or a random document."""
    if draw(st.integers(0, 9)) == 0:
        return draw(values)
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["replace", "replace", "add", "delete"]))
        if action == "add":  # a key the schema knows, maybe absent from the demo
            section = draw(st.sampled_from(sorted(KEYS)))
            node = doc
            for part in section.split("."):
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node = node[part]
            node[draw(st.sampled_from(KEYS[section]))] = draw(values)
            continue
        # whole sections and their keys often: their shape is what a reload trips over first
        path = draw(st.sampled_from(draw(st.sampled_from([SECTIONS, SECTION_KEYS, BASE_PATHS]))))
        try:
            parent = _parent(doc, path)
            if action == "replace":
                parent[path[-1]] = draw(values)
            else:
                del parent[path[-1]]
        except (KeyError, IndexError, TypeError):  # an earlier mutation replaced an ancestor
            continue
    return doc


def _load(text: str) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fedcloud-site.yaml"
        for name in ("demo-site.yaml", "demo-perun.json"):  # files the demo configuration names
            shutil.copy(DEMO_DIR / name, Path(tmp) / name)
        path.write_text(text, encoding="utf-8")
        try:
            return load_config(path)
        except ConfigError as exc:
            assert exc.file == str(path), f"error does not name the file: {exc}"
            assert exc.problem, "error without a problem"
            return exc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_any_structure_gives_a_config_or_a_named_error(document):
    result = _load(yaml.safe_dump(document, allow_unicode=True))
    assert isinstance(result, (Config, ConfigError))
    if isinstance(result, Config):
        result.as_plain()  # what check-config prints must work too


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_a_config_or_a_named_error(text):
    assert isinstance(_load(text), (Config, ConfigError))


def test_undecodable_bytes_are_a_named_error(tmp_path):
    path = tmp_path / "fedcloud-site.yaml"
    path.write_bytes(b"site: {name: \xff\xfe}\n")
    try:
        load_config(path)
    except ConfigError as exc:
        assert exc.file == str(path)
        assert "UTF-8" in exc.problem
    else:  # pragma: no cover - the assertion below explains
        raise AssertionError("undecodable configuration accepted")
