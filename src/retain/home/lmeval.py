"""Suite items that are lm-evaluation-harness tasks (the optional extra ``retain[lmeval]``, lm-eval 0.4.13).

A suite path ending in ``.yaml`` or ``.yml`` is an lm-eval task YAML (its format: ``task``, ``dataset_path``,
``dataset_kwargs``, ``output_type``, ``doc_to_text``, ``doc_to_choice``, ``doc_to_target``, ``metric_list``,
...). It must run offline from local files: ``dataset_path`` is one of the file formats of Hugging Face
``datasets`` (json, csv, parquet, text, arrow) and ``dataset_kwargs.data_files`` names the files (a path, a list,
or split -> path(s); relative to the YAML, or absolute). The YAML, its ``include:`` YAMLs, the ``!function``
modules beside it and every data file are kept in the home, so a later learn, ``verify``, ``gc`` and
``reproduce`` need nothing outside the home.

Its score is its main metric: the first of its ``metric_list`` (lm-eval's default for its ``output_type`` when
the list is absent, ``acc`` for multiple choice), or the one a ``metric`` setting names; the gate needs a metric
where higher is better. lm-eval computes it on the model already loaded in memory
(``lm_eval.models.huggingface.HFLM(pretrained=model, tokenizer=...)``), zero-shot unless the YAML sets
``num_fewshot``, without a chat template (lm-eval's default), on at most ``limit`` documents when set, with
the Hugging Face hub and datasets offline.
lm-eval is imported only here and only when such an item is read or scored.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from retain.data.skills import Skill
from retain.errors import RetainError
from retain.ledger.suite import LmEvalTask

SUFFIXES = (".yaml", ".yml")
SETTINGS = {"file", "name", "metric", "limit"}
FORMATS = ("json", "csv", "parquet", "text", "arrow")
INSTALL = "pip install 'retain[lmeval]'"
BATCH_SIZE = 16
OUTPUT_TYPE = "generate_until"  # lm-eval's TaskConfig default
FEWSHOT_SEED = 1234  # lm-eval's own default, so few-shot contexts match a plain lm-eval run


def is_task_file(path: Path) -> bool:
    """Whether a suite path names an lm-eval task (a YAML file)."""
    return path.suffix.lower() in SUFFIXES


def require(where: str) -> None:
    """Fail in one line, naming the file, when lm-eval is not installed."""
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise RetainError(f"an lm-eval task as a suite item needs lm-evaluation-harness: {INSTALL}",
                          file=where) from None


class _Function(str):
    """A ``!function module.name`` reference, kept as its text while the YAML is read."""


class _Loader(yaml.SafeLoader):
    """YAML as lm-eval reads it, with ``!function`` references recorded instead of imported."""


_Loader.add_constructor("!function", lambda loader, node: _Function(loader.construct_scalar(node)))


def _functions(value: Any) -> Iterator[str]:
    if isinstance(value, _Function):
        yield str(value)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _functions(v)
    elif isinstance(value, list):
        for v in value:
            yield from _functions(v)


def _read_yaml(path: Path, files: list[Path], seen: set[Path]) -> dict[str, Any]:
    """The task config with its ``include:`` YAMLs merged under it (as lm-eval merges them); every file it
    needs (itself, includes, ``!function`` modules found beside it) is appended to ``files``."""
    path = path.resolve()
    if path in seen:
        raise RetainError("includes itself", file=str(path), field="include")
    seen.add(path)
    try:
        config = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # a SafeLoader: no arbitrary objects
    except FileNotFoundError:
        raise RetainError("no such file", file=str(path)) from None
    except UnicodeDecodeError as err:
        raise RetainError(f"not UTF-8 text ({err.reason} at byte {err.start})", file=str(path)) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise RetainError(f"malformed YAML ({getattr(err, 'problem', None) or err})", file=str(path),
                          line=mark.line + 1 if mark else None) from None
    if not isinstance(config, dict):
        raise RetainError("must be a mapping of lm-eval task settings", file=str(path))
    files.append(path)
    for reference in _functions(config):
        module = path.parent / f"{reference.rpartition('.')[0].replace('.', '/')}.py"
        if module.is_file() and module.resolve() not in files:
            files.append(module.resolve())
    includes = config.pop("include", None)
    merged: dict[str, Any] = {}
    for include in includes if isinstance(includes, list) else [] if includes is None else [includes]:
        if not isinstance(include, str) or Path(include).is_absolute():
            raise RetainError(f"must be a path relative to the YAML, got {include!r}", file=str(path),
                              field="include")
        inner = _read_yaml(path.parent / include, files, seen)
        inner.pop("task_list", None)
        merged.update(inner)
    return {**merged, **config}


def _data_files(config: dict[str, Any], yaml_file: Path) -> dict[str, Path]:
    """Each data file as the YAML names it -> the file (checked to exist)."""
    where, field = str(yaml_file), "dataset_kwargs.data_files"
    if config.get("dataset_path") not in FORMATS:
        raise RetainError(f"must be a local file format ({', '.join(FORMATS)}) read from {field}: a suite item "
                          f"runs offline, got {config.get('dataset_path')!r}", file=where, field="dataset_path")
    kwargs = config.get("dataset_kwargs")
    named = kwargs.get("data_files") if isinstance(kwargs, dict) else None
    values = list(named.values()) if isinstance(named, dict) else [named]
    names = [n for v in values for n in (v if isinstance(v, list) else [v])]
    if not names or not all(isinstance(n, str) and n for n in names):
        raise RetainError("must name the task's data files (a path, a list, or split -> path)", file=where,
                          field=field)
    found = {}
    for name in names:
        path = Path(name) if Path(name).is_absolute() else yaml_file.parent / name
        if not path.is_file():
            raise RetainError(f"names {name!r}, which is not a file", file=where, field=field)
        found[name] = path.resolve()
    return found


def _metric(config: dict[str, Any], chosen: str | None, where: str) -> str:
    """The task's main metric (first of ``metric_list``, or lm-eval's default) or ``chosen``; checked to be
    a metric lm-eval knows offline where higher is better."""
    from lm_eval.api import metrics  # noqa: F401  (fills the registry)
    from lm_eval.api.registry import DEFAULT_METRIC_REGISTRY, is_higher_better, metric_registry

    listed = config.get("metric_list")
    if listed is None:
        entries = [{"metric": m} for m in DEFAULT_METRIC_REGISTRY.get(config.get("output_type", OUTPUT_TYPE), [])]
    elif isinstance(listed, list) and listed and all(isinstance(e, dict) and "metric" in e for e in listed):
        entries = listed
    else:
        raise RetainError("must be a list of {metric: NAME, ...}", file=where, field="metric_list")
    if not entries:
        raise RetainError(f"unknown output type {config.get('output_type')!r}", file=where, field="output_type")
    names = [e["metric"] for e in entries]
    index = 0 if chosen is None else names.index(chosen) if chosen in names else -1
    if index < 0:
        raise RetainError(f"the task has no metric {chosen!r} (its metrics: {', '.join(map(str, names))})",
                          file=where, field="metric")
    name, field = names[index], f"metric_list[{index}].metric" if listed is not None else "output_type"
    if isinstance(name, _Function) or not isinstance(name, str) or name not in metric_registry:
        raise RetainError(f"unknown metric {name!r}: the suite score must be a metric lm-eval knows offline "
                          f"(such as acc, acc_norm, exact_match)", file=where, field=field)
    if not entries[index].get("higher_is_better", is_higher_better(name)):
        raise RetainError(f"{name} is better when lower; the gate needs a metric where higher is better "
                          "(put one first in metric_list)", file=where, field=field)
    return name


def read_task(path: Path, settings: dict[str, Any], where: str) -> LmEvalTask:
    """An lm-eval task YAML as a suite item: its files read, its config checked, and the task built once by
    lm-eval from the copies the home will keep (so what is stored is what runs)."""
    require(str(path))
    for key in settings:
        if key not in SETTINGS:
            raise RetainError(f"not a setting of an lm-eval task (known: {', '.join(sorted(SETTINGS - {'file'}))})",
                              file=where, field=key)
    files: list[Path] = []
    config = _read_yaml(path, files, set())
    if not isinstance(config.get("task"), str) or "group" in config or "class" in config:
        raise RetainError("a suite item is one lm-eval task: a YAML with a \"task\" name (not a group or a "
                          "Python class)", file=str(path), field="task")
    data = _data_files(config, path.resolve())
    metric = _metric(config, settings.get("metric"), str(path))
    name, limit = settings.get("name", config["task"]), settings.get("limit")
    if not isinstance(name, str) or not name.strip():
        raise RetainError("must be a non-empty string", file=where, field="name")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise RetainError(f"must be a whole number of documents, 1 or more, got {limit!r}", file=where,
                          field="limit")
    every = [*files, *(p for p in data.values() if p not in files)]
    root = Path(os.path.commonpath([p.parent for p in every]))
    task = LmEvalTask(name=name.strip(), scorer=f"lm-eval:{metric}", entry=files[0].relative_to(root).as_posix(),
                      files={p.relative_to(root).as_posix(): p.read_bytes() for p in every},
                      data_files={n: p.relative_to(root).as_posix() for n, p in data.items()}, metric=metric,
                      limit=limit)
    with tempfile.TemporaryDirectory(prefix="retain-lmeval-") as tmp, _quiet():
        try:
            built = next(iter(_load(Path(tmp), task)["tasks"].values()))
            task.n = len(built.eval_docs) if limit is None else min(limit, len(built.eval_docs))
        except (RetainError, KeyboardInterrupt):
            raise
        except Exception as err:  # noqa: BLE001 (lm-eval and datasets raise many kinds: the task's fault)
            raise RetainError(f"lm-eval cannot build the task ({type(err).__name__}: {err})".splitlines()[0],
                              file=str(path)) from None
    if task.n == 0:
        raise RetainError("its evaluation split has no documents", file=str(path), field="test_split")
    return task


def _load(folder: Path, task: LmEvalTask) -> dict[str, Any]:
    """Write the task's files under ``folder`` and have lm-eval build it (datasets' cache inside ``folder``)."""
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    for relative, content in task.files.items():
        (folder / "files" / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / "files" / relative).write_bytes(content)
    config = load_yaml(folder / "files" / task.entry)
    # The YAML's own data-file names point where the user kept them; run on the copies.
    local = {name: str(folder / "files" / relative) for name, relative in task.data_files.items()}
    kwargs = dict(config.get("dataset_kwargs") or {})
    named = kwargs["data_files"]
    moved = (lambda v: [local[n] for n in v] if isinstance(v, list) else local[v])
    kwargs["data_files"] = {k: moved(v) for k, v in named.items()} if isinstance(named, dict) else moved(named)
    kwargs["cache_dir"] = str(folder / "cache")
    config["dataset_kwargs"] = kwargs
    loaded = TaskManager(include_defaults=False).load([config])
    for built in loaded["tasks"].values():
        if built.get_config("num_fewshot") is None:
            built.set_config(key="num_fewshot", value=0)
        built.set_fewshot_seed(seed=FEWSHOT_SEED)
    return loaded


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Offline (hub and datasets), lm-eval's logging and progress bars silenced, all restored afterwards."""
    import datasets
    import huggingface_hub.constants as hub

    saved_env = {k: os.environ.get(k) for k in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")}
    saved = (datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE, hub.HF_HUB_OFFLINE)
    loggers = {name: logging.getLogger(name).level for name in ("lm_eval", "lm-eval", "datasets")}
    bars = datasets.utils.logging.is_progress_bar_enabled()
    os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1")
    datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = hub.HF_HUB_OFFLINE = True
    for name in loggers:
        logging.getLogger(name).setLevel(logging.ERROR)
    datasets.utils.logging.disable_progress_bar()
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # lm-eval's tqdm bars write to sys.stderr
            yield
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE, hub.HF_HUB_OFFLINE = saved
        for name, level in loggers.items():
            logging.getLogger(name).setLevel(level)
        if bars:
            datasets.utils.logging.enable_progress_bar()


def score(adapter: Any, task: LmEvalTask) -> float:
    """The task's metric for a loaded causal-LM adapter (its model and tokenizer), computed by lm-eval."""
    require(task.entry)
    from lm_eval.evaluator import evaluate
    from lm_eval.models.huggingface import HFLM

    model = adapter.model
    was_training = model.training
    device = str(next(model.parameters()).device)
    where = f"lm-eval task {task.name} ({task.entry})"
    try:
        with tempfile.TemporaryDirectory(prefix="retain-lmeval-") as tmp, _quiet():
            loaded = _load(Path(tmp), task)
            lm = HFLM(pretrained=model, tokenizer=adapter.tokenizer, batch_size=BATCH_SIZE, device=device)
            results = evaluate(lm=lm, task_dict=loaded, limit=task.limit, bootstrap_iters=0, log_samples=False,
                               verbosity="ERROR")
    except (RetainError, KeyboardInterrupt):
        raise
    except Exception as err:  # noqa: BLE001 (the task ran when added: this model fails on it)
        raise RetainError(f"lm-eval failed ({type(err).__name__}: {err})".splitlines()[0], file=where) from None
    finally:
        model.train(was_training)
    (values,) = results["results"].values()
    # one value per filter (``metric,filter``); the first is the task's own, ``none`` without a filter_list
    keys = [k for k in values if k.startswith(f"{task.metric},") and "_stderr" not in k]
    if not keys:
        raise RetainError(f"lm-eval reported no {task.metric} for the task", file=where, field="metric")
    return float(values[keys[0]])


def skipped(suite: list[Skill]) -> list[str]:
    """One note per lm-eval item, which protection (rehearsal, importance) cannot draw on."""
    return [f"skips {item.name}: an lm-eval task has no training split" for item in suite
            if isinstance(item, LmEvalTask)]
