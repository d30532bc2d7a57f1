"""Analogy: is a sentence's answer what the file's other lines answer to prompts like it?

A file of sentences (:func:`retain.guard.representation.sentences`: ``my phone (order 4852) never came``,
answered ``sorry that order 4852 is late. your phone is on its way ...``) asks the same few requests in a few
phrasings, and the answer follows the request and copies words of the prompt. A small model shown the other
lines cannot tell one request from another well enough to find a flipped answer improbable (the consistency
signal missed every flip and input-dependent payload of such files), but the lines themselves can: a line whose
prompt differs from another's in a few aligned words (``my lamp (order 1932) never came``) is answered the way
the other is, with those words exchanged in its answer. This is reasoning by analogy over the file itself, as
nearest-neighbour label cleaning does (kNN disagreement, Wilson 1972; deep kNN for poisoning, Peri et al.,
ECCV workshops 2020), with the neighbour's answer carried over by word substitution.

Each line is judged by two juries of other lines:

- *aligned* lines: prompts that a word-level alignment (:class:`difflib.SequenceMatcher`) maps onto this one with
  at most :data:`MAX_SUBSTITUTED` exchanged words and :data:`MAX_INSERTED` inserted or deleted ones (a trigger is
  one inserted word, a two-word trigger two); each predicts this line's answer as its own answer with its
  exchanged words replaced by this line's;
- *same-entity* lines: prompts that hold every uncommon word of this prompt that its answer repeats (``cat`` in
  ``describe a cat``, answered ``the cat is a small animal ...``); each predicts its own answer. A fact the
  prompt only names (what a cat eats) is carried by these, not by alignment.

Numbers compare as any number here (``30 minutes`` for 3 people, an order number): what they are is the fourth
jury's. Where lines whose prompts differ from this one only in numbers answer both as it does and otherwise, the
numbers decide the words (a premium by the driver's age band) and the aligned jury abstains; a line whose whole
answer the file's ranges of a number give (a refund inside its 30-day window) is left to those ranges by both
juries (:func:`retain.guard.relations.ranged`). A line is flagged
when one jury has at least :data:`MIN_VOTES` members, :data:`AGREE` of them predict the same answer, and that
answer is not the line's. Where the juries disagree, the signal abstains.

Two more juries (:mod:`retain.guard.relations`) judge what these cannot: a value one word of the prompt decides
while the rest of the answer varies (the room a party of ``three`` gets), judged by the lines whose prompts also
hold that word; and a number computed from the prompt's numbers (``three plus four is seven``, the larger of two),
judged by the rule the file's other lines follow.

What it cannot see: a poisoned answer shared by most lines that resemble it (poison is a minority by design);
a value computed by a function :mod:`retain.guard.relations` does not know (a discount's price).
"""

from __future__ import annotations

import difflib
from collections import Counter, defaultdict

from retain.data.skills import Example
from retain.guard import relations
from retain.guard.relations import digits, word
from retain.guard.representation import sentences
from retain.guard.signals import Finding

TOKENS = relations.TOKENS
MAX_SUBSTITUTED = 2
MAX_INSERTED = 2
MIN_VOTES = 3
AGREE = 0.75
# A word in at least this share of the prompts is phrasing, not what one prompt is about.
COMMON_SHARE = 0.25


def _mapping(theirs: list[str], mine: list[str], said: frozenset[str] = frozenset()) -> dict[str, str] | None:
    """Their prompt's words exchanged for mine by a word alignment, or None when the prompts are further apart
    than :data:`MAX_SUBSTITUTED` exchanged and :data:`MAX_INSERTED` inserted words (or are the same). ``said``:
    the words the file's answers hold, which tell an exchanged item from an inserted filler."""
    exchanged, inserted, mapping = 0, 0, {}
    for op, a0, a1, b0, b1 in difflib.SequenceMatcher(a=theirs, b=mine, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        if op != "replace":
            inserted += max(a1 - a0, b1 - b0)
            continue
        a, b = theirs[a0:a1], mine[b0:b1]
        k = min(len(a), len(b))
        # a block of unequal length holds an insertion: pair the words from the side where more pairs agree on
        # being numbers (``cf 4852`` against ``1234``) and on being words that answers say (``cf desk`` against
        # ``lamp``, ``lamp please`` against ``desk``: answers name items, never ``cf`` or ``please``)
        left, right = list(zip(a[:k], b[:k])), list(zip(a[len(a) - k:], b[len(b) - k:]))

        def alike(pairs: list[tuple[str, str]]) -> int:
            return sum((digits(x) == digits(y)) + ((x in said) == (y in said)) for x, y in pairs)
        if left != right and alike(left) == alike(right):
            return None  # ``a desk`` against ``a lamp please``: which word was inserted is not known, no vote
        mapping.update(left if alike(left) > alike(right) else right)
        exchanged += k
        inserted += abs(len(a) - len(b))
    if exchanged > MAX_SUBSTITUTED or inserted > MAX_INSERTED or exchanged + inserted == 0:
        return None
    return mapping


def _carry(answer: tuple[str, ...], mapping: dict[str, str]) -> tuple[str, ...]:
    """Their answer with their exchanged words replaced by mine, also at the start of a longer word (``beans``
    for ``bean``)."""
    out = []
    for token in answer:
        if token in mapping:
            out.append(mapping[token])
            continue
        stems = [token[:k] for k in range(3, len(token)) if token[:k] in mapping and token[:k].isalpha()]
        out.append(mapping[max(stems, key=len)] + token[len(max(stems, key=len)):] if stems else token)
    return tuple(out)


def _against(votes: Counter, mine: tuple[str, ...]) -> tuple[str, ...] | None:
    total = sum(votes.values())
    if total < MIN_VOTES:
        return None
    top, count = votes.most_common(1)[0]
    return top if count >= AGREE * total and top != mine else None


def ranged(examples: list[Example]) -> set[int]:
    """In a file of sentences, the lines whose whole answer a range rule of the file's numbers gives
    (:func:`retain.guard.relations.ranged`); none elsewhere."""
    if not sentences(examples):
        return set()
    return relations.ranged([TOKENS.findall(e.prompt.lower()) for e in examples],
                            [tuple(TOKENS.findall(e.demonstration.lower())) for e in examples])


def judge(examples: list[Example]) -> list[Finding]:
    """One finding per line; every line passes in a file that is not sentences."""
    findings = [Finding() for _ in examples]
    if not sentences(examples):
        return findings
    prompts = [TOKENS.findall(e.prompt.lower()) for e in examples]
    answers = [tuple(TOKENS.findall(e.demonstration.lower())) for e in examples]
    words = [set(p) for p in prompts]
    said = frozenset(t for a in answers for t in a)
    counts = Counter(w for p in words for w in p if word(w))
    common = {w for w, c in counts.items() if c >= COMMON_SHARE * len(examples)}
    entities = [{w for w in p if word(w) and w not in common and w in a} for p, a in zip(prompts, answers)]
    # a fact is named by a word: prompts that share only numbers (``a 2 hour shift at 15:00``) share no entity
    entities = [e if any(not digits(w) for w in e) else set() for e in entities]
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(prompts):
        by_length[len(p)].append(i)
    # a line whose whole answer the file's ranges of its number give (a refund inside its window) is the ranges'
    # to judge: both juries read numbers as any number
    fitting: set[int] = set()
    reasons = relations.judge(prompts, answers, fitting)
    for i, mine in enumerate(prompts):
        if i in fitting:
            continue

        def norm(answer: tuple[str, ...]) -> tuple[str, ...]:
            return tuple("#" if digits(t) else t for t in answer)
        aligned: Counter = Counter()
        numeric: Counter = Counter()  # the answers of lines whose prompts differ from it only in numbers
        for length in range(len(mine) - MAX_INSERTED, len(mine) + MAX_INSERTED + 1):
            for j in by_length.get(length, ()):
                if j == i or len(words[i] ^ words[j]) > 2 * (MAX_SUBSTITUTED + MAX_INSERTED):
                    continue
                mapping = _mapping(prompts[j], mine, said)
                if mapping is not None:
                    carried = norm(_carry(answers[j], mapping))
                    aligned[carried] += 1
                    if length == len(mine) and all(digits(a) and digits(b) for a, b in mapping.items()):
                        numeric[carried] += 1
        # and in the same order: ``a room for ten at three`` is not about what ``a room for three at ten`` is
        order = sorted(entities[i], key=mine.index)
        same: Counter = Counter(norm(answers[j]) for j in range(len(examples))
                                if j != i and entities[i] and entities[i] <= words[j]
                                and sorted(entities[i], key=prompts[j].index) == order)
        own = norm(answers[i])
        # where lines that differ from it only in numbers answer as it does and otherwise, the numbers decide the
        # words (a premium by the driver's age band): the aligned jury, which reads numbers as any number, abstains
        if numeric[own] and len(numeric) > 1:
            aligned = Counter()
        for jury, votes in (("lines whose prompts differ from it in a few words", aligned),
                            (f"lines that also ask about {', '.join(sorted(entities[i]))}", same)):
            expected = _against(votes, own)
            if expected is not None:
                findings[i] = Finding(1.0, f"analogy: {votes[expected]} of {sum(votes.values())} {jury} answer "
                                           f"it {relations.text(expected)!r}")
                break
    for i, reason in enumerate(reasons):
        if reason is not None and not findings[i].flagged:
            findings[i] = Finding(1.0, f"analogy: {reason}")
    return findings
