"""The API's JSON parser: DRF's, plus a bound on nesting.

Python's JSON decoder recurses once per level: a body nested ten thousand levels deep raises
``RecursionError``, which DRF does not expect (a 500), and a body just under the interpreter's
limit would make every later recursive walk of it (validation, error formatting) fail the same
way. No request this API takes is nested more than a few levels, so anything deeper than
``JSON_MAX_DEPTH`` is refused as a bad request.
"""

from __future__ import annotations

from typing import Any

from rest_framework import parsers

from config.errors import NestedTooDeep

JSON_MAX_DEPTH = 32


def json_depth_exceeds(data: Any, limit: int = JSON_MAX_DEPTH) -> bool:
    """Whether ``data`` nests lists and objects deeper than ``limit`` (walked without recursion)."""
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                return True
            children = value.values() if isinstance(value, dict) else value
            pending.extend((child, depth + 1) for child in children)
    return False


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise NestedTooDeep() from None
        if json_depth_exceeds(data):
            raise NestedTooDeep()
        return data
