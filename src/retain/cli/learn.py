"""``retain learn`` and ``retain eval``: teach a model (or a home's champion) a skill file, score a model on one.

The work is in :func:`retain.api.learn`, :func:`retain.home.learn_in_home` and :func:`retain.api.evaluate`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

import typer

from retain.cli import usage
from retain.errors import RetainError

app = typer.Typer()


def _choice(*values: str) -> Callable[[typer.CallbackParam, str], str]:
    """A callback that accepts one of ``values`` (one line naming the option otherwise)."""

    def check(param: typer.CallbackParam, value: str) -> str:
        if value not in values:
            usage.fail(param, f"must be one of {', '.join(values)}, got {value!r}")
        return value

    return check


DEVICE_HELP = "auto (CUDA, else MPS, else CPU), cpu, cuda or mps."
# The loading and length options `learn` and `eval` share (ModelSpec fields; see retain.models.causal_lm).
MAX_PROMPT = typer.Option(None, "--max-prompt-tokens", callback=usage.number(minimum=1),
                          help="Longest prompt (student's, or teacher's with its demonstration) in tokens; a longer "
                               "one is an error naming its line, never truncated. Default: the model's positions "
                               "(max_position_embeddings) less --max-new-tokens (else 64).")
MAX_NEW = typer.Option(None, "--max-new-tokens", callback=usage.number(minimum=1),
                       help="Tokens generated per answer and SDFT rollout (default: 32 for answers, "
                            "sdft.max_new_tokens for rollouts); generation also stops at any EOS id the model's "
                            "generation config lists.")
TRUST_REMOTE_CODE = typer.Option(False, "--trust-remote-code",
                                 help="Run the model folder's own Python code (transformers' trust_remote_code).")
ATTN = typer.Option(None, "--attn-implementation", help="e.g. eager, sdpa, flash_attention_2 (from_pretrained's).")


def _model_options(max_prompt_tokens: Optional[int], max_new_tokens: Optional[int], trust_remote_code: bool,
                   attn_implementation: Optional[str]) -> dict:
    return {"max_prompt_tokens": max_prompt_tokens, "max_new_tokens": max_new_tokens,
            "trust_remote_code": trust_remote_code or None, "attn_implementation": attn_implementation}


@app.command()
def learn(model: str = typer.Argument(..., help="A home, `embedded`, or a local Hugging Face causal LM folder."),
          data: Path = typer.Argument(..., help="JSONL: prompt, demonstration, optional answer."),
          method: Optional[str] = typer.Option(None, "--method", "-m",
                                               help="e.g. sdft, sft, sdft+ewc, sft+si+replay. Default: into a home, "
                                                    "the home's (SDFT with its protection, set by `retain init`); "
                                                    "else sdft."),
          out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where to save_pretrained the result."),
          lora: bool = typer.Option(False, "--lora", help="Train a PEFT LoRA adapter instead of all weights."),
          seed: int = typer.Option(0, "--seed", callback=usage.seed),
          epochs: int = typer.Option(2, "--epochs", callback=usage.number(minimum=1),
                                     help="Passes over the data (the paper: 2 for skills)."),
          lr: Optional[float] = typer.Option(None, "--lr", callback=usage.number(minimum=0, above=True),
                                             help="Default: 1e-5 (paper) or the embedded model's own."),
          batch_size: int = typer.Option(16, "--batch-size", callback=usage.number(minimum=1)),
          scorer: Optional[str] = typer.Option(None, "--scorer", callback=usage.scorer,
                                               help="exact, alnum, or module:function. Default: into a home, the "
                                                    "home's (alnum on the embedded model); else exact."),
          set_: list[str] = typer.Option([], "--set", help="Method option, e.g. sdft.teacher=frozen, ewc.lam=100."),
          force: Optional[str] = typer.Option(None, "--force", help="(home) Promote despite the gate; the reason is recorded."),
          overwrite: bool = typer.Option(False, "--overwrite", help="Replace files in a non-empty --out."),
          mlflow: Optional[str] = typer.Option(None, "--mlflow", help="(home) Also log to this MLflow tracking URI."),
          wait: float = typer.Option(0.0, "--wait", callback=usage.number(minimum=0),
                                     help="(home) Seconds to wait for another learn's lock (default: fail at once)."),
          protect: list[Path] = typer.Option([], "--protect",
                                             help="JSONL of what the model already knows (prompts; answers optional):"
                                                  " consolidation methods protect it. Repeatable."),
          name: Optional[str] = typer.Option(None, "--name", help="(home) The skill's name (default: the file's)."),
          accept_flagged: Optional[str] = typer.Option(None, "--accept-flagged",
                                                       help="(home) Train on lines the guard flags; the reason is "
                                                            "recorded."),
          dtype: str = typer.Option("auto", "--dtype", callback=_choice("auto", "bfloat16", "float16", "float32"),
                                    help="Weights' dtype; auto keeps the checkpoint's (and --out saves it so)."),
          device: str = typer.Option("auto", "--device", callback=_choice("auto", "cpu", "cuda", "mps"),
                                     help=DEVICE_HELP),
          mixed_precision: str = typer.Option("no", "--mixed-precision", callback=_choice("no", "bf16", "fp16"),
                                              help="Accelerate's autocast for the training forwards."),
          grad_accum: int = typer.Option(1, "--grad-accum", callback=usage.number(minimum=1),
                                         help="Micro-batches per step (same steps and global batch, less memory)."),
          gradient_checkpointing: bool = typer.Option(False, "--gradient-checkpointing",
                                                      help="Recompute activations in the backward pass."),
          max_prompt_tokens: Optional[int] = MAX_PROMPT, max_new_tokens: Optional[int] = MAX_NEW,
          trust_remote_code: bool = TRUST_REMOTE_CODE, attn_implementation: Optional[str] = ATTN,
          quiet: bool = typer.Option(False, "--quiet", "-q")) -> None:
    """Teach a model (or the champion of a home) the skill in DATA.

    DATA rows hold strings, or chat message lists as TRL's conversational datasets (``prompt`` ending with a
    user message after an optional system message; ``demonstration`` as assistant messages).

    Into a home, the candidate is gated against the champion; exit code 1 when the gate rejects it. The
    consolidation methods (ewc, rehearsal, ...) continue the champion's protection state. A single learn
    protects what --protect names; a consolidation method with nothing to protect is an error.
    """
    from retain.home import is_home

    options = usage.parse_sets(set_)
    if is_home(model):
        from retain.home import learn_in_home
        from retain.train.loop import process_state
        if process_state(device).num_processes > 1:
            raise RetainError("a home learns in one process; under a multi-process launch use --out", field="MODEL")
        for flag, value, default in (("--dtype", dtype, "auto"), ("--device", device, "auto"),
                                     ("--mixed-precision", mixed_precision, "no"), ("--grad-accum", grad_accum, 1),
                                     ("--gradient-checkpointing", gradient_checkpointing, False)):
            if value != default:
                raise RetainError("only applies with --out (a home loads its champion as it was recorded)",
                                  field=flag)
        if out is not None:
            raise RetainError("a home keeps its own versions; use `retain export` instead", field="--out")
        if protect:
            raise RetainError("a home protects its own suite and state; add prior data with `retain suite add`",
                              field="--protect")
        loading = _model_options(max_prompt_tokens, max_new_tokens, trust_remote_code, attn_implementation)
        for flag, value in zip(("--max-prompt-tokens", "--max-new-tokens", "--trust-remote-code",
                                "--attn-implementation"), loading.values()):
            if value is not None:
                raise RetainError("only applies with --out (a home loads its champion as it was recorded)",
                                  field=flag)
        outcome = learn_in_home(model, data, method=method, options=options, seed=seed, lora=lora, force=force,
                                quiet=quiet, epochs=epochs, lr=lr, batch_size=batch_size, scorer=scorer,
                                mlflow_uri=mlflow, lock_timeout=wait, name=name, accept_flagged=accept_flagged)
        # A candidate the gate rejects is recorded, but the command did not do what was asked: exit 1.
        if not outcome.promoted:
            raise typer.Exit(1)
        return
    for flag, value in (("--force", force), ("--mlflow", mlflow), ("--name", name), ("--accept-flagged", accept_flagged)):
        if value is not None:
            raise RetainError("only applies when learning into a home", field=flag)
    if out is None:
        raise RetainError("is required when MODEL is not a home", field="--out")
    from retain import api
    from retain.console import console
    result = api.learn(model, data, method or "sdft", str(out), lora=lora, seed=seed, options=options, epochs=epochs, lr=lr,
                       batch_size=batch_size, scorer=scorer or "exact", overwrite=overwrite, quiet=quiet, protect=protect,
                       dtype=dtype, device=device, mixed_precision=mixed_precision, grad_accum=grad_accum,
                       gradient_checkpointing=gradient_checkpointing,
                       model_options=_model_options(max_prompt_tokens, max_new_tokens, trust_remote_code,
                                                    attn_implementation))
    if result.out is not None:  # only the main process of a multi-process launch writes and says so
        console(stderr=True, quiet=quiet).print(f"Saved to [bold]{result.out}[/]")


@app.command("eval")
def eval_(model: str = typer.Argument(..., help="`embedded` or a local causal LM (or adapter) folder."),
          data: Path = typer.Argument(..., help="JSONL with prompt and answer (or demonstration)."),
          scorer: str = typer.Option("exact", "--scorer", callback=usage.scorer,
                                     help="exact, alnum, or module:function."),
          with_demonstration: bool = typer.Option(False, "--with-demonstration",
                                                  help="Show each query's demonstration in the prompt (the teacher's view)."),
          as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
          device: str = typer.Option("auto", "--device", callback=_choice("auto", "cpu", "cuda", "mps"),
                                     help=DEVICE_HELP),
          max_prompt_tokens: Optional[int] = MAX_PROMPT, max_new_tokens: Optional[int] = MAX_NEW,
          trust_remote_code: bool = TRUST_REMOTE_CODE, attn_implementation: Optional[str] = ATTN) -> None:
    """Score a model on a skill file: the mean score of greedy answers."""
    from retain import api
    from retain.data.jsonl import read_examples

    n = len(read_examples(data, require_demonstration=with_demonstration))
    score = api.evaluate(model, data, scorer=scorer, with_demonstration=with_demonstration, device=device,
                         model_options=_model_options(max_prompt_tokens, max_new_tokens, trust_remote_code,
                                                      attn_implementation))
    if as_json:
        print(json.dumps({"model": model, "data": str(data), "scorer": scorer, "examples": n, "score": score}))
    else:
        print(f"{data}: {score:.4f} ({scorer}, {n} examples)")
