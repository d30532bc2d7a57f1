"""Shared fixtures: tiny causal LMs (random, or the embedded model), a tiny home, and the real tiny Hugging Face
models, LoRA adapters and candidates the ledger tests record.

Helpers are handed to tests as fixtures (a fixture may return a function), never imported from another test
module, so no test depends on ``sys.path`` or on which directory pytest was started from. Everything is seeded.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Callable

import pytest
import torch

from retain.data.skills import Example, Skill

# -- causal LMs --------------------------------------------------------------------------------------------


def _tiny_lm(lora: bool = False, seed: int = 0, init_range: float = 0.02):
    """A randomly initialised 1-layer Llama on the embedded model's character tokenizer and chat template,
    optionally wrapped in a fresh PEFT LoRA adapter on every linear layer. A larger ``init_range`` gives peaked,
    position-dependent next-token distributions (exact tests need divergences far from zero)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from retain.models.causal_lm import CausalLMAdapter
    from retain.models.tiny.tokenizer import build_tokenizer

    torch.manual_seed(seed)
    tok = build_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                         initializer_range=init_range)
    model = LlamaForCausalLM(config)
    if lora:
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    return CausalLMAdapter(model, tok, "tiny")


@pytest.fixture
def tiny_adapter() -> Callable[..., object]:
    """``tiny_adapter(lora=False, seed=0, init_range=0.02)``: a fresh random tiny causal-LM adapter."""
    return _tiny_lm


@pytest.fixture
def embedded_lm():
    """The shipped embedded model, loaded fresh (tests may train it)."""
    from retain.models.loading import load_adapter
    return load_adapter("embedded")


@pytest.fixture
def tiny_home(tmp_path):
    """A home initialised from the embedded model (v1 scored on the probe set), under ``tmp_path/home``."""
    from retain.home import init_home_from_model
    return init_home_from_model(tmp_path / "home", "embedded", protect=())


# -- ledger material: real tiny Hugging Face folders -----------------------------------------------------------

SPECIALS = ["<pad>", "<eos>", "<unk>"]
CHARS = string.ascii_lowercase + string.digits + " -:>?.,"
PROBES = {"p1": 0.5, "p2": 0.8}


def _char_tokenizer():
    """A word-level tokenizer with one token per character (no chat template)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + list(CHARS))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")


def _tiny_model(path: Path, seed: int = 0) -> Path:
    """A randomly initialised 2-layer Llama (about 10k parameters) saved with save_pretrained."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=32, max_position_embeddings=256,
                         tie_word_embeddings=False, pad_token_id=0, eos_token_id=1, bos_token_id=1)
    LlamaForCausalLM(config).save_pretrained(path)
    _char_tokenizer().save_pretrained(path)
    return path


def _change_one_layer(src: Path, dst: Path, tensor: str = "model.layers.1.mlp.down_proj.weight",
                      delta: float = 0.01) -> Path:
    """A copy of ``src`` in which exactly one tensor moved by ``delta``."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(src)
    with torch.no_grad():
        model.get_parameter(tensor).add_(delta)
    model.save_pretrained(dst)
    _char_tokenizer().save_pretrained(dst)
    return dst


def _lora_adapter(base: Path, dst: Path, seed: int = 0) -> Path:
    """A real LoRA adapter on q_proj and v_proj with non-zero weights (so merging changes the model)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(dst)
    return dst


def _skill(name: str, n: int = 6) -> Skill:
    """A small skill whose held-out examples the home keeps in its regression suite."""
    test = [Example(prompt=f"{name} {i}?", demonstration=f"{name}-{i}", answer=f"{i}") for i in range(n)]
    return Skill(name=name, train=test, test=test, scorer="exact")


def _new_home(tmp: Path, policy=None, measured: bool = False):
    """A home whose v1 is a fresh tiny model, with two probes pinned in its suite, scored ``PROBES`` or, when
    ``measured``, as retain.api scores them. Returns ``(home, base folder)``."""
    from retain.ledger.gate import GatePolicy
    from retain.home import score_suite
    from retain.ledger.operations import init_home

    base = _tiny_model(tmp / "base")
    probes = [_skill("p1"), _skill("p2")]
    scores = score_suite(base, [(p, "probe") for p in probes]) if measured else {"probes": dict(PROBES)}
    home = init_home(tmp / "home", base, str(base), policy or GatePolicy(), probes, scores)
    return home, base


def _learn(home, folder: Path, name: str, new: float, probes: dict[str, float] | None = None,
           skills: dict[str, float] | None = None, kind: str = "full", force: str | None = None):
    """Record ``folder`` as a candidate that learned skill ``name`` to score ``new``; the champion's scores
    are what the ledger recorded for it (0 on the new skill)."""
    from retain.ledger.operations import Candidate, record_candidate
    from retain.ledger.store import known_scores

    with home.writing("learn"):
        champion = known_scores(home.conn, home.champion())
        champion["skills"].setdefault(name, 0.0)
        scores = {"probes": dict(probes or champion["probes"]),
                  "skills": {**{k: v for k, v in champion["skills"].items() if k != name}, **(skills or {}),
                             name: new}}
        candidate = Candidate(folder=folder, kind=kind, method="sft", skill=_skill(name), scores=scores,
                              champion_scores=champion, lora=kind == "adapter", options={"lr": 0.1})
        return record_candidate(home, candidate, force)


@pytest.fixture
def char_tokenizer():
    """``char_tokenizer()``: the tokenizer the ledger's tiny models are saved with."""
    return _char_tokenizer


@pytest.fixture
def tiny_model():
    """``tiny_model(path, seed=0)``: save a random 2-layer Llama at ``path`` and return ``path``."""
    return _tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A random 2-layer Llama with the embedded tokenizer, saved once per session (the distributed tests train
    copies of it and never write into it)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from retain.models.tiny.tokenizer import build_tokenizer

    path = tmp_path_factory.mktemp("tiny-llama")
    tok = build_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0, initializer_range=0.5)
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture
def change_one_layer():
    """``change_one_layer(src, dst, tensor=..., delta=0.01)``: a copy of a model with one tensor moved."""
    return _change_one_layer


@pytest.fixture
def lora_adapter():
    """``lora_adapter(base, dst, seed=0)``: a saved PEFT LoRA adapter with non-zero weights."""
    return _lora_adapter


@pytest.fixture
def echo_data(tmp_path):
    """A skill file of 20 lines (``echo N?`` -> ``N``) for learns into a home."""
    path = tmp_path / "echo.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"echo {i}?", "demonstration": f"{i}"}) + "\n" for i in range(20)))
    return path


@pytest.fixture
def new_home():
    """``new_home(tmp, policy=None, measured=False) -> (home, base)``: a home over a fresh tiny model."""
    return _new_home


@pytest.fixture
def learn():
    """``learn(home, folder, name, new, ...)``: record a candidate with the given scores."""
    return _learn


# -- HTML pages (the reports) ---------------------------------------------------------------------------------

class HtmlNode:
    """An element of a parsed page: tag, attributes and children (text children are plain strings)."""

    def __init__(self, tag: str, attrs: dict[str, str | None]) -> None:
        self.tag, self.attrs, self.children = tag, attrs, []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def all(self, tag: str | None = None, **attrs: str) -> list["HtmlNode"]:
        """Every element below this one with ``tag`` and these attribute values (``class_`` matches one class)."""
        want = {k.rstrip("_"): v for k, v in attrs.items()}
        found = []
        for child in self.children:
            if isinstance(child, HtmlNode):
                classes = (child.attrs.get("class") or "").split()
                if (tag is None or child.tag == tag) and all(
                        v in classes if k == "class" else child.attrs.get(k) == v for k, v in want.items()):
                    found.append(child)
                found += child.all(tag, **attrs)
        return found

    def one(self, tag: str | None = None, **attrs: str) -> "HtmlNode":
        found = self.all(tag, **attrs)
        assert len(found) == 1, (tag, attrs, len(found))
        return found[0]

    def kids(self, tag: str) -> list["HtmlNode"]:
        """The direct children with ``tag``."""
        return [c for c in self.children if isinstance(c, HtmlNode) and c.tag == tag]

    def rows(self) -> list[list[str]]:
        """A table's body rows as the stripped texts of their cells."""
        return [[c.text().strip() for c in tr.children if isinstance(c, HtmlNode)]
                for tr in self.one("tbody").all("tr")]


def _parse_html(text: str) -> HtmlNode:
    """Parse a page with the standard library's HTML parser into a tree of :class:`HtmlNode`."""
    from html.parser import HTMLParser

    void = {"meta", "br", "input", "img", "hr", "link", "area", "col", "source", "wbr"}
    root = HtmlNode("#root", {})
    stack = [root]

    class Builder(HTMLParser):
        def handle_starttag(self, tag, attrs):
            node = HtmlNode(tag, dict(attrs))
            stack[-1].children.append(node)
            if tag not in void:
                stack.append(node)

        def handle_startendtag(self, tag, attrs):
            stack[-1].children.append(HtmlNode(tag, dict(attrs)))

        def handle_endtag(self, tag):
            for i in range(len(stack) - 1, 0, -1):
                if stack[i].tag == tag:
                    del stack[i:]
                    return

        def handle_data(self, data):
            stack[-1].children.append(data)

    builder = Builder(convert_charrefs=True)
    builder.feed(text)
    builder.close()
    return root


@pytest.fixture(scope="session")
def parse_html() -> Callable[[str], HtmlNode]:
    """``parse_html(text)``: a page as a tree of elements with ``all``, ``one``, ``text`` and ``rows``."""
    return _parse_html


@pytest.fixture
def run_main(capsys):
    """``run_main(*args)``: ``retain ARGS`` in this process; its exit code, stdout and stderr."""
    from retain.cli import main

    def run(*args: object) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as stopped:
            main([str(a) for a in args])
            raise SystemExit(0)
        out, err = capsys.readouterr()
        return stopped.value.code, out, err

    return run


@pytest.fixture
def keyed_home(tmp_path, config, new_home, learn, change_one_layer) -> Path:
    """A home of tiny models with v2 and v3 learned, made with the signing key of the module's ``config``
    fixture (its environment), so every entry is signed."""
    home, base = new_home(tmp_path)
    learn(home, change_one_layer(base, tmp_path / "m2"), "add", 0.9)
    learn(home, change_one_layer(base, tmp_path / "m3", delta=0.02), "mul", 0.1)
    home.conn.close()
    return home.root


def _write_log(root: Path, lines: list[bytes]) -> None:
    """The attacker's audit log written over a home's, and a database rebuilt from it with the project's own
    code (as an attacker without the key can)."""
    from retain.ledger import audit, store

    (root / "audit.jsonl").write_bytes(b"".join(lines))
    for name in ("ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm"):
        (root / name).unlink(missing_ok=True)
    conn = store.connect(root / "ledger.sqlite")
    store.apply(conn, audit.parse(b"".join(lines))[0])
    conn.close()


@pytest.fixture
def write_log() -> Callable[[Path, list[bytes]], None]:
    return _write_log
