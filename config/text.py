"""Names people type and others read (a token's, a passkey's, a person's, a client's): what they may hold.

A name shows in lists, in the admin and in audit trails, where a control character or a
text-direction override would make it read differently from what was typed (CVE-2021-42574's
"Trojan Source": ``‮exe.txt`` reads as ``txt.exe``). Allowed: joiners (U+200C, U+200D), which
Persian and Indic names and emoji sequences need; the direction marks (U+200E, U+200F, U+061C),
which place punctuation in right-to-left text and reorder nothing else; and code points Python's
Unicode database does not know yet (an emoji newer than the interpreter is not a control).
Refused besides: every other invisible format character (a zero-width space makes ``CI<U+200B>deploys``
another name than ``CIdeploys``; tag characters carry hidden text, but for the flags of England,
Scotland and Wales, which are made of them), the characters that show nothing (blank fillers such
as U+3164 are letters to Unicode, U+034F a combining mark), and a name in which nothing shows.
"""

from __future__ import annotations

import re
import unicodedata

from django.core.exceptions import ValidationError

# Unicode's bidirectional embeddings, overrides and isolates (UAX #9, section 2.1-2.4).
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Control characters (tabs and line breaks included), invisible format characters, line and
# paragraph separators, private-use code points, lone surrogates.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Co", "Cs"})
_FORMAT_ALLOWED = frozenset("\u200c\u200d\u200e\u200f\u061c")  # joiners and direction marks
# Characters that show nothing without being spaces or format characters: the Hangul fillers,
# the combining grapheme joiner, Khmer's inherent vowels (Unicode advises against all of them).
_BLANKS = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0")
# Blank, but a space in its own script: allowed between words, not as a whole name.
_BLANK_SPACES = frozenset("\u2800")
# The subdivision flags emoji fonts draw (England, Scotland, Wales): the black flag, tag letters
# spelling the region, the cancel tag. No other run of tags: they would carry hidden text.
_FLAG = re.compile(
    "|".join(
        "\U0001f3f4" + "".join(chr(0xE0000 + ord(letter)) for letter in region) + "\U000e007f"
        for region in ("gbeng", "gbsct", "gbwls")
    )
)


def _refused(character: str) -> bool:
    if character in _FORMAT_ALLOWED:
        return False
    return (
        character in _BIDI_CONTROLS
        or character in _BLANKS
        or unicodedata.category(character) in _REFUSED_CATEGORIES
    )


def _shows(character: str) -> bool:
    """Whether a character shows on its own: a mark or a variation selector needs another."""
    return not (
        character.isspace()
        or character in _BLANKS
        or character in _BLANK_SPACES
        or unicodedata.category(character) in {"Cf", "Mn", "Me"}
    )


def display_text_validator(value: str) -> None:
    """Refuses a name holding a control or invisible format character, or in which nothing shows."""
    if any(_refused(character) for character in _FLAG.sub("\U0001f3f4", value)):
        raise ValidationError(
            "Use visible characters only: no control characters, line breaks, zero-width characters or "
            "text-direction overrides.",
            code="invalid_characters",
        )
    if value and not any(_shows(character) for character in value):
        raise ValidationError("Use at least one visible character.", code="invalid_characters")


def display_text_clean(value: str) -> str:
    """``value`` without the characters ``display_text_validator`` refuses: for a name another
    system chose (Google's profile name), which the portal keeps rather than refuse a sign-in."""

    def visible(text: str) -> str:
        return "".join(
            " " if character.isspace() else "" if _refused(character) else character for character in text
        )

    between, flags = _FLAG.split(value), _FLAG.findall(value)  # the flags are kept whole
    kept = visible(between[0]) + "".join(
        flag + visible(text) for flag, text in zip(flags, between[1:], strict=True)
    )
    cleaned = " ".join(kept.split())  # a line break or tab becomes one space
    return cleaned if any(_shows(character) for character in cleaned) else ""
