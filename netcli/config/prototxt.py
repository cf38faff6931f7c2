"""Protocol buffers' text format (Caffe's .prototxt) -> the same trees as YAML (yamlload.LDict,
LList, scalars, each with its line). Writing: prototxt_write.py.

The reader needs no schema: a field written once is a value, a field written several times (or
as `[a, b]`) a list; the typed messages of netcli/config check the tree as they check YAML, so a
mistake gets the same file:line:layer:field line and did-you-mean. Identifiers (enum values such
as MAX or TRAIN) become strings, `true`/`false` booleans, numbers ints or floats.

Old net files are brought to the current form by prototxt_upgrade.upgrade_net (Caffe's upgrade_proto).
"""
from __future__ import annotations

import math
import os
import re

from ..errors import ConfigError
from .yamlload import LDict, LList, Loc, MAX_DEPTH, MAX_NODES, config_text

EXTENSIONS = (".prototxt", ".pbtxt", ".prototext", ".pt")

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\f\v]+) | (?P<newline>\n) | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>-?(?:0[xX][0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?[fF]?)(?![\w.]))
  | (?P<ident>-?[A-Za-z_][\w.]*)
  | (?P<symbol>[{}<>:\[\],;])
""", re.VERBOSE)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
            "\\": "\\", "'": "'", '"': '"', "?": "?"}
_CLOSE = {"{": "}", "<": ">"}
_WORD = re.compile(r"[-+.\w]+")          # what a bad number or name runs to, for the message
INT_RANGE = (-2 ** 63, 2 ** 64 - 1)     # protobuf's int64 and uint64
# The sniff's patterns. Each is linear in the text: a line's leading blanks never run on into the
# next line (where the search would scan them again from every blank line), and no two adjacent
# parts can match the same characters.
_BLOCK_LINE = re.compile(r"^[^\S\n]*[A-Za-z_]\w*\s*(?::\s*)?[{<][^\S\n]*(?:#.*)?$", re.MULTILINE)
_LIST_LINE = re.compile(r"^[^\S\n]*-\s", re.MULTILINE)


def is_prototxt(path, text=None):
    """By extension; for other names, by content: YAML has no `name {` opening a block."""
    if os.fspath(path).lower().endswith(EXTENSIONS):
        return True
    if os.fspath(path).lower().endswith((".yaml", ".yml")) or text is None:
        return False
    return _BLOCK_LINE.search(text) is not None and _LIST_LINE.search(text) is None


def load_prototxt(path, text=None):
    """Parse a text-format file (or `text`, reported as `path`) into LDict/LList/scalars."""
    path = os.fspath(path)
    return _Parser(path, config_text(path, text)).document()


class _Parser:
    def __init__(self, path, text):
        self.path = path
        self.tokens = []          # (kind, text, line)
        line = 1
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                word = _WORD.match(text, pos)
                if word is None:
                    raise ConfigError(f"{path}:{line}: prototxt syntax error: unexpected character {text[pos]!r}")
                shown = word.group() if len(word.group()) <= 40 else f"{word.group()[:30]}... ({len(word.group())} characters)"
                raise ConfigError(f"{path}:{line}: prototxt syntax error: {shown!r} is neither a number nor a name")
            kind = m.lastgroup
            if kind == "newline":
                line += 1
            elif kind not in ("space", "comment"):
                self.tokens.append((kind, m.group(), line))
            pos = m.end()
        self.tokens.append(("end", "", line))
        self.i = 0
        self.nodes = 0

    # -- tokens ------------------------------------------------------------------------------
    def peek(self):
        return self.tokens[self.i]

    def take(self):
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, tok, expected):
        got = "the end of the file" if tok[0] == "end" else repr(tok[1])
        raise ConfigError(f"{self.path}:{tok[2]}: prototxt syntax error: expected {expected}, got {got}")

    # -- grammar -----------------------------------------------------------------------------
    def document(self):
        tree = self.message(None, 0, 1)
        if not tree:
            raise ConfigError(f"{self.path}: the file is empty")
        return tree

    def message(self, close, depth, line):
        if depth > MAX_DEPTH:
            raise ConfigError(f"{self.path}:{line}: nested more than {MAX_DEPTH} levels deep")
        out = LDict()
        out.loc, out.key_locs = Loc(self.path, line), {}
        repeated = set()
        while True:
            tok = self.take()
            if tok[0] == "end" and close is None:
                return out
            if tok[0] == "symbol" and tok[1] == close:
                return out
            if tok[0] != "ident" or tok[1].startswith("-"):
                self.fail(tok, f"a field name or '{close}'" if close else "a field name")
            name, loc = tok[1], Loc(self.path, tok[2])
            colon = self.peek()[1] == ":" and self.peek()[0] == "symbol"
            if colon:
                self.take()
            nxt = self.peek()
            if nxt[0] == "symbol" and nxt[1] == "[":
                self.take()
                values = LList()
                values.loc, values.item_locs = loc, []
                while not (self.peek()[0] == "symbol" and self.peek()[1] == "]"):
                    values.append(self.value(depth, colon, name))
                    values.item_locs.append(Loc(self.path, self.tokens[self.i - 1][2]))
                    if self.peek()[1] == ",":
                        self.take()
                    elif not (self.peek()[0] == "symbol" and self.peek()[1] == "]"):
                        self.fail(self.peek(), "',' or ']'")
                self.take()
                for v, vloc in zip(values, values.item_locs):
                    self.add(out, repeated, name, v, vloc, True)
                if not values:
                    self.add_empty(out, repeated, name, loc)
            else:
                self.add(out, repeated, name, self.value(depth, colon, name), loc, False)
            if self.peek()[0] == "symbol" and self.peek()[1] in ",;":
                self.take()

    def value(self, depth, colon, name):
        tok = self.peek()
        if tok[0] == "symbol" and tok[1] in _CLOSE:
            self.take()
            return self.message(_CLOSE[tok[1]], depth + 1, tok[2])
        if not colon:
            self.fail(tok, "':' or '{'")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ConfigError(f"{self.path}:{tok[2]}: more than {MAX_NODES:,} values; netcli refuses files this large")
        self.take()
        if tok[0] == "string":
            text = _unquote(tok[1], self.path, tok[2])
            while self.peek()[0] == "string":           # adjacent strings are one string
                text += _unquote(self.take()[1], self.path, tok[2])
            return text
        if tok[0] == "number":
            try:
                return _number(tok[1])
            except ValueError as e:
                raise ConfigError(f"{self.path}:{tok[2]}: field '{name}': {e}") from None
        if tok[0] == "ident":
            word = tok[1]
            sign, bare = (-1.0, word[1:]) if word.startswith("-") else (1.0, word)
            low = bare.lower()
            if low in ("inf", "infinity", "inff", "infinityf"):
                return sign * math.inf
            if low in ("nan", "nanf"):
                return math.nan
            if sign > 0 and word in ("true", "True", "t"):
                return True
            if sign > 0 and word in ("false", "False", "f"):
                return False
            if sign < 0:
                self.fail(tok, "a number after '-'")
            return word
        self.fail(tok, "a value")

    @staticmethod
    def add(out, repeated, name, value, loc, from_list):
        if name not in out:
            out.key_locs[name] = loc
            if from_list:
                items = LList([value])
                items.loc, items.item_locs = loc, [loc]
                out[name] = items
                repeated.add(name)
            else:
                out[name] = value
            return
        if name not in repeated:
            items = LList([out[name]])
            items.loc, items.item_locs = out.key_locs[name], [out.key_locs[name]]
            out[name] = items
            repeated.add(name)
        out[name].append(value)
        out[name].item_locs.append(loc)

    @staticmethod
    def add_empty(out, repeated, name, loc):
        if name not in out:
            items = LList()
            items.loc, items.item_locs = loc, []
            out[name], out.key_locs[name] = items, loc
            repeated.add(name)


def _number(text):
    """An int (at most 64 bits, as protobuf's integers: ValueError beyond, before converting
    a number of any length) or a float."""
    body = text[:-1] if text[-1] in "fF" and not text.lower().startswith(("0x", "-0x")) else text
    hexed = re.fullmatch(r"-?0[xX][0-9a-fA-F]+", body)
    if not hexed and not re.fullmatch(r"-?\d+", body):
        return float(body)
    digits = body.lstrip("-")[2 if hexed else 0:].lstrip("0")
    value = None if len(digits) > (16 if hexed else 20) else int(body, 16 if hexed else 10)
    if value is None or not INT_RANGE[0] <= value <= INT_RANGE[1]:
        shown = body if len(body) <= 24 else f"{body[:12]}... ({len(digits)} {'hex ' if hexed else ''}digits)"
        raise ValueError(f"the integer {shown} is out of range: prototxt integers have at most 64 bits")
    return value


def _unquote(text, path, line):
    body, k = text[1:-1], 0
    raw = bytearray()
    while k < len(body):
        c = body[k]
        if c != "\\":
            raw += c.encode("utf-8")
            k += 1
            continue
        k += 1
        e = body[k]
        if e in _ESCAPES:
            raw += _ESCAPES[e].encode()
            k += 1
        elif e in "xX":
            m = re.match(r"[0-9a-fA-F]{1,2}", body[k + 1:])
            if not m:
                raise ConfigError(f"{path}:{line}: prototxt syntax error: bad escape '\\{e}' in a string")
            raw.append(int(m.group(), 16))
            k += 1 + len(m.group())
        elif e in "01234567":
            m = re.match(r"[0-7]{1,3}", body[k:])
            raw.append(int(m.group(), 8) & 0xFF)
            k += len(m.group())
        else:
            raise ConfigError(f"{path}:{line}: prototxt syntax error: bad escape '\\{e}' in a string")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}:{line}: a string is not UTF-8 after its escapes") from None
