"""The guard inside a learn into a home: quarantine before training, canaries at the gate.

:func:`quarantine` screens the data file with the champion against the home's suite and takes the flagged
lines out of the skill (training and held-out split alike), unless the user accepts them with a reason; each
line is kept in the record with its 1-based number, the SHA-256 of its bytes and the reasons.
:func:`canaries` probes the trained candidate against the champion (:func:`retain.guard.canary.canary_check`)
and returns its failures as gate checks in the shape :func:`retain.ledger.gate.decide` takes as ``extra``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retain.data.skills import Example, Skill
from retain.errors import RetainError
from retain.guard.canary import HIT_THRESHOLD, CanaryResult, canary_check, scan_triggers
from retain.guard.screen import ScreenReport, numbered_examples, screen
from retain.ledger.hashing import sha256_bytes


@dataclass
class Quarantine:
    """The skill left to train on, the lines taken out (or accepted), and the screen behind it."""

    skill: Skill
    lines: list[dict[str, Any]]
    accepted: str | None
    report: ScreenReport
    triggers: dict[str, list[str]] = field(default_factory=dict)
    canary: dict[str, Any] | None = None

    def record(self) -> dict[str, Any]:
        """What the version's record keeps about the screen: every flagged line (number, SHA-256, reasons),
        whether they were held back, and the reason they were accepted if they were not."""
        return {"flagged": self.lines, "quarantined": self.accepted is None, "accepted_flagged": self.accepted,
                "summary": self.report.summary(), "canary": self.canary}

    def summary(self) -> str:
        """One line for the learn to print: how many lines were held back (or accepted) and why."""
        total = len(self.report.lines)
        if not self.lines:
            return f"guard: screened {total} lines, none flagged"
        counts: dict[str, int] = {}
        for line in self.lines:
            for name in {r.split(":", 1)[0] for r in line["reasons"]}:
                counts[name] = counts.get(name, 0) + 1
        why = ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        numbers = ", ".join(str(line["line"]) for line in self.lines[:8]) + (", ..." if len(self.lines) > 8 else "")
        if self.accepted is not None:
            return (f"guard: {len(self.lines)} of {total} lines flagged ({why}; lines {numbers}) and kept: "
                    f"accepted because {self.accepted!r}")
        return (f"guard: held back {len(self.lines)} of {total} lines ({why}; lines {numbers}); "
                "retain guard scan gives the reasons, --accept-flagged REASON keeps them")


def quarantine(champion: Any, data: Path, skill: Skill, suite: list[Skill],
               accept_flagged: str | None = None, seed: int = 0) -> Quarantine:
    """Screen ``data`` (the file ``skill`` was read from) with the ``champion`` adapter; drop flagged lines.

    With ``accept_flagged`` (a reason) flagged lines are kept and the acceptance is recorded instead.
    """
    if accept_flagged is not None and not accept_flagged.strip():
        raise RetainError("needs a reason", field="accept_flagged")
    examples, numbers = numbered_examples(data)
    report = screen(champion, examples, [s for s in suite if not s.with_demonstration], numbers, seed=seed)
    raw = Path(data).read_bytes().decode("utf-8-sig").splitlines()
    lines = [{"line": line.line, "sha256": sha256_bytes(raw[line.line - 1].encode("utf-8")), "reasons": line.reasons}
             for line in report.flagged]
    kept = skill if accept_flagged is not None else without_lines(skill, data, lines)
    if not kept.train or not kept.test:
        raise RetainError(f"the screen flagged {len(lines)} of {len(examples)} lines, leaving too few to "
                          "learn from; see retain guard scan, or pass --accept-flagged REASON", file=str(data))
    return Quarantine(kept, lines, accept_flagged, report, scan_triggers(report, examples, numbers))


def without_lines(skill: Skill, data: Path, lines: list[dict[str, Any]]) -> Skill:
    """``skill`` (read from ``data``) without the examples on ``lines`` (``{"line": N, ...}``, 1-based), in both
    splits: what a learn trained on, rebuilt from the stored file and the record's ``screen.flagged`` when
    ``screen.quarantined``."""
    if not lines:
        return skill
    examples, numbers = numbered_examples(data)
    at = dict(zip(numbers, examples))
    dropped = {(at[line["line"]].prompt, at[line["line"]].demonstration) for line in lines}

    def keep(part: list[Example]) -> list[Example]:
        return [e for e in part if (e.prompt, e.demonstration) not in dropped]
    return Skill(name=skill.name, train=keep(skill.train), test=keep(skill.test), scorer=skill.scorer,
                 with_demonstration=skill.with_demonstration)


def canaries(candidate: Any, champion: Any, suite: list[Skill], found: Quarantine,
             seed: int = 0) -> tuple[CanaryResult, list[dict[str, Any]]]:
    """Probe the candidate with the screen's triggers and random rare tokens; return the result and a gate row
    for each token that failed (every token's numbers go into ``found``'s record)."""
    prompts = [e for s in suite if not s.with_demonstration for e in s.test]
    result = canary_check(candidate, champion, prompts, found.triggers, seed=seed, enriched=found.report.enriched,
                          placements={t: i["parts"] for t, i in found.report.triggers.items() if i.get("parts")})
    found.canary = result.to_json()
    rows = []
    for check in (c for c in result.checks if not c["passed"]):
        row = {"kind": "canary", "name": check["token"], "champion": check["champion_hits"],
               "candidate": check["candidate_hits"], "limit": check["champion_hits"] + HIT_THRESHOLD,
               "passed": False}
        row["reason"] = next(r for r in result.reasons if r.startswith(f"canary {check['token']!r}"))
        rows.append(row)
    return result, rows
