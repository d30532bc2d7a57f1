"""The combined verdict: every signal measured on its own, then one verdict per line.

Signals (:data:`retain.guard.signals.SIGNALS`): the champion's view of each line (``loss``, ``teacher``,
``contradiction`` with a skill it has, ``duplicate`` structure), the view of a model shown the other lines of
the skill (``consistency``, :mod:`retain.guard.consistency`), the character rules the other lines obey, induced
without a model (``rule``, :mod:`retain.guard.rule`), in a file of sentences what the lines whose prompts are
like a line's answer (``analogy``, :mod:`retain.guard.analogy`), the hidden states of that model per skill
(``spectral`` signatures and activation ``clustering``, :mod:`retain.guard.representation`), and token
statistics over the tokenizer's pieces and pairs tied to the other signals' evidence (``trigger``,
:mod:`retain.guard.tokens`).

A line is flagged when any signal's score reaches 0.5. Each cut-off was calibrated on clean files of every
shipped skill family so that each signal alone flags at most a few percent of clean lines (the clean rows of
``retain bench guard``). A signal that flags more than :data:`SET_ASIDE_SHARE` of one skill's lines (the
teacher: :data:`TEACHER_SET_ASIDE_SHARE`) says something about the model, not about poison (poison is a
minority by design): it is set aside for that skill and named in ``uninformative``; in a file of sentences, the
loss signal's flags on one phrasing are set aside the same way from a smaller share (:func:`_loss_modes`), and
the structure signals' flags on lines whose whole answer the file's ranges give (:func:`_clear_ranged`).
When the trigger signal finds a two-word trigger, the lines carrying one of its words alone (the attacker's
decoys) that the consistency signal flagged are judged again without that word, by models not shown the lines
the trigger flagged (:func:`_rejudge_decoys`). A file of sentences (:func:`retain.guard.representation.sentences`) is one skill
whatever its prompts' first words, and there only lines whose evidence reaches a cut-off count as suspicious to
the token statistics (:data:`SENTENCE_SUSPICION`). Last, a line whose answer its skill's character rules account for entirely (the rule
signal certifies it) loses every flag but the contradiction signal's (:func:`_clear_certified`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from retain.data.skills import Example, Skill
from retain.guard import consistency as consistency_mod
from retain.guard import analogy, representation, signals, tokens
from retain.guard.rule import judge
from retain.guard.signals import FLAG_AT, SIGNALS, Finding

# A signal flagging more than this share of one skill's lines is set aside for that skill; the teacher, whose
# disagreement measures whether the model can copy a demonstration at all (long answers), already at 20%.
SET_ASIDE_SHARE = 0.5
# In a file of sentences, a phrasing of this many lines or more whose lines the loss signal flags at more than
# this share is a way of asking the champion reads as less likely, not a planted minority (at most a tenth).
PHRASING_LINES = 20
LOSS_MODE_SHARE = 0.15
TEACHER_SET_ASIDE_SHARE = 0.2
# Signals whose flags a line loses when the rule signal certifies its answer (:func:`_clear_certified`).
CLEARED_BY_RULE = ("trigger", "duplicate", "loss", "teacher", "consistency", "analogy", "spectral", "clustering")
# Signals whose flags a grounded line (a question its passage answers) loses when a sibling grounded line that
# none of them flagged asks the same passage with the same answer (:func:`_clear_grounded`).
# (Not the duplicate signal's: a repeated output flags every line that repeats it, so no sibling vouches.)
GROUNDED_STRUCTURE = ("consistency", "spectral", "clustering", "loss")
WORDS = signals.WORDS
# A word in the questions of at least this share of a file's passages (and of PHRASING_MIN) is phrasing.
PHRASING_SHARE = 0.25
PHRASING_MIN = 3
# A trigger glued to a question's word adds at most this many characters to it.
MAX_GLUED = 4
# Evidence a line is suspicious, for the token statistics: its largest score over these signals (each in units
# of its cut-off), or any other signal's flag.
SUSPICION = ("consistency", "spectral", "loss")
# In a file of sentences (:func:`retain.guard.representation.sentences`) a phrasing picks its answer's template
# (``never came`` asks for the late-order answer), so a template the small model copies less well makes every
# line of its phrasing mildly suspicious, and the phrasing looks like a trigger (8% of clean lines of a support
# file were flagged so). There a line counts as suspicious only when its evidence reaches a signal's cut-off.
SENTENCE_SUSPICION = 1.0


@dataclass
class Verdicts:
    """Per signal one finding per line, the candidate triggers, the enriched pieces, and what it cost."""

    found: dict[str, list[Finding]]
    triggers: dict[str, dict[str, Any]] = field(default_factory=dict)
    enriched: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    uninformative: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def _z_findings(z: list[float], cut: float, why: str) -> list[Finding]:
    return [Finding(min(1.0, FLAG_AT * max(0.0, v) / cut), why.format(z=v) if v >= cut else None) for v in z]


def run_signals(adapter: Any, examples: list[Example], suite: list[Skill], only: tuple[str, ...],
                seed: int = 0) -> Verdicts:
    """Measure each signal in ``only`` on ``examples`` with ``adapter`` (the champion)."""
    seconds: dict[str, float] = {}
    found: dict[str, list[Finding]] = {}
    certified: set[int] = set()
    grounded: set[int] = set()
    details: dict[str, Any] = {}
    need = set(only)
    start = time.perf_counter()
    nll = signals.demonstration_nll(adapter, examples) if need & {"loss", "trigger"} else []
    loss_z = signals.robust_z(nll) if nll else [0.0] * len(examples)
    seconds["champion loss"] = time.perf_counter() - start
    held = None
    if need & {"consistency", "spectral", "clustering", "trigger"}:
        start = time.perf_counter()
        held = consistency_mod.consistency(adapter, examples, seed=seed)
        seconds["consistency"] = time.perf_counter() - start
        details["consistency_mode"] = held.mode
    cons_z = [max(a, b) for a, b in zip(held.z_mean, held.z_max)] if held else [0.0] * len(examples)
    spectral_z = [0.0] * len(examples)
    for name in only:
        start = time.perf_counter()
        if name == "contradiction":
            found[name] = signals.contradiction(adapter, examples, suite)
        elif name == "duplicate":
            found[name] = signals.duplicate(examples)
        elif name == "rule":
            judged = judge(examples)
            found[name] = judged.findings
            certified = judged.certified
        elif name == "analogy":
            found[name] = analogy.judge(examples)
        elif name == "loss":
            found[name] = signals.loss(loss_z, nll)
        elif name == "teacher":
            found[name], grounded = signals.teacher(adapter, examples)
        elif name == "consistency" and held is not None:
            found[name] = [Finding(s, f"consistency: a model shown the other lines of the skill ({held.mode}) finds "
                                      f"this demonstration improbable ({max(a, b):.1f} spreads above the skill's "
                                      f"median line: mean token {a:+.1f}, worst token {b:+.1f})" if s >= FLAG_AT else None)
                           for s, a, b in zip(held.scores, held.z_mean, held.z_max)]
        elif name == "spectral" and held is not None:
            spectral_z, scores = representation.spectral(consistency_mod.features(held.trained), examples,
                                                         models=[s.model for s in held.trained])
            found[name] = [Finding(s, f"spectral: far along the top singular direction of its skill's hidden "
                                      f"states (robust z {z:+.1f})" if s >= FLAG_AT else None)
                           for s, z in zip(scores, spectral_z)]
        elif name == "clustering" and held is not None:
            scores, splits = representation.clustering(consistency_mod.features(held.trained), examples,
                                                           models=[s.model for s in held.trained])
            details["clusters"] = splits
            found[name] = [Finding(s, "clustering: in a small, well separated cluster of its skill's hidden states"
                                   if s >= FLAG_AT else None) for s in scores]
        if name in found:
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
    if held is not None and "spectral" not in found and "trigger" in need:
        spectral_z, _ = representation.spectral(consistency_mod.features(held.trained), examples,
                                                         models=[s.model for s in held.trained])
    if "contradiction" in found:  # before the trigger signal counts flagged lines as suspicious
        _clear_corrections(found["contradiction"], examples, suite, details)
    if "loss" in found and representation.sentences(examples):
        _loss_modes(found["loss"], loss_z, examples, details)
    if "analogy" in found:
        _clear_ranged(found, examples, {"consistency": cons_z, "spectral": spectral_z, "loss": loss_z}, details)
    uninformative = _set_aside(found, examples)
    triggers: dict[str, dict[str, Any]] = {}
    enriched: list[dict[str, Any]] = []
    explained: list[tuple[tokens.Candidate, list[int]]] = []
    if "trigger" in need:
        start = time.perf_counter()
        # each signal's evidence in units of its own cut-off, so that they compare
        evidence = {"consistency": [v / consistency_mod.CONSISTENCY_CUT for v in cons_z],
                    "spectral": [v / representation.SPECTRAL_Z for v in spectral_z],
                    "loss": [v / signals.ROBUST_Z_CUT for v in loss_z]}
        # and every line another signal flagged counts as suspicious
        flagged = [max((2 * found[name][i].score for name in found), default=0.0) for i in range(len(examples))]
        suspicion = [max([flagged[i]] + [evidence[s][i] for s in SUSPICION]) for i in range(len(examples))]
        floor = SENTENCE_SUSPICION if representation.sentences(examples) else 0.0
        candidates = tokens.enrichment(adapter.tokenizer, examples, suspicion, floor=floor)
        explained = tokens.explain(candidates)
        found["trigger"], triggers = _trigger_findings(candidates, examples, suspicion, explained)
        if held is not None and "consistency" in found:
            _rejudge_decoys(adapter, examples, found["consistency"], explained, len(candidates), held.mode, seed,
                            details)
        enriched = [_piece_json(c) for c in tokens.enriched_pieces(candidates)]
        seconds["trigger"] = time.perf_counter() - start
    _clear_grounded(found, examples, grounded, explained, details)
    if "duplicate" in found:
        _grounded_twins(found["duplicate"], examples, grounded, details)
    _clear_certified(found, certified, details)
    if "trigger" in found:  # a trigger names the lines it still flags; one whose every line was cleared is gone
        for text in list(triggers):
            lines = [i for i in triggers[text]["lines"] if found["trigger"][i].flagged]
            if triggers[text]["lines"] and not lines:
                del triggers[text]
            else:
                triggers[text]["lines"] = lines
    return Verdicts(found, triggers, enriched, seconds, uninformative, details)


def _clear(found: dict[str, list[Finding]], lines: set[int], names: tuple[str, ...]) -> int:
    """Clear the flags of the signals ``names`` on ``lines``; return how many lines lost one."""
    cleared = 0
    for i in lines:
        flagged = [name for name in names if name in found and found[name][i].flagged]
        cleared += bool(flagged)
        for name in flagged:
            found[name][i] = Finding()
    return cleared


def _clear_certified(found: dict[str, list[Finding]], certified: set[int], details: dict[str, Any]) -> None:
    """Clear the flags of :data:`CLEARED_BY_RULE` on lines whose answer the skill's character rules account for
    entirely (:func:`retain.guard.rule.judge`): such an answer is the skill's own, whatever a small model's
    copies, its hidden states or a word the line carries suggest (a two-word trigger's decoys, a rare input
    word). A poisoned line's answer is the attacker's, so it breaks a rule and is never certified; a flip of a
    skill the model has is the contradiction signal's, which stays."""
    cleared = _clear(found, certified, CLEARED_BY_RULE)
    if certified:
        details["rule_certified"] = {"lines": len(certified), "cleared": cleared}


def _clear_corrections(found: list[Finding], examples: list[Example], suite: list[Skill],
                       details: dict[str, Any]) -> None:
    """Clear the contradiction flags of lines that correct the champion rather than flip a skill it has. A
    user's corrections of a skill the champion learned from earlier feedback all contradict it (each replaces a
    wrong answer), as a flip does; what tells them apart is whether they follow the skill as the home recorded
    it: the character rules induced from the line's skill in the file *together with* the suite's own
    references of that skill (:func:`retain.guard.rule.judge`) hold every character of the line and of some
    references and break on none of them (``unbroken``: certified but for the length rule, which a few
    lines may not establish). A flip follows another rule: the
    references' rule breaks it, or, where flips outnumber the references, their rule breaks the references and
    nothing is cleared. A skill that is no character rule judges nothing, and its contradictions stay."""
    flagged = [i for i, f in enumerate(found) if f.flagged]
    if not flagged:
        return
    cleared = 0
    for name in sorted({examples[i].prompt.split()[0] for i in flagged}):
        references = [Example(prompt=e.prompt, demonstration=e.reference) for skill in suite
                      if not skill.with_demonstration for e in skill.test if e.prompt.split()[0] == name]
        mine = [i for i, e in enumerate(examples) if e.prompt.split()[0] == name]
        judged = judge([examples[i] for i in mine] + references)
        n = len(mine)
        if not any(n <= k for k in judged.unbroken) or any(f.flagged for f in judged.findings[n:]):
            continue  # no rule judges the references, or the file's lines make them break one
        for k in range(n):
            i = mine[k]
            if found[i].flagged and k in judged.unbroken:
                found[i] = Finding()
                cleared += 1
    if cleared:
        details["corrections_cleared"] = cleared


def _clear_grounded(found: dict[str, list[Finding]], examples: list[Example], grounded: set[int],
                    explained: list[tuple[tokens.Candidate, list[int]]], details: dict[str, Any]) -> None:
    """Clear what a file of questions about passages looks like to the structure signals, on grounded lines
    (:func:`retain.guard.signals.teacher`: the teacher, shown the line's passage, gives its answer).

    Such a file asks each passage's fact several ways, and each fact is arbitrary to a model that has not read
    the passage: the lines of one fact share their subject's words and their answer, a phrasing the small model
    copies less well is a word shared by lines of many facts, and one phrasing's lines sit together in hidden
    states. To the trigger, spectral and clustering signals (and to the consistency and loss signals, which find
    an arbitrary fact improbable) that is what a backdoor looks like. What a backdoor has and a fact asked
    several ways has not is an answer that only its trigger brings. So a grounded line loses

    - a trigger flag when the carriers of the candidate that ask its passage with its answer hold no word the
      candidate does not touch but phrasing (words that ask about at least :data:`PHRASING_SHARE` of the
      passages: one subject asked several ways, where a trigger fires on varied inputs), or when a line that
      does not carry the candidate, that nothing flagged, asks the same passage with the same answer and holds
      every word of the line that no part
      of the candidate touches (the answer does not depend on the candidate);
    - a flag of the other structure signals (:data:`GROUNDED_STRUCTURE`) when a grounded line that none of them
      flagged asks the same passage with the same answer.

    A question whose answer its passage does not give is never grounded and keeps every flag. What no screen of
    questions can tell is whether a passage is true: a poisoned document is taught as written, as any document
    is."""
    if not grounded:
        return
    key = {i: (examples[i].demonstration.strip(), signals.content(examples[i].reference)) for i in grounded}
    words = [set(WORDS.findall(e.prompt.lower())) for e in examples]
    flagged_any = {i for findings in found.values() for i, f in enumerate(findings) if f.flagged}
    # a phrasing word asks about many passages (``of``, an attribute); a subject's words about few
    phrasing = _widely_asked({passage: set().union(*(words[i] for i in lines))
                              for passage, lines in _by_passage(examples, grounded).items()})
    cleared = 0
    if "trigger" in found:
        for c, lines in explained:
            parts = [p.text.lower() for p in c.parts]
            carriers = set(c.lines)
            rest = {i: {w for w in words[i] if not any(part in w for part in parts)} for i in carriers}
            for i in lines:
                if i not in grounded or not found["trigger"][i].flagged:
                    continue
                # the carriers that ask its passage with its answer: one subject asked several ways?
                same = [k for k in carriers if k in grounded and key[k] == key[i]]
                vouched = any(j not in carriers and j not in flagged_any and key[j] == key[i] and rest[i] <= words[j]
                              for j in grounded)
                if vouched or all(rest[k] <= phrasing for k in same):
                    found["trigger"][i] = Finding()
                    cleared += 1
    structure = [name for name in GROUNDED_STRUCTURE if name in found]
    plain = {i for i in grounded if not any(found[name][i].flagged for name in structure)}
    for i in sorted(grounded - plain):
        if any(j != i and key[j] == key[i] for j in plain):
            for name in structure:
                found[name][i] = Finding()
            cleared += 1
    details["grounded"] = {"lines": len(grounded), "cleared": cleared}


def _by_passage(examples: list[Example], lines: set[int]) -> dict[str, list[int]]:
    """The ``lines`` (in order) by the passage their demonstration shows."""
    out: dict[str, list[int]] = {}
    for i in sorted(lines):
        out.setdefault(examples[i].demonstration.strip(), []).append(i)
    return out


def _widely_asked(asked: dict[str, set[str]]) -> set[str]:
    """The words that the questions of at least :data:`PHRASING_SHARE` of the passages (and of
    :data:`PHRASING_MIN`) use, given each passage's question words: phrasing (``of``) or an attribute
    (``capital``), never one subject's words."""
    spread: dict[str, int] = {}
    for words in asked.values():
        for w in words:
            spread[w] = spread.get(w, 0) + 1
    return {w for w, n in spread.items() if n >= max(PHRASING_MIN, PHRASING_SHARE * len(asked))}


def _grounded_twins(found: list[Finding], examples: list[Example], grounded: set[int], details: dict[str, Any]
                    ) -> None:
    """Flag questions about passages that ask what another passage's questions ask plus a word (or two, or a
    piece glued to one of their words), answered from their own passage, where at least two lines add the same word:
    a backdoor through a document (the trigger added to ordinary questions, each answered from a passage the
    attacker wrote). The other passage's questions must have words in common, one of them asked of under a
    quarter of the passages (a subject), all of which the line asks; a word that some questions of a passage
    have and others not, in at least :data:`PHRASING_MIN` passages (``of``), is phrasing and does not count. A
    grounded line is one whose passage gives its answer
    (:func:`_clear_grounded`)."""
    if len(grounded) < 2:
        return
    words = {i: set(WORDS.findall(examples[i].prompt.lower())) for i in grounded}
    by_passage = _by_passage(examples, grounded)
    varying: dict[str, set[str]] = {}
    asked: dict[str, set[str]] = {}
    for passage, lines in by_passage.items():
        asked[passage] = set().union(*(words[i] for i in lines))
        varying[passage] = asked[passage] - set.intersection(*(words[i] for i in lines))
    # phrasing: a word that some questions of a passage have and others not, in several passages (``of``)
    core = {passage: asked[passage] - varying[passage] for passage in by_passage}  # each passage's subject
    times: dict[str, int] = {}
    for passage in by_passage:
        for w in varying[passage] if core[passage] else ():
            times[w] = times.get(w, 0) + 1
    phrasing = {w for w, n in times.items() if n >= PHRASING_MIN}
    # a subject is what few passages are asked about (not ``capital``, which a quarter of them are)
    common = _widely_asked(asked)
    added: dict[str, dict[int, int]] = {}
    for i in sorted(grounded):
        mine = examples[i].demonstration.strip()
        for passage, lines in by_passage.items():
            if passage == mine or not core[passage] - common:
                continue
            more = words[i] - asked[passage] - phrasing
            missing = core[passage] - words[i]
            if not more or len(more) > 2 or len(missing) > 1 or (missing and len(more) > 1):
                continue
            extra = " + ".join(sorted(more))  # a word, or two that trigger together
            if missing:  # a piece glued to the word the other questions have
                (word,) = missing
                if len(extra) - len(word) > MAX_GLUED or not (extra.startswith(word) or extra.endswith(word)):
                    continue
                extra = extra[len(word):] if extra.startswith(word) else extra[:-len(word)]
            added.setdefault(extra, {}).setdefault(i, lines[0])
    marked = 0
    for extra, lines in added.items():
        if len(lines) < 2:
            continue
        for i, j in lines.items():
            if not found[i].flagged:
                found[i] = Finding(1.0, f"duplicate: asks what line {j + 1} asks with {extra!r} added, answered from "
                                        f"another passage (as {len(lines) - 1} other line(s) adding {extra!r} are)")
                marked += 1
    if marked:
        details["grounded_twins"] = marked


def combine(found: dict[str, list[Finding]], only: tuple[str, ...], n: int
            ) -> list[tuple[float, list[str], dict[str, float]]]:
    """Per line: the combined score (the highest of every signal in ``only``), the reasons of the signals that
    fired, and each signal's score (0 for a signal not measured)."""
    out = []
    for i in range(n):
        scores = {name: found[name][i].score if name in found else 0.0 for name in SIGNALS}
        reasons = [found[name][i].reason for name in only
                   if name in found and found[name][i].flagged and found[name][i].reason]
        out.append((max(scores[name] for name in only) if only else 0.0, reasons, scores))
    return out


def _piece_json(c: tokens.Candidate) -> dict[str, Any]:
    return {"text": c.text, "parts": [vars(p) for p in c.parts], "lines": list(c.lines),
            "suspicious": c.suspicious, "p_value": c.p_value}


def _trigger_findings(candidates: list[tokens.Candidate], examples: list[Example], suspicion: list[float],
                      explained: list[tuple[tokens.Candidate, list[int]]] | None = None
                      ) -> tuple[list[Finding], dict[str, dict[str, Any]]]:
    findings = [Finding() for _ in examples]
    triggers: dict[str, dict[str, Any]] = {}
    tested = max(1, len(candidates))
    # a candidate flags its carriers when most are suspicious, less those a candidate judged before explains
    for c, lines in explained if explained is not None else tokens.explain(candidates):
        triggers[c.text] = {"lines": list(lines), "parts": [vars(p) for p in c.parts], "p_value": c.p_value,
                            "suspicious": c.suspicious, "carriers": len(c.lines)}
        for i in lines:
            if not findings[i].flagged:
                findings[i] = Finding(1.0, f"trigger: {c.text!r} is carried by {len(c.lines)} lines, {c.suspicious} "
                                           f"of them among the file's most suspicious (p {c.p_value * tested:.1e} "
                                           "after Bonferroni)")
    return findings, triggers


def _rejudge_decoys(adapter: Any, examples: list[Example], found: list[Finding],
                    explained: list[tuple[tokens.Candidate, list[int]]], tested: int, mode: str, seed: int,
                    details: dict[str, Any]) -> None:
    """A decoy of a two-word trigger (one of the words, a correct answer: :func:`retain.guard.tokens.decoys`)
    is a prompt with a word no other clean line has; a model shown the other lines (and the poisoned ones, which
    tie the word to the payload) finds its answer improbable for that word, not for the answer. If the word
    alone is inert, as the pair's significance says, the line less the word must agree with the skill: each
    such line flagged by the consistency signal is judged again that way, by models shown the other lines
    (decoys less their word too) less every line the trigger signal flagged. A single word that is a trigger
    on its own with a wrong answer stays flagged."""
    carried = tokens.decoys(explained, tested)
    again = [i for i in sorted(carried) if found[i].flagged]
    if not again:
        return
    held_back = {i for _, lines in explained for i in lines}
    keep = [i for i in range(len(examples)) if i not in held_back]
    lines = [replace(examples[i], prompt=" ".join(w for w in examples[i].prompt.split() if w not in carried[i]))
             if i in carried else examples[i] for i in keep]
    rejudged = consistency_mod.consistency(adapter, lines, mode=mode, seed=seed)
    at = {i: k for k, i in enumerate(keep)}
    for i in again:
        k = at[i]
        score, a, b = rejudged.scores[k], rejudged.z_mean[k], rejudged.z_max[k]
        words = " and ".join(repr(w) for w in carried[i])
        found[i] = Finding(score, f"consistency: without {words} (a part of a two-word trigger), a model shown the "
                                  "other lines of the skill less those the trigger signal flagged finds this "
                                  f"demonstration improbable ({max(a, b):.1f} spreads above the median line)"
                           if score >= FLAG_AT else None)
    details["decoys_rejudged"] = {"rejudged": len(again), "cleared": sum(not found[i].flagged for i in again)}


def _clear_ranged(found: dict[str, list[Finding]], examples: list[Example], evidence: dict[str, list[float]],
                  details: dict[str, Any]) -> None:
    """Clear the structure signals' flags (:data:`GROUNDED_STRUCTURE`) and their evidence to the trigger signal on
    lines of a file of sentences whose whole answer a range rule of the file gives and that the analogy signal
    leaves unflagged (:func:`retain.guard.analogy.ranged`): a value by a number's range is one no small model
    learns from the other lines (a rare band, the young drivers' rate, reads as improbable to the consistency
    signal's copies), and the file's own ranges account for it. A poisoned line breaks them, so it keeps every
    flag."""
    accounted = {i for i in analogy.ranged(examples) if not found["analogy"][i].flagged}
    cleared = _clear(found, accounted, GROUNDED_STRUCTURE)
    for i in accounted:
        for values in evidence.values():
            values[i] = min(values[i], 0.0)
    if accounted:
        details["ranged"] = {"lines": len(accounted), "cleared": cleared}


def _loss_modes(findings: list[Finding], loss_z: list[float], examples: list[Example], details: dict[str, Any]) -> None:
    """In a file of sentences, clear the loss flags of a phrasing (:func:`retain.guard.representation.phrasings`,
    :data:`PHRASING_LINES` lines or more) that the loss signal flags on more than :data:`LOSS_MODE_SHARE` of its
    lines, and their loss evidence to the trigger signal: a champion that has not learned the skill reads one
    way of asking as a little less likely than the others (``balance 94 euros: am i ok?``, every line's loss
    12.5-13.6 nats per token), which says nothing about a line. Poison is planted across phrasings, at most a
    tenth of the lines, and a trigger is no phrasing word, so a planted line keeps its phrasing's."""
    by: dict[frozenset[str], list[int]] = {}
    for i, phrasing in representation.phrasings(examples, list(range(len(examples)))).items():
        by.setdefault(phrasing, []).append(i)
    cleared = 0
    for phrasing, lines in by.items():
        flagged = [i for i in lines if findings[i].flagged]
        if phrasing and len(lines) >= PHRASING_LINES and len(flagged) > LOSS_MODE_SHARE * len(lines):
            for i in flagged:
                findings[i] = Finding()
                loss_z[i] = 0.0
            cleared += len(flagged)
    details["loss_modes_cleared"] = cleared


def _set_aside(found: dict[str, list[Finding]], examples: list[Example]) -> list[str]:
    """Per skill, clear a signal that flags more than :data:`SET_ASIDE_SHARE` of its lines; return the names
    set aside anywhere."""
    out: list[str] = []
    for group in representation.groups(examples):
        for name, findings in found.items():
            if name == "contradiction":  # it fires on one skill the model has: a flipped prior skill's every line
                continue
            flagged = sum(findings[i].flagged for i in group)
            share = TEACHER_SET_ASIDE_SHARE if name == "teacher" else SET_ASIDE_SHARE
            if flagged > share * len(group) and flagged > 1:
                for i in group:
                    findings[i] = Finding()
                if name not in out:
                    out.append(name)
    return out
