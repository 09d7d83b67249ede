"""The base of every request body's serializer: the keys an endpoint knows, and text where it takes text.

A key the endpoint does not know is refused by name rather than ignored: a misspelt
``expires_in`` would otherwise give a token the default lifetime, silently. A number or a
boolean sent for a text field is refused too, where DRF's ``CharField`` would take ``123`` as
``"123"``: the OpenAPI document says ``string``, and a client sending something else has
mixed up its fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

UNKNOWN_FIELD = "Unknown field."


class InputSerializer(serializers.Serializer):
    """Refuses unknown keys (and the OpenAPI document says so: config.openapi) and non-text for text."""

    refuses_unknown_fields = True

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, Mapping):
            refused = {str(name): [UNKNOWN_FIELD] for name in sorted(set(data) - set(self.fields))}
            refused |= {
                name: [field.error_messages["invalid"]]
                for name, field in self.fields.items()
                if isinstance(field, serializers.CharField)
                and data.get(name) is not None
                and not isinstance(data[name], str)
            }
            if refused:
                raise serializers.ValidationError(refused)
        return super().to_internal_value(data)
