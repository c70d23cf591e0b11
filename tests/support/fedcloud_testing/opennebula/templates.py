"""OpenNebula template attributes: parsing what clients send, rendering what oned answers.

A template is an ordered mapping ``NAME -> value`` where a value is a string
(single attribute), a dict of strings (vector attribute ``NAME=[A="1", B="2"]``)
or a list of those when the name repeats.  Names are upper-cased as oned does.
Clients send templates in the text syntax (``NAME = "value"``, values quoted with
``\\"`` escapes, ``#`` comments) or as XML (``<TEMPLATE><NAME><![CDATA[..]]></NAME>...``).
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterator, List, Tuple, Union
from xml.etree import ElementTree

Value = Union[str, Dict[str, str], List[Any]]
Template = Dict[str, Any]

_NAME = re.compile(r"[A-Za-z0-9_]+")


class TemplateSyntaxError(ValueError):
    """The template text could not be parsed (oned answers ``Parse error: ...``)."""


def add_attribute(template: Template, name: str, value: Any) -> None:
    """Add ``value`` under ``name``; a repeated name turns the value into a list."""
    name = name.upper()
    if name in template:
        current = template[name]
        if isinstance(current, list):
            current.append(value)
        else:
            template[name] = [current, value]
    else:
        template[name] = value


def _tokens(text: str) -> Iterator[Tuple[str, str]]:
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif c == "=":
            j = i + 1
            while j < n and text[j] in " \t":
                j += 1
            if j >= n or text[j] in "\r\n":
                yield "EMPTY", ""  # NAME = <end of line>: an empty value
            else:
                yield c, c
            i = j
        elif c in "[],":
            yield c, c
            i += 1
        elif c == '"':
            j = i + 1
            out = []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n and text[j + 1] == '"':
                    out.append('"')
                    j += 2
                    continue
                out.append(text[j])
                j += 1
            if j >= n:
                raise TemplateSyntaxError("syntax error, unterminated quoted value")
            yield "STRING", "".join(out)
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in ' \t\r\n=[],#"':
                j += 1
            yield "WORD", text[i:j]
            i = j


def parse_text(text: str) -> Template:
    """Parse the text syntax; raises :class:`TemplateSyntaxError`."""
    template: Template = {}
    tokens = list(_tokens(text))
    pos = 0

    def take(*kinds: str) -> Tuple[str, str]:
        nonlocal pos
        if pos >= len(tokens):
            raise TemplateSyntaxError("syntax error, unexpected end of template")
        kind, value = tokens[pos]
        if kind not in kinds:
            raise TemplateSyntaxError(f"syntax error, unexpected {value!r}")
        pos += 1
        return kind, value

    while pos < len(tokens):
        _, name = take("WORD")
        if not _NAME.fullmatch(name):
            raise TemplateSyntaxError(f"syntax error, invalid attribute name {name!r}")
        if take("=", "EMPTY")[0] == "EMPTY":
            add_attribute(template, name, "")
        elif pos < len(tokens) and tokens[pos][0] == "[":
            pos += 1
            vector: Dict[str, str] = {}
            while True:
                kind, sub = take("WORD", "]")
                if kind == "]":
                    break
                take("=")
                _, value = take("WORD", "STRING")
                vector[sub.upper()] = value
                kind, _ = take(",", "]")
                if kind == "]":
                    break
            add_attribute(template, name, vector)
        elif pos < len(tokens) and tokens[pos][0] in ("WORD", "STRING"):
            add_attribute(template, name, tokens[pos][1])
            pos += 1
        else:
            add_attribute(template, name, "")
    return template


def parse_xml(text: str) -> Template:
    """Parse ``<TEMPLATE>...</TEMPLATE>`` (the XML form pyone sends for nested dicts)."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError:
        raise TemplateSyntaxError("XML Template malformed.") from None
    template: Template = {}
    for child in root:
        if len(child):
            add_attribute(template, child.tag, {sub.tag.upper(): sub.text or "" for sub in child})
        else:
            add_attribute(template, child.tag, child.text or "")
    return template


def parse(text: str) -> Template:
    """Text or XML, as ``Template::parse_str_or_xml`` decides (first character ``<``)."""
    if text.startswith("<"):
        return parse_xml(text)
    return parse_text(text)


def merge(base: Template, update: Template) -> Template:
    """``update`` merge mode: attributes in ``update`` replace those of the same name."""
    merged = dict(base)
    merged.update(update)
    return merged


def cdata(value: Any) -> str:
    text = str(value)
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def render(tag: str, template: Template) -> str:
    """``<TAG>`` with each attribute as an element holding CDATA text, as oned writes templates."""
    if not template:
        return f"<{tag}/>"
    parts = [f"<{tag}>"]
    for name, value in template.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                parts.append(f"<{name}>")
                parts.extend(f"<{k}>{cdata(v)}</{k}>" for k, v in item.items())
                parts.append(f"</{name}>")
            else:
                parts.append(f"<{name}>{cdata(item)}</{name}>")
    parts.append(f"</{tag}>")
    return "".join(parts)


def vectors(template: Template, name: str) -> List[Dict[str, str]]:
    """All vector values of ``name`` (DISK, NIC, PCI...)."""
    value = template.get(name)
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, dict)]
