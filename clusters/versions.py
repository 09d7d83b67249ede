"""Qdrant versions: which ones a cluster may move to, and what a version supports.

Qdrant's upgrade guide asks for one minor version at a time and supports no downgrade; patch
releases of one minor are interchangeable upwards. So a cluster on ``v1.18.1`` may move to any
offered ``v1.18.x`` newer than its own or any offered ``v1.19.x``, and nowhere else. The
services enforce this (``version_problem``); the API lists the same choices
(``version_upgrades``), so what is offered is exactly what is accepted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_VERSION = re.compile(r"^v?(\d{1,4})\.(\d{1,4})\.(\d{1,4})$")

# The first release with a second, alternate API key (``service.alt_api_key``, the environment
# variable QDRANT__SERVICE__ALT_API_KEY): qdrant/qdrant pull request #7835, merged on
# 2026-01-02; the first tag containing its merge commit is v1.17.0 (v1.16.3 does not).
ALT_API_KEY_SINCE = (1, 17, 0)

Version = tuple[int, int, int]


def version_parse(version: object) -> Version | None:
    """``"v1.18.3"`` -> ``(1, 18, 3)``; None for anything that is not a release version."""
    match = _VERSION.fullmatch(version) if isinstance(version, str) else None
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def _is_next_step(current: Version, target: Version) -> bool:
    major, minor, _ = current
    return target > current and target[0] == major and target[1] in (minor, minor + 1)


def version_upgrades(*, current: str, offered: Sequence[str]) -> list[str]:
    """The offered versions a cluster on ``current`` may move to, oldest first."""
    now = version_parse(current)
    if now is None:
        return []
    steps = [v for v in offered if (parsed := version_parse(v)) is not None and _is_next_step(now, parsed)]
    return sorted(steps, key=version_parse)


def _allowed_sentence(current: str, offered: Sequence[str]) -> str:
    upgrades = version_upgrades(current=current, offered=offered)
    if not upgrades:
        return f"No upgrade from {current} is offered yet."
    return f"Allowed from {current}: {', '.join(upgrades)}."


def version_problem(*, current: str | None, target: str, offered: Sequence[str]) -> str | None:
    """Why a cluster on ``current`` (None: a new cluster) may not run ``target``; None when it may."""
    if current is not None and target == current:
        return None
    if target not in offered:
        known = _allowed_sentence(current, offered) if current else f"Choose one of: {', '.join(offered)}."
        return f"{target} is not an offered version. {known}"
    if current is None:
        return None
    now, wanted = version_parse(current), version_parse(target)
    if now is None or wanted is None:
        return f"{target} cannot be compared with {current}. {_allowed_sentence(current, offered)}"
    if wanted < now:
        return f"Qdrant does not support downgrades ({current} to {target}). {_allowed_sentence(current, offered)}"
    if not _is_next_step(now, wanted):
        return (
            f"Qdrant upgrades one minor version at a time: {current} cannot go to {target} directly. "
            f"{_allowed_sentence(current, offered)}"
        )
    return None


def version_supports_alt_api_key(version: str) -> bool:
    """Whether Qdrant ``version`` accepts a second API key, so keys rotate without refused requests."""
    parsed = version_parse(version)
    return parsed is not None and parsed >= ALT_API_KEY_SINCE
