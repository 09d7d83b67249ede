"""The API's JSON parser: DRF's, plus a bound on nesting and Unicode text only.

Python's JSON decoder recurses once per level: a body nested ten thousand levels deep raises
``RecursionError``, which DRF does not expect (a 500), and a body just under the interpreter's
limit would make every later recursive walk of it (validation, error formatting) fail the same
way. No request this API takes is nested more than a few levels, so anything deeper than
``JSON_MAX_DEPTH`` is refused as a bad request.

JSON may escape a lone UTF-16 surrogate (``"\ud800"``); Python decodes it into a string that
cannot be encoded as UTF-8, so echoing it in an error, or storing it, would fail later (a 500).
Such a body is refused as a bad request at once, and so is a NUL character (``"\u0000"``),
which no field takes and PostgreSQL cannot store (also where a value is only recorded, such as
the email of a refused sign-in in the audit log).
"""

from __future__ import annotations

import re
from typing import Any

from rest_framework import parsers

from config.errors import NestedTooDeep, NotUnicodeText, NulCharacter

JSON_MAX_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")


def json_check(data: Any, limit: int = JSON_MAX_DEPTH) -> None:
    """Refuse ``data`` nesting lists and objects deeper than ``limit``, or holding a lone
    surrogate or a NUL in a key or a string (walked without recursion)."""
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise NotUnicodeText()
            if "\x00" in value:
                raise NulCharacter()
        elif isinstance(value, dict | list):
            if depth > limit:
                raise NestedTooDeep()
            if isinstance(value, dict):
                pending.extend((key, depth) for key in value)
                pending.extend((child, depth + 1) for child in value.values())
            else:
                pending.extend((child, depth + 1) for child in value)


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise NestedTooDeep() from None
        json_check(data)
        return data
