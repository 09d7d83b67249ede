"""What a client's or a cluster's name may be: it names folders in git, namespaces and releases."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

from gitops.values import PORTAL_NAMESPACE, namespace_name

SLUG_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"
slug_validator = RegexValidator(
    SLUG_PATTERN,
    "Use 1 to 40 lower-case letters, digits and inner hyphens (e.g. “client1”).",
    code="invalid_slug",
)


def client_slug_validator(slug: str) -> None:
    """A client's clusters deploy into ``qdrant-<client>``: never into the portal's own namespace."""
    if re.fullmatch(SLUG_PATTERN, slug) and namespace_name(client=slug) == PORTAL_NAMESPACE:
        raise ValidationError(
            "“%(slug)s” is reserved: its namespace, %(namespace)s, is the portal's own.",
            code="reserved_slug",
            params={"slug": slug, "namespace": PORTAL_NAMESPACE},
        )
