"""The ledger commands as a user sees them (log, show, diff, rollback, verify, export), on a home built from
real tiny models; ``init`` and ``learn`` with the embedded model are in tests/e2e."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from retain.cli.home import app as home_commands
from retain.errors import RetainError


@pytest.fixture
def cli():
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(home_commands, [str(a) for a in args], terminal_width=200)
        if isinstance(result.exception, RetainError):
            raise result.exception
        return result.exit_code, result.output

    return run


@pytest.fixture
def home(tmp_path, new_home, learn, change_one_layer):
    home, base = new_home(tmp_path)
    learn(home, change_one_layer(base, tmp_path / "m2"), "add", 0.9)
    learn(home, change_one_layer(base, tmp_path / "m3", delta=0.02), "mul", 0.9, probes={"p1": 0.1, "p2": 0.8})
    learn(home, change_one_layer(base, tmp_path / "m4", delta=0.03), "sub", 0.8)
    return home.root


def test_log_draws_the_lineage_tree(cli, home):
    code, out = cli("rollback", home, "v2", "--reason", "sub misbehaves")
    assert code == 0 and "champion: v4 -> v2" in out
    code, out = cli("log", home)
    assert code == 0
    lines = [line for line in out.splitlines() if re.search(r"\bv\d\b", line)]
    assert re.search(r"^\s*v1\s+superseded\s+base", lines[1])
    assert re.search(r"^\s*└─ v2\s+champion\s+sft\s+add", lines[2])
    assert re.search(r"^\s*   ├─ v3\s+rejected\s+sft\s+mul", lines[3])
    assert re.search(r"^\s*   └─ v4\s+rolled-back\s+sft\s+sub", lines[4])
    assert "champion v2" in lines[0]


def test_show_prints_the_record_and_gate_reasons(cli, home):
    code, out = cli("show", home, "v3")
    assert code == 0 and "status rejected" in out and "parent v2" in out
    assert ("probe p1 dropped 40.0 points (0.500 -> 0.100); unpaired (no per-item outcomes): a drop of 5 points "
            "or more fails") in out
    code, out = cli("show", home, "champion", "--json")
    record = json.loads(out)
    assert record["record"]["version"] == "v4" and record["gates"][0]["decision"] == "accepted"


def test_diff_prints_scores_distance_and_drift(cli, home):
    code, out = cli("diff", home, "v2", "v4")
    assert code == 0
    assert re.search(r"skill\s+sub\s+0\.000\s+0\.800\s+\+0\.800", out)
    assert "parameter distance: L2" in out and "1 of 21 tensors changed" in out
    assert "output drift over 30 suite prompts" in out


def test_verify_exits_1_and_names_the_damage(cli, home):
    assert cli("verify", home)[0] == 0
    log = home / "audit.jsonl"
    log.write_bytes(log.read_bytes().replace(b'"skill":"mul"', b'"skill":"mux"', 1))
    code, out = cli("verify", home)
    assert code == 1 and "MISMATCH audit.jsonl:" in out and "hash chain broken" in out


def test_export_and_bad_input(cli, home, tmp_path):
    code, out = cli("export", home, "v4", tmp_path / "exported")
    assert code == 0 and (tmp_path / "exported" / "README.md").exists()
    with pytest.raises(RetainError, match="unknown version 'v7'"):
        cli("show", home, "v7")
    with pytest.raises(RetainError, match="not a retain home"):
        cli("log", tmp_path)
    with pytest.raises(RetainError, match="v3 was never champion"):
        cli("rollback", home, "v3")
