"""``learn`` into a home and ``reproduce`` through the real retain.api on a real tiny model: what is
recorded, the gate on real scores, LoRA storage, bit-exact reproduction on CPU, bad input."""

from __future__ import annotations

import hashlib
import json

import pytest
from safetensors.torch import load_file

from retain.data.jsonl import read_skill
from retain.errors import RetainError
from retain.ledger import store
from retain.ledger.gate import GatePolicy
from retain.home import learn_in_home, reproduce
from retain.ledger.verify import verify
from retain.models.merge import merge_adapter

FAST = {"epochs": 1, "lr": 1e-2, "batch_size": 8, "quiet": True}


def test_learn_records_recipe_data_held_out_set_and_scores_then_reproduces(tmp_path, echo_data, new_home):
    home, _ = new_home(tmp_path, GatePolicy(floor=0.0), measured=True)
    outcome = learn_in_home(home.root, echo_data, method="sft", seed=3, **FAST)
    assert (outcome.version, outcome.parent, outcome.decision.decision) == ("v2", "v1", "accepted")
    record = home.version("v2")["record"]
    assert record["data"] == [{"role": "source", "name": "echo.jsonl", "path": str(echo_data.resolve()),
                               "sha256": hashlib.sha256(echo_data.read_bytes()).hexdigest(),
                               "bytes": echo_data.stat().st_size}]
    assert record["config"]["model"] == "v1" and record["config"]["recipe"]["train"]["lr"] == 1e-2
    assert record["options"]["recipe"]["train"]["epochs"] == 1 and record["seed"] == 3 and record["kind"] == "full"
    assert set(record["scores"]["probes"]) == {"p1", "p2"} and set(record["scores"]["skills"]) == {"echo"}
    # The held-out set kept in the home is exactly the split api.learn never trained on.
    spec = [s for s in store.suite_specs(home.conn) if s["name"] == "echo"][0]
    held_out = [json.loads(line)["prompt"] for line in home.objects.get(spec["examples_sha256"]).decode().splitlines()]
    assert held_out == [e.prompt for e in read_skill(echo_data, seed=3).test] and len(held_out) == 4
    gate = store.gates_of(home.conn, "v2")[0]
    assert {c["name"] for c in gate["checks"]} == {"p1", "p2", "echo"}

    result = reproduce(home.root, "v2")
    assert result["match"] and result["got"] == record["artifacts"]["weights_sha256"]
    assert store.events_of(home.conn, "v2")[-1]["payload"]["match"] is True
    assert verify(home.root).ok


def test_lora_learn_stores_only_the_adapter_and_reproduces(tmp_path, echo_data, new_home):
    home, _ = new_home(tmp_path, GatePolicy(floor=0.0), measured=True)
    outcome = learn_in_home(home.root, echo_data, method="sft", lora=True, **FAST)
    art = outcome.record["artifacts"]
    manifest = home.manifest("v2")
    names = [n for shard in manifest["safetensors"].values() for n, _ in shard["tensors"]]
    assert all("lora_" in n for n in names) and list(manifest["safetensors"]) == ["adapter_model.safetensors"]
    assert art["tensors"] == len(names) == 28
    assert reproduce(home.root, "v2")["match"]
    merged = home.materialize("v2", tmp_path / "merged", merge_adapter)
    assert not any("lora" in k for k in load_file(merged / "model.safetensors"))


def test_a_candidate_below_the_floor_is_rejected_and_force_promotes_it(tmp_path, echo_data, new_home):
    home, _ = new_home(tmp_path, GatePolicy(floor=1.0), measured=True)
    rejected = learn_in_home(home.root, echo_data, method="sft", **FAST)
    assert rejected.decision.decision == "rejected" and home.champion() == "v1"
    assert rejected.decision.reasons[-1].startswith("new skill echo scored 0.0, below the floor 1.000")
    forced = learn_in_home(home.root, echo_data, method="sft", force="accepting for the test", **FAST)
    assert forced.decision.decision == "forced" and home.champion() == "v3"
    assert store.gates_of(home.conn, "v3")[0]["forced_reason"] == "accepting for the test"


def test_bad_input_is_one_error_and_changes_nothing(tmp_path, echo_data, new_home):
    home, _ = new_home(tmp_path)
    before = (home.audit.read(), sorted(home.objects))
    with pytest.raises(RetainError, match="no such file"):
        learn_in_home(home.root, tmp_path / "missing.jsonl", **FAST)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a"}\n')
    with pytest.raises(RetainError, match="bad.jsonl:1: demonstration: missing field"):
        learn_in_home(home.root, bad, **FAST)
    with pytest.raises(RetainError, match="unknown"):
        learn_in_home(home.root, echo_data, method="nonsense", **FAST)
    with pytest.raises(RetainError, match="force: needs a reason"):
        learn_in_home(home.root, echo_data, force=" ", **FAST)
    with pytest.raises(RetainError, match="is the base model"):
        reproduce(home.root, "v1")
    assert (home.audit.read(), sorted(home.objects)) == before
