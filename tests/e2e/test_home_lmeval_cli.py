"""An lm-eval task YAML in a home's suite through the real CLI: ``init --suite task.yaml``, ``suite add`` and
``suite list``, ``verify``; without the extra, or with a task file that names a missing data file, one line and
exit 2 with nothing written (no home; not a byte of the home changed, its lock file included)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("lm_eval", reason="lm-eval is an optional extra: pip install 'retain[lmeval]'")
pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# Runs the CLI as a Python without lm-eval sees it: `import lm_eval` fails.
NO_LMEVAL = "import sys\nsys.modules['lm_eval'] = None\nfrom retain.cli import main\nmain(sys.argv[1:])"
TASK = """task: tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - metric: acc
"""


def retain(*args: object, without_lmeval: bool = False) -> subprocess.CompletedProcess:
    head = [sys.executable, "-c", NO_LMEVAL] if without_lmeval else [sys.executable, "-m", "retain"]
    return subprocess.run([*head, *map(str, args)], check=False, capture_output=True, text=True, timeout=1800,
                          env=ENV)


def one_line_error(run: subprocess.CompletedProcess, *words: str) -> None:
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("retain: error: ") and run.stderr.count("\n") == 1, run.stderr
    for word in words:
        assert word in run.stderr, run.stderr


def files(folder) -> dict[str, bytes]:
    """Every file under ``folder`` (the lock file included) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def task(tmp_path):
    """A four-question multiple-choice task on a local JSONL file, and one naming a file that is not there."""
    folder = tmp_path / "task"
    folder.mkdir()
    rows = [{"question": f"q{i}: pick one?", "choices": ["ab", "c", "def", "g"], "label": i % 4} for i in range(4)]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "task.yaml").write_text(TASK.format(data="test.jsonl"))
    (folder / "broken.yaml").write_text(TASK.format(data="gone.jsonl").replace("tiny_mc", "broken_mc"))
    return folder


def test_a_task_yaml_through_the_cli(tmp_path, tiny_model, task):
    base = tiny_model(tmp_path / "base")
    home = tmp_path / "home"
    missing = retain("init", home, "--model", base, "--suite", task / "task.yaml", without_lmeval=True)
    one_line_error(missing, str(task / "task.yaml"), "pip install 'retain[lmeval]'")
    assert not home.exists()

    made = retain("init", home, "--model", base, "--no-suite")
    assert made.returncode == 0, made.stderr
    before = files(home)
    broken = retain("suite", "add", home, task / "broken.yaml")
    one_line_error(broken, str(task / "broken.yaml"), "dataset_kwargs.data_files", "gone.jsonl")
    assert files(home) == before

    added = retain("suite", "add", home, task / "task.yaml", "--reason", "the usual benchmark")
    assert added.returncode == 0, added.stderr
    assert "added tiny_mc (4 held out, 0 training, lm-eval:acc)" in added.stdout
    (item,) = json.loads(retain("suite", "list", home, "--json").stdout)["items"]
    assert (item["name"], item["scorer"], item["lmeval"]["metric"]) == ("tiny_mc", "lm-eval:acc", "acc")
    assert sorted(item["lmeval"]["files"]) == ["task.yaml", "test.jsonl"]
    checked = retain("verify", home)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines()[-1].startswith("ok: "), checked.stdout
