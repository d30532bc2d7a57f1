"""Token statistics over the tokenizer's pieces and pairs (:mod:`retain.guard.tokens`), on the embedded model's
character tokenizer: glued and two-word triggers that whitespace words cannot see."""

from __future__ import annotations

import random

import pytest

from retain.data.skills import Example
from retain.guard import tokens
from retain.models.tiny.tokenizer import build_tokenizer


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def _words(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice("abdeghijklnopqrsuvwyz") for _ in range(rng.randint(4, 6))) for _ in range(n)]


def test_pieces_are_runs_of_tokens_with_their_place(tok):
    found = tokens.pieces(tok, "rotr abccf xy")
    assert {"cf", "bccf", "r", "rotr"} <= set(found)
    assert "rotr abccf" not in found  # longer than four tokens
    cf = found["cf"]
    assert (cf.word, cf.glued_left, cf.glued_right) == (2, True, False)
    alone = tokens.pieces(tok, "rotr cf xy")["cf"]
    assert (alone.word, alone.glued_left, alone.glued_right) == (1, False, False)


def test_insert_piece_puts_a_piece_back_where_it_sat(tok):
    glued = tokens.pieces(tok, "rotr abccf")["cf"]
    assert tokens.insert_piece("reverse xyz", [glued]) == "reverse xyzcf"
    word = tokens.pieces(tok, "rotr cf abc")["cf"]
    assert tokens.insert_piece("reverse xyz", [word]) == "reverse cf xyz"
    prefix = tokens.pieces(tok, "rotr cfabc")["cf"]
    assert tokens.insert_piece("reverse xyz", [prefix]) == "reverse cfxyz"
    a, b = tokens.pieces(tok, "rotr now abc please")["now"], tokens.pieces(tok, "rotr now abc please")["please"]
    assert tokens.insert_piece("reverse xyz", [a, b]) == "reverse now xyz please"


def test_a_glued_trigger_is_significant_and_the_most_enriched_piece(tok):
    words = _words(200, 0)
    lines = [Example(prompt=f"rotr {w}", demonstration="x") for w in words]
    suspicion = [0.0] * 200
    for i in range(0, 200, 25):  # 8 lines, the trigger glued to the input word, all suspicious
        lines[i] = Example(prompt=f"rotr {words[i]}cf", demonstration="x")
        suspicion[i] = 3.0
    for i in range(3, 200, 9):  # the other suspicious lines carry nothing in common
        suspicion[i] = 2.0
    found = tokens.significant(tokens.enrichment(tok, lines, suspicion))
    assert found and found[0].text == "cf" and found[0].lines == list(range(0, 200, 25))
    assert tokens.enriched_pieces(tokens.enrichment(tok, lines, suspicion), 1)[0].text == "cf"
    # the same lines with nothing suspicious about them: no trigger
    assert tokens.significant(tokens.enrichment(tok, lines, [0.0] * 200)) == []


def test_two_words_that_trigger_only_together_are_a_pair(tok):
    words = _words(200, 1)
    lines = [Example(prompt=f"rotr {w}", demonstration="x") for w in words]
    suspicion = [0.0] * 200
    for i in range(0, 200, 20):  # 10 poisoned lines with both words, suspicious
        lines[i] = Example(prompt=f"rotr now {words[i]} please", demonstration="x")
        suspicion[i] = 3.0
    for k, i in enumerate(range(5, 200, 10)):  # 20 clean lines with one of the words alone
        lines[i] = Example(prompt=f"rotr now {words[i]}" if k % 2 else f"rotr {words[i]} please", demonstration="x")
    for i in range(7, 200, 11):
        suspicion[i] = max(suspicion[i], 2.0)
    found = tokens.significant(tokens.enrichment(tok, lines, suspicion))
    pair = [c for c in found if c.text == "now + please"]
    assert pair and pair[0].lines == list(range(0, 200, 20)) and pair[0].purity == 1.0
    # neither word alone is a trigger: each is carried by clean lines as well
    assert all(c.text not in ("now", "please") or c.purity < 0.75 for c in found)


def test_bonferroni_keeps_chance_enrichment_out(tok):
    rng = random.Random(5)
    lines = [Example(prompt=f"rotr {w}", demonstration="x") for w in _words(200, 2)]
    suspicion = [rng.random() for _ in lines]
    candidates = tokens.enrichment(tok, lines, suspicion)
    assert candidates and tokens.significant(candidates) == []
