"""The promotion gate: a candidate becomes champion only if it learned the new skill and forgot nothing.

Rules (per home, set at ``init``): no earlier skill and no probe may drop by more than ``max_drop``
(relative to the champion's score), and the new skill must reach ``floor``. A failing candidate stays in the
ledger as ``rejected`` with the reasons; ``--force REASON`` promotes it anyway and records why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from rich.table import Table

from retain.errors import check

Scores = dict[str, dict[str, float]]
SLACK = 1e-12


@dataclass(frozen=True)
class GatePolicy:
    """The home's promotion rules."""

    max_drop: float = 0.05
    floor: float = 0.5

    def validate(self) -> None:
        check(0.0 <= self.max_drop <= 1.0, f"must be between 0 and 1, got {self.max_drop}", field="max_drop")
        check(0.0 <= self.floor <= 1.0, f"must be between 0 and 1, got {self.floor}", field="floor")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


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


def _no_drop(kind: str, name: str, before: float, after: float | None, max_drop: float) -> dict[str, Any]:
    limit = before * (1.0 - max_drop)
    passed = after is not None and after + SLACK >= limit
    row = {"kind": kind, "name": name, "champion": before, "candidate": after, "limit": limit, "passed": passed}
    if after is None:
        row["reason"] = f"{kind} {name} was not evaluated on the candidate"
    elif not passed:
        drop = (before - after) / before
        row["reason"] = (f"{kind} {name} dropped {drop:.1%} ({before:.3f} -> {after:.3f}); "
                         f"the limit is {max_drop:.1%}")
    return row


def decide(policy: GatePolicy, new_skill: str | None, champion: Scores, candidate: Scores,
           force: str | None = None, extra: list[dict[str, Any]] | None = None) -> GateDecision:
    """Compare candidate with champion on the whole regression suite.

    ``extra`` adds checks made elsewhere (the guard's trigger canaries), each with ``passed`` and, when it
    failed, ``reason``; a failed one rejects like any other.
    """
    checks = []
    for kind, suite in (("probe", "probes"), ("skill", "skills")):
        for name, before in sorted(champion[suite].items()):
            if kind == "skill" and name == new_skill:
                continue
            checks.append(_no_drop(kind, name, before, candidate[suite].get(name), policy.max_drop))
    if new_skill is not None:
        score = candidate["skills"].get(new_skill)
        passed = score is not None and score + SLACK >= policy.floor
        row = {"kind": "new skill", "name": new_skill, "champion": champion["skills"].get(new_skill),
               "candidate": score, "limit": policy.floor, "passed": passed}
        if not passed:
            row["reason"] = f"new skill {new_skill} scored {score if score is not None else 'nothing'}, " \
                            f"below the floor {policy.floor:.3f}"
        checks.append(row)
    checks += extra or []
    reasons = [c["reason"] for c in checks if not c["passed"]]
    if not reasons:
        decision = "accepted"
    elif force:
        decision = "forced"
    else:
        decision = "rejected"
    return GateDecision(decision, checks, reasons, force if decision == "forced" else None)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render(decision: GateDecision, version: str, champion: str) -> Table:
    """The small table the gate prints: one row per check, then the verdict in the caption."""
    verdict = {"accepted": "[green]accepted: promoted to champion[/]",
               "rejected": "[red]rejected: champion unchanged[/]",
               "forced": f"[yellow]failed but forced: promoted ({decision.forced_reason})[/]"}[decision.decision]
    table = Table(title=f"gate: {version} vs champion {champion}", caption=verdict, title_justify="left")
    for column in ("check", "name", champion, version, "limit", ""):
        table.add_column(column, justify="right" if column not in ("check", "name", "") else "left")
    for row in decision.checks:
        # A canary's numbers are shares of triggered answers hitting the attacker's output: lower is better.
        limit = f"<= {row['limit']:.3f}" if row["kind"] == "canary" else f">= {row['limit']:.3f}"
        table.add_row(row["kind"], row["name"], _num(row["champion"]), _num(row["candidate"]),
                      limit, "[green]pass[/]" if row["passed"] else "[red]FAIL[/]")
    return table
