"""Stripe's form encoding, read the way Stripe reads it: `metadata[out_trade_no]=x` is a
nested object, `expand[]=a&expand[]=b` and `expand[0]=a` are lists, `true`/`false` stay
strings until a field asks for a boolean."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


class FormError(ValueError):
    """A parameter name Stripe would not accept."""


def parse(text: str) -> dict[str, Any]:
    """Nested parameters from a query string or form body."""
    params: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True, encoding="utf-8"):
        _insert(params, key, value)
    parsed: dict[str, Any] = _lists(params)
    return parsed


def _insert(params: dict[str, Any], key: str, value: str) -> None:
    match = _KEY.match(key)
    if match is None:
        raise FormError(f"Invalid parameter name: {key}")
    path = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
    node = params
    for index, part in enumerate(path):
        last = index == len(path) - 1
        if part == "":  # key[] appends
            part = str(len(node))
        if last:
            if part in node and isinstance(node[part], dict):
                raise FormError(f"Invalid parameter: {key} is both a value and an object")
            node[part] = value
            return
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise FormError(f"Invalid parameter: {key} is both a value and an object")
        node = child


def _lists(node: Any) -> Any:
    """Objects whose keys are 0, 1, 2 … become lists."""
    if not isinstance(node, dict):
        return node
    converted = {key: _lists(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        indexes = sorted(converted, key=int)
        if [int(key) for key in indexes] == list(range(len(indexes))):
            return [converted[key] for key in indexes]
    return converted


def fingerprint(params: dict[str, Any]) -> str:
    """A stable text of the parameters, to tell an idempotent repeat from a different call."""
    return repr(_sorted(params))


def _sorted(node: Any) -> Any:
    if isinstance(node, dict):
        return sorted((key, _sorted(value)) for key, value in node.items())
    if isinstance(node, list):
        return [_sorted(item) for item in node]
    return node
