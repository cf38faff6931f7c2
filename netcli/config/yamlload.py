"""Load YAML keeping the line of every mapping key and list item.

Mappings become `LDict` (a dict with `.loc` and `.key_locs`), sequences `LList` (a list with
`.loc` and `.item_locs`); scalars are plain Python values resolved as PyYAML's safe loader does.

A config is read defensively, and every problem is one ConfigError naming the file and line:
files over MAX_BYTES, text that is not UTF-8, nesting deeper than MAX_DEPTH, tags other than
YAML's standard scalar and collection tags, merge keys (`<<`), recursive aliases, and aliases that
expand past MAX_NODES values (a "billion laughs" file) are refused before they cost memory or time.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import yaml

from ..errors import ConfigError

MAX_BYTES = 16 * 2 ** 20      # a config file; the largest real nets are well under 1 MB
MAX_DEPTH = 64                # nested mappings and lists
MAX_NODES = 200_000           # values after expanding aliases (a 1,000-layer net has ~50,000)
STANDARD_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")}
MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Loc:
    file: str
    line: int  # 1-based

    def __str__(self):
        return f"{self.file}:{self.line}"


class LDict(dict):
    loc: Loc
    key_locs: dict


class LList(list):
    loc: Loc
    item_locs: list


class _Reader:
    """One pass over a composed document: locations, limits, and scalars through PyYAML's safe
    constructor (its own errors become ConfigErrors with the line)."""

    def __init__(self, file):
        self.file = file
        self.nodes = 0
        self.path: set[int] = set()         # ids of the collection nodes being converted (recursion)
        self.constructor = yaml.constructor.SafeConstructor()

    def loc(self, node):
        return Loc(self.file, node.start_mark.line + 1)

    def convert(self, node):
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ConfigError(f"{self.loc(node)}: the file expands to more than {MAX_NODES:,} values "
                              "(through aliases?); netcli refuses files this large")
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if id(node) in self.path:
            raise ConfigError(f"{self.loc(node)}: a recursive alias (a list or mapping that contains itself)")
        self.path.add(id(node))
        try:
            return self.mapping(node) if isinstance(node, yaml.MappingNode) else self.sequence(node)
        finally:
            self.path.discard(id(node))

    def scalar(self, node):
        if node.tag not in STANDARD_TAGS and not _implicit(node):
            raise ConfigError(f"{self.loc(node)}: YAML tag '{_short(node.tag)}' is not accepted "
                              "(only !!str, !!int, !!float, !!bool, !!null)")
        try:
            return self.constructor.construct_object(node, deep=True)
        except (ValueError, KeyError, TypeError, OverflowError, IndexError, AttributeError, yaml.YAMLError) as e:
            what = f" as {_short(node.tag)}" if node.tag in STANDARD_TAGS else ""
            reason = str(e).splitlines()[0] if isinstance(e, ValueError) else type(e).__name__
            shown = node.value if len(node.value) <= 40 else node.value[:37] + "..."
            raise ConfigError(f"{self.loc(node)}: cannot read {shown!r}{what} ({reason[:120]})") from None

    def mapping(self, node):
        if node.tag not in STANDARD_TAGS:
            raise ConfigError(f"{self.loc(node)}: YAML tag '{_short(node.tag)}' is not accepted on a mapping")
        out = LDict()
        out.loc, out.key_locs = self.loc(node), {}
        for key_node, value_node in node.value:
            kloc = self.loc(key_node)
            if key_node.tag == MERGE_TAG:
                raise ConfigError(f"{kloc}: merge keys ('<<') are not supported; write the fields out")
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(f"{kloc}: mapping key must be a plain name, got a "
                                  f"{'list' if isinstance(key_node, yaml.SequenceNode) else 'mapping'}")
            key = self.scalar(key_node)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise ConfigError(f"{kloc}: mapping key must be a plain name, got {key!r}")
            key = str(key)
            if key in out:
                raise ConfigError(f"{kloc}: key '{key}' appears twice in the same mapping "
                                  f"(first at line {out.key_locs[key].line})")
            out[key] = self.convert(value_node)
            out.key_locs[key] = kloc
        return out

    def sequence(self, node):
        if node.tag not in STANDARD_TAGS:
            raise ConfigError(f"{self.loc(node)}: YAML tag '{_short(node.tag)}' is not accepted on a list")
        out = LList()
        out.loc, out.item_locs = self.loc(node), []
        for item in node.value:
            out.append(self.convert(item))
            out.item_locs.append(self.loc(item))
        return out


def _implicit(node):
    """A plain scalar whose tag the resolver chose (no explicit tag written): always accepted
    (timestamps, for example, then fail the field's type check with the line)."""
    return node.tag.startswith("tag:yaml.org,2002:") and node.tag != MERGE_TAG and \
        node.tag.rsplit(":", 1)[1] in ("timestamp", "value", "yaml") and node.style is None


def _short(tag):
    return "!!" + tag[len("tag:yaml.org,2002:"):] if tag.startswith("tag:yaml.org,2002:") else tag


def _read_text(path):
    from ..errors import NetcliError
    from .paths import read_start
    try:
        size, raw = read_start(path, "config file", MAX_BYTES + 1)
    except NetcliError as e:
        raise ConfigError(str(e)) from None
    if size > MAX_BYTES:
        raise ConfigError(f"{path}: {size / 2 ** 20:.1f} MB is too large for a config file "
                          f"(netcli reads up to {MAX_BYTES // 2 ** 20} MB)")
    return _decode(raw, path)


def _decode(raw: bytes, path):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x}); save the file as UTF-8") from None


def _check_shape(text, path):
    """Nesting depth and tags from the event stream (PyYAML's parser is not recursive, its
    composer is): refuse what would exhaust the stack before composing."""
    depth = 0
    for ev in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise ConfigError(f"{path}:{ev.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep")
        elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def config_text(path, text=None):
    """The text of a config file (or `text`, reported as `path`): UTF-8, at most MAX_BYTES."""
    if text is None:
        return _read_text(path)
    if isinstance(text, bytes):
        text = _decode(text, path)
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{path}: too large for a config file (netcli reads up to {MAX_BYTES // 2 ** 20} MB)")
    return text


def load_yaml(path: str | os.PathLike, text: str | bytes | None = None):
    """Parse a YAML file (or `text`, reported as `path`) into LDict/LList/scalars."""
    path = os.fspath(path)
    text = config_text(path, text)
    try:
        _check_shape(text, path)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        raise ConfigError(f"{where}: YAML syntax error: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: YAML error: {' '.join(str(e).split())}") from None
    if node is None:
        raise ConfigError(f"{path}: the file is empty")
    tree = _Reader(path).convert(node)
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}:{node.start_mark.line + 1}: the file must hold a mapping of fields "
                          f"(name: value), got {'a list' if isinstance(tree, list) else repr(tree)}")
    return tree
