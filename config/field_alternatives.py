"""Which of a request body's optional fields go together, stated once: the serializer checks it
in ``validate`` and the OpenAPI document shows it (``config.openapi``), so a client generated
from the document refuses what the server refuses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rest_framework import serializers


@dataclass(frozen=True)
class FieldAlternatives:
    """``alternatives``: the sets of fields (API names) a body may send. ``exactly_one``: one of
    them, complete, and no field of another (``oneOf``); else at least one, complete (``anyOf``)."""

    alternatives: tuple[tuple[str, ...], ...]
    message: str
    exactly_one: bool = True

    def check(self, serializer: serializers.Serializer, attrs: Mapping) -> None:
        """Raise the serializer's 400 (``message``) unless ``attrs`` (validated) holds to the rule."""
        present = {name for name in self._mentioned() if serializer.fields[name].source in attrs}
        complete = [set(alternative) for alternative in self.alternatives if set(alternative) <= present]
        holds = len(complete) == 1 and present == complete[0] if self.exactly_one else bool(complete)
        if not holds:
            raise serializers.ValidationError(self.message)

    def schema(self) -> dict:
        """The rule as JSON Schema (OpenAPI 3.0): each alternative's ``required`` list; for
        ``exactly_one``, each also forbids the others' fields, so that exactly one can match."""
        if not self.exactly_one:
            return {"anyOf": [{"required": list(alternative)} for alternative in self.alternatives]}
        branches = []
        for alternative in self.alternatives:
            others = [name for name in self._mentioned() if name not in alternative]
            branches.append(
                {"required": list(alternative), "not": {"anyOf": [{"required": [n]} for n in others]}}
            )
        return {"oneOf": branches}

    def _mentioned(self) -> list[str]:
        return list(dict.fromkeys(name for alternative in self.alternatives for name in alternative))
