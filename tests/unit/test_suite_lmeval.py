"""lm-evaluation-harness tasks as suite items (extra ``retain[lmeval]``): lm-eval's score of a local
multiple-choice task equals the metric computed by hand from the model's log-likelihoods; a home keeps the
task's files and gates on its score with nothing outside the home; bad task files are one located error."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from retain.errors import RetainError
from retain.models.merge import merge_adapter

pytest.importorskip("lm_eval", reason="lm-eval is an optional extra: pip install 'retain[lmeval]'")

# Only the tiny models' characters (lowercase, digits, " -:>?.,"): nothing maps to <unk>.
QUESTIONS = [f"q{i}: which word is {w}?" for i, w in enumerate(["red", "blue", "tall", "fast", "cold", "wide",
                                                                  "soft", "dark"])]
CHOICES = [["a", "bcdefgh", "ij", "klmno"], ["pqrstu", "v", "wx", "yzabcd"], ["ef", "ghijklm", "n", "op"],
           ["qrs", "t", "uvwxyz0", "12"], ["3", "456789a", "bc", "defg"], ["hijklm", "no", "p", "qrstuvw"],
           ["xy", "z", "0123456", "789"], ["abcde", "fg", "hijklmn", "o"]]
TRAIN = [{"question": f"t{i}: a warm-up?", "choices": ["a", "b", "c", "d"], "label": 0} for i in range(4)]
UTILS = '''import os


def process_docs(dataset):
    """Fails unless lm-eval runs offline (what retain promises for a suite item)."""
    if os.environ.get("HF_DATASETS_OFFLINE") != "1" or os.environ.get("HF_HUB_OFFLINE") != "1":
        raise RuntimeError("lm-eval ran online")
    return dataset
'''


def task_yaml(metrics: str = "[acc, acc_norm]", **fields: str) -> str:
    """An lm-eval 0.4.13 multiple-choice task on local JSONL files (train and test splits)."""
    config = {"task": "tiny_mc", "dataset_path": "json",
              "dataset_kwargs": "{data_files: {train: data/train.jsonl, test: data/test.jsonl}}",
              "training_split": "train", "test_split": "test", "output_type": "multiple_choice",
              "process_docs": "!function utils.process_docs", "doc_to_text": '"{{question}}"',
              "doc_to_choice": '"{{choices}}"', "doc_to_target": '"{{label}}"', **fields}
    lines = [f"{key}: {value}" for key, value in config.items()]
    names = metrics.strip("[]").split(", ") if metrics else []
    if names:
        lines.append("metric_list:")
        lines += [f"  - metric: {name}\n    aggregation: mean\n    higher_is_better: true" for name in names]
    return "\n".join(lines) + "\n"


def write_task(folder: Path, labels: list[int], yaml_text: str | bytes | None = None) -> Path:
    """The task YAML, its data files and its ``!function`` module under ``folder``; returns the YAML."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    rows = [{"question": q, "choices": c, "label": y} for q, c, y in zip(QUESTIONS, CHOICES, labels)]
    (folder / "data" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "data" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in TRAIN))
    (folder / "utils.py").write_text(UTILS)
    text = yaml_text if yaml_text is not None else task_yaml()
    (folder / "task.yaml").write_bytes(text if isinstance(text, bytes) else text.encode())
    return folder / "task.yaml"


def loglikelihoods(adapter, context: str, choices: list[str]) -> list[float]:
    """log p(" " + choice | context) for each choice, summed over the choice's tokens, computed directly."""
    tok, model = adapter.tokenizer, adapter.model
    n = len(tok(context, add_special_tokens=False).input_ids)
    out = []
    for choice in choices:
        ids = tok(context + " " + choice, add_special_tokens=False).input_ids
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
        out.append(sum(float(logp[i - 1, ids[i]]) for i in range(n, len(ids))))
    return out


def by_hand(adapter, labels: list[int], rows: int = len(QUESTIONS)) -> dict[str, float]:
    """acc (argmax of the log-likelihood) and acc_norm (per byte of the continuation) over the first ``rows``."""
    right = {"acc": 0, "acc_norm": 0}
    for question, choices, label in list(zip(QUESTIONS, CHOICES, labels))[:rows]:
        ll = loglikelihoods(adapter, question, choices)
        right["acc"] += max(range(len(ll)), key=ll.__getitem__) == label
        norm = [v / len(" " + c) for v, c in zip(ll, choices)]
        right["acc_norm"] += max(range(len(norm)), key=norm.__getitem__) == label
    return {k: v / rows for k, v in right.items()}


def predictions(adapter) -> list[int]:
    """The model's own choice (highest log-likelihood) for each question."""
    return [max(range(4), key=loglikelihoods(adapter, q, c).__getitem__) for q, c in zip(QUESTIONS, CHOICES)]


@pytest.fixture
def model(tmp_path, tiny_model):
    """A tiny non-embedded model folder (random 2-layer Llama, character tokenizer) and its adapter."""
    from retain import api

    folder = tiny_model(tmp_path / "base")
    return folder, api.load_model(str(folder))


def labels_for(adapter) -> list[int]:
    """Right for the first five questions, wrong for the last three: acc is exactly 5/8."""
    return [p if i < 5 else (p + 1) % 4 for i, p in enumerate(predictions(adapter))]


def test_lm_eval_score_equals_the_metric_by_hand(tmp_path, model):
    from retain.home import lmeval
    from retain.home.suite_files import read_suite

    _, adapter = model
    labels = labels_for(adapter)
    expected = by_hand(adapter, labels)
    assert expected["acc"] == 5 / 8 and expected["acc_norm"] != expected["acc"]  # the metrics tell apart
    yaml_file = write_task(tmp_path / "task", labels)
    (item,) = read_suite([yaml_file])
    assert (item.name, item.metric, item.n, item.scorer, item.train) == ("tiny_mc", "acc", 8, "lm-eval:acc", [])
    assert sorted(item.files) == ["data/test.jsonl", "data/train.jsonl", "task.yaml", "utils.py"]
    assert lmeval.score(adapter, item) == pytest.approx(expected["acc"])

    # a manifest may pick another of the task's metrics and limit the documents
    manifest = tmp_path / "suite.json"
    manifest.write_text(json.dumps({"items": [{"file": "task/task.yaml", "name": "mc norm", "metric": "acc_norm"},
                                              {"file": "task/task.yaml", "name": "mc 4", "limit": 4}]}))
    norm, limited = read_suite([manifest])
    assert (norm.name, limited.n) == ("mc norm", 4)
    assert lmeval.score(adapter, norm) == pytest.approx(expected["acc_norm"])
    assert lmeval.score(adapter, limited) == pytest.approx(by_hand(adapter, labels, rows=4)["acc"])


def test_metric_defaults_to_the_output_types_first(tmp_path, model):
    from retain.home.suite_files import read_suite

    (item,) = read_suite([write_task(tmp_path / "task", [0] * 8, task_yaml(metrics=""))])
    assert item.metric == "acc"
    generative = task_yaml(metrics="").replace("output_type: multiple_choice\n", "").replace(
        "doc_to_target: \"{{label}}\"", "doc_to_target: \"{{choices[label]}}\"")
    (item,) = read_suite([write_task(tmp_path / "gen", [0] * 8, generative)])
    assert item.metric == "exact_match"  # lm-eval's default output type is generate_until


def test_the_home_keeps_the_task_and_gates_on_it(tmp_path, model, monkeypatch):
    """init with the task in the suite, the task's folder deleted, a learn that rewrites the model: the gate
    reads the task's score (lm-eval's, equal to the one by hand on the stored candidate), protection skips it,
    and verify, gc and reproduce work from the home alone; without lm-eval a learn stops before training."""
    from retain import api
    from retain.data.skills import Example
    from retain.home import init_home_from_model, learn_in_home, reproduce
    from retain.ledger.core import Home
    from retain.ledger.gc import collect
    from retain.ledger.verify import verify

    folder, adapter = model
    labels = predictions(adapter)  # the base model is right on every question: acc 1.0
    yaml_file = write_task(tmp_path / "task", labels)
    prompts = [f"{c}{i}" for c in "abcd" for i in range(4)]
    habits = tmp_path / "habits.jsonl"  # a JSONL item with a training split, for protection to draw on
    answers = adapter.answer([Example(prompt=p, demonstration="") for p in prompts], max_new_tokens=4)
    habits.write_text("".join(json.dumps({"prompt": p, "answer": a or "x"}) + "\n" for p, a in zip(prompts, answers)))
    skill = tmp_path / "echo.jsonl"
    skill.write_text("".join(json.dumps({"prompt": f"echo {w}", "demonstration": w}) + "\n"
                             for w in ("ab", "cd", "ef", "gh", "ij", "kl", "mn", "op", "qr", "st")))

    home = init_home_from_model(tmp_path / "home", str(folder), suite=[yaml_file, habits])
    v1 = home.version("v1")["record"]
    assert v1["scores"]["probes"]["tiny_mc"] == 1.0
    assert "skips tiny_mc: an lm-eval task has no training split" in v1["config"]["protection"]["notes"]
    shutil.rmtree(tmp_path / "task")

    outcome = learn_in_home(home.root, skill, method="sft+ewc", lr=0.05, epochs=3, batch_size=2, quiet=True)
    record = Home.open(home.root).version("v2")["record"]
    assert "skips tiny_mc: an lm-eval task has no training split" in record["config"]["protection"]["notes"]
    candidate = api.load_model(str(Home.open(home.root).materialize("v2", tmp_path / "v2", merge_adapter)))
    score = record["scores"]["probes"]["tiny_mc"]
    assert score == pytest.approx(by_hand(candidate, labels)["acc"]) and score < 1.0
    assert outcome.decision.decision == "rejected"
    assert any("tiny_mc" in reason for reason in outcome.decision.reasons), outcome.decision.reasons
    # lm-eval reports only its metric: the task's check is unpaired and says so; the JSONL item is paired
    rows = {c["name"]: c for c in outcome.decision.checks}
    assert rows["tiny_mc"]["test"] == "unpaired (no per-item outcomes)" and rows["habits"]["test"] == "paired"

    assert verify(home.root).ok
    assert collect(home.root).objects == 0
    assert verify(home.root).ok
    assert reproduce(home.root, "v2")["match"]

    # without lm-eval, a learn into this home stops before training, saying what to install, and writes nothing
    def files() -> dict[Path, bytes]:  # SQLite's shared-memory index changes on any read: not the home's content
        return {p: p.read_bytes() for p in sorted(home.root.rglob("*")) if p.is_file() and p.suffix != ".sqlite-shm"}

    before = files()
    for name in [m for m in sys.modules if m == "lm_eval" or m.startswith("lm_eval.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    with pytest.raises(RetainError, match=r"suite item tiny_mc\): .*pip install 'retain\[lmeval\]'"):
        learn_in_home(home.root, skill, method="sft", quiet=True)
    assert files() == before


# -- bad input: one located error, nothing read further -----------------------------------------------------

@pytest.mark.parametrize("yaml_text, where, field, words", [
    ("task: tiny_mc\ndataset_path: json\n  bad: [1,\n", "task.yaml:3", None, "malformed YAML"),
    (task_yaml(dataset_kwargs="{data_files: {test: data/missing.jsonl}}"), "task.yaml", "dataset_kwargs.data_files",
     "missing.jsonl"),
    (task_yaml(metrics="[accuracy_typo]"), "task.yaml", "metric_list[0].metric", "unknown metric 'accuracy_typo'"),
    (task_yaml(metrics="[acc]").replace("higher_is_better: true", "higher_is_better: false"), "task.yaml",
     "metric_list[0].metric", "better when lower"),
    (task_yaml(dataset_path="super_glue"), "task.yaml", "dataset_path", "runs offline"),
    (task_yaml(test_split="validation"), "task.yaml", None, "lm-eval cannot build the task"),
    ("- task: a\n- task: b\n", "task.yaml", None, "must be a mapping"),
    (b"task: x\xff\n", "task.yaml", None, "not UTF-8 text"),
    ("group: several\ntask: [a, b]\n", "task.yaml", "task", "one lm-eval task"),
])
def test_bad_task_file_is_one_located_error(tmp_path, yaml_text, where, field, words):
    from retain.home.suite_files import read_suite

    yaml_file = write_task(tmp_path, [0] * 8, yaml_text)
    with pytest.raises(RetainError) as err:
        read_suite([yaml_file])
    assert str(err.value).startswith(str(tmp_path / where)) and err.value.field == field, str(err.value)
    assert words in err.value.message and "\n" not in str(err.value)


def test_bad_manifest_setting_and_missing_task(tmp_path):
    from retain.home.suite_files import read_suite

    write_task(tmp_path / "task", [0] * 8)
    manifest = tmp_path / "suite.json"
    manifest.write_text(json.dumps({"items": [{"file": "task/task.yaml", "scorer": "exact"}]}))
    with pytest.raises(RetainError, match="not a setting of an lm-eval task") as err:
        read_suite([manifest])
    assert err.value.field == "scorer"
    manifest.write_text(json.dumps({"items": [{"file": "task/task.yaml", "limit": 0}]}))
    with pytest.raises(RetainError) as err:
        read_suite([manifest])
    assert err.value.field == "limit"
    with pytest.raises(RetainError, match="no such file"):
        read_suite([tmp_path / "nowhere.yaml"])


def test_without_lm_eval_a_yaml_asks_for_the_extra(tmp_path, monkeypatch):
    from retain.home.suite_files import read_suite

    yaml_file = write_task(tmp_path, [0] * 8)
    for name in [m for m in sys.modules if m == "lm_eval" or m.startswith("lm_eval.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # what `import lm_eval` meets when it is not installed
    with pytest.raises(RetainError, match=r"pip install 'retain\[lmeval\]'") as err:
        read_suite([yaml_file])
    assert err.value.file == str(yaml_file)
