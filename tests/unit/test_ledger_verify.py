"""``verify``: one flipped byte in an artifact, the database or the audit log is found and located."""

from __future__ import annotations

import sqlite3

import pytest

from retain.errors import RetainError
from retain.ledger.core import Home
from retain.ledger.operations import rollback
from retain.ledger.verify import verify
from retain.models.merge import merge_adapter


@pytest.fixture
def home(tmp_path, new_home, learn, change_one_layer, lora_adapter):
    home, base = new_home(tmp_path)
    learn(home, change_one_layer(base, tmp_path / "m2"), "add", 0.9)
    learn(home, lora_adapter(base, tmp_path / "lora"), "mul", 0.9, kind="adapter")
    rollback(home, "v2")
    home.conn.close()
    return home.root


def flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_clean_home_verifies(home):
    report = verify(home)
    assert report.ok, report.problems
    assert report.counts["audit entries"] == 10 and report.counts["versions"] == 3
    assert report.counts["objects hashed"] == report.counts["objects referenced"]


def test_flipped_byte_in_a_tensor_is_reported_with_the_tensor_and_version(home):
    opened = Home.open(home)
    manifest = opened.manifest("v2")
    sha = dict(manifest["safetensors"]["model.safetensors"]["tensors"])["model.layers.1.mlp.down_proj.weight"]
    flip(opened.objects.path(sha), 200)
    report = verify(home)
    assert report.problems == [f"objects/{sha[:2]}/{sha[2:]}: content does not match its hash (tensor "
                               "model.layers.1.mlp.down_proj.weight of model.safetensors of v2)"]
    with pytest.raises(RetainError, match="object content does not match its hash"):
        opened.materialize("v2", home.parent / "out", merge_adapter)


def test_flipped_byte_in_an_adapter_or_a_held_out_set_is_reported(home):
    opened = Home.open(home)
    sha = opened.manifest("v3")["safetensors"]["adapter_model.safetensors"]["tensors"][0][1]
    flip(opened.objects.path(sha), 100)
    held_out = opened.version("v2")["record"]["suite_added"][0]
    flip(opened.objects.path(held_out["examples_sha256"]), 3)
    problems = verify(home).problems
    assert len(problems) == 2
    assert any("lora_A" in p and "of v3" in p for p in problems)
    assert any(p.endswith("(held-out set of skill add added by v2)") for p in problems)


def test_flipped_byte_in_the_database_is_reported_with_table_row_and_column(home):
    db = home / "ledger.sqlite"
    # VACUUM first so no stale copy of the row sits in a free page: the byte flipped is the live one.
    conn = sqlite3.connect(db)
    conn.execute("VACUUM")
    conn.close()
    raw = db.read_bytes()
    assert raw.count(b"rolled-back") == 1
    flip(db, raw.index(b"rolled-back"))
    assert verify(home).problems == ["ledger.sqlite: table versions, row 3, column status: 'solled-back' where "
                                     "the audit log gives 'rolled-back'"]


def test_changed_score_in_the_database_is_reported(home):
    conn = sqlite3.connect(home / "ledger.sqlite")
    conn.execute("UPDATE scores SET score=0.95 WHERE version='v2' AND name='add'")
    conn.commit()
    conn.close()
    assert verify(home).problems == ["ledger.sqlite: table scores, row v2, skills, add, column score: 0.95 where "
                                     "the audit log gives 0.9"]


def test_flipped_byte_in_the_middle_of_the_audit_log_breaks_the_chain_there(home):
    log = home / "audit.jsonl"
    lines = log.read_bytes().split(b"\n")
    offset = sum(len(x) + 1 for x in lines[:3]) + lines[3].index(b'"method":"sft"') + 11
    flip(log, offset)
    problems = verify(home).problems
    assert problems[0] == ("audit.jsonl:4-5: hash chain broken: entry 5 records a different hash for entry 4 (one "
                           "of the two lines was changed)")
    assert any("database has applied 10 entries" in p for p in problems)
    with pytest.raises(RetainError, match="the home does not verify: audit.jsonl:4-5: hash chain broken"):
        rollback(Home.open(home), "v1")


def test_flipped_byte_in_the_last_audit_entry_is_caught_by_the_database_head(home):
    log = home / "audit.jsonl"
    raw = log.read_bytes()
    flip(log, raw.rindex(b"rollback requested") + 1)
    problems = verify(home).problems
    assert problems[0] == "audit.jsonl:10: entry 10 is not the one the database recorded (the line was changed)"
    # The database still holds the original entry 10; the rows that differ are named too.
    assert [p.split(", column")[0] for p in problems[1:]] == [
        "ledger.sqlite: table meta, row head_sha256", "ledger.sqlite: table events, row 10"]


def test_a_cut_audit_log_is_reported(home):
    log = home / "audit.jsonl"
    lines = log.read_bytes().split(b"\n")
    log.write_bytes(b"\n".join(lines[:8]) + b"\n")
    assert verify(home).problems == ["audit.jsonl: the database has applied 10 entries but the audit log ends "
                                     "after 8"]


def test_a_missing_object_is_reported(home):
    opened = Home.open(home)
    sha = opened.version("v3")["manifest_sha256"]
    opened.objects.path(sha).unlink()
    assert verify(home).problems == [f"objects/{sha[:2]}/{sha[2:]}: missing (manifest of v3)"]
