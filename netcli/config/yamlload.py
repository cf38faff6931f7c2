"""Load YAML keeping the line of every mapping key and list item.

Mappings become `LDict` (a dict with `.loc` and `.key_locs`), sequences `LList` (a list with
`.loc` and `.item_locs`); scalars are plain Python values resolved as PyYAML's safe loader does.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import yaml

from ..errors import ConfigError


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


class _Constructor(yaml.constructor.SafeConstructor):
    pass


def _convert(node, constructor, file):
    loc = Loc(file, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out = LDict()
        out.loc, out.key_locs = loc, {}
        constructor.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node, deep=True)
            kloc = Loc(file, key_node.start_mark.line + 1)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                raise ConfigError(f"{kloc}: mapping key must be a plain name, got {key!r}")
            key = str(key)
            if key in out:
                raise ConfigError(f"{kloc}: key '{key}' appears twice in the same mapping "
                                  f"(first at line {out.key_locs[key].line})")
            out[key] = _convert(value_node, constructor, file)
            out.key_locs[key] = kloc
        return out
    if isinstance(node, yaml.SequenceNode):
        out = LList()
        out.loc, out.item_locs = loc, []
        for item in node.value:
            out.append(_convert(item, constructor, file))
            out.item_locs.append(Loc(file, item.start_mark.line + 1))
        return out
    return constructor.construct_object(node, deep=True)


def load_yaml(path: str | os.PathLike, text: str | None = None):
    """Parse a YAML file (or `text`, reported as `path`) into LDict/LList/scalars."""
    path = os.fspath(path)
    if text is None:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except OSError as e:
            raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        raise ConfigError(f"{where}: YAML syntax error: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: YAML error: {e}") from None
    if node is None:
        raise ConfigError(f"{path}: the file is empty")
    return _convert(node, _Constructor(), path)
