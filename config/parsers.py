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

An object that names a key twice is refused too, wherever it is in the body. Python keeps the
last value; a proxy, a firewall or a log reader may keep the first, and would see another
request than the one carried out (``"expiresIn": "1h", "expiresIn": "365d"``).
"""

from __future__ import annotations

import codecs
import re
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json

from config.errors import NestedTooDeep, NotUnicodeText, NulCharacter, RepeatedKey

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


def _object_without_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for key, value in pairs:
        if key in decoded:
            json_check(key)  # the key is echoed: refused first for what it holds, as anywhere else
            raise RepeatedKey(key=key)
        decoded[key] = value
    return decoded


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        # DRF's parse, with a hook it has no setting for.
        encoding = parsers.get_encoding(parser_context or {})
        try:
            data = json.load(
                codecs.getreader(encoding)(stream),
                parse_constant=json.strict_constant if self.strict else None,
                object_pairs_hook=_object_without_repeated_keys,
            )
        except RecursionError:
            raise NestedTooDeep() from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        json_check(data)
        return data
