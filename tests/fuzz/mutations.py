"""Hypothesis strategies for notification fuzzing: random headers and bodies, byte- and
field-level mutations of a genuine notification, and content mutations to be signed again.

Mutations are drawn as lists of small operations and applied to the genuine message, so that
they shrink well and an explicit `@example` can name one."""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import parse_qsl, urlencode

from hypothesis import strategies as st

from tests.fuzz.gateways import Headers, Signed

HUGE = 200_000
"""Characters of a huge value: large, yet far inside the 1 MiB body limit."""

JSON_BOMB = b"[" * 100_000
"""A JSON nesting bomb within the body limit (Python's json gives up with RecursionError)."""

LATIN_1 = st.characters(codec="latin-1")
"""What an HTTP header value can carry (Starlette decodes header bytes as latin-1)."""

TRICKY_STRINGS = (
    "",
    " ",
    "²",
    "١٢٣",
    "9" * 5000,
    "-1",
    "0",
    "1e400",
    "NaN",
    "null",
    "0001-01-01 00:00:00",
    "9999-12-31 23:59:59",
    "0001-01-01T00:00:00+08:00",
    "9999-12-31T23:59:59-08:00",
    "00010101000000",
    "%FF%FE",
    "\\ud800",
    "\x00",
    "a\r\nb",
    "x" * HUGE,
)
"""Values that break naive parsers: Unicode digits, beyond int()'s 4300-digit limit, the edges
of datetime, control characters, huge."""

CODECS = (
    "utf-8",
    "gbk",
    "gb18030",
    "latin-1",
    "utf-16",
    "utf-7",
    "raw_unicode_escape",
    "unicode_escape",
    "idna",
    "punycode",
    "base64",
    "rot13",
    "zlib",
    "no-such-codec",
    "",
)
"""`charset` values: real ones, ones that decode to lone surrogates, codecs that are not text
encodings, and nonsense."""

header_values = st.one_of(
    st.text(LATIN_1, max_size=80),
    st.sampled_from([s for s in TRICKY_STRINGS if len(s) < 10_000]),
    st.from_regex(r"t=[0-9²³¹]{1,12},v1=[0-9a-f]{0,64}", fullmatch=True),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
)

text_values = st.one_of(
    st.text(st.characters(exclude_categories=["Cs"]), max_size=40),
    st.sampled_from(TRICKY_STRINGS),
)
"""Form values: anything a form can carry (no lone surrogates: a form is bytes)."""

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(),
    st.text(max_size=30),
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3),
    st.sampled_from(TRICKY_STRINGS),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
"""Any JSON value, weird ones included (huge numbers, NaN, lone surrogates)."""


def random_headers(names: tuple[str, ...]) -> st.SearchStrategy[Headers]:
    """Random headers, mostly the ones this gateway's verification reads."""
    name = st.one_of(
        st.sampled_from((*names, "content-type")) if names else st.just("content-type"),
        st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=12),
    )
    return st.dictionaries(name, header_values, max_size=6)


random_bodies = st.one_of(
    st.binary(max_size=512),
    st.text(max_size=200).map(str.encode),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.dictionaries(st.text(max_size=10), text_values, max_size=6).map(
        lambda fields: urlencode(fields).encode()
    ),
    st.sampled_from([JSON_BOMB, b'{"a":' * 50_000, b"\xff\xfe" * 100]),
)


# Mutations of a genuine notification, without signing it again ------------------------------

byte_ops = st.lists(
    st.tuples(
        st.sampled_from(["flip", "truncate", "insert", "duplicate", "invalid_utf8"]),
        st.integers(min_value=0, max_value=1 << 16),
        st.binary(min_size=1, max_size=8),
    ),
    min_size=1,
    max_size=3,
)


def apply_byte_ops(body: bytes, ops: list[tuple[str, int, bytes]]) -> bytes:
    for op, position, data in ops:
        at = position % (len(body) + 1)
        if op == "flip" and body:
            at %= len(body)
            body = body[:at] + bytes([body[at] ^ (data[0] or 1)]) + body[at + 1 :]
        elif op == "truncate":
            body = body[:at]
        elif op == "insert":
            body = body[:at] + data + body[at:]
        elif op == "duplicate":
            body = body[:at] + body[at : at + len(data) * 8] * 2 + body[at + len(data) * 8 :]
        elif op == "invalid_utf8":
            body = body[:at] + b"\xc3\x28\xff" + body[at:]
    return body


header_ops = st.lists(
    st.tuples(
        st.sampled_from(["drop", "set", "add", "upper"]),
        st.integers(min_value=0, max_value=100),
        header_values,
    ),
    max_size=3,
)


def apply_header_ops(headers: Headers, ops: list[tuple[str, int, str]]) -> Headers:
    result = dict(headers)
    for op, index, value in ops:
        names = sorted(result)
        name = names[index % len(names)] if names else "x-fuzz"
        if op == "drop":
            result.pop(name, None)
        elif op == "set":
            result[name] = value
        elif op == "add":
            result[f"x-fuzz-{index}"] = value
        elif op == "upper":
            result[name.upper()] = result.pop(name, value)
    return result


form_ops = st.lists(
    st.tuples(
        st.sampled_from(["drop", "set", "add", "repeat", "charset", "reorder"]),
        st.integers(min_value=0, max_value=1000),
        text_values,
        st.sampled_from(CODECS),
    ),
    min_size=1,
    max_size=4,
)


def apply_form_ops(
    fields: list[tuple[str, str]], ops: list[tuple[str, int, str, str]]
) -> tuple[list[tuple[str, str]], str]:
    """The fields after the operations, and the codec to encode them in."""
    fields, codec = list(fields), "utf-8"
    for op, index, value, charset in ops:
        at = index % len(fields) if fields else 0
        if op == "drop" and fields:
            del fields[at]
        elif op == "set" and fields:
            fields[at] = (fields[at][0], value)
        elif op == "add":
            fields.insert(at, (value[:20] or "x", value))
        elif op == "repeat" and fields:
            fields.insert(at, fields[at])
        elif op == "charset":
            fields = [(k, v) for k, v in fields if k != "charset"] + [("charset", charset)]
            codec = charset
        elif op == "reorder":
            fields = fields[at:] + fields[:at]
    return fields, codec


def encode_form(fields: list[tuple[str, str]], codec: str) -> bytes:
    try:
        return urlencode(fields, encoding=codec or "utf-8", errors="strict").encode("ascii")
    except (LookupError, UnicodeError, TypeError, ValueError):
        return urlencode(fields).encode("ascii")


def form_fields(body: bytes) -> list[tuple[str, str]]:
    return parse_qsl(body.decode("ascii"), keep_blank_values=True)


json_ops = st.lists(
    st.tuples(
        st.sampled_from(["set", "delete", "add", "wrap"]),
        st.integers(min_value=0, max_value=1000),
        json_values,
        st.text(max_size=8),
    ),
    min_size=1,
    max_size=4,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def apply_json_ops(document: Any, ops: list[tuple[str, int, Any, str]]) -> Any:
    """The document after the operations (on a copy): set, delete or add a member anywhere."""
    document = copy.deepcopy(document)
    for op, index, value, key in ops:
        # Deepest first: small indices (which Hypothesis prefers) reach the leaves.
        paths = sorted(_paths(document), key=len, reverse=True)
        path = paths[index % len(paths)]
        if not path:
            document = value if op in ("set", "wrap") else document
            continue
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        last = path[-1]
        if op == "set":
            parent[last] = value
        elif op == "delete":
            del parent[last]
        elif op == "add" and isinstance(parent[last], dict):
            parent[last][key] = value
        elif op == "wrap":
            parent[last] = [parent[last]] if index % 2 else {key: parent[last]}
    return document


def mutated_unsigned(signed: Signed) -> st.SearchStrategy[tuple[Headers, bytes]]:
    """The genuine notification, changed after it was signed (bytes, fields or headers)."""
    headers, body = signed.valid()
    as_bytes = st.tuples(byte_ops, header_ops).map(
        lambda ops: (apply_header_ops(headers, ops[1]), apply_byte_ops(body, ops[0]))
    )
    if signed.form:
        structural = st.tuples(form_ops, header_ops).map(
            lambda ops: (
                apply_header_ops(headers, ops[1]),
                encode_form(*apply_form_ops(form_fields(body), ops[0])),
            )
        )
    else:
        structural = st.tuples(json_ops, header_ops).map(
            lambda ops: (
                apply_header_ops(headers, ops[1]),
                json.dumps(apply_json_ops(json.loads(body), ops[0])).encode(),
            )
        )
    headers_only = header_ops.map(lambda ops: (apply_header_ops(headers, ops), body))
    return st.one_of(as_bytes, structural, headers_only)


TRICKY_JSON = (
    *TRICKY_STRINGS,
    "\ud800",
    10**30,
    -(10**30),
    -1,
    0,
    2**63,
    1e308,
    float("nan"),
    True,
    None,
    [],
    {},
    [{}],
)


def set_at(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of the document with the member at `path` set to `value`."""
    document = copy.deepcopy(document)
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return document


def pointed_content(signed: Signed) -> st.SearchStrategy[Any]:
    """One field of the genuine content set to one tricky value (each pair equally likely)."""
    if signed.form:
        names = sorted(signed.content)
        return st.tuples(st.sampled_from(names), st.sampled_from(TRICKY_STRINGS)).map(
            lambda pair: {**signed.content, pair[0]: pair[1]}
        )
    paths = [path for path in _paths(signed.content) if path]
    return st.tuples(st.sampled_from(paths), st.sampled_from(TRICKY_JSON)).map(
        lambda pair: set_at(signed.content, *pair)
    )


def every_tricky_field(signed: Signed) -> list[Any]:
    """The genuine content with each field in turn set to each tricky value (a sweep)."""
    if signed.form:
        return [
            {**signed.content, name: value}
            for name in sorted(signed.content)
            for value in TRICKY_STRINGS
        ]
    paths = [path for path in _paths(signed.content) if path]
    return [set_at(signed.content, path, value) for path in paths for value in TRICKY_JSON]


def mutated_content(signed: Signed) -> st.SearchStrategy[Any]:
    """Content like the genuine one, to be signed again: what the parser behind the signature
    must survive. JSON content may also become raw bytes (a bomb, or not UTF-8)."""
    if signed.form:
        fields = list(signed.content.items())
        return st.one_of(
            pointed_content(signed),
            form_ops.map(lambda ops: dict(apply_form_ops(fields, ops)[0])),
        )
    return st.one_of(
        pointed_content(signed),
        json_ops.map(lambda ops: apply_json_ops(signed.content, ops)),
        st.sampled_from([JSON_BOMB, b'{"id": "\xff\xfe"}', b"not json"]),
    )
