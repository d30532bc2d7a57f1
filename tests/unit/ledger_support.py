"""Real tiny Hugging Face models for the ledger tests: a 2-layer Llama with a character tokenizer, variants
that change one layer, and a real PEFT LoRA adapter. Everything is seeded."""

from __future__ import annotations

import string
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from retain.data.skills import Example, Skill
from retain.ledger.core import Home
from retain.ledger.gate import GatePolicy
from retain.ledger.operations import Outcome

SPECIALS = ["<pad>", "<eos>", "<unk>"]
CHARS = string.ascii_lowercase + string.digits + " -:>?.,"


def tokenizer() -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(SPECIALS + list(CHARS))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")


def tiny_model(path: Path, seed: int = 0) -> Path:
    """A randomly initialised 2-layer Llama (about 10k parameters) saved with save_pretrained."""
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=32, max_position_embeddings=256,
                         tie_word_embeddings=False, pad_token_id=0, eos_token_id=1, bos_token_id=1)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer().save_pretrained(path)
    return path


def change_one_layer(src: Path, dst: Path, tensor: str = "model.layers.1.mlp.down_proj.weight",
                     delta: float = 0.01) -> Path:
    """A copy of ``src`` in which exactly one tensor moved by ``delta``."""
    model = AutoModelForCausalLM.from_pretrained(src)
    with torch.no_grad():
        model.get_parameter(tensor).add_(delta)
    model.save_pretrained(dst)
    tokenizer().save_pretrained(dst)
    return dst


def lora_adapter(base: Path, dst: Path, seed: int = 0) -> Path:
    """A real LoRA adapter on q_proj and v_proj with non-zero weights (so merging changes the model)."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(dst)
    return dst


def skill(name: str, n: int = 6) -> Skill:
    """A small skill whose held-out examples the home keeps in its regression suite."""
    test = [Example(prompt=f"{name} {i}?", demonstration=f"{name}-{i}", answer=f"{i}") for i in range(n)]
    return Skill(name=name, train=test, test=test, scorer="exact")


PROBES = {"p1": 0.5, "p2": 0.8}


def new_home(tmp: Path, policy: GatePolicy | None = None, measured: bool = False) -> tuple[Home, Path]:
    """A home whose v1 is a fresh tiny model, with two probes pinned in its suite, scored ``PROBES`` or, when
    ``measured``, as retain.api scores them."""
    from retain.ledger.home import score_suite
    from retain.ledger.operations import init_home

    base = tiny_model(tmp / "base")
    probes = [skill("p1"), skill("p2")]
    scores = score_suite(base, [(p, "probe") for p in probes]) if measured else {"probes": dict(PROBES)}
    home = init_home(tmp / "home", base, str(base), policy or GatePolicy(), probes, scores)
    return home, base


def learn(home: Home, folder: Path, name: str, new: float, probes: dict[str, float] | None = None,
          skills: dict[str, float] | None = None, kind: str = "full", force: str | None = None) -> Outcome:
    """Record ``folder`` as a candidate that learned skill ``name`` to score ``new``; the champion's scores
    are what the ledger recorded for it (0 on the new skill)."""
    from retain.ledger.store import known_scores
    from retain.ledger.operations import Candidate, record_candidate

    with home.writing("learn"):
        champion = known_scores(home.conn, home.champion())
        champion["skills"].setdefault(name, 0.0)
        scores = {"probes": dict(probes or champion["probes"]),
                  "skills": {**{k: v for k, v in champion["skills"].items() if k != name}, **(skills or {}),
                             name: new}}
        candidate = Candidate(folder=folder, kind=kind, method="sft", skill=skill(name), scores=scores,
                              champion_scores=champion, lora=kind == "adapter", options={"lr": 0.1})
        return record_candidate(home, candidate, force)
