"""Dtypes and memory (issue 9, item 2): a checkpoint's dtype survives learn and save; logits are computed only
at completion positions and equal the full forward's there; the divergence in chunks equals it in one piece;
gradient accumulation and checkpointing leave the step unchanged; mixed precision reaches the forward; the
new training options are validated."""

from __future__ import annotations

import json

import pytest
import torch

from retain.data.skills import Example
from retain.errors import RetainError
from retain.evaluate.divergence import token_divergence
from retain.methods.sft import SFT
from retain.train.loop import TrainConfig, train_task

# Demonstrations of one length, so a token mean over a batch equals the mean of its halves' token means.
EXAMPLES = [Example(prompt=p, demonstration=d) for p, d in
            [("add one to 3", "4a"), ("what is b", "bb"), ("x", "cd"), ("a longer prompt here", "de"),
             ("sum 1 2", "3e"), ("q", "ff"), ("name it", "ab"), ("reverse ab", "ba")]]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _tensor_dtypes(folder) -> set[str]:
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return {str(f.get_tensor(k).dtype) for k in f.keys()}


def test_bfloat16_checkpoint_learns_and_saves_as_bfloat16(tmp_path, tiny_model):
    from transformers import AutoModelForCausalLM

    from retain import api

    base = tiny_model(tmp_path / "f32")
    AutoModelForCausalLM.from_pretrained(base).to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (base / name).exists():
            (tmp_path / "bf16" / name).write_bytes((base / name).read_bytes())
    data = _write_jsonl(tmp_path / "d.jsonl", [{"prompt": f"q {i}", "demonstration": f"a{i}"} for i in range(6)])
    result = api.learn(str(tmp_path / "bf16"), data, "sft", str(tmp_path / "out"), epochs=1, batch_size=4,
                       quiet=True, lr=1e-2)
    assert next(result.adapter.model.parameters()).dtype == torch.bfloat16
    assert _tensor_dtypes(tmp_path / "out") == {"torch.bfloat16"}
    assert json.loads((tmp_path / "out" / "retain_recipe.json").read_text())["recipe"]["model"]["dtype"] == "auto"
    # an explicit dtype wins over the checkpoint's
    cast = api.learn(str(tmp_path / "bf16"), data, "sft", str(tmp_path / "out32"), epochs=1, batch_size=4,
                     quiet=True, dtype="float32")
    assert next(cast.adapter.model.parameters()).dtype == torch.float32
    assert _tensor_dtypes(tmp_path / "out32") == {"torch.float32"}


def test_embedded_model_stays_float32():
    from retain import api

    assert {p.dtype for p in api.load_model("embedded", device="cpu").model.parameters()} == {torch.float32}


def test_completion_logits_equal_full_logits_at_completion_positions(tiny_adapter):
    adapter = tiny_adapter(init_range=1.0)
    prompts = [adapter.prompt_ids("a much longer prompt than the others"), adapter.prompt_ids("hi"),
               adapter.prompt_ids("medium one")]
    completions = [adapter.completion_ids(t) for t in ("xyz", "a", "hello there")]
    logits, mask = adapter.completion_logits(prompts, completions)
    assert logits.shape[:2] == mask.shape == (3, max(len(c) for c in completions))
    for b, (p, c) in enumerate(zip(prompts, completions)):
        full = adapter.model(input_ids=torch.tensor([p + c])).logits[0]
        assert torch.allclose(logits[b, :len(c)], full[len(p) - 1:len(p) - 1 + len(c)], atol=1e-5)
        assert mask[b].sum() == len(c)
    # and the LM head saw fewer positions than the full sequences hold
    seen = []
    handle = adapter.model.lm_head.register_forward_hook(lambda m, i, o: seen.append(o.shape[1]))
    adapter.completion_logits(prompts, completions)
    handle.remove()
    width = max(len(p) + len(c) for p, c in zip(prompts, completions))
    assert seen == [width - (min(len(p) for p in prompts) - 1)]


@pytest.mark.parametrize("alpha,top_k,tail", [(0.0, None, False), (0.5, None, False), (1.0, 5, False),
                                              (0.0, 5, True)])
def test_chunked_divergence_equals_unchunked(alpha, top_k, tail):
    g = torch.Generator().manual_seed(0)
    student = torch.randn(3, 7, 40, generator=g).mul(3).requires_grad_()
    teacher = torch.randn(3, 7, 40, generator=g).mul(3)
    whole = token_divergence(student, teacher, alpha, top_k, tail, chunk=None)
    (grad_whole,) = torch.autograd.grad(whole.sum(), student)
    chunked = token_divergence(student, teacher, alpha, top_k, tail, chunk=4)  # 21 positions: 6 chunks
    (grad_chunked,) = torch.autograd.grad(chunked.sum(), student)
    assert chunked.shape == whole.shape == (3, 7)
    assert torch.allclose(chunked, whole, atol=1e-6, rtol=0)
    assert torch.allclose(grad_chunked, grad_whole, atol=1e-6, rtol=0)


def _trained(tiny_adapter, **cfg):
    adapter = tiny_adapter(seed=3, init_range=0.5)
    torch.manual_seed(0)
    checkpointing = []
    stats = train_task(adapter, SFT(), [], EXAMPLES, TrainConfig(epochs=1, batch_size=8, lr=1e-2, **cfg),
                       on_step=lambda *_: checkpointing.append(adapter.model.is_activation_checkpointing))
    assert checkpointing == [cfg.get("gradient_checkpointing", False)]
    return adapter, stats


def test_grad_accum_and_checkpointing_leave_the_step_unchanged(tiny_adapter):
    ref, ref_stats = _trained(tiny_adapter)
    for cfg in ({"grad_accum": 2}, {"grad_accum": 3}, {"gradient_checkpointing": True}):
        other, stats = _trained(tiny_adapter, **cfg)
        assert stats.losses == pytest.approx(ref_stats.losses, abs=1e-6), cfg
        for (name, a), b in zip(ref.model.named_parameters(), other.model.parameters()):
            assert torch.allclose(a, b, atol=1e-6), (cfg, name)
    assert not other.model.is_activation_checkpointing  # switched off again after the task


def test_mixed_precision_reaches_the_training_forward(tiny_adapter):
    _, fp32 = _trained(tiny_adapter)
    _, bf16 = _trained(tiny_adapter, mixed_precision="bf16")
    # the loss under bf16 autocast is close to, but not, the float32 one: the Accelerator's autocast ran
    assert bf16.losses[0] == pytest.approx(fp32.losses[0], rel=0.05) and bf16.losses[0] != fp32.losses[0]


@pytest.mark.parametrize("field,value", [("grad_accum", 0), ("grad_accum", 1.5), ("mixed_precision", "fp8"),
                                         ("gradient_checkpointing", "yes")])
def test_training_options_are_validated(field, value):
    with pytest.raises(RetainError, match=field):
        TrainConfig(**{field: value}).validate()


@pytest.mark.parametrize("args,option", [(["--dtype", "bf16"], "--dtype"),
                                         (["--mixed-precision", "fp8"], "--mixed-precision"),
                                         (["--grad-accum", "0"], "--grad-accum"), (["--device", "tpu"], "--device")])
def test_cli_rejects_bad_values_in_one_line(tmp_path, args, option):
    import subprocess
    import sys

    data = _write_jsonl(tmp_path / "d.jsonl", [{"prompt": "q", "demonstration": "a"}])
    out = subprocess.run([sys.executable, "-m", "retain", "learn", "embedded", str(data), "--out",
                          str(tmp_path / "o"), *args], capture_output=True, text=True, timeout=900)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"retain: error: {option}"), out.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_eval_on_a_missing_device_is_one_line(tmp_path):
    import subprocess
    import sys

    data = _write_jsonl(tmp_path / "d.jsonl", [{"prompt": "q", "demonstration": "a"}])
    out = subprocess.run([sys.executable, "-m", "retain", "eval", "embedded", str(data), "--device", "cuda"],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "retain: error: --device: cuda is not available on this machine (found cpu)"], out.stderr
