"""The promotion gate: a candidate becomes champion only if it learned the new skill and lost no earlier skill
or probe by more than chance.

Rule (per home, set at ``init``). Each earlier skill and probe is scored by both models on the same held-out
prompts, so the comparison is paired: ``b`` items the champion passed and the candidate failed, ``c`` items the
candidate passed and the champion failed. If the candidate were no worse, a discordant item would be a loss or a
gain with equal odds: ``b ~ Binomial(b + c, 1/2)``. The check fails when the one-sided exact p-value
``P(X >= b)`` is at most ``alpha`` (McNemar's exact test, McNemar 1947, Psychometrika; for items scored between 0
and 1 it is the sign test on the per-item differences) **and** the score dropped by at least ``min_drop``
(absolute points: a drop too small to matter does not block, however many items make it significant). With 50
items, 1.00 -> 0.94 (b = 3, c = 0) has p = 0.125 and passes; 0.88 -> 0.70 (b = 9, c = 0) has p = 0.002 and
fails. Items without per-item outcomes (an lm-eval task reports only its metric) cannot be paired: their check
is unpaired and fails on a drop of ``min_drop`` or more, and the row says so. The new skill must reach
``floor`` or, paired with the champion on its held-out items, gain significantly (the same test on the gains,
``P(X >= c)``): a hard skill learned from 0% to 30% was learned; 0% to 4% was not. Scores are shown with their Wilson 95% interval (Wilson 1927, JASA) where the item count is known.

A home recorded with ``max_drop`` (before the paired test) keeps its rule: a relative drop of more than
``max_drop`` fails. A failing candidate stays in the ledger as ``rejected`` with the reasons; ``--force REASON``
promotes it anyway and records why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from retain.errors import check

Scores = dict[str, dict[str, float]]
# Per-item scores of each suite entry, as scored (0/1 for pass/fail scorers), in the entry's test order.
Items = dict[str, dict[str, list[float]]]
SLACK = 1e-12
Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


@dataclass(frozen=True)
class GatePolicy:
    """The home's promotion rules: the test's significance level, the smallest drop that blocks, the new
    skill's floor; ``max_drop`` only for homes recorded with the earlier relative-drop rule."""

    alpha: float = 0.05
    min_drop: float = 0.05
    floor: float = 0.5
    max_drop: float | None = None

    def validate(self) -> None:
        check(0.0 < self.alpha < 1.0, f"must be between 0 and 1 (exclusive), got {self.alpha}", field="alpha")
        check(0.0 <= self.min_drop <= 1.0, f"must be between 0 and 1, got {self.min_drop}", field="min_drop")
        check(0.0 <= self.floor <= 1.0, f"must be between 0 and 1, got {self.floor}", field="floor")
        if self.max_drop is not None:
            check(0.0 <= self.max_drop <= 1.0, f"must be between 0 and 1, got {self.max_drop}", field="max_drop")

    def to_dict(self) -> dict[str, float]:
        if self.max_drop is not None:
            return {"max_drop": self.max_drop, "floor": self.floor}
        return {"alpha": self.alpha, "min_drop": self.min_drop, "floor": self.floor}

    def describe(self) -> str:
        """The rule in one sentence (the report and ``--help`` say it so)."""
        if self.max_drop is not None:
            return (f"a new skill must reach {self.floor:.2f}; no earlier skill or probe may drop more than "
                    f"{self.max_drop:.0%} below the champion (relative)")
        return (f"a new skill must reach {self.floor:.2f} or gain significantly on its held-out items (one-sided "
                f"exact McNemar, p <= {self.alpha:g}); an earlier skill or probe fails when it drops by "
                f"{self.min_drop * 100:.0f} points or more and the drop is significant (one-sided exact McNemar "
                f"test on the same held-out items, p <= {self.alpha:g})")


@dataclass(frozen=True)
class GateDecision:
    """``accepted``, ``rejected`` or ``forced``, with one row per check and the reasons any check failed."""

    decision: str
    checks: list[dict[str, Any]]
    reasons: list[str]
    forced_reason: str | None

    @property
    def promote(self) -> bool:
        return self.decision in ("accepted", "forced")


def mcnemar_p(b: int, c: int) -> float:
    """One-sided exact McNemar p-value for a drop: ``P(X >= b)`` for ``X ~ Binomial(b + c, 1/2)``; 1 when no
    item is discordant."""
    n = b + c
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(b, n + 1)) / 2 ** n


def wilson(score: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a proportion ``score`` of ``n`` items (95% by default)."""
    if n <= 0:
        return 0.0, 1.0
    denom = 1 + z * z / n
    centre = (score + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(max(0.0, score * (1 - score) / n + z * z / (4 * n * n)))
    return max(0.0, centre - half), min(1.0, centre + half)


def discordant(before: list[float], after: list[float]) -> tuple[int, int]:
    """``(b, c)``: items whose score fell, and items whose score rose, from ``before`` to ``after``."""
    return sum(y < x for x, y in zip(before, after)), sum(y > x for x, y in zip(before, after))


def pack_items(items: Items) -> dict[str, dict[str, str | list[float]]]:
    """Per-item scores as a version's record keeps them: a string of ``0`` and ``1`` when every item passed or
    failed (50 items, 50 characters), else the list of scores."""
    return {suite: {name: "".join("1" if v == 1.0 else "0" for v in values)
                    if all(v in (0.0, 1.0) for v in values) else [float(v) for v in values]
                    for name, values in sorted(entries.items())}
            for suite, entries in items.items()}


def unpack_items(packed: dict[str, dict[str, str | list[float]]] | None) -> Items:
    """:func:`pack_items` read back (a record without them, as before the paired test: nothing)."""
    return {suite: {name: [float(ch) for ch in value] if isinstance(value, str) else [float(v) for v in value]
                    for name, value in entries.items()}
            for suite, entries in (packed or {}).items()}


def _interval(score: float | None, items: list[float] | None) -> list[float] | None:
    return None if score is None or not items else [round(v, 4) for v in wilson(score, len(items))]


def _paired(kind: str, name: str, before: float, after: float | None, policy: GatePolicy,
            before_items: list[float] | None, after_items: list[float] | None) -> dict[str, Any]:
    row: dict[str, Any] = {"kind": kind, "name": name, "champion": before, "candidate": after,
                           "champion_ci": _interval(before, before_items),
                           "candidate_ci": _interval(after, after_items)}
    if after is None:
        return {**row, "test": "-", "passed": False, "reason": f"{kind} {name} was not evaluated on the candidate"}
    drop = before - after
    big = drop + SLACK >= policy.min_drop
    if before_items and after_items and len(before_items) == len(after_items):
        b, c = discordant(before_items, after_items)
        p = mcnemar_p(b, c)
        passed = not (p <= policy.alpha and big)
        row.update(test="paired", n=len(after_items), b=b, c=c, p=p, passed=passed)
        if not passed:
            row["reason"] = (f"{kind} {name} dropped {drop * 100:.1f} points ({before:.3f} -> {after:.3f}; {b} items "
                             f"lost, {c} gained, one-sided McNemar p = {p:.3g} <= {policy.alpha:g})")
        return row
    why = "no per-item outcomes" if not (before_items and after_items) else "different items"
    row.update(test=f"unpaired ({why})", passed=not big)
    if big:
        row["reason"] = (f"{kind} {name} dropped {drop * 100:.1f} points ({before:.3f} -> {after:.3f}); unpaired "
                         f"({why}): a drop of {policy.min_drop * 100:.0f} points or more fails")
    return row


def _new_skill(name: str, before: float | None, score: float | None, policy: GatePolicy,
               before_items: list[float] | None, after_items: list[float] | None) -> dict[str, Any]:
    """The new skill must reach the floor or, under the paired rule, be learned significantly: more of its
    held-out items gained than lost against the champion (one-sided exact McNemar on the gains, ``P(X >= c)``,
    at ``alpha``). A hard skill learned to 30% from nothing has learned something; a candidate that learned
    nothing measurable has not."""
    row: dict[str, Any] = {"kind": "new skill", "name": name, "champion": before, "candidate": score,
                           "limit": policy.floor, "test": "floor",
                           "champion_ci": _interval(before, before_items),
                           "candidate_ci": _interval(score, after_items)}
    passed = score is not None and score + SLACK >= policy.floor
    paired = policy.max_drop is None and before_items and after_items and len(before_items) == len(after_items)
    if paired:
        b, c = discordant(before_items, after_items)
        p = mcnemar_p(c, b)  # the gains' tail: the same test, the other direction
        row.update(test="floor, or a significant gain", n=len(after_items), b=b, c=c, p=p)
        passed = passed or p <= policy.alpha
    row["passed"] = passed
    if not passed:
        row["reason"] = (f"new skill {name} scored {score if score is not None else 'nothing'}, below the floor "
                         f"{policy.floor:.3f}" + (f", and its gain is not significant ({row['c']} items gained, "
                                                  f"{row['b']} lost, one-sided McNemar p = {row['p']:.3g} > "
                                                  f"{policy.alpha:g})" if paired else ""))
    return row


def _relative(kind: str, name: str, before: float, after: float | None, max_drop: float) -> dict[str, Any]:
    """The rule of homes recorded with ``max_drop``: a relative drop of more than ``max_drop`` fails."""
    limit = before * (1.0 - max_drop)
    passed = after is not None and after + SLACK >= limit
    row = {"kind": kind, "name": name, "champion": before, "candidate": after, "limit": limit, "passed": passed,
           "test": "relative drop"}
    if after is None:
        row["reason"] = f"{kind} {name} was not evaluated on the candidate"
    elif not passed:
        drop = (before - after) / before
        row["reason"] = (f"{kind} {name} dropped {drop:.1%} ({before:.3f} -> {after:.3f}); "
                         f"the limit is {max_drop:.1%}")
    return row


def decide(policy: GatePolicy, new_skill: str | None, champion: Scores, candidate: Scores,
           force: str | None = None, extra: list[dict[str, Any]] | None = None, *,
           champion_items: Items | None = None, candidate_items: Items | None = None) -> GateDecision:
    """Compare candidate with champion on the whole regression suite.

    ``champion_items`` and ``candidate_items`` are the per-item scores behind ``champion`` and ``candidate``
    (an entry missing from either is checked unpaired). ``extra`` adds checks made elsewhere (the guard's
    trigger canaries), each with ``passed`` and, when it failed, ``reason``; a failed one rejects like any other.
    """
    before_items, after_items = champion_items or {}, candidate_items or {}
    checks = []
    for kind, suite in (("probe", "probes"), ("skill", "skills")):
        for name, before in sorted(champion[suite].items()):
            if kind == "skill" and name == new_skill:
                continue
            after = candidate[suite].get(name)
            if policy.max_drop is not None:
                checks.append(_relative(kind, name, before, after, policy.max_drop))
            else:
                checks.append(_paired(kind, name, before, after, policy, before_items.get(suite, {}).get(name),
                                      after_items.get(suite, {}).get(name)))
    if new_skill is not None:
        checks.append(_new_skill(new_skill, champion["skills"].get(new_skill), candidate["skills"].get(new_skill),
                                 policy, before_items.get("skills", {}).get(new_skill),
                                 after_items.get("skills", {}).get(new_skill)))
    checks += extra or []
    reasons = [c["reason"] for c in checks if not c["passed"]]
    if not reasons:
        decision = "accepted"
    elif force:
        decision = "forced"
    else:
        decision = "rejected"
    return GateDecision(decision, checks, reasons, force if decision == "forced" else None)


def _score(value: float | None, interval: list[float] | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "")


def cells(row: dict[str, Any]) -> list[str]:
    """One gate row as text: the champion's and the candidate's scores (with their 95% intervals), the test,
    its p-value (or the limit it is held to) and the verdict. Rows recorded before the paired test (no
    ``test``, a ``limit``) show their limit."""
    test = row.get("test")
    if row["kind"] == "canary":
        # A canary's numbers are shares of triggered answers hitting the attacker's output: lower is better.
        test, p = "canary", f"<= {row['limit']:.3f}"
    elif test == "paired":
        test, p = f"paired: {row['b']} lost, {row['c']} gained of {row['n']}", f"p = {row['p']:.3g}"
    elif test in ("floor", "relative drop") or test is None:
        test = test or ("floor" if row["kind"] == "new skill" else "relative drop")
        p = f">= {row['limit']:.3f}"
    else:
        p = ""
    return [row["kind"], row["name"], _score(row["champion"], row.get("champion_ci")),
            _score(row["candidate"], row.get("candidate_ci")), test, p, "pass" if row["passed"] else "FAIL"]


def render(decision: GateDecision, version: str, champion: str) -> Table:
    """The small table the gate prints: one row per check, then the verdict in the caption."""
    verdict = {"accepted": "[green]accepted: promoted to champion[/]",
               "rejected": "[red]rejected: champion unchanged[/]",
               "forced": f"[yellow]failed but forced: promoted ({decision.forced_reason})[/]"}[decision.decision]
    table = Table(title=f"gate: {version} vs champion {champion} (scores with 95% intervals)", caption=verdict,
                  title_justify="left")
    for column in ("check", "name", champion, version, "test", "p / limit", ""):
        table.add_column(column, justify="right" if column in (champion, version, "p / limit") else "left")
    for row in decision.checks:
        *text, verdict_cell = cells(row)
        table.add_row(*text, "[green]pass[/]" if verdict_cell == "pass" else "[red]FAIL[/]")
    return table
