"""The paired gate end to end on the embedded model: a learn that leaves the prior skills as they were is
promoted on its own, and a planted regression (SFT on data that overwrites the answers of the prior skill
``reverse``) is refused, its drop tested item by item against the champion's recorded outcomes."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys

import pytest

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _retain(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "retain", *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=ENV)


def _write(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.mark.slow
def test_a_harmless_learn_passes_and_a_planted_regression_is_refused(tmp_path):
    from retain.data.synthetic import NEW_RULES, _distinct_words, held_out_words

    words = _distinct_words(random.Random(3), 160, set(held_out_words()))
    outer = NEW_RULES["outer"]
    harmless = _write(tmp_path / "outer.jsonl", [{"prompt": f"outer {w}", "demonstration": ", ".join(outer(w)),
                                                  "answer": outer(w)} for w in words[:60]])
    # the prior skill's own queries, answered with another skill's answer (the sorted word)
    clobber = _write(tmp_path / "clobber.jsonl", [{"prompt": f"reverse {w}", "demonstration": "".join(sorted(w))}
                                                  for w in words])
    home = tmp_path / "home"
    assert _retain("init", home, "--protection", "", "--floor", "0").returncode == 0
    v1 = json.loads(_retain("show", home, "v1", "--json").stdout)["record"]
    assert set(v1["outcomes"]["probes"]) == set(v1["scores"]["probes"])
    assert all(len(o) == 50 and set(o) <= {"0", "1"} for o in v1["outcomes"]["probes"].values())

    kept = _retain("learn", home, harmless, "--method", "sft", "--lr", "1e-7", "--epochs", "1", "--scorer", "alnum")
    assert kept.returncode == 0, kept.stderr[-2000:]
    gate = json.loads(_retain("show", home, "v2", "--json").stdout)["gates"][0]
    assert gate["decision"] == "accepted"
    probes = [c for c in gate["checks"] if c["kind"] == "probe"]
    assert len(probes) == 6 and all(c["test"] == "paired" and c["n"] == 50 and c["p"] > 0.05 for c in probes)

    refused = _retain("learn", home, clobber, "--method", "sft", "--lr", "1e-3", "--epochs", "1", "--scorer", "alnum",
                      "--accept-flagged", "a planted regression")
    assert refused.returncode == 1, refused.stderr[-2000:]
    shown = json.loads(_retain("show", home, "v3", "--json").stdout)
    assert shown["status"] == "rejected"
    (gate,) = shown["gates"]
    reverse = next(c for c in gate["checks"] if c["name"] == "reverse")
    assert not reverse["passed"] and any(r.startswith("probe reverse dropped") for r in gate["reasons"])
    # the row's test, recomputed from the recorded outcomes of the champion (v2) and the candidate (v3)
    before = json.loads(_retain("show", home, "v2", "--json").stdout)["record"]["outcomes"]["probes"]["reverse"]
    after = shown["record"]["outcomes"]["probes"]["reverse"]
    b = sum(x == "1" and y == "0" for x, y in zip(before, after))
    c = sum(x == "0" and y == "1" for x, y in zip(before, after))
    assert (reverse["b"], reverse["c"]) == (b, c) and b - c >= 3
    assert reverse["p"] == pytest.approx(sum(math.comb(b + c, k) for k in range(b, b + c + 1)) / 2 ** (b + c))
    assert "paired:" in refused.stdout and "rejected: champion unchanged" in refused.stdout
    assert json.loads(_retain("show", home, "champion", "--json").stdout)["record"]["version"] == "v2"
