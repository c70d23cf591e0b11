"""The commented example configuration ``etc/fedcloud-site/fedcloud-site.yaml`` is a complete, valid reference.

It passes ``check-config`` as installed, documents every key of every configuration dataclass at its place,
and each of its commented-out example blocks is valid configuration once uncommented.

Conventions of the example file (what these tests rely on; the file's header tells the operator the same):

* A commented line becomes configuration by deleting the ``# `` that follows its indentation.
* Commented-out keys sit in example blocks, from ``# --- example: NAME`` (optionally ``(needs: A, B)``, then
  free text) to ``# --- end``. Every line between has its ``#`` in the column of the marker's ``#``.
  Uncommenting the block (and the blocks it needs) in place gives valid configuration: no key twice, and
  the real loader accepts it. Commented-out keys outside blocks are not allowed, so no shown value can rot.
* A key commented out twice inside a block (``#   # key: value``) is an alternative: it counts as
  documented, but is not loaded.
* Prose comments never start with ``word:`` (that reads as a key).
* Secrets of the examples (``<key>_file:``) live under ``/etc/fedcloud-site/``; the tests create them.

When a configuration dataclass gains a key, :func:`test_every_configuration_key_is_documented` names it
(``section.path.key``); add it, with a one-line explanation, to the right block of the example file.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Set, Tuple, Union

import pytest
import yaml

from fedcloud_site import cli
from fedcloud_site.cloud import backend_class, backend_names
from fedcloud_site.config import (
    CloudSettings,
    LoggingSettings,
    SiteSettings,
    VOSettings,
    load_config,
)
from fedcloud_site.errors import ConfigError
from fedcloud_site.images.settings import Settings as ImagesSettings
from fedcloud_site.registry import daemon_names, section_schemas
from fedcloud_site.schema import Secret

EXAMPLE = Path(__file__).resolve().parents[2] / "etc" / "fedcloud-site" / "fedcloud-site.yaml"
#: where the examples keep secrets; the tests move this directory under tmp_path
CONFIG_DIR = "/etc/fedcloud-site/"

_START = re.compile(r"^(?P<indent> *)# --- example: (?P<name>[a-z0-9][a-z0-9-]*)(?P<rest>.*)$")
_END = re.compile(r"^(?P<indent> *)# --- end\b")
_NEEDS = re.compile(r"^\s*\(needs: (?P<needs>[a-z0-9, -]+)\)")
_COMMENT = re.compile(r"^( *)# ?")
_KEY = re.compile(r"^(?P<indent> *)(?P<dash>- +)?(?P<key>[A-Za-z0-9_][\w.@-]*):(?=\s|$)")

KeyPath = Tuple[str, ...]


# -- reading the example file -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Block:
    """One example block: lines ``start`` (the marker) to ``end`` (the end marker), 0-based."""

    name: str
    needs: Tuple[str, ...]
    start: int
    end: int
    column: int  # of the markers' ``#``


def parse_blocks(lines: List[str]) -> Dict[str, Block]:
    """The example blocks of the file; ValueError naming the line for malformed ones."""
    blocks: Dict[str, Block] = {}
    open_at: Optional[Tuple[int, re.Match[str]]] = None
    for index, line in enumerate(lines):
        start, end = _START.match(line), _END.match(line)
        if start:
            if open_at is not None:
                raise ValueError(f"line {index + 1}: example {start['name']} starts inside example "
                                 f"{open_at[1]['name']} (line {open_at[0] + 1}); close it with '# --- end'")
            open_at = (index, start)
        elif end:
            if open_at is None:
                raise ValueError(f"line {index + 1}: '# --- end' without an example block")
            first, match = open_at
            column = len(match["indent"])
            if len(end["indent"]) != column:
                raise ValueError(f"line {index + 1}: '# --- end' of example {match['name']} is not in the "
                                 f"column of its start marker")
            needs_match = _NEEDS.match(match["rest"])
            needs = tuple(n.strip() for n in needs_match["needs"].split(",")) if needs_match else ()
            if match["name"] in blocks:
                raise ValueError(f"line {first + 1}: a second example named {match['name']}")
            blocks[match["name"]] = Block(match["name"], needs, first, index, column)
            for inner in range(first + 1, index):
                text = lines[inner]
                if text.strip() and not (text[:column].strip() == "" and text[column:column + 1] == "#"
                                         and text[column + 1:column + 2] in ("", " ")):
                    raise ValueError(f"line {inner + 1}: in example {match['name']}, every line must start with "
                                     f"'# ' in column {column + 1} (the column of the block's markers)")
            open_at = None
    if open_at is not None:
        raise ValueError(f"line {open_at[0] + 1}: example {open_at[1]['name']} has no '# --- end'")
    for block in blocks.values():
        for need in block.needs:
            if need not in blocks:
                raise ValueError(f"line {block.start + 1}: example {block.name} needs unknown example {need}")
    return blocks


def with_needs(blocks: Dict[str, Block], name: str) -> List[Block]:
    """The block and, transitively, the blocks it needs."""
    chosen: List[Block] = []
    todo = [name]
    while todo:
        block = blocks[todo.pop()]
        if block not in chosen:
            chosen.append(block)
            todo.extend(block.needs)
    return chosen


def uncomment(lines: List[str], chosen: Iterable[Block]) -> List[str]:
    """The file with the lines of the chosen blocks uncommented in place (markers stay comments)."""
    result = list(lines)
    for block in chosen:
        col = block.column
        for index in range(block.start + 1, block.end):
            text = lines[index]
            result[index] = text[:col] + text[col + 2:] if text.strip() else text
    return result


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe loading that refuses a key given twice in one mapping (PyYAML silently keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Dict[Any, Any]:
        seen: Set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice (an example block repeats a key in force?)",
                    key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def install_example(tmp_path: Path, lines: List[str]) -> Path:
    """Write the (partly uncommented) example as ``<tmp>/etc/fedcloud-site/fedcloud-site.yaml``.

    ``/etc/fedcloud-site/`` becomes that directory, and the files named by ``*_file:`` keys there are created
    with a dummy secret, as an operator would create them.
    """
    conf_dir = tmp_path / "etc" / "fedcloud-site"
    conf_dir.mkdir(parents=True)
    text = "\n".join(lines) + "\n"
    yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader that also refuses repeated keys
    text = text.replace(CONFIG_DIR, f"{conf_dir}/")
    for match in re.finditer(r"^\s*(?:- +)?\w+_file:\s*(\S+)", text, re.M):
        path = Path(match.group(1))
        if path.is_relative_to(conf_dir) and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("example-secret\n", encoding="utf-8")
    config_path = conf_dir / "fedcloud-site.yaml"
    config_path.write_text(text, encoding="utf-8")
    return config_path


# -- what the file documents --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Documented:
    path: KeyPath
    line: int  # 1-based


def _flow_keys(value: Any) -> Iterator[KeyPath]:
    """Keys inside a flow-style value (``ams: {host: x, project: y}``), lists of mappings included."""
    if isinstance(value, dict):
        for key, sub in value.items():
            yield (str(key),)
            for rest in _flow_keys(sub):
                yield (str(key),) + rest
    elif isinstance(value, list):
        for item in value:
            yield from _flow_keys(item)


def documented_keys(lines: List[str]) -> List[Documented]:
    """Every key path the file shows, live or commented (any depth of ``#``), by indentation."""
    found: List[Documented] = []
    stack: List[Tuple[int, str]] = []
    for number, line in enumerate(lines, 1):
        if _START.match(line) or _END.match(line):
            continue
        text = line
        while text.lstrip().startswith("#"):
            text = _COMMENT.sub(r"\1", text, count=1)
        match = _KEY.match(text)
        if not match:
            continue
        indent = len(match["indent"]) + len(match["dash"] or "")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = tuple(key for _, key in stack) + (match["key"],)
        stack.append((indent, match["key"]))
        found.append(Documented(path, number))
        try:
            data = yaml.safe_load(text.strip()[len(match["dash"] or ""):])
        except yaml.YAMLError:
            continue
        if isinstance(data, dict):
            found.extend(Documented(path + sub, number) for sub in _flow_keys(data.get(match["key"])))
    return found


def commented_keys_outside_blocks(lines: List[str], blocks: Dict[str, Block]) -> List[int]:
    """Line numbers (1-based) of commented-out keys that no example block holds."""
    inside = {i for b in blocks.values() for i in range(b.start, b.end + 1)}
    return [number for number, line in enumerate(lines, 1)
            if number - 1 not in inside and line.lstrip().startswith("#")
            and _KEY.match(_COMMENT.sub(r"\1", line, count=1).lstrip())]


# -- what the code accepts ----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Expected:
    """A key of a configuration dataclass. ``*`` in ``path`` stands for any name (a VO, ...)."""

    path: KeyPath
    secret: bool = False  # may be given as ``<key>_file``
    open: bool = False  # a free-form mapping: any keys below it


def _unwrap(tp: Any) -> Any:
    if typing.get_origin(tp) is Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _keys_of_type(tp: Any, path: KeyPath) -> Iterator[Expected]:
    tp = _unwrap(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        yield from dataclass_keys(tp, path)  # type: ignore[arg-type]
    elif origin in (list, List) and dataclasses.is_dataclass(args[0]):
        yield from dataclass_keys(args[0], path)  # type: ignore[arg-type]
    elif origin in (dict, Dict) and dataclasses.is_dataclass(args[1]):
        yield from dataclass_keys(args[1], path + ("*",))  # type: ignore[arg-type]
    else:
        yield Expected(path, secret=tp is Secret, open=origin in (dict, Dict) or tp is Any)


def dataclass_keys(cls: type, path: KeyPath) -> Iterator[Expected]:
    """Every key of a configuration dataclass, nested dataclasses walked (lists of them, mappings to them)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        yield from _keys_of_type(hints[f.name], path + (f.name,))


def expected_keys() -> List[Expected]:
    """The keys of the whole configuration: core sections, every built-in backend, every daemon."""
    keys = list(dataclass_keys(SiteSettings, ("site",)))
    keys += dataclass_keys(VOSettings, ("vos", "*"))
    keys += dataclass_keys(LoggingSettings, ("logging",))
    cloud_keys = {f.name for f in dataclasses.fields(CloudSettings)} - {"options"}  # options = cloud.<backend>
    keys += [Expected(("cloud", name)) for name in sorted(cloud_keys)]
    for backend in [b for b in backend_names() if backend_class(b).__module__.startswith("fedcloud_site.")]:
        keys += dataclass_keys(backend_class(backend).Settings, ("cloud", backend))  # type: ignore[attr-defined]
    for daemon in daemon_names():
        keys += dataclass_keys(section_schemas()[daemon], (daemon,))
    return keys


def _matches(pattern: KeyPath, path: KeyPath) -> bool:
    return len(pattern) == len(path) and all(p in ("*", q) for p, q in zip(pattern, path))


def _spellings(key: Expected) -> List[KeyPath]:
    return [key.path] + ([key.path[:-1] + (key.path[-1] + "_file",)] if key.secret else [])


def missing_keys(expected: List[Expected], found: List[Documented]) -> List[str]:
    """Keys the file does not show, as ``section.path.key``."""
    paths = [d.path for d in found]
    return [".".join("<name>" if p == "*" else p for p in key.path) for key in expected
            if not any(_matches(spelling, path) for spelling in _spellings(key) for path in paths)]


def unknown_keys(expected: List[Expected], found: List[Documented]) -> List[str]:
    """Keys the file shows that no dataclass has (renamed keys, or prose that reads ``word: ...``)."""
    def known(path: KeyPath) -> bool:
        for key in expected:
            for spelling in _spellings(key):
                if _matches(spelling, path):
                    return True
                if len(path) < len(spelling) and _matches(spelling[:len(path)], path):
                    return True  # a section or an intermediate mapping
                if key.open and len(path) > len(spelling) and _matches(spelling, path[:len(spelling)]):
                    return True  # inside a free-form mapping
        return False

    return [f"line {d.line}: {'.'.join(d.path)}" for d in found if not known(d.path)]


# -- fixtures ---------------------------------------------------------------------------------------------
EXAMPLE_LINES = EXAMPLE.read_text(encoding="utf-8").splitlines()


def _block_names() -> List[str]:
    try:
        return sorted(parse_blocks(EXAMPLE_LINES))
    except ValueError:
        return []  # test_example_blocks_are_well_formed reports it


# -- the example file ---------------------------------------------------------------------------------------
def test_example_configuration_passes_check_config_as_installed(capsys):
    assert cli.main(["--config", str(EXAMPLE), "check-config"]) == 0
    assert capsys.readouterr().out.startswith(f"# configuration OK: {EXAMPLE}")


def test_example_blocks_are_well_formed():
    blocks = parse_blocks(EXAMPLE_LINES)
    assert {"openstack-password", "openstack-application-credential", "opennebula", "ssm-ams",
            "images-appdb", "perun-rpc"} <= set(blocks)


def test_every_configuration_key_is_documented():
    missing = missing_keys(expected_keys(), documented_keys(EXAMPLE_LINES))
    assert not missing, (
        f"{EXAMPLE} does not document these keys (add each, with a one-line explanation, to an example block "
        f"of its section):\n  " + "\n  ".join(missing))


def test_the_example_shows_no_key_that_does_not_exist():
    unknown = unknown_keys(expected_keys(), documented_keys(EXAMPLE_LINES))
    assert not unknown, (f"{EXAMPLE} shows keys no configuration dataclass has (renamed? or a prose comment "
                         f"starting with 'word:'):\n  " + "\n  ".join(unknown))


def test_commented_out_keys_sit_in_example_blocks():
    stray = commented_keys_outside_blocks(EXAMPLE_LINES, parse_blocks(EXAMPLE_LINES))
    assert not stray, (f"{EXAMPLE}: commented-out keys outside '# --- example:' blocks (their values would not "
                       f"be checked): lines {stray}")


def test_the_example_as_installed_loads(tmp_path):
    config = load_config(install_example(tmp_path, EXAMPLE_LINES))
    assert config.site.name == "EXAMPLE-SITE" and config.cloud.backend == "static"


@pytest.mark.parametrize("name", _block_names())
def test_example_block_is_valid_configuration_once_uncommented(tmp_path, name):
    blocks = parse_blocks(EXAMPLE_LINES)
    chosen = with_needs(blocks, name)
    try:
        path = install_example(tmp_path, uncomment(EXAMPLE_LINES, chosen))
        load_config(path)
    except (ConfigError, yaml.YAMLError) as exc:
        pytest.fail(f"example {name} (with {', '.join(b.name for b in chosen)}) uncommented: {exc}")


#: blocks an OpenStack site would enable together (one per alternative), and an OpenNebula site
FULL_SITES = {
    "openstack": ["site-details", "vos", "openstack-application-credential", "logging-file", "accounting-options",
                  "ssm-options", "ssm-queue", "ssm-ams", "cloudinfo-options", "cloudinfo-endpoint",
                  "cloudinfo-manager", "cloudinfo-ams", "images-options", "images-appdb", "images-hooks",
                  "perun-options", "perun-push"],
    "opennebula": ["site-details", "vos", "opennebula", "ssm-queues", "ssm-stomp", "images-appdb",
                   "images-opennebula", "perun-rpc"],
}


@pytest.mark.parametrize("site", sorted(FULL_SITES))
def test_compatible_example_blocks_load_together(tmp_path, site):
    blocks = parse_blocks(EXAMPLE_LINES)
    config = load_config(install_example(tmp_path, uncomment(EXAMPLE_LINES, [blocks[n] for n in FULL_SITES[site]])))
    assert config.cloud.backend == site
    assert config.vos and config.section(ImagesSettings).subscriptions


def test_example_lines_stay_readable():
    long_lines = [number for number, line in enumerate(EXAMPLE_LINES, 1) if len(line) > 110 or "\t" in line]
    assert not long_lines, f"{EXAMPLE}: lines longer than 110 characters or with tabs: {long_lines}"


# -- the checks themselves can fail -------------------------------------------------------------------------
def test_a_key_missing_from_the_example_is_named_by_its_path():
    lines = [line for line in EXAMPLE_LINES if not re.match(r"^\s*#?\s*window:", line)]
    assert "ssm.window" in missing_keys(expected_keys(), documented_keys(lines))


def test_a_renamed_key_in_a_comment_is_reported():
    lines = [re.sub(r"^(\s*#\s*)window:", r"\1windwo:", line) for line in EXAMPLE_LINES]
    assert any(entry.endswith(": ssm.windwo") for entry in unknown_keys(expected_keys(), documented_keys(lines)))


def test_keys_of_nested_sections_and_vo_entries_are_walked():
    paths = {key.path for key in expected_keys()}
    assert ("vos", "*", "projects") in paths
    assert ("images", "subscriptions", "filter", "os") in paths
    assert ("perun", "vos", "*", "quota", "ram_mb") in paths
    assert ("cloud", "openstack", "application_credential_secret") in paths


def test_uncommenting_keeps_the_block_indentation():
    lines = ["ssm:", "  interval: 5m", "  # --- example: t", "  # ams:", "  #   port: 443", "  #", "  # --- end"]
    block = parse_blocks(lines)["t"]
    assert uncomment(lines, [block])[3:6] == ["  ams:", "    port: 443", "  "]


def test_a_block_line_out_of_the_marker_column_is_refused():
    lines = ["ssm:", "  # --- example: t", "# ams:", "  # --- end"]
    with pytest.raises(ValueError, match="line 3: in example t"):
        parse_blocks(lines)


def test_a_block_repeating_a_key_in_force_is_refused(tmp_path):
    lines = ["site: {name: X}", "ssm:", "  interval: 5m", "  # --- example: t", "  # interval: 1h", "  # --- end"]
    with pytest.raises(yaml.YAMLError, match="given twice"):
        install_example(tmp_path, uncomment(lines, parse_blocks(lines).values()))


def test_a_block_with_a_wrong_value_fails_to_load(tmp_path):
    lines = [re.sub(r"^(\s*# +window:) *\d+", r"\1 many", line) for line in EXAMPLE_LINES]
    blocks = parse_blocks(lines)
    holder = next(b for b in blocks.values() if any("window: many" in x for x in lines[b.start:b.end]))
    with pytest.raises(ConfigError, match="window: expected an integer"):
        load_config(install_example(tmp_path, uncomment(lines, with_needs(blocks, holder.name))))
