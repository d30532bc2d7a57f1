"""What changes the versions of a home, each as one committed operation: init, a gated candidate, rollback.

These functions take models as folders and scores as numbers; training and evaluating are the caller's
(see :mod:`retain.home`), so the ledger can be tested with any real model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retain.data.skills import Skill
from retain.errors import RetainError
from retain.ledger import store
from retain.ledger.atomic import killpoint
from retain.ledger.audit import now
from retain.ledger.core import FORMAT, Home
from retain.ledger.environment import capture
from retain.ledger.gate import GateDecision, GatePolicy, Items, Scores, decide, pack_items, unpack_items


@dataclass
class Candidate:
    """A trained model folder and everything needed to record how it was made and how it scores."""

    folder: Path
    kind: str
    method: str
    skill: Skill
    scores: Scores
    champion_scores: Scores
    seed: int = 0
    # Per-item scores behind ``scores`` and ``champion_scores`` (same suites and names, each entry's test
    # order), for the gate's paired test; an entry without them is gated unpaired.
    items: Items = field(default_factory=dict)
    champion_items: Items = field(default_factory=dict)
    lora: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    data: list[tuple[str, Path]] = field(default_factory=list)
    wall_seconds: float = 0.0
    protection: bytes | None = None
    # The guard's verdicts (:mod:`retain.guard.home`): the screen's record (kept in the version's record, so
    # reproduce can drop the same quarantined lines) and the canaries' gate checks.
    screen: dict[str, Any] | None = None
    canary_checks: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Outcome:
    """What ``learn`` into a home did: the new version, its parent and the gate's decision."""

    version: str
    parent: str
    decision: GateDecision
    record: dict[str, Any]

    @property
    def promoted(self) -> bool:
        return self.decision.promote


def _checked_scores(scores: Scores) -> Scores:
    out: Scores = {"skills": {}, "probes": {}}
    for suite in out:
        for name, value in scores.get(suite, {}).items():
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise RetainError(f"score must be a finite number, got {value!r}", field=f"{suite}.{name}")
            out[suite][name] = float(value)
    return out


def _record(name: str, parent: str | None, kind: str, method: str, artifacts: dict[str, Any], *,
            skill: str | None, seed: int | None, lora: bool, options: dict[str, Any], config: dict[str, Any],
            data: list[dict[str, Any]], suite_added: list[dict[str, Any]], suite: list[str], scores: Scores,
            wall_seconds: float) -> dict[str, Any]:
    return {"version": name, "parent": parent, "kind": kind, "method": method, "skill": skill, "seed": seed,
            "lora": lora, "options": options, "config": config, "data": data, "suite_added": suite_added,
            "suite": suite, "scores": _checked_scores(scores), "wall_seconds": round(wall_seconds, 3),
            "environment": capture(), "artifacts": artifacts, "created_at": now()}


def init_home(path: str | Path, folder: Path, source: str, policy: GatePolicy, probes: list[Skill],
              scores: Scores, wall_seconds: float = 0.0, protection: bytes | None = None,
              config: dict[str, Any] | None = None, items: Items | None = None) -> Home:
    """Create a home whose v1 (and champion) is the model in ``folder``, with ``probes`` pinned as its suite
    and ``protection`` (a blob: importance, anchors, rehearsal prompts estimated on the suite) as its state;
    ``items``, the per-item scores behind ``scores``, are kept for the first gate's paired test."""
    policy.validate()

    def fill(home: Home) -> list[dict[str, Any]]:
        artifacts = home.store_model(folder)
        if protection is not None:
            artifacts["protection_sha256"] = home.objects.put(protection)
        specs = [home.store_suite_entry(p, "probe") for p in probes]
        killpoint("init_stored")
        record = _record("v1", None, "base", "base", artifacts, skill=None, seed=None, lora=False, options={},
                         config={"source": source, **(config or {})}, data=[], suite_added=specs, suite=[p.name for p in probes],
                         scores=scores, wall_seconds=wall_seconds)
        if items:
            record["outcomes"] = pack_items(items)
        return [{"type": "version_created", "version": "v1", "record": record},
                {"type": "promoted", "version": "v1", "previous": None, "reason": "base model"}]

    return Home.create(path, [{"type": "init", "format": FORMAT, "gate": policy.to_dict()}], fill)


def record_candidate(home: Home, candidate: Candidate, force: str | None = None) -> Outcome:
    """Store a candidate, gate it against the champion and promote it if it passes (or is forced).

    The caller holds ``home.writing``. Artifacts are durable before the one commit that makes the version
    visible together with its gate decision and, if any, its promotion.
    """
    if candidate.kind not in ("full", "adapter"):
        raise RetainError(f"must be full or adapter, got {candidate.kind!r}", field="kind")
    parent, name = home.champion(), home.next_version()
    artifacts = home.store_model(candidate.folder)
    if candidate.protection is not None:
        artifacts["protection_sha256"] = home.objects.put(candidate.protection)
    data = [home.store_file(path, role, keep_path=role == "source") for role, path in candidate.data]
    spec = home.store_suite_entry(candidate.skill, "skill")
    killpoint("artifacts_stored")
    suite_names = sorted({s["name"] for s in store.suite_specs(home.conn)} | {candidate.skill.name})
    record = _record(name, parent, candidate.kind, candidate.method, artifacts, skill=candidate.skill.name,
                     seed=candidate.seed, lora=candidate.lora, options=candidate.options, config=candidate.config,
                     data=data, suite_added=[spec], suite=suite_names, scores=candidate.scores,
                     wall_seconds=candidate.wall_seconds)
    if candidate.screen is not None:
        record["screen"] = candidate.screen
    if candidate.items:
        record["outcomes"] = pack_items(candidate.items)
    policy = home.policy()
    # the gate pairs the items as they are recorded (packing keeps pass/fail exact)
    decision = decide(policy, candidate.skill.name, _checked_scores(candidate.champion_scores), record["scores"],
                      force, candidate.canary_checks,
                      champion_items=unpack_items(pack_items(candidate.champion_items)),
                      candidate_items=unpack_items(record.get("outcomes")))
    events: list[dict[str, Any]] = []
    if candidate.screen and candidate.screen["flagged"]:
        # The guard's verdict as an event of its own, so the log shows what was held back (or let through).
        held = candidate.screen["quarantined"]
        events.append({"type": "quarantined" if held else "flagged_accepted", "version": name,
                       "lines": candidate.screen["flagged"], "reason": candidate.screen["accepted_flagged"]})
    events += [
        {"type": "version_created", "version": name, "record": record},
        {"type": "gate_decision", "version": name, "champion": parent, "decision": decision.decision,
         "reasons": decision.reasons, "checks": decision.checks, "policy": policy.to_dict(),
         "champion_scores": _checked_scores(candidate.champion_scores), "forced_reason": decision.forced_reason,
         **({"champion_outcomes": pack_items(candidate.champion_items)} if candidate.champion_items else {})}]
    if decision.promote:
        events.append({"type": "promoted", "version": name, "previous": parent,
                       "reason": decision.forced_reason or "passed the gate"})
    home.commit(events)
    return Outcome(name, parent, decision, record)


def rollback(home: Home, ref: str, reason: str | None = None, timeout: float = 0.0) -> tuple[str, str]:
    """Make an earlier champion the champion again; return (new champion, previous champion)."""
    with home.writing("rollback", timeout):
        target, current = home.resolve(ref), home.champion()
        if target == current:
            raise RetainError(f"{target} is already the champion", file=str(home.root))
        was_champion = any(e["type"] in ("promoted", "rolled_back") for e in store.events_of(home.conn, target))
        if not was_champion:
            raise RetainError(f"{target} was never champion (status {home.version(target)['status']}); "
                              "rollback only returns to an earlier champion", file=str(home.root))
        home.commit([{"type": "rolled_back", "version": target, "previous": current,
                      "reason": reason or "rollback requested"}])
    return target, current


def change_suite(home: Home, added: list[Skill], removed: list[str], reason: str) -> list[dict[str, Any]]:
    """Add items to (and remove names from) the regression suite in one commit; the caller holds
    ``home.writing``. An added item is judged from the next version on (the champion's own record has no
    score for it, so the next gate measures it on both). Returns the added entries."""
    judges_from = home.next_version()
    specs = [home.store_suite_entry(skill, "probe") for skill in added]
    events: list[dict[str, Any]] = [{"type": "suite_removed", "name": name, "reason": reason} for name in removed]
    events += [{"type": "suite_added", "spec": spec, "judges_from": judges_from, "reason": reason} for spec in specs]
    home.commit(events)
    return specs
