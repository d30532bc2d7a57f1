"""Usage errors as a user meets them: one line naming the option, exit code 2, nothing written; ``--help``
without torch; a byte-order mark at the start of a skill file; a ``module:function`` scorer that is no scorer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from retain.cli.usage import MAX_SEED
from retain.data.jsonl import read_examples
from retain.errors import RetainError
from retain.evaluate.scorers import get_scorer

HEAVY = ("torch", "transformers", "sklearn", "gymnasium", "lm_eval", "retain.api", "retain.home", "retain.run")


def retain(*args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "retain", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=3600)



@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "skill.jsonl"
    path.write_text('{"prompt": "a", "demonstration": "b"}\n{"prompt": "c", "demonstration": "d"}\n')
    return path


LEARN = ["learn", "embedded", "{data}", "--out", "{out}"]
USAGE_ERRORS = [
    (LEARN + ["--lr", "abc"], "--lr: must be a number, got 'abc'"),
    (LEARN + ["--lr", "nan"], "--lr: must be a finite number, got nan"),
    (LEARN + ["--lr", "inf"], "--lr: must be a finite number, got inf"),
    (LEARN + ["--lr", "0"], "--lr: must be > 0, got 0"),
    (LEARN + ["--epochs", "nan"], "--epochs: must be an integer, got 'nan'"),
    (LEARN + ["--epochs", "0"], "--epochs: must be >= 1, got 0"),
    (LEARN + ["--batch-size", "0"], "--batch-size: must be >= 1, got 0"),
    (LEARN + ["--wait", "-inf"], "--wait: must be a finite number, got -inf"),
    (LEARN + ["--seed", str(2**70)], f"--seed: must be an integer from 0 to 2**63 - 1, got {2**70}"),
    (LEARN + ["--seed", str(MAX_SEED + 1)], f"--seed: must be an integer from 0 to 2**63 - 1, got {MAX_SEED + 1}"),
    (LEARN + ["--seed", "-1"], "--seed: must be an integer from 0 to 2**63 - 1, got -1"),
    (LEARN + ["--scorer", "json:dumps"], "--scorer: 'json:dumps' must take two arguments (prediction, reference)"),
    (LEARN + ["--scorer", "os:sep"], "--scorer: 'os:sep' is not a function"),
    (LEARN + ["--scorer", "builtins:max"], "--scorer: 'builtins:max' must return a number from 0 to 1, got '42'"),
    (LEARN + ["--scorer", "fuzzy"], "--scorer: unknown scorer 'fuzzy'"),
    (LEARN + ["--bogus"], "--bogus: no such option"),
    (LEARN + ["--lr"], "--lr: requires an argument"),
    (LEARN + ["--quiet=yes"], "--quiet: does not take a value"),
    (["learn", "embedded"], "DATA: missing argument"),
    (["eval", "embedded", "{data}", "--scorer", "math:sqrt"], "--scorer: 'math:sqrt' must take two arguments"),
    (["demo", "--seeds", "0", "--out", "{out}"], "--seeds: must be >= 1, got 0"),
    (["demo", "--quick", "--full", "--out", "{out}"], "--full: --quick and --full are two budgets: pass one"),
    (["init", "{out}", "--gate-min-drop", "nan"], "--gate-min-drop: must be a finite number, got nan"),
    (["init", "{out}", "--gate-alpha", "0"], "--gate-alpha: must be between 0 and 1 (exclusive), got 0"),
    (["init", "{out}", "--floor", "1.5"], "--floor: must be between 0 and 1, got 1.5"),
    (["init", "{out}", "--protection-prompts", "0"], "--protection-prompts: must be >= 1, got 0"),
    (["build-base", "--out", "{out}", "--size", "XL"], "--size: must be one of S, M, L, got 'XL'"),
    (["build-base", "--out", "{out}", "--steps", "0"], "--steps: must be >= 1, got 0"),
    (["build-base", "--out", "{out}", "--seed", str(2**64)], "--seed: must be an integer from 0 to 2**63 - 1"),
    (["bench", "consolidation", "--seeds", "x", "--out", "{out}"], "--seeds: must be an integer, got 'x'"),
    (["bench", "nosuch"], "no such command 'nosuch'"),
]


@pytest.mark.parametrize("args,expected", USAGE_ERRORS, ids=[" ".join(a[3:] or a) for a, _ in USAGE_ERRORS])
def test_usage_error_is_one_line_exit_2_and_writes_nothing(run_main, tmp_path, data, args, expected):
    out = tmp_path / "out"
    code, stdout, stderr = run_main(*[a.format(data=data, out=out) for a in args])
    assert code == 2
    assert stderr.splitlines() == [stderr.strip()] and stderr.startswith(f"retain: error: {expected}"), stderr
    assert stdout == "" and not out.exists()


def test_the_installed_command_reports_a_usage_error_in_one_line(tmp_path, data):
    run = retain("learn", "embedded", data, "--out", tmp_path / "out", "--lr", "abc")
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr == "retain: error: --lr: must be a number, got 'abc'\n"


@pytest.mark.parametrize("args", [["--help"], ["learn", "--help"], ["bench", "--help"], ["init", "--help"]])
def test_help_exits_0_without_loading_torch(args):
    probe = ("import sys\nfrom retain.cli import main\ncode = 0\ntry:\n    main(sys.argv[1:])\n"
             "except SystemExit as stop:\n    code = stop.code\nprint('\\n', code, [m for m in %r if m in sys.modules])"
             % (HEAVY,))
    run = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=3600)
    assert "Usage:" in run.stdout
    assert run.stdout.splitlines()[-1].split(None, 1) == ["0", "[]"], run.stdout[-300:]


def test_no_command_shows_the_help_and_exits_2(run_main):
    code, out, err = run_main()
    assert code == 2 and "Usage:" in out and "learn" in out and err == ""


def test_bench_consolidation_help_names_every_method():
    from retain.bench.consolidation import LANGUAGE, METHODS, domain_methods

    run = retain("bench", "consolidation", "--help")
    text = " ".join(run.stdout.replace("│", " ").split())
    assert run.returncode == 0
    assert f"comma list of {', '.join(METHODS)} (vision, control)" in text
    assert f"{', '.join(domain_methods(LANGUAGE))} (language)" in text


def test_a_byte_order_mark_starts_a_skill_file(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"prompt": "a", "demonstration": "b", "answer": "c"}\n')
    [example] = read_examples(path)
    assert (example.prompt, example.demonstration, example.answer) == ("a", "b", "c")
    # Only at the start: a mark inside the file is a character JSON does not allow there.
    path.write_bytes(b'{"prompt": "a", "demonstration": "b"}\n\xef\xbb\xbf{"prompt": "c", "demonstration": "d"}\n')
    with pytest.raises(RetainError, match=r":2: malformed JSON"):
        read_examples(path)


@pytest.mark.slow
def test_eval_reads_a_file_with_a_byte_order_mark_and_a_custom_scorer(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"prompt": "Reverse: abc", "answer": "cba"}\n')
    run = retain("eval", "embedded", path, "--scorer", "operator:eq", "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["examples"] == 1 and result["scorer"] == "operator:eq" and result["score"] in (0.0, 1.0)


def test_a_module_function_scorer_must_score():
    assert get_scorer("operator:eq")("a", "a") == 1
    for name, message in [("json:dumps", "must take two arguments"), ("os:sep", "is not a function"),
                          ("builtins:max", "must return a number from 0 to 1"), ("json:nosuch", "cannot import"),
                          ("operator:truediv", r"failed on a trial answer \(TypeError")]:
        with pytest.raises(RetainError, match=message):
            get_scorer(name)


def test_the_largest_seed_seeds_every_random_source():
    from retain.seeding import derived_seed, seed_everything

    seed_everything(MAX_SEED)
    seed_everything(derived_seed(MAX_SEED, 7))
