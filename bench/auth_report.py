"""The token benchmark's figures: what was measured per round, and the tables printed from it.

Every figure is the median of the rounds. A ratio is the median of the rounds' own ratios: the
rounds are interleaved, so a slow moment of the machine lands on both sides of one round's
ratio rather than on one side of the comparison; its range across the rounds is shown.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field

PEER = "peer"
LOGIN_EXTRA_MAX_MS = 10.0


@dataclass
class Results:
    """Per-round values by (side, metric), errors by (side, metric), and surprises to report."""

    values: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    notes: list[str] = field(default_factory=list)

    def add(self, side: str, metric: str, value: float, errors: int = 0) -> None:
        self.values[side, metric].append(value)
        self.errors[side, metric] += errors

    def median(self, side: str, metric: str) -> float:
        return statistics.median(self.values[side, metric])

    def ratios(self, side: str, metric: str, versus: str, versus_metric: str) -> list[float]:
        pairs = zip(self.values[side, metric], self.values[versus, versus_metric], strict=True)
        return [ours / theirs for ours, theirs in pairs]


@dataclass(frozen=True)
class Target:
    """One line of the issue's table: this side's metric against another's, and the bound."""

    what: str
    metric: str
    versus: str  # PEER, or "" for this side itself
    versus_metric: str
    bound: float | None  # None: shown for information
    at_most: bool = False  # CPU is a cost: the ratio must stay under the bound


TARGETS = (
    Target(
        "bare JSON view (/healthz, full stack) vs peer bare view: req/s", "bare rps", PEER, "bare rps", 0.75
    ),
    Target("  same: server CPU per request", "bare cpu", PEER, "bare cpu", 1.33, at_most=True),
    Target("GET /api/auth/validate (bearer) vs our bare view: req/s", "validate rps", "", "bare rps", 0.90),
    Target("  same: server CPU per request", "validate cpu", "", "bare cpu", 1 / 0.90, at_most=True),
    Target("cookie GET /api/auth/me vs peer GET /auth/user/: req/s", "me rps", PEER, "me rps", 1.5),
    Target("  same: server CPU per request", "me cpu", PEER, "me cpu", 1 / 1.5, at_most=True),
    Target("refresh with rotation (8 clients): refreshes/s", "refresh rps", PEER, "refresh rps", 1.2),
    Target("  same: server CPU per refresh", "refresh cpu", PEER, "refresh cpu", None, at_most=True),
)


def _figure(metric: str, value: float) -> str:
    if metric.endswith("cpu"):
        return f"{value:,.0f} µs"
    if metric.startswith("refresh"):
        return f"{value:,.1f} /s"
    return f"{value:,.0f} req/s"


def _target_row(results: Results, side: str, target: Target) -> list[str]:
    versus = target.versus or side
    if (versus, target.versus_metric) not in results.values:
        return []
    ratios = results.ratios(side, target.metric, versus, target.versus_metric)
    ratio = statistics.median(ratios)
    theirs = _figure(target.versus_metric, results.median(versus, target.versus_metric))
    shown = f"{ratio:.2f} × ({min(ratios):.2f}–{max(ratios):.2f})"
    if target.bound is None:
        return [target.what, _figure(target.metric, results.median(side, target.metric)),
                theirs if target.versus else "—", shown, "—", "—"]  # fmt: skip
    held = ratio <= target.bound if target.at_most else ratio >= target.bound
    bound = f"{'≤' if target.at_most else '≥'} {target.bound:.2f} ×"
    return [target.what, _figure(target.metric, results.median(side, target.metric)),
            theirs if target.versus else "—", shown, bound, "PASS" if held else "FAIL"]  # fmt: skip


def _login_row(results: Results, side: str) -> list[str]:
    def cell(who: str) -> str:
        if (who, "login ms") not in results.values:
            return "—"
        hasher, login = results.median(who, "hash ms"), results.median(who, "login ms")
        return f"{login:.0f} ms = hasher {hasher:.0f} ms + {results.median(who, 'login extra ms'):.1f} ms"

    extra = results.median(side, "login extra ms")
    held = extra <= LOGIN_EXTRA_MAX_MS
    return ["login, beyond the password hash (argon2)", cell(side), cell(PEER), "—",
            f"≤ hasher + {LOGIN_EXTRA_MAX_MS:.0f} ms", "PASS" if held else "FAIL"]  # fmt: skip


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table, its columns padded so that it also reads well in a terminal."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    return [line(header), "|" + "|".join("-" * (width + 2) for width in widths) + "|", *map(line, rows)]


def targets_table(results: Results, side: str) -> list[str]:
    rows = [row for target in TARGETS if (row := _target_row(results, side, target))]
    rows.append(_login_row(results, side))
    return table(["what", "this project", "peer", "ratio (range)", "target", "result"], rows)


def sweep_table(results: Results, sides: dict[str, str], levels: tuple[int, ...]) -> list[str]:
    rows = []
    for case, label in (("validate", "GET /api/auth/validate"), ("me", "cookie GET /api/auth/me")):
        for side, title in sides.items():
            cells = [_figure("rps", results.median(side, f"{case} c{level}")) for level in levels]
            rows.append([label, title, *cells])
    return table(["endpoint", "configuration", *(f"c={level}" for level in levels)], rows)


def errors_lines(results: Results) -> list[str]:
    failed = [f"{side} {metric}: {count}" for (side, metric), count in results.errors.items() if count]
    lines = ["Errors (non-2xx answers, socket errors): " + (", ".join(failed) if failed else "none")]
    return lines + [f"Note: {note}" for note in results.notes]


def verdict_line(results: Results, sides: list[str]) -> str:
    """How many targets held, per configuration."""
    parts = []
    for side in sides:
        rows = [
            row
            for target in TARGETS
            if target.bound is not None and (row := _target_row(results, side, target))
        ]
        rows.append(_login_row(results, side))
        passed = sum(row[-1] == "PASS" for row in rows)
        parts.append(f"{side}: {passed}/{len(rows)} targets met")
    return "; ".join(parts)
