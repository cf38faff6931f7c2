"""Names from untrusted files (layer, blob and net names, labels, paths) made safe to print: a
name with an escape sequence must not reach the terminal as one."""
from __future__ import annotations

import re

# C0 and C1 control characters, DEL, and the Unicode bidirectional controls (which reorder text)
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(m):
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(name, limit=None) -> str:
    """`name` as text with every control character written as \\xNN (\\uNNNN for bidi controls):
    "a\\x1b]0;pwn\\x07" prints as a\\x1b]0;pwn\\x07, never as an escape sequence; cut at `limit`
    characters (with "...") when one is given. Linear in its input."""
    text = str(name)
    if limit is not None and len(text) > limit:
        return _UNSAFE.sub(_escape, text[:limit]) + "..."
    return _UNSAFE.sub(_escape, text)


_UNSAFE_IN_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def safe_text(text) -> str:
    """What the CLI prints (lines, tables, messages): printable() but for newlines and tabs."""
    return _UNSAFE_IN_TEXT.sub(_escape, str(text))
