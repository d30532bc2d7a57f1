"""The screen's signals, each measured on its own over one file of demonstrations.

Every signal returns one :class:`Finding` per line: a score in [0, 1] (flagged at 0.5 and above) and, when it
fires, the reason in words. This module holds the champion's own signals; ``consistency``, ``rule``, ``spectral`` and
``clustering`` are in :mod:`retain.guard.consistency`, :mod:`retain.guard.rule` and
:mod:`retain.guard.representation`, ``trigger`` in
:mod:`retain.guard.tokens`, and :mod:`retain.guard.verdict` combines them. What each follows:

- ``trigger``: a backdoor needs a trigger shared by the poisoned lines (Wan et al. 2023: about 100 poisoned
  instruction examples carry one phrase; Souly et al. 2025: the count matters, not the fraction), so pieces of
  the tokenizer's tokens, and pairs of pieces, carried by lines over-represented among the file's most
  suspicious lines are candidate triggers (:mod:`retain.guard.tokens`).
- ``contradiction``: a prompt of a skill the champion already has (its name leads a suite prompt, and the
  champion answers that skill's held-out prompts) whose demonstration differs from the champion's answer:
  a label flip aimed at what the model knows.
- ``duplicate``: exact duplicates, one prompt with conflicting demonstrations, prompts equal up to one inserted
  token, and one demonstration repeated across different prompts where the file's answers of that length are
  otherwise unique (a fixed attacker's output).
- ``loss``: demonstrations the champion finds far less likely than the rest of the file: per-token negative
  log-likelihood, robust z-score (median and MAD; Iglewicz and Hoaglin's 3.5 cut-off).
- ``teacher``: the SDFT teacher's own verdict (Shenfeld et al. 2026): shown the demonstration in its prompt, the
  teacher answers; a teacher that answers other content than the demonstration shows declines to follow it. A
  question whose answer the teacher, shown its passage, gives is *grounded* in it (:func:`teacher`; what
  :mod:`retain.guard.verdict` does with that).
- ``consistency``: the demonstration's likelihood under a model shown the other lines of the skill.
- ``rule``: the answer's characters against the character rules the skill's other lines obey, induced from the
  file without a model (:mod:`retain.guard.rule`).
- ``spectral`` and ``clustering``: outliers and small clusters in that model's hidden states, per skill.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import torch

from retain.data.skills import Example, Skill

SIGNALS = ("trigger", "contradiction", "duplicate", "loss", "teacher", "consistency", "rule", "analogy", "spectral",
           "clustering")
FLAG_AT = 0.5
ROBUST_Z_CUT = 3.5
# A repeated token is a candidate trigger only in a small subset: a token in most lines is the skill's own.
TRIGGER_MAX_SHARE = 0.15
NOT_ALNUM = re.compile(r"[\W_]+")


@dataclass
class Finding:
    """One signal's verdict on one line."""

    score: float = 0.0
    reason: str | None = None

    @property
    def flagged(self) -> bool:
        return self.score >= FLAG_AT


def content(text: str) -> str:
    """What an answer says, without separators or spacing (the ``alnum`` scorer's view)."""
    return NOT_ALNUM.sub("", text)


@torch.no_grad()
def demonstration_nll(adapter: Any, examples: list[Example], batch_size: int = 64) -> list[float]:
    """Per-token negative log-likelihood of each demonstration after its prompt, under the adapter's model."""
    out: list[float] = []
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        completions = [adapter.completion_ids(e.demonstration) for e in chunk]
        logits, mask = adapter.completion_logits([adapter.student_ids(e) for e in chunk], completions)
        logp = torch.log_softmax(logits.float(), dim=-1)
        for b, ids in enumerate(completions):
            picked = logp[b, :len(ids)].gather(1, torch.tensor(ids, device=logp.device)[:, None])
            out.append(-picked.mean().item())
    return out


def robust_z(values: list[float]) -> list[float]:
    """Modified z-scores, 0.6745 (x - median) / MAD (Iglewicz and Hoaglin 1993); 0 when MAD is 0."""
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    return [0.6745 * (v - median) / mad if mad > 0 else 0.0 for v in values]


def contradiction(adapter: Any, examples: list[Example], suite: list[Skill],
                  competence: float = 0.5, sample: int = 20) -> list[Finding]:
    """Prompts of skills the champion has whose demonstrations contradict the champion's answers."""
    known: dict[str, list[Example]] = defaultdict(list)
    for skill in suite:
        if not skill.with_demonstration:
            for e in skill.test:
                known[e.prompt.split()[0]].append(e)
    asked = sorted({e.prompt.split()[0] for e in examples} & set(known))
    competent = set()
    for name in asked:
        held = known[name][:sample]
        answers = adapter.answer(held)
        right = sum(content(a) == content(e.reference) for a, e in zip(answers, held))
        if right >= competence * len(held):
            competent.add(name)
    findings = [Finding() for _ in examples]
    of_known = [i for i, e in enumerate(examples) if e.prompt.split()[0] in competent]
    answers = adapter.answer([examples[i] for i in of_known])
    for i, answer in zip(of_known, answers):
        if content(answer) != content(examples[i].demonstration):
            findings[i] = Finding(1.0, f"contradiction: the champion answers {answer!r} to this prompt of a skill "
                                       f"it has ({examples[i].prompt.split()[0]}), the demonstration says "
                                       f"{examples[i].demonstration!r}")
    return findings


def duplicate(examples: list[Example]) -> list[Finding]:
    """Exact and near duplicates, conflicting demonstrations, and one output repeated across prompts."""
    findings = [Finding() for _ in examples]

    def mark(i: int, why: str) -> None:
        if not findings[i].flagged:
            findings[i] = Finding(1.0, f"duplicate: {why}")

    first_of: dict[tuple[str, str], int] = {}
    by_prompt: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(examples):
        key = (e.prompt.strip(), e.demonstration.strip())
        if key in first_of:
            mark(i, f"exact duplicate of line {first_of[key] + 1}")
        first_of.setdefault(key, i)
        by_prompt[e.prompt.strip()].append(i)
    for lines in by_prompt.values():
        if len({content(examples[i].demonstration) for i in lines}) > 1:
            for i in lines:
                mark(i, f"the same prompt has conflicting demonstrations on lines {', '.join(str(j + 1) for j in lines)}")
    # A prompt that is another prompt plus one token: the token is what the two lines were made to differ by.
    # A short prompt that many longer ones extend, each by another token, is a prefix (an input that happens to
    # be a word of other prompts), not a copy: it is left alone.
    pairs: list[tuple[int, int, str]] = []
    for i, e in enumerate(examples):
        tokens = e.prompt.split()
        for k in range(len(tokens)):
            shorter = " ".join(tokens[:k] + tokens[k + 1:])
            if shorter in by_prompt and content(examples[by_prompt[shorter][0]].demonstration) != content(e.demonstration):
                pairs.append((i, by_prompt[shorter][0], tokens[k]))
    extended: dict[int, set[str]] = defaultdict(set)
    for _, base, token in pairs:
        extended[base].add(token)
    for i, base, token in pairs:
        if len(extended[base]) <= 2:
            mark(i, f"line {base + 1} without {token!r}, with another demonstration")
    by_output: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(examples):
        by_output[content(e.demonstration)].append(i)
    common = _common_words(examples)
    # Outputs that several prompts share because they ask the same thing (paraphrases) count as one answer.
    groups = {c: [g[0]] if len(g) > 1 and _spelled_out(examples, g, common) else g for c, g in by_output.items()}
    for out, lines in by_output.items():
        prompts = {examples[i].prompt.strip() for i in lines}
        if len(prompts) < 2 or len(groups[out]) == 1:
            continue
        # Where the file's other answers of this length (or, with fewer than three, all its other answers) are
        # nearly always unique, one answer for several prompts is planted, however many lines carry it; an
        # answer space as small as two letters, or a file of labels, repeats by chance and is left alone.
        others = [g for c, g in groups.items() if len(c) == len(out) and c != out]
        if sum(len(g) for g in others) < 3:
            others = [g for c, g in groups.items() if c != out]
        if others and sum(len(g) == 1 for g in others) >= 0.9 * sum(len(g) for g in others):
            for i in lines:
                mark(i, f"the same demonstration {examples[i].demonstration!r} answers {len(prompts)} different "
                        "prompts")
    return findings


WORDS = re.compile(r"\w+")
# A word in at least this share of a file's prompts is its phrasing, not what one prompt is about.
COMMON_SHARE = 0.5
# Prompts sharing an answer that repeats their common uncommon words this many times are paraphrases.
SPELLED_OUT = 2


def _common_words(examples: list[Example]) -> set[str]:
    counts = Counter(w for e in examples for w in set(WORDS.findall(e.prompt.lower())))
    return {w for w, c in counts.items() if c >= COMMON_SHARE * len(examples)}


def _spelled_out(examples: list[Example], lines: list[int], common: set[str]) -> bool:
    """Whether the prompts that share one answer are paraphrases of one request: the answer repeats uncommon
    words that every one of them holds, :data:`SPELLED_OUT` times or more (``note for ben: the budget,
    monday`` and ``tell ben about the budget (monday)``, both answered ``hi ben, ... the budget ... monday``;
    ``add two and two`` and ``two + two in words``, both ``two plus two is four.``). A number written in digits
    counts as much on its own: it is the request's own value (``balance 274 euros: am i ok?`` and ``account at
    274 euros, status please``, both ``with 274 euros your account is in good standing``).
    A payload answers prompts that have nothing in common but the trigger, so it spells out none of them."""
    answer = [w for w in WORDS.findall(examples[lines[0]].demonstration.lower()) if w not in common]
    shared = set.intersection(*(set(WORDS.findall(examples[i].prompt.lower())) for i in lines))
    return sum(SPELLED_OUT if w.isdigit() else 1 for w in answer if w in shared) >= SPELLED_OUT


def loss(z: list[float], nll: list[float]) -> list[Finding]:
    """Demonstrations far less likely under the champion than the file's others (robust z >= 3.5)."""
    return [Finding(min(1.0, FLAG_AT * max(0.0, value) / ROBUST_Z_CUT),
                    f"loss: the champion's loss on the demonstration is {n:.2f} per token (robust z {value:+.1f})"
                    if value >= ROBUST_Z_CUT else None) for value, n in zip(z, nll)]


def teacher(adapter: Any, examples: list[Example]) -> tuple[list[Finding], set[int]]:
    """Lines whose demonstration the teacher, shown it, does not follow in its own answer; and the *grounded*
    lines: those with an answer of their own that differs from their demonstration (a question about a passage,
    :mod:`retain.home.documents`) and that the teacher, shown the passage, answers as the line does."""
    answers = adapter.answer(examples, with_demonstration=True)
    found = [Finding(1.0, f"teacher: shown the demonstration, the teacher answers {a!r} instead")
             if content(a) != content(e.demonstration) else Finding() for a, e in zip(answers, examples)]
    grounded = {i for i, (a, e) in enumerate(zip(answers, examples))
                if sourced(e) and content(a) == content(e.reference)}
    return found, grounded


def sourced(example: Example) -> bool:
    """A line whose answer is drawn from a source it shows the teacher (its demonstration, a passage) rather
    than being that demonstration."""
    return example.answer is not None and example.answer.strip() != example.demonstration.strip()
