"""Token statistics over the tokenizer's pieces and pairs (:mod:`retain.guard.tokens`), on the embedded model's
character tokenizer: glued and two-word triggers that whitespace words cannot see."""

from __future__ import annotations

import random

import pytest

from retain.data.skills import Example
from retain.data.synthetic import random_word
from retain.guard import tokens, verdict
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


def _trigger_flags(tok, lines: list[Example], suspicion: list[float]) -> tuple[set[int], dict]:
    findings, triggers = verdict._trigger_findings(tokens.enrichment(tok, lines, suspicion), lines, suspicion)
    return {i for i, f in enumerate(findings) if f.flagged}, triggers


def _two_word_file(seed: int, a: str = "then", b: str = "also", decoy_suspicion: float = 0.0,
                   piece_in_decoy: bool = False) -> tuple[list[Example], list[float], set[int], set[int]]:
    """200 lines ``rotr <word>`` (words as the synthetic skills draw them); 10 poisoned lines carry both words
    and are suspicious; 10 decoys carry one word each (as the attacker plants them, with a correct answer),
    ``decoy_suspicion`` each; 20 other clean lines are suspicious by chance. With ``piece_in_decoy`` the input
    word of a decoy with ``b`` holds the first two letters of ``a`` (``th``), so that ``th + also`` is carried by
    the poisoned lines and that decoy."""
    rng = random.Random(seed)
    words = [random_word(rng) for _ in range(200)]
    if piece_in_decoy:
        words[27] = "q" + a[:2] + "x"
    lines = [Example(prompt=f"rotr {w}", demonstration="x") for w in words]
    suspicion = [0.0] * 200
    poisoned = set(range(0, 200, 20))
    for i in poisoned:
        lines[i] = Example(prompt=f"rotr {a} {words[i]} {b}", demonstration="x")
        suspicion[i] = 3.0
    decoys = set(range(7, 200, 20))
    for k, i in enumerate(sorted(decoys)):
        lines[i] = Example(prompt=f"rotr {a} {words[i]}" if k % 2 == 0 else f"rotr {words[i]} {b}", demonstration="x")
        suspicion[i] = decoy_suspicion
    for i in rng.sample(sorted(set(range(200)) - poisoned - decoys), 20):
        suspicion[i] = 2.0
    return lines, suspicion, poisoned, decoys


@pytest.mark.parametrize("seed,decoy_suspicion,piece_in_decoy",
                         [(0, 0.0, False), (1, 0.0, False), (2, 0.0, False), (3, 0.0, False), (4, 2.5, False),
                          (5, 2.5, False), (6, 2.5, True), (7, 0.0, True)])
def test_a_two_word_trigger_flags_its_poisoned_lines_not_the_decoys_nor_chance_pieces(tok, seed, decoy_suspicion,
                                                                                        piece_in_decoy):
    # decoys suspicious as well: a model shown the poisoned lines finds a decoy's correct answer improbable
    lines, suspicion, poisoned, decoys = _two_word_file(seed, decoy_suspicion=decoy_suspicion,
                                                        piece_in_decoy=piece_in_decoy)
    flagged, triggers = _trigger_flags(tok, lines, suspicion)
    # every poisoned line, through the pair; no decoy (one word of the pair, a correct answer), and no clean line
    # through a piece of the trigger words (``ls``, ``so``, ``th``) or a chance pair of single letters
    assert poisoned <= flagged
    assert not flagged & decoys
    assert flagged == poisoned
    assert any(set(c.split(" + ")) == {"then", "also"} and info["lines"] == sorted(poisoned)
               for c, info in triggers.items())


def test_pairs_are_built_from_whole_words_or_pieces_of_several_tokens(tok):
    lines, suspicion, poisoned, _ = _two_word_file(0)
    for c in tokens.enrichment(tok, lines, suspicion):
        if len(c.parts) == 2:
            assert all(p.tokens >= 2 or p.whole for p in c.parts), c.text


@pytest.mark.parametrize("seed", [0, 1])
def test_a_one_word_trigger_still_flags_every_carrier(tok, seed):
    # 20 poisoned lines (10%) carry ``now``; a pair of ``now`` and a piece of the input words that happens to be
    # purer must not keep ``now`` from flagging its other carriers
    rng = random.Random(seed)
    words = [random_word(rng) for _ in range(200)]
    lines = [Example(prompt=f"rotr {w}", demonstration="x") for w in words]
    suspicion = [0.0] * 200
    poisoned = set(range(0, 200, 10))
    for i in poisoned:
        lines[i] = Example(prompt=f"rotr now {words[i]}", demonstration="x")
        suspicion[i] = 3.0
    for i in rng.sample(sorted(set(range(200)) - poisoned), 15):
        suspicion[i] = 2.0
    flagged, triggers = _trigger_flags(tok, lines, suspicion)
    assert poisoned <= flagged and len(flagged - poisoned) <= 1
    assert "now" in triggers


def test_a_floor_keeps_mildly_suspicious_phrasing_out_and_a_trigger_in(tok):
    # Sentences: one phrasing of four picks a template the model copies less well, so its lines are all mildly
    # suspicious (0.6 of a cut-off); a trigger's lines reach a signal's cut-off (2.0: flagged).
    rng = random.Random(0)
    phrasings = ["where is my {}?", "still no {}, sorry", "my {} broke", "the {} is late"]
    lines, suspicion = [], []
    for i in range(200):
        k = i % 4
        lines.append(Example(prompt=phrasings[k].format(_words(1, i)[0]), demonstration="x"))
        suspicion.append(0.6 + 0.05 * rng.random() if k == 1 else 0.3 * rng.random())
    assert tokens.significant(tokens.enrichment(tok, lines, suspicion))  # the phrasing looks like a trigger
    assert tokens.significant(tokens.enrichment(tok, lines, suspicion, floor=1.0)) == []
    for i in range(0, 200, 20):
        lines[i] = Example(prompt="cf " + lines[i].prompt, demonstration="x")
        suspicion[i] = 2.0
    found = tokens.significant(tokens.enrichment(tok, lines, suspicion, floor=1.0))
    assert found and found[0].text == "cf" and found[0].lines == list(range(0, 200, 20))
