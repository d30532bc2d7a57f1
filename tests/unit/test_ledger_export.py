"""``export`` (a loadable folder with a model card) and ``diff`` (scores, parameter distance, output drift)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from retain.errors import RetainError
from retain.ledger import store
from retain.ledger.card import export
from retain.home.versions import diff
from retain.ledger.diff import parameter_distance
from retain.ledger.verify import verify
from retain.models.merge import merge_adapter


def test_export_writes_a_loadable_model_with_card_and_records_it(tmp_path, new_home, learn, change_one_layer):
    home, base = new_home(tmp_path)
    learn(home, change_one_layer(base, tmp_path / "m2"), "add", 0.9)
    result = export(home, "v2", tmp_path / "out", merge=merge_adapter)
    out = tmp_path / "out"
    model = AutoModelForCausalLM.from_pretrained(out)
    expected = load_file(tmp_path / "m2" / "model.safetensors")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in expected.items())
    AutoTokenizer.from_pretrained(out)
    card = (out / "README.md").read_text()
    for section in ("Model details", "Intended use", "Factors", "Metrics", "Evaluation data", "Training data",
                    "Quantitative analyses", "Promotion gate", "Ethical considerations", "Caveats"):
        assert f"## {section}" in card
    assert "lineage: v1 (base) -> v2 (sft)" in card and "against champion v1: **accepted**" in card
    recorded = json.loads((out / "retain-version.json").read_text())
    assert recorded["lineage"] == ["v1", "v2"] and recorded["gates"][0]["decision"] == "accepted"
    # A full version's exported weights hash is the recorded one: export is bit-exact.
    assert result["weights_sha256"] == home.version("v2")["weights_sha256"]
    event = store.events_of(home.conn, "v2")[-1]
    assert event["type"] == "exported" and event["payload"]["out"] == str(out)
    assert verify(home.root).ok


def test_export_of_a_lora_version_is_the_merged_model(tmp_path, new_home, learn, lora_adapter):
    home, base = new_home(tmp_path)
    learn(home, lora_adapter(base, tmp_path / "lora"), "add", 0.9, kind="adapter")
    export(home, "v2", tmp_path / "out", merge=merge_adapter)
    got = AutoModelForCausalLM.from_pretrained(tmp_path / "out").state_dict()
    assert not any("lora" in name for name in got)
    # merged by hand: W + (lora_alpha / r) * B @ A on every adapted layer, every other tensor the base's
    config = json.loads((tmp_path / "lora" / "adapter_config.json").read_text())
    scale = config["lora_alpha"] / config["r"]
    lora = load_file(tmp_path / "lora" / "adapter_model.safetensors")
    want = load_file(base / "model.safetensors")
    merged = set()
    for key in want:
        a = f"base_model.model.{key.removesuffix('.weight')}.lora_A.weight"
        if a in lora:
            want[key] = want[key] + scale * lora[a.replace("lora_A", "lora_B")] @ lora[a]
            merged.add(key)
    assert len(merged) == 4  # q_proj and v_proj of both layers
    assert got.keys() == want.keys()
    for key, tensor in want.items():
        torch.testing.assert_close(got[key], tensor, rtol=1e-5, atol=1e-6, msg=key)
        if key in merged:
            assert (got[key] - load_file(base / "model.safetensors")[key]).abs().max() > 1e-3, key


def test_export_refuses_a_non_empty_target_and_changes_nothing(tmp_path, new_home):
    home, _ = new_home(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    before = home.audit.read()
    with pytest.raises(RetainError, match="exists and is not an empty folder"):
        export(home, "v1", tmp_path / "out", merge=merge_adapter)
    assert home.audit.read() == before and [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_parameter_distance_matches_the_change_made(tmp_path, new_home, change_one_layer):
    _, base = new_home(tmp_path)
    moved = change_one_layer(base, tmp_path / "m2", tensor="model.layers.1.mlp.down_proj.weight", delta=0.01)
    result = parameter_distance(base, moved)
    # down_proj is 16 x 32; every entry moved by 0.01 (float32 rounding aside).
    assert result["changed"] == 1 and result["tensors"] == 21
    assert result["top"][0]["tensor"] == "model.layers.1.mlp.down_proj.weight"
    assert math.isclose(result["l2"], 0.01 * math.sqrt(16 * 32), rel_tol=1e-4)
    norm = math.sqrt(sum(float(t.double().pow(2).sum()) for t in load_file(base / "model.safetensors").values()))
    assert math.isclose(result["relative"], result["l2"] / norm, rel_tol=1e-9)


def test_diff_reports_scores_distance_and_drift(tmp_path, new_home, learn, change_one_layer):
    home, base = new_home(tmp_path)
    learn(home, change_one_layer(base, tmp_path / "m2", delta=0.5), "add", 0.9, probes={"p1": 0.49, "p2": 0.8})
    result = diff(home, "v1", "v2", tmp_path / "work")
    rows = {(r["kind"], r["name"]): r for r in result["scores"]}
    # v1 never recorded a score on "add" itself; the gate measured it (0.0) when v1 was champion.
    assert rows[("skill", "add")]["a"] == 0.0 and rows[("skill", "add")]["b"] == 0.9
    assert rows[("probe", "p1")]["change"] == pytest.approx(-0.01)
    assert rows[("probe", "p1")]["relative"] == pytest.approx(-0.02)
    assert result["parameters"]["changed"] == 1
    drift = result["drift"]
    assert drift["prompts"] == 6 * 3 and 0 < drift["mean_kl"] <= drift["max_kl"]
    same = diff(home, "v1", "v1", tmp_path / "work2")
    assert same["parameters"]["l2"] == 0.0 and same["drift"]["max_kl"] == pytest.approx(0.0, abs=1e-12)
