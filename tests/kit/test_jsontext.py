from __future__ import annotations

import pytest

from knowpay.kit.jsontext import NotJson, parse_json


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": 1',
        b"",
        b'{"amount": ' + b"9" * 5000 + b"}",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a": "\xff"}',
        "\ud800",
    ],
    ids=["syntax", "empty", "5000-digit-int", "too-deep", "not-utf8", "lone-surrogate-text"],
)
def test_every_refusal_of_the_parser_is_not_json(raw: bytes | str) -> None:
    with pytest.raises(NotJson):
        parse_json(raw)


def test_json_is_parsed_as_json_loads_does() -> None:
    assert parse_json(b'{"a": [1, 2.5, "\\u4e2d"]}') == {"a": [1, 2.5, "中"]}
