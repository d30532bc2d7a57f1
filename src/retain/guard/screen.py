"""The poisoning screen: every line of a demonstration file scored by the signals of :mod:`retain.guard.signals`
(combined in :mod:`retain.guard.verdict`) and flagged when any of them fires.

``screen(adapter, examples, suite)`` measures each signal on its own, so the benchmark can report them apart;
a line's score is its highest signal score, its reasons those of the signals that fired. The candidate
triggers it finds are what the gate's canaries insert (:mod:`retain.guard.canary`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retain.data.jsonl import read_examples
from retain.data.skills import Example, Skill
from retain.errors import RetainError
from retain.guard import signals
from retain.guard.signals import FLAG_AT, SIGNALS, Finding


@dataclass
class ScreenLine:
    """One line's verdict: ``line`` is 1-based as in every retain message."""

    line: int
    score: float
    flagged: bool
    reasons: list[str]
    signals: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "score": round(self.score, 4), "flagged": self.flagged, "reasons": self.reasons}


@dataclass
class ScreenReport:
    """Every line's verdict, the candidate triggers, and what the screen cost."""

    lines: list[ScreenLine]
    triggers: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    # Signals that fired on most of a skill's lines and were set aside (see :func:`screen`).
    uninformative: list[str] = field(default_factory=list)
    # The pieces (or pairs) of tokens the file is most enriched in among its suspicious lines: canary material.
    enriched: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def flagged(self) -> list[ScreenLine]:
        return [line for line in self.lines if line.flagged]

    def by_signal(self, name: str) -> list[int]:
        """1-based lines the one signal ``name`` flags on its own."""
        return [line.line for line in self.lines if line.signals[name] >= FLAG_AT]

    def summary(self) -> dict[str, Any]:
        return {"lines": len(self.lines), "flagged": len(self.flagged),
                "by_signal": {name: len(self.by_signal(name)) for name in SIGNALS},
                "triggers": sorted(self.triggers), "flag_at": FLAG_AT, "uninformative": self.uninformative,
                "enriched": [e["text"] for e in self.enriched],
                "seconds": {k: round(v, 3) for k, v in self.seconds.items()}}

    def to_json(self) -> dict[str, Any]:
        """The object ``retain guard scan --json`` prints."""
        return {"lines": [line.to_json() for line in self.lines], "summary": self.summary()}


def screen(adapter: Any, examples: list[Example], suite: list[Skill], line_numbers: list[int] | None = None,
           only: tuple[str, ...] = SIGNALS, *, seed: int = 0) -> ScreenReport:
    """Score every example (the champion as ``adapter``; the suite holds the skills it must keep).

    ``only`` limits the signals computed (the others score 0); ``line_numbers`` maps examples to file lines;
    ``seed`` seeds the consistency signal's folds. A signal that flags more than half of a skill's lines (the
    teacher: 20%) says something about the champion, not about poison (a teacher that cannot use
    demonstrations disagrees with every line; poison is a minority by design): it is set aside for that skill
    and named in the summary's ``uninformative`` (:mod:`retain.guard.verdict`).
    """
    unknown = set(only) - set(SIGNALS)
    if unknown:
        raise RetainError(f"unknown signal(s) {sorted(unknown)} (known: {', '.join(SIGNALS)})", field="signals")
    from retain.guard.verdict import combine, run_signals

    numbers = line_numbers or list(range(1, len(examples) + 1))
    was_training = adapter.model.training
    adapter.model.eval()
    result = run_signals(adapter, examples, suite, only, seed)
    adapter.model.train(was_training)
    lines = [ScreenLine(number, score, score >= FLAG_AT, reasons, scores)
             for number, (score, reasons, scores) in zip(numbers, combine(result.found, only, len(examples)))]
    triggers = result.triggers
    for info in triggers.values():
        info["lines"] = [numbers[i] for i in info["lines"]]
    enriched = [{**e, "lines": [numbers[i] for i in e["lines"]]} for e in result.enriched]
    return ScreenReport(lines, triggers, result.seconds, result.uninformative, enriched, result.details)


def numbered_examples(path: str | Path) -> tuple[list[Example], list[int]]:
    """A JSONL file's examples and the 1-based file line of each (blank lines are skipped, as when reading)."""
    examples = read_examples(path)
    text = Path(path).read_text(encoding="utf-8-sig")
    numbers = [n for n, raw in enumerate(text.splitlines(), start=1) if raw.strip()]
    return examples, numbers


def scan_file(data: str | Path, model: str | Callable[[], Any], suite_files: list[str | Path] | None = None,
              only: tuple[str, ...] = SIGNALS, prior: list[Skill] | None = None) -> ScreenReport:
    """``retain guard scan``: screen a JSONL file against ``model``: ``embedded``, a model folder, or a function
    that loads one (a home's champion, which :func:`retain.home.versions.champion_loader` hands over with the
    home's suite as ``prior``). Inputs are checked before any model is loaded."""
    from retain.data.synthetic import probe_skills
    from retain.models.loading import load_adapter, resolve_model_path

    examples, numbers = numbered_examples(data)
    suite = [Skill(name=Path(p).stem, test=read_examples(p)) for p in suite_files or []]
    if callable(model):
        suite = suite or list(prior or [])
        adapter = model()
    else:
        resolve_model_path(model)
        # The embedded model's prior skills are its suite; another model's is what --suite names.
        suite = suite or (probe_skills() if model == "embedded" else [])
        adapter = load_adapter(model)
    return screen(adapter, examples, suite, numbers, only)
