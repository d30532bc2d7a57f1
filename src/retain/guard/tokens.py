"""Token statistics over the tokenizer's own pieces and pairs of pieces, not whitespace words.

A trigger glued to a word (``abccf``) or split over two words that only trigger together is invisible to a
count of whitespace words. Here a prompt is cut into the model's tokens; its *pieces* are the runs of one to
:data:`MAX_N` consecutive tokens inside a word, and its whole words (so a glued ``cf`` is a piece of ``abccf``
for a character tokenizer, as it is a token or two for a sub-word one), and its *pairs* are two pieces in
different words.

A piece (or pair) is a candidate trigger when the lines that carry it are over-represented among the file's
suspicious lines (the top :data:`SUSPECT_SHARE` by the other signals' evidence): the hypergeometric tail
probability of seeing that many suspicious lines among its carriers, Bonferroni-corrected over every piece and
pair tested, is under :data:`ALPHA`. Pieces carried by the same lines are one finding (the longest is named).
The same ranking gives the gate's canaries the pieces the new data is enriched in
(:func:`enriched_pieces`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
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


@dataclass
class Piece:
    """A run of tokens (its text), where it sits in a prompt: word index and whether glued to a word."""

    text: str
    word: int
    glued_left: bool
    glued_right: bool


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
            out[core] = Piece(core, len(prompt[:a].split()), a > 0 and not prompt[a - 1].isspace(),
                              b < len(prompt) and not prompt[b].isspace())
    for k, word in enumerate(prompt.split()):  # and every whole word, however many tokens it takes
        if WORD.search(word) and word not in out:
            out[word] = Piece(word, k, False, False)
    return out


@dataclass
class Candidate:
    """A piece or pair of pieces: the lines carrying it (0-based), how many are suspicious, its p-value."""

    text: str
    parts: list[Piece]
    lines: list[int]
    suspicious: int
    p_value: float

    @property
    def purity(self) -> float:
        return self.suspicious / len(self.lines)


def _tail(n: int, s: int, carried: int, hit: int) -> float:
    return float(hypergeom.sf(hit - 1, n, s, carried))


def enrichment(tokenizer: Any, examples: list[Example], suspicion: list[float],
               suspect_share: float = SUSPECT_SHARE, max_share: float = MAX_SHARE) -> list[Candidate]:
    """Every piece and pair with its tail probability (uncorrected), most enriched first."""
    n = len(examples)
    if n < 8:
        return []
    ranked = sorted(range(n), key=lambda i: -suspicion[i])
    suspect = set(ranked[:max(1, round(suspect_share * n))])
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
    by_lines: dict[tuple[int, ...], Candidate] = {}
    for text, lines in lines_of.items():
        hit = sum(i in suspect for i in lines)
        if hit < 2 or len(lines) > most:
            continue
        key = tuple(lines)
        cand = Candidate(text, [where[text]], lines, hit, _tail(n, len(suspect), len(lines), hit))
        if key not in by_lines or len(text) > len(by_lines[key].text):
            by_lines[key] = cand
    singles = list(by_lines.values())
    pool = sorted((c for c in singles if c.suspicious >= PAIR_MIN), key=lambda c: c.p_value)[:PAIR_POOL]
    # Pairs: two words a trigger needs together may each be common; only their conjunction is enriched.
    pool_all = sorted((c for c in (Candidate(t, [where[t]], ls, sum(i in suspect for i in ls), 1.0)
                                   for t, ls in lines_of.items()) if c.suspicious >= PAIR_MIN),
                      key=lambda c: -c.purity)[:PAIR_POOL]
    pool = list({c.text: c for c in pool + pool_all}.values())
    for a in range(len(pool)):
        for b in range(a + 1, len(pool)):
            x, y = pool[a], pool[b]
            if x.text in y.text or y.text in x.text:
                continue
            lines = sorted(set(x.lines) & set(y.lines))
            lines = [i for i in lines if _apart(per_line[i][x.text], per_line[i][y.text])]
            hit = sum(i in suspect for i in lines)
            # a pair adds nothing over a piece that alone is carried by the same lines
            if hit < 2 or len(lines) > most or lines in (x.lines, y.lines):
                continue
            key = tuple(lines)
            first = per_line[lines[0]]
            cand = Candidate(f"{x.text} + {y.text}", [first[x.text], first[y.text]], lines, hit,
                             _tail(n, len(suspect), len(lines), hit))
            # a single piece carried by the same lines says it more simply than any pair
            held = by_lines.get(key)
            if held is None or (len(held.parts) == 2 and len(cand.text) > len(held.text)):
                by_lines[key] = cand
    return sorted(by_lines.values(), key=lambda c: c.p_value)


def _apart(x: Piece, y: Piece) -> bool:
    return x.word != y.word


def significant(candidates: list[Candidate], alpha: float = ALPHA) -> list[Candidate]:
    """The candidates whose Bonferroni-corrected tail probability is under ``alpha``, most significant first."""
    tested = max(1, len(candidates))
    return [c for c in candidates if c.p_value * tested < alpha]


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
