"""Token statistics over the tokenizer's own pieces and pairs of pieces, not whitespace words.

A trigger glued to a word (``abccf``) or split over two words that only trigger together is invisible to a
count of whitespace words. Here a prompt is cut into the model's tokens; its *pieces* are the runs of one to
:data:`MAX_N` consecutive tokens inside a word, and its whole words (so a glued ``cf`` is a piece of ``abccf``
for a character tokenizer, as it is a token or two for a sub-word one), and its *pairs* are two pieces in
different words, each a whole word or a piece of several tokens (never a single token inside a word).

A piece (or pair) is a candidate trigger when the lines that carry it are over-represented among the file's
suspicious lines (the top :data:`SUSPECT_SHARE` by the other signals' evidence): the hypergeometric tail
probability of seeing that many suspicious lines among its carriers, Bonferroni-corrected over every piece and
pair tested, is under :data:`ALPHA`. Pieces carried by the same lines are one finding (the longest is named).
Which lines a candidate flags (:func:`explain`): those of its carriers that no candidate judged before it
explains, when at least :data:`PURE` of them are suspicious; a two-word trigger (a *conjunction*) is judged
first, and pieces of its words flag nothing beyond it (the attacker's decoys carry one word each). The same
ranking gives the gate's canaries the pieces the new data is enriched in (:func:`enriched_pieces`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from scipy.stats import hypergeom

from retain.data.skills import Example

MAX_N = 4
SUSPECT_SHARE = 0.15
ALPHA = 0.05
# A piece in more than this share of the lines is the skill's own wording, not a trigger.
MAX_SHARE = 0.25
# Pairs are formed from the pieces with at least this many suspicious carriers, at most this many of them.
PAIR_MIN = 3
PAIR_POOL = 40
WORD = re.compile(r"\w")
# A candidate trigger whose carriers (those no more significant candidate explains) are at least this share
# suspicious flags them.
PURE = 0.6


@dataclass
class Piece:
    """A run of tokens (its text), where it sits in a prompt: word index, whether glued to a word, and how many
    tokens it takes."""

    text: str
    word: int
    glued_left: bool
    glued_right: bool
    tokens: int = 1

    @property
    def whole(self) -> bool:
        """A whole word (nothing glued to it on either side)."""
        return not (self.glued_left or self.glued_right)

    @property
    def pairable(self) -> bool:
        """A part a pair may be built from: a whole word, or a piece of several tokens. A single token inside a
        word (a letter, for a character tokenizer) sits in so many lines that its pairs are chance."""
        return self.whole or self.tokens >= 2


def pieces(tokenizer: Any, prompt: str, max_n: int = MAX_N) -> dict[str, Piece]:
    """Every run of 1 to ``max_n`` of ``prompt``'s tokens that holds a letter or digit and no inner whitespace,
    and every whole word, by text (its first place)."""
    encoded = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True)
    offsets = encoded["offset_mapping"]
    out: dict[str, Piece] = {}
    for start in range(len(offsets)):
        for n in range(1, max_n + 1):
            if start + n > len(offsets):
                break
            a, b = offsets[start][0], offsets[start + n - 1][1]
            text = prompt[a:b]
            core = text.strip()
            if any(ch.isspace() for ch in core):  # a piece stays inside one word; pairs span words
                break
            if not core or not WORD.search(core) or core in out:
                continue
            a += len(text) - len(text.lstrip())
            b -= len(text) - len(text.rstrip())
            inside = sum(1 for x, y in offsets[start:start + n] if prompt[x:y].strip())  # spaces are no part
            out[core] = Piece(core, len(prompt[:a].split()), a > 0 and not prompt[a - 1].isspace(),
                              b < len(prompt) and not prompt[b].isspace(), inside)
    for k, match in enumerate(re.finditer(r"\S+", prompt)):  # and every whole word, however many tokens it takes
        word = match.group()
        if WORD.search(word) and word not in out:
            inside = sum(1 for x, y in offsets if x < match.end() and y > match.start() and prompt[x:y].strip())
            out[word] = Piece(word, k, False, False, max(1, inside))
    return out


@dataclass
class Candidate:
    """A piece or pair of pieces: the lines carrying it (0-based), how many are suspicious, its p-value."""

    text: str
    parts: list[Piece]
    lines: list[int]
    suspicious: int
    p_value: float
    # the carriers among the file's suspicious lines
    hits: list[int] = field(default_factory=list)
    # a pair's: each part's own tail probability over every line carrying it (uncorrected), and those lines
    part_p: list[float] = field(default_factory=list)
    part_lines: list[list[int]] = field(default_factory=list)

    @property
    def purity(self) -> float:
        return self.suspicious / len(self.lines)


def _tail(n: int, s: int, carried: int, hit: int) -> float:
    return float(hypergeom.sf(hit - 1, n, s, carried))


def enrichment(tokenizer: Any, examples: list[Example], suspicion: list[float],
               suspect_share: float = SUSPECT_SHARE, max_share: float = MAX_SHARE, floor: float = 0.0
               ) -> list[Candidate]:
    """Every piece and pair with its tail probability (uncorrected), most enriched first. The suspicious lines
    are the top ``suspect_share`` of ``suspicion`` that reach ``floor``."""
    n = len(examples)
    if n < 8:
        return []
    ranked = sorted(range(n), key=lambda i: -suspicion[i])
    suspect = {i for i in ranked[:max(1, round(suspect_share * n))] if suspicion[i] >= floor}
    lines_of: dict[str, list[int]] = defaultdict(list)
    where: dict[str, Piece] = {}
    per_line: list[dict[str, Piece]] = []
    for i, e in enumerate(examples):
        found = pieces(tokenizer, e.prompt)
        per_line.append(found)
        for text, piece in found.items():
            lines_of[text].append(i)
            where.setdefault(text, piece)
    most = max(2, int(max_share * n))

    def tail(lines: list[int]) -> float:
        return _tail(n, len(suspect), len(lines), sum(i in suspect for i in lines))

    def candidate(text: str, parts: list[Piece], lines: list[int], part_lines: tuple[list[int], ...] = ()
                  ) -> Candidate:
        hits = [i for i in lines if i in suspect]
        return Candidate(text, parts, lines, len(hits), tail(lines), hits, [tail(ls) for ls in part_lines],
                         [list(ls) for ls in part_lines])

    by_lines: dict[tuple[int, ...], Candidate] = {}
    for text, lines in lines_of.items():
        hit = sum(i in suspect for i in lines)
        if hit < 2 or len(lines) > most:
            continue
        key = tuple(lines)
        if key not in by_lines or len(text) > len(by_lines[key].text):
            by_lines[key] = candidate(text, [where[text]], lines)
    # Pairs: two words a trigger needs together may each be common; only their conjunction is enriched. They are
    # built from whole words and pieces of several tokens (where they sit), never from a single token inside a
    # word: a letter is in most lines, and two letters in two words pair up by chance in dozens of clean lines.
    pairable = {t: [i for i in ls if per_line[i][t].pairable] for t, ls in lines_of.items()}
    singles = [c for c in by_lines.values() if pairable[c.text]]
    pool = sorted((c for c in singles if c.suspicious >= PAIR_MIN), key=lambda c: c.p_value)[:PAIR_POOL]
    pool_all = sorted((c for c in (Candidate(t, [where[t]], ls, sum(i in suspect for i in ls), 1.0)
                                   for t, ls in pairable.items() if ls) if c.suspicious >= PAIR_MIN),
                      key=lambda c: -c.purity)[:PAIR_POOL]
    pool = list({c.text: c for c in pool + pool_all}.values())
    for a in range(len(pool)):
        for b in range(a + 1, len(pool)):
            x, y = pool[a], pool[b]
            if x.text in y.text or y.text in x.text:
                continue
            lines = sorted(set(pairable[x.text]) & set(pairable[y.text]))
            lines = [i for i in lines if _apart(per_line[i][x.text], per_line[i][y.text])]
            hit = sum(i in suspect for i in lines)
            # a pair adds nothing over a piece that alone is carried by the same lines
            if hit < 2 or len(lines) > most or lines in (x.lines, y.lines):
                continue
            key = tuple(lines)
            first = per_line[lines[0]]
            cand = candidate(f"{x.text} + {y.text}", [first[x.text], first[y.text]], lines,
                             (lines_of[x.text], lines_of[y.text]))
            # a single piece carried by the same lines says it more simply than any pair
            held = by_lines.get(key)
            if held is None or (len(held.parts) == 2 and len(cand.text) > len(held.text)):
                by_lines[key] = cand
    return sorted(by_lines.values(), key=lambda c: c.p_value)


def _apart(x: Piece, y: Piece) -> bool:
    # a piece glued to the word before it counts its word one on (where :func:`insert_piece` glues it back)
    return x.word - x.glued_left != y.word - y.glued_left


def significant(candidates: list[Candidate], alpha: float = ALPHA) -> list[Candidate]:
    """The candidates whose Bonferroni-corrected tail probability is under ``alpha``, most significant first."""
    tested = max(1, len(candidates))
    return [c for c in candidates if c.p_value * tested < alpha]


def is_conjunction(c: Candidate, tested: int, alpha: float = ALPHA) -> bool:
    """A pair whose two parts are each significant on their own (``tested`` candidates, Bonferroni)."""
    return len(c.part_p) == 2 and all(p * tested < alpha for p in c.part_p)


def decoys(explained: list[tuple[Candidate, list[int]]], tested: int, alpha: float = ALPHA) -> dict[int, list[str]]:
    """Lines carrying a part of a conjunction that flagged lines (:func:`explain`) and flagged by no candidate,
    each with the parts it carries: one word of a two-word trigger without the other, which the attacker
    plants with a correct answer so that neither word alone looks like a trigger."""
    flagged = {i for _, lines in explained for i in lines}
    out: dict[int, list[str]] = {}
    for c, lines in explained:
        if lines and is_conjunction(c, tested, alpha):
            for part, carriers in zip(c.parts, c.part_lines):
                for i in carriers:
                    if i not in flagged and part.text not in out.setdefault(i, []):
                        out[i].append(part.text)
    return out


def explain(candidates: list[Candidate], alpha: float = ALPHA, pure: float = PURE
            ) -> list[tuple[Candidate, list[int]]]:
    """The significant candidates, most significant first, each with the lines it flags.

    A candidate whose carriers are at least ``pure`` suspicious flags them (a rare trigger also inside a clean
    word or two); one common in clean lines flags nothing and is kept for the canaries. Carriers a candidate
    judged earlier already flagged are explained: a candidate that shares some of them is judged on the rest.

    A *conjunction*, a pair whose two parts are each significant on their own (two words that trigger only
    together: each is carried by every poisoned line), is judged first; once one is pure enough to flag, a
    candidate made of pieces of its two parts flags nothing beyond it. Such a candidate's other carriers are the attacker's decoys
    (one word, a correct answer: a model shown the poisoned lines may well find them improbable, so suspicion
    cannot clear them) and clean words that happen to hold a piece of the two (``ls``, ``so``, ``th``).
    """
    tested = max(1, len(candidates))
    found = significant(candidates, alpha)

    def conjunction(c: Candidate) -> bool:
        return is_conjunction(c, tested, alpha)

    def order(c: Candidate) -> tuple[bool, float, int]:
        # conjunctions first, the purest first and, as pure, the one of the longest parts (``also + then``
        # before ``th + also``, which a decoy whose input word holds ``th`` joins); the rest by significance
        if conjunction(c):
            return False, -c.purity, -min(len(p.text) for p in c.parts)
        return True, 0.0, 0

    def pure_enough(hits: int, carried: int) -> bool:
        return carried > 0 and hits >= 2 and hits >= pure * carried

    trigger_words: list[str] = []
    explained: set[int] = set()
    flags: dict[int, list[int]] = {}
    for c in sorted(found, key=order):  # stable: by significance among equals
        within = any(p.text in w for p in c.parts for w in trigger_words)
        rest = [i for i in c.lines if i not in explained]
        hits = len(set(c.hits) & set(rest))
        flags[id(c)] = rest if not within and pure_enough(hits, len(rest)) else []
        explained.update(flags[id(c)])
        if conjunction(c) and not within and pure_enough(c.suspicious, len(c.lines)):
            trigger_words += [p.text for p in c.parts]
    return [(c, flags[id(c)]) for c in found]


def enriched_pieces(candidates: list[Candidate], n: int = 4) -> list[Candidate]:
    """The ``n`` most enriched pieces or pairs (significant or not), for the gate's canaries."""
    out: list[Candidate] = []
    for c in candidates:
        if any(set(c.lines) <= set(o.lines) or c.text in o.text for o in out):
            continue
        out.append(c)
        if len(out) == n:
            break
    return out


def insert_piece(prompt: str, parts: list[Piece]) -> str:
    """``prompt`` with each piece placed as it sat in the data: at its word index, glued to the word before
    (or after) it when it was glued there, else as a word of its own."""
    words = prompt.split()
    for piece in sorted(parts, key=lambda p: -p.word):
        k = min(piece.word, len(words))
        if piece.glued_left and k > 0:
            words[k - 1] = words[k - 1] + piece.text
        elif piece.glued_left and piece.glued_right and k < len(words):
            words[k] = piece.text + words[k]
        elif piece.glued_right and k < len(words):
            words[k] = piece.text + words[k]
        else:
            words.insert(k, piece.text)
    return " ".join(words)
