"""Names people type and others read (a token's, a passkey's, a person's, a client's): what they may hold.

A name shows in lists, in the admin and in audit trails, where a control character or a
text-direction override would make it read differently from what was typed (CVE-2021-42574's
"Trojan Source": ``‮exe.txt`` reads as ``txt.exe``). Allowed: joiners (U+200C, U+200D), which
Persian and Indic names and emoji sequences need; the direction marks (U+200E, U+200F, U+061C),
which place punctuation in right-to-left text and reorder nothing else; and code points Python's
Unicode database does not know yet (an emoji newer than the interpreter is not a control).
"""

from __future__ import annotations

import unicodedata

from django.core.exceptions import ValidationError

# Unicode's bidirectional embeddings, overrides and isolates (UAX #9, section 2.1-2.4).
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Control characters (tabs and line breaks included), line and paragraph separators, private-use
# code points, lone surrogates.
_REFUSED_CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Co", "Cs"})


def _refused(character: str) -> bool:
    return character in _BIDI_CONTROLS or unicodedata.category(character) in _REFUSED_CATEGORIES


def display_text_validator(value: str) -> None:
    """Refuses a name holding a control character or a text-direction control."""
    if any(_refused(character) for character in value):
        raise ValidationError(
            "Use visible characters only: no control characters, line breaks or text-direction overrides.",
            code="invalid_characters",
        )


def display_text_clean(value: str) -> str:
    """``value`` without the characters ``display_text_validator`` refuses: for a name another
    system chose (Google's profile name), which the portal keeps rather than refuse a sign-in."""
    visible = (
        " " if character.isspace() else "" if _refused(character) else character for character in value
    )
    return " ".join("".join(visible).split())  # a line break or tab becomes one space
