"""The one canonical form of an email address: how it is stored, looked up, throttled and audited.

Python's ``lower()`` and the database's ``UPPER()`` disagree outside ASCII: ``clıent2`` (dotless
ı) stays itself in Python but matches ``CLIENT2`` in the database, and ``ſtaff1`` (long s)
likewise. An address that two layers read differently can slip past a per-account throttle
while still reaching the account. So an address is made canonical once, here:

1. Unicode NFKC normalisation (fullwidth letters, the long s and the Kelvin sign become ASCII);
2. the domain in its IDNA (punycode) ASCII form;
3. the whole address in lower case, which must then be plain ASCII: an address that still
   has other characters before the ``@`` (``clıent2``) is refused rather than guessed at;
4. and of the plain form only: dot-separated words before the ``@`` (RFC 5322's dot-atom, no
   quoted part) and a host name after it. The address travels to other services (the
   ``X-Auth-Email`` header, the tokens' ``email`` claim), and ``"admin@example.com"@evil.test``,
   valid as it is, reads as someone else's to a careless parser; no mailbox people use needs it.

Two different canonical forms are two different strings of lower-case ASCII, which every
layer (Python, PostgreSQL, MariaDB, SQLite) compares the same way; lookups are exact.
"""

from __future__ import annotations

import re
import unicodedata

from django.core.exceptions import ValidationError

EMAIL_MAX_LENGTH = 254
NOT_CANONICAL = "Use an email address with only plain letters, digits and punctuation (ASCII) before the @."
_WORD = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"  # RFC 5322 atext
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
PLAIN_ADDRESS = re.compile(rf"{_WORD}(?:\.{_WORD})*@{_LABEL}(?:\.{_LABEL})*")
NOT_PLAIN = (
    "Use a plain email address: words separated by dots before the @ (no quotes), a domain name after it."
)


def email_canonical(value: object) -> str:
    """The canonical form of ``value``; raises ValidationError when it has none."""
    if not isinstance(value, str):
        raise ValidationError("Enter a valid email address.", code="invalid")
    text = unicodedata.normalize("NFKC", value).strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise ValidationError("Enter a valid email address.", code="invalid")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValidationError("Enter a valid email address.", code="invalid") from None
    canonical = f"{local}@{domain}".lower()
    if not canonical.isascii():
        raise ValidationError(NOT_CANONICAL, code="not_canonical")
    if not PLAIN_ADDRESS.fullmatch(canonical):
        raise ValidationError(NOT_PLAIN, code="invalid")
    if len(canonical) > EMAIL_MAX_LENGTH:
        raise ValidationError("Ensure this email address has at most 254 characters.", code="max_length")
    return canonical


def email_canonical_or_none(value: object) -> str | None:
    """The canonical form, or None for what cannot be one (for throttle keys and audit)."""
    try:
        return email_canonical(value)
    except ValidationError:
        return None
