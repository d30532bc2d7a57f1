"""Lengths (issue 9 item 3) and loading (item 4): over-long prompts are one line naming file and line before
anything runs, learn and eval; generation never runs past the positions; hub ids load from a locally built
Hugging Face cache with HF_HUB_OFFLINE=1; trust_remote_code and attn_implementation reach from_pretrained;
generation stops on every EOS id the generation config lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from retain.cli import main
from retain.data.jsonl import read_examples
from retain.data.skills import Example
from retain.errors import RetainError
from retain.models.loading import load_adapter


def run_main(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str]:
    """``retain ARGS`` in this process: exit code and stderr."""
    with pytest.raises(SystemExit) as stopped:
        main([str(a) for a in args])
        raise SystemExit(0)
    return stopped.value.code, capsys.readouterr().err


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def short_rows(n: int = 6) -> list[dict]:
    return [{"prompt": f"add {i} and 1", "demonstration": f"{i + 1}"} for i in range(n)]


# -- lengths: learn and eval -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [600, 1_000_000], ids=["over-positions", "1MB"])
def test_a_prompt_too_long_is_one_line_naming_file_and_line_for_learn_and_eval(tmp_path, capsys, size):
    data = write_rows(tmp_path / "skill.jsonl", [*short_rows(4), {"prompt": "x" * size, "demonstration": "1"},
                                                 *short_rows(2)])
    code, err = run_main(capsys, "learn", "embedded", data, "-m", "sft", "--out", tmp_path / "out")
    assert code == 2
    assert err.strip().splitlines() == [
        (f"retain: error: {data}:5: prompt: the student's prompt is {size + 8} tokens, over the limit of 448 "
         "(--max-prompt-tokens; the model has 512 positions): shorten it or drop the line")]
    assert not (tmp_path / "out").exists()
    code, err = run_main(capsys, "eval", "embedded", data)
    assert code == 2 and len(err.strip().splitlines()) == 1 and f"{data}:5: prompt:" in err


def test_sdft_checks_the_teachers_prompt_and_sft_the_demonstration(tmp_path, capsys):
    """The teacher's prompt carries the demonstration; an SFT target must fit the positions with its prompt."""
    data = write_rows(tmp_path / "skill.jsonl", [*short_rows(3), {"prompt": "q", "demonstration": "d" * 450},
                                                 *short_rows(3)])
    code, err = run_main(capsys, "learn", "embedded", data, "-m", "sdft", "--out", tmp_path / "a")
    assert code == 2 and f"{data}:4: demonstration: the teacher's (prompt with its demonstration) prompt is" in err
    data = write_rows(tmp_path / "long.jsonl", [*short_rows(3), {"prompt": "q", "demonstration": "d" * 520}])
    code, err = run_main(capsys, "learn", "embedded", data, "-m", "sft", "--out", tmp_path / "c")
    assert code == 2 and f"{data}:4: demonstration: prompt and demonstration are 530 tokens, over the " \
                         "model's 512 positions" in err
    assert not any((tmp_path / d).exists() for d in "ac")


def test_max_prompt_tokens_sets_the_limit_and_bad_values_name_the_option(tmp_path, capsys):
    data = write_rows(tmp_path / "skill.jsonl", short_rows(6))  # "add 5 and 1" is 19 tokens with the template
    code, err = run_main(capsys, "eval", "embedded", data, "--max-prompt-tokens", 18)
    assert code == 2 and f"{data}:1: prompt: the student's prompt is 19 tokens, over the limit of 18" in err
    code, err = run_main(capsys, "eval", "embedded", data, "--max-prompt-tokens", 19)
    assert code == 0, err
    code, err = run_main(capsys, "eval", "embedded", data, "--max-prompt-tokens", 500)
    assert code == 2 and "--max-prompt-tokens: 500 prompt tokens + 64 new tokens exceed the model's 512" in err
    code, err = run_main(capsys, "eval", "embedded", data, "--max-new-tokens", 512)
    assert code == 2 and "--max-new-tokens: 512 new tokens leave no room for a prompt" in err
    code, err = run_main(capsys, "eval", "embedded", data, "--max-new-tokens", 0)
    assert code == 2 and "--max-new-tokens" in err


def test_default_limit_follows_max_new_tokens_and_answers_use_it(embedded_lm):
    assert (embedded_lm.positions, embedded_lm.max_prompt_tokens) == (512, 512 - 64)
    adapter = load_adapter("embedded", max_new_tokens=100)
    assert adapter.max_prompt_tokens == 412
    adapter = load_adapter("embedded", max_new_tokens=3)
    [answer] = adapter.answer([Example("count from 1 to 9", "123456789")])
    assert len(adapter.tokenizer(answer, add_special_tokens=False)["input_ids"]) <= 3


def _gpt2(tmp_path: Path, char_tokenizer, positions: int = 40):
    """A tiny GPT-2 with learned positions: an index past them is the IndexError the issue reports."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    tok = char_tokenizer()
    config = GPT2Config(vocab_size=len(tok), n_positions=positions, n_embd=16, n_layer=1, n_head=2,
                        eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    tok.save_pretrained(tmp_path / "gpt2")
    return tmp_path / "gpt2"


def test_generation_never_runs_past_the_positions(tmp_path, char_tokenizer):
    adapter = load_adapter(_gpt2(tmp_path, char_tokenizer), max_prompt_tokens=30, max_new_tokens=10)
    prompt = adapter.student_ids(Example("a" * 29, "b"))
    assert len(prompt) == 30
    adapter.eos_ids = [-1]  # no stop: generation runs to its length
    [completion] = adapter.generate([prompt], max_new_tokens=64, do_sample=False)
    assert len(completion) == 40 - 30  # capped at the positions, not 64 (which raised IndexError)
    with pytest.raises(RetainError, match="over the limit of 30"):
        adapter.student_ids(Example("a" * 30, "b"))


# -- loading ---------------------------------------------------------------------------------------------------


def _hub_cache(root: Path, model_dir: Path, repo: str = "tiny-org/tiny-llama", commit: str = "0" * 39 + "1") -> Path:
    """A Hugging Face hub cache laid out as huggingface_hub writes it: models--org--name/{refs/main,
    snapshots/<commit>/...} (real files instead of links into blobs/, which the loader does not need)."""
    folder = root / "hub" / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for f in model_dir.iterdir():
        (snapshot / f.name).write_bytes(f.read_bytes())
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    return root


def test_hub_id_loads_from_the_local_cache_offline(tmp_path, tiny_model, monkeypatch):
    source = tiny_model(tmp_path / "src")
    home = _hub_cache(tmp_path / "hf", source)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    adapter = load_adapter("tiny-org/tiny-llama")
    reference = load_adapter(source)
    for (name, a), (_, b) in zip(adapter.model.state_dict().items(), reference.model.state_dict().items()):
        assert torch.equal(a, b), name
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.delenv("HF_HOME")
    lora = load_adapter("tiny-org/tiny-llama", lora=True)
    assert lora.model.peft_config["default"].base_model_name_or_path == "tiny-org/tiny-llama"
    lora.save(tmp_path / "adapter")
    assert load_adapter(tmp_path / "adapter").is_lora  # its base found in the cache by id
    with pytest.raises(RetainError, match="neither a local folder nor a model in the local Hugging Face cache"):
        load_adapter("tiny-org/not-cached")


def test_hub_id_through_the_cli(tmp_path, tiny_model, monkeypatch, capsys):
    home = _hub_cache(tmp_path / "hf", tiny_model(tmp_path / "src"))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = write_rows(tmp_path / "skill.jsonl", [{"prompt": "abc", "demonstration": "d"}] * 2)
    code, err = run_main(capsys, "eval", "tiny-org/tiny-llama", data)
    assert code == 0, err
    code, err = run_main(capsys, "eval", "tiny-org/missing", data)
    assert code == 2 and "retain never downloads" in err


def test_attn_implementation_reaches_from_pretrained(tmp_path, tiny_model):
    path = tiny_model(tmp_path / "m")
    assert load_adapter(path, attn_implementation="eager").model.config._attn_implementation == "eager"
    assert load_adapter(path, attn_implementation="sdpa").model.config._attn_implementation == "sdpa"
    with pytest.raises(RetainError, match="cannot load a causal LM"):
        load_adapter(path, attn_implementation="no-such-kernel")


CUSTOM_CONFIG = '''from transformers import LlamaConfig


class RetainTestConfig(LlamaConfig):
    model_type = "retain_test_llama"
'''
CUSTOM_MODEL = '''from transformers import LlamaForCausalLM

from .configuration_retain_test import RetainTestConfig


class RetainTestForCausalLM(LlamaForCausalLM):
    config_class = RetainTestConfig
'''


def test_trust_remote_code_is_required_for_a_model_with_its_own_code(tmp_path, tiny_model):
    path = tiny_model(tmp_path / "m")
    config = json.loads((path / "config.json").read_text())
    config.update(model_type="retain_test_llama", architectures=["RetainTestForCausalLM"],
                  auto_map={"AutoConfig": "configuration_retain_test.RetainTestConfig",
                            "AutoModelForCausalLM": "modeling_retain_test.RetainTestForCausalLM"})
    (path / "config.json").write_text(json.dumps(config))
    (path / "configuration_retain_test.py").write_text(CUSTOM_CONFIG)
    (path / "modeling_retain_test.py").write_text(CUSTOM_MODEL)
    with pytest.raises(RetainError, match="cannot load a causal LM"):
        load_adapter(path)
    adapter = load_adapter(path, trust_remote_code=True)
    assert type(adapter.model).__name__ == "RetainTestForCausalLM"


def test_generation_stops_on_every_eos_id_of_the_generation_config(tmp_path, tiny_model):
    """All logits equal, greedy picks id 0 every step; listing 0 as a second EOS stops after one token."""
    path = tiny_model(tmp_path / "m")
    adapter = load_adapter(path)
    with torch.no_grad():
        adapter.model.lm_head.weight.zero_()
    prompt = adapter.student_ids(Example("abc", "d"))
    assert adapter.generate([prompt], max_new_tokens=5, do_sample=False) == [[0] * 5]
    adapter.model.generation_config.eos_token_id = [1, 0]
    adapter.model.save_pretrained(path)
    reloaded = load_adapter(path)
    with torch.no_grad():
        reloaded.model.lm_head.weight.zero_()
    assert reloaded.eos_ids == [1, 0]
    assert reloaded.generate([prompt], max_new_tokens=5, do_sample=False) == [[0]]
    assert reloaded.decode([5, 0]) == reloaded.decode([5])


def test_examples_name_their_file_and_line(tmp_path):
    data = write_rows(tmp_path / "s.jsonl", short_rows(2))
    assert [e.source for e in read_examples(data)] == [f"{data}:1", f"{data}:2"]
