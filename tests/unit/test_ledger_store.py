"""Versions, lineage, per-tensor storage and materialization, on a real tiny Llama and a real LoRA adapter."""

from __future__ import annotations

import json
import sqlite3

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from retain.errors import RetainError
from retain.ledger import store
from retain.ledger.core import Home, is_home
from retain.ledger.operations import rollback
from retain.models.merge import merge_adapter


def test_lineage_after_several_learns_and_a_rollback(tmp_path, new_home, learn, change_one_layer):
    home, base = new_home(tmp_path)
    v2 = change_one_layer(base, tmp_path / "m2", delta=0.01)
    v3 = change_one_layer(v2, tmp_path / "m3", tensor="model.layers.0.mlp.up_proj.weight")
    assert learn(home, v2, "add", 0.9).version == "v2"
    assert learn(home, v3, "mul", 0.8).version == "v3"
    assert rollback(home, "v2", "mul broke production") == ("v2", "v3")
    v4 = change_one_layer(v2, tmp_path / "m4", tensor="model.layers.0.self_attn.q_proj.weight")
    outcome = learn(home, v4, "sub", 0.7)

    home = Home.open(home.root)
    rows = {r["name"]: r for r in home.versions()}
    assert {n: (r["parent"], r["status"]) for n, r in rows.items()} == {
        "v1": (None, "superseded"), "v2": ("v1", "superseded"), "v3": ("v2", "rolled-back"),
        "v4": ("v2", "champion")}
    assert outcome.parent == "v2" and home.champion() == "v4"
    events = [(e["type"], e["version"]) for e in store.events_of(home.conn)]
    assert ("rolled_back", "v2") in events
    rb = [e for e in store.events_of(home.conn) if e["type"] == "rolled_back"][0]["payload"]
    assert rb == {"type": "rolled_back", "version": "v2", "previous": "v3", "reason": "mul broke production"}
    # The suite grew with every skill, whether or not its version is champion now.
    assert [s["name"] for s in store.suite_specs(home.conn)] == ["p1", "p2", "add", "mul", "sub"]
    assert sorted(rows["v4"]["record"]["suite"]) == ["add", "mul", "p1", "p2", "sub"]


def test_version_records_what_made_it(tmp_path, new_home, learn, change_one_layer):
    home, base = new_home(tmp_path)
    learn(home, change_one_layer(base, tmp_path / "m2"), "add", 0.9)
    record = home.version("v2")["record"]
    assert record["parent"] == "v1" and record["method"] == "sft" and record["options"] == {"lr": 0.1}
    assert record["scores"]["skills"]["add"] == 0.9 and record["scores"]["probes"] == {"p1": 0.5, "p2": 0.8}
    env = record["environment"]
    assert env["packages"]["torch"] == torch.__version__.split("+")[0] or env["packages"]["torch"] == torch.__version__
    assert set(env["packages"]) >= {"retain", "torch", "transformers", "peft"}
    assert env["git"] is None or len(env["git"]["commit"]) == 40
    held_out = [s for s in store.suite_specs(home.conn) if s["name"] == "add"][0]
    assert home.objects.get(held_out["examples_sha256"]).decode().count("\n") == 6


def test_unchanged_tensors_are_stored_once(tmp_path, new_home, learn, change_one_layer):
    home, base = new_home(tmp_path)
    v1 = home.version("v1")["record"]["artifacts"]
    changed = "model.layers.1.mlp.down_proj.weight"
    v2 = learn(home, change_one_layer(base, tmp_path / "m2", tensor=changed), "add", 0.9).record["artifacts"]
    # v2 stores one new tensor blob (16x32 fp32 + header) and its manifest; everything else is shared with v1.
    manifest = json.loads(home.objects.get(v2["manifest_sha256"]))
    blob = dict(manifest["safetensors"]["model.safetensors"]["tensors"])[changed]
    assert v2["bytes_new"] == home.objects.size(blob) + home.objects.size(v2["manifest_sha256"])
    assert 16 * 32 * 4 <= home.objects.size(blob) < 16 * 32 * 4 + 128
    assert v2["tensors"] == v1["tensors"] == 21
    assert v2["bytes_new"] < v1["bytes"] / 4


def test_lora_version_stores_only_the_adapter(tmp_path, new_home, learn, lora_adapter):
    home, base = new_home(tmp_path)
    adapter = lora_adapter(base, tmp_path / "lora")
    art = learn(home, adapter, "add", 0.9, kind="adapter").record["artifacts"]
    lora_bytes = sum(t.numel() * 4 for t in load_file(adapter / "adapter_model.safetensors").values())
    assert art["tensors"] == 8 and lora_bytes == 8 * 2 * 16 * 4
    assert art["bytes_new"] < home.version("v1")["record"]["artifacts"]["bytes"] / 3
    # Materialized, the version is the parent with the adapter merged in, exactly as PEFT merges it.
    out = home.materialize("v2", tmp_path / "v2full", merge_adapter)
    expected = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).merge_and_unload()
    got = AutoModelForCausalLM.from_pretrained(out)
    for name, tensor in expected.state_dict().items():
        assert torch.equal(got.state_dict()[name], tensor), name
    assert not torch.equal(got.state_dict()["model.layers.0.self_attn.q_proj.weight"],
                           AutoModelForCausalLM.from_pretrained(base).state_dict()["model.layers.0.self_attn.q_proj.weight"])


def test_materialize_round_trips_every_tensor_bit_for_bit(tmp_path, new_home):
    home, base = new_home(tmp_path)
    out = home.materialize("v1", tmp_path / "out", merge_adapter)
    assert load_file(out / "model.safetensors").keys() == load_file(base / "model.safetensors").keys()
    for name, tensor in load_file(base / "model.safetensors").items():
        assert torch.equal(load_file(out / "model.safetensors")[name], tensor)
    assert (out / "tokenizer.json").read_bytes() == (base / "tokenizer.json").read_bytes()
    AutoModelForCausalLM.from_pretrained(out)


def test_bf16_and_sharded_weights_pass_through(tmp_path, new_home, tiny_model, char_tokenizer):
    model = AutoModelForCausalLM.from_pretrained(tiny_model(tmp_path / "f32")).to(torch.bfloat16)
    model.save_pretrained(tmp_path / "bf16", max_shard_size="4KB")
    assert len(list((tmp_path / "bf16").glob("*.safetensors"))) > 1
    char_tokenizer().save_pretrained(tmp_path / "bf16")
    home, _ = new_home(tmp_path / "h")
    with home.writing("test"):
        art = home.store_model(tmp_path / "bf16")
    out = tmp_path / "out"
    out.mkdir()
    from retain.ledger.tensors import materialize
    materialize(home.objects, json.loads(home.objects.get(art["manifest_sha256"])), out)
    again = AutoModelForCausalLM.from_pretrained(out, dtype="auto")
    assert again.dtype == torch.bfloat16
    for name, tensor in model.state_dict().items():
        assert torch.equal(again.state_dict()[name], tensor)


def test_bad_references_are_one_clear_error(tmp_path, new_home):
    home, _ = new_home(tmp_path)
    with pytest.raises(RetainError, match="unknown version 'v9' \\(known: v1\\)"):
        home.version("v9")
    with pytest.raises(RetainError, match="not a retain home"):
        Home.open(tmp_path)
    with pytest.raises(RetainError, match="already the champion"):
        rollback(home, "v1")
    assert not is_home(tmp_path) and is_home(home.root)


def test_rollback_refuses_a_version_that_was_never_champion(tmp_path, new_home, learn, change_one_layer):
    home, base = new_home(tmp_path)
    learn(home, change_one_layer(base, tmp_path / "m2"), "add", 0.1)
    assert home.version("v2")["status"] == "rejected"
    before = home.audit.read()
    with pytest.raises(RetainError, match="v2 was never champion"):
        rollback(home, "v2")
    assert home.audit.read() == before


def test_database_is_wal_and_matches_a_replay_of_the_log(tmp_path, new_home, learn, change_one_layer):
    home, base = new_home(tmp_path)
    learn(home, change_one_layer(base, tmp_path / "m2"), "add", 0.9)
    assert home.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    from retain.ledger import audit
    replayed = store.connect(":memory:")
    store.apply(replayed, audit.parse(home.audit.read())[0])
    assert store.compare(home.conn, replayed) == []
    replayed.execute("UPDATE versions SET method='x' WHERE name='v2'")
    assert store.compare(home.conn, replayed) == [
        "ledger.sqlite: table versions, row 2, column method: 'sft' where the audit log gives 'x'"]
    assert isinstance(home.conn, sqlite3.Connection)
