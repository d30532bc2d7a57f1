"""A learn into a home checks what needs the model's tokenizer (prompt lengths, SDFT's completion mask) before
the lock is taken: such bad input is one located error and changes nothing in the home, lock file included."""

from __future__ import annotations

import json

import pytest

from retain.errors import RetainError
from retain.home import learn_in_home


def _files(root):
    return {p.relative_to(root): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(root.rglob("*"))
            if p.is_file()}


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("case", ["too long", "masked"])
def test_tokenizer_checks_run_before_the_lock(tmp_path, tiny_home, case):
    root = tiny_home.root
    if case == "too long":  # the embedded model has 512 positions
        rows = [{"prompt": f"reverse {i}", "demonstration": "x y"} for i in range(6)]
        rows[3]["prompt"] = "reverse " + "abc " * 600
        match, field = "over the limit", "prompt"
    else:  # three-token answers: SDFT's default skip of 3 leaves nothing to train on
        rows = [{"prompt": f"ends of {w}", "demonstration": f"{w[0]}.{w[-1]}"}
                for w in ("apple", "grape", "lemon", "mango", "peach", "melon")]
        match, field = "skip_tokens", "sdft.skip_tokens"
    data = _write(tmp_path / "skill.jsonl", rows)
    before = _files(root)
    with pytest.raises(RetainError, match=match) as raised:
        learn_in_home(root, data, "sdft", options={"sdft": {"skip_tokens": 3}} if case == "masked" else None,
                      quiet=True)
    assert raised.value.field == field
    if case == "too long":
        assert raised.value.file == str(data) and raised.value.line == 4
    assert _files(root) == before
