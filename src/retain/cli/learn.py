"""``retain learn`` and ``retain eval``: teach a model (or a home's champion) a skill file, score a model on one.

The work is in :func:`retain.api.learn`, :func:`retain.home.learn_in_home` and :func:`retain.api.evaluate`.

``retain learn`` has two modes, chosen by MODEL: into a home (MODEL is a home made by ``retain init``) or into
a model folder (MODEL is ``embedded`` or a model folder; ``--out`` names the result). :data:`MODE_OF` says which
mode each mode-specific option belongs to; an option given in the other mode is refused in one line (exit 2).
A new option that applies in one mode only gets a row there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer

from retain.cli import usage
from retain.errors import RetainError

app = typer.Typer()


def _choice(*values: str) -> Callable[[typer.CallbackParam, Optional[str]], Optional[str]]:
    """A callback that accepts one of ``values`` or None (not given); one line naming the option otherwise."""

    def check(param: typer.CallbackParam, value: Optional[str]) -> Optional[str]:
        if value is not None and value not in values:
            usage.fail(param, f"must be one of {', '.join(values)}, got {value!r}")
        return value

    return check


DEVICE_HELP = "auto (CUDA, else MPS, else CPU), cpu, cuda or mps."
# The loading and length options `learn` and `eval` share (ModelSpec fields; see retain.models.causal_lm).
MaxPromptTokens = Annotated[Optional[int], typer.Option(
    "--max-prompt-tokens", callback=usage.number(minimum=1),
    help="Longest prompt (student's, or teacher's with its demonstration) in tokens; a longer one is an error "
         "naming its line, never truncated. Default: the model's positions (max_position_embeddings) less "
         "--max-new-tokens (else 64).")]
MaxNewTokens = Annotated[Optional[int], typer.Option(
    "--max-new-tokens", callback=usage.number(minimum=1),
    help="Tokens generated per answer and SDFT rollout (default: 32 for answers, sdft.max_new_tokens for "
         "rollouts); generation also stops at any EOS id the model's generation config lists.")]
TrustRemoteCode = Annotated[bool, typer.Option(
    "--trust-remote-code", help="Run the model folder's own Python code (transformers' trust_remote_code).")]
AttnImplementation = Annotated[Optional[str], typer.Option(
    "--attn-implementation", help="e.g. eager, sdpa, flash_attention_2 (from_pretrained's).")]
Device = Annotated[str, typer.Option("--device", callback=_choice("auto", "cpu", "cuda", "mps"), help=DEVICE_HELP)]

HOME, FOLDER = "into a home", "into a model folder"
AS_RECORDED = "only applies with --out (a home loads its champion as it was recorded)"
# The mode each mode-specific option of `retain learn` belongs to (by parameter name), and what refusing it in
# the other mode says. Every option not listed applies in both modes.
MODE_OF: dict[str, tuple[str, str]] = {
    "force": (HOME, "only applies when learning into a home"),
    "mlflow": (HOME, "only applies when learning into a home"),
    "wait": (HOME, "only applies when learning into a home (a model folder has no lock to wait for)"),
    "name": (HOME, "only applies when learning into a home"),
    "accept_flagged": (HOME, "only applies when learning into a home"),
    "no_rate_search": (HOME, "only applies when learning into a home (a model folder trains at --lr)"),
    "from_feedback": (HOME, "only applies when learning into a home (feedback is kept in a served home)"),
    "since": (HOME, "only applies with --from-feedback, into a home"),
    "documents": (HOME, "only applies when learning into a home"),
    "questions": (HOME, "only applies with --documents, into a home"),
    "augment": (HOME, "only applies when learning into a home"),
    "out": (FOLDER, "a home keeps its own versions; use `retain export` instead"),
    "overwrite": (FOLDER, "only applies with --out (a home never overwrites a version)"),
    "prior": (FOLDER, "a home protects its own suite and state; add prior data with `retain suite add`"),
    "dtype": (FOLDER, AS_RECORDED),
    "device": (FOLDER, AS_RECORDED),
    "mixed_precision": (FOLDER, AS_RECORDED),
    "grad_accum": (FOLDER, AS_RECORDED),
    "gradient_checkpointing": (FOLDER, AS_RECORDED),
    "max_prompt_tokens": (FOLDER, AS_RECORDED),
    "max_new_tokens": (FOLDER, AS_RECORDED),
    "trust_remote_code": (FOLDER, AS_RECORDED),
    "attn_implementation": (FOLDER, AS_RECORDED),
}


def check_mode(ctx: typer.Context, mode: str) -> None:
    """Refuse, in one line, the first option given that belongs to the other mode (:data:`MODE_OF`)."""
    for name, (belongs, why) in MODE_OF.items():
        if belongs != mode and usage.given(ctx, name):
            raise RetainError(why, field=usage.option_name(ctx, name))


def _source(data: Optional[Path], from_feedback: bool, since: Optional[str], documents: list[Path],
            questions: Optional[Path]) -> str:
    """What a learn into a home learns from: ``data``, ``feedback`` or ``documents`` (exactly one of them)."""
    given = [name for name, on in (("DATA", data is not None), ("--from-feedback", from_feedback),
                                   ("--documents", bool(documents))) if on]
    if len(given) != 1:
        raise RetainError("give exactly one of DATA, --from-feedback or --documents"
                          + (f" (got {' and '.join(given)})" if given else ""), field=given[-1] if given else "DATA")
    if since is not None and not from_feedback:
        raise RetainError("only applies with --from-feedback", field="--since")
    if bool(documents) != (questions is not None):
        raise RetainError("--documents and --questions go together", field="--questions" if documents else "--documents")
    return "feedback" if from_feedback else "documents" if documents else "data"


def _model_options(max_prompt_tokens: Optional[int], max_new_tokens: Optional[int], trust_remote_code: bool,
                   attn_implementation: Optional[str]) -> dict:
    return {"max_prompt_tokens": max_prompt_tokens, "max_new_tokens": max_new_tokens,
            "trust_remote_code": trust_remote_code or None, "attn_implementation": attn_implementation}


@app.command(context_settings=usage.renamed(protect="prior"))
def learn(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="A home, `embedded`, or a local Hugging Face causal LM folder.")],
    data: Annotated[Optional[Path], typer.Argument(
        help="JSONL: prompt, demonstration, optional answer (none with --from-feedback or --documents).")] = None,
    method: Annotated[Optional[str], typer.Option(
        "--method", "-m", help="e.g. sdft, sft, sdft+ewc, sft+si+replay. Default: into a home, the home's (SDFT "
                               "with its protection, set by `retain init`); else sdft.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Where to save_pretrained the result.")] = None,
    lora: Annotated[bool, typer.Option("--lora", help="Train a PEFT LoRA adapter instead of all weights.")] = False,
    seed: Annotated[int, typer.Option("--seed", callback=usage.seed)] = 0,
    epochs: Annotated[int, typer.Option("--epochs", callback=usage.number(minimum=1),
                                        help="Passes over the data (the paper: 2 for skills). Default with --documents: "
                                             "20 on the embedded model, else 4.")] = 2,
    lr: Annotated[Optional[float], typer.Option("--lr", callback=usage.number(minimum=0, above=True),
                                                help="Default: 1e-5 (paper) or the embedded model's own.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", callback=usage.number(minimum=1),
                                            help="Default with --documents: 4 on the embedded model.")] = 16,
    scorer: Annotated[Optional[str], typer.Option(
        "--scorer", callback=usage.scorer, help="exact, alnum, or module:function. Default: into a home, the "
                                                "home's (alnum on the embedded model); else exact.")] = None,
    set_: Annotated[list[str], typer.Option(
        "--set", help="Method option, e.g. sdft.teacher=frozen, ewc.lam=100.")] = [],
    force: Annotated[Optional[str], typer.Option(
        "--force", help="(home) Promote despite the gate; the reason is recorded.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="(--out) Replace files in a non-empty --out.")] = False,
    mlflow: Annotated[Optional[str], typer.Option(
        "--mlflow", help="(home) Also log to this MLflow tracking URI.")] = None,
    wait: Annotated[float, typer.Option(
        "--wait", callback=usage.number(minimum=0),
        help="(home) Seconds to wait for another learn's lock (default: fail at once).")] = 0.0,
    prior: Annotated[list[Path], typer.Option(
        "--prior", help="(--out) JSONL of what the model already knows (prompts; answers optional): consolidation "
                        "methods protect it. Repeatable. (Was --protect.)")] = [],
    name: Annotated[Optional[str], typer.Option(
        "--name", help="(home) The skill's name (default: the file's).")] = None,
    accept_flagged: Annotated[Optional[str], typer.Option(
        "--accept-flagged", help="(home) Train on lines the guard flags; the reason is recorded.")] = None,
    no_rate_search: Annotated[bool, typer.Option(
        "--no-rate-search", help="(home) Train at the home's rate without searching it on pilots first (--lr "
                                 "also skips the search).")] = False,
    dtype: Annotated[str, typer.Option(
        "--dtype", callback=_choice("auto", "bfloat16", "float16", "float32"),
        help="(--out) Weights' dtype; auto keeps the checkpoint's (and --out saves it so).")] = "auto",
    device: Device = "auto",
    mixed_precision: Annotated[Optional[str], typer.Option(
        "--mixed-precision", callback=_choice("no", "bf16", "fp16"),
        help="(--out) Accelerate's autocast for the training forwards: no, bf16 or fp16. Default: Accelerate's "
             "(ACCELERATE_MIXED_PRECISION, which `accelerate launch` sets from its config), else no.")] = None,
    grad_accum: Annotated[int, typer.Option(
        "--grad-accum", callback=usage.number(minimum=1),
        help="(--out) Micro-batches per step (same steps and global batch, less memory).")] = 1,
    gradient_checkpointing: Annotated[bool, typer.Option(
        "--gradient-checkpointing", help="(--out) Recompute activations in the backward pass.")] = False,
    max_prompt_tokens: MaxPromptTokens = None,
    max_new_tokens: MaxNewTokens = None,
    trust_remote_code: TrustRemoteCode = False,
    attn_implementation: AttnImplementation = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    from_feedback: Annotated[bool, typer.Option(
        "--from-feedback", help="(home) Learn the corrections users gave (retain serve, retain feedback add) that "
                                "no version has used: each is an SDFT example, the correction the teacher's "
                                "demonstration, the conversation the student's prompt.")] = False,
    since: Annotated[Optional[str], typer.Option(
        "--since", help="(--from-feedback) Only feedback recorded after this version was created.")] = None,
    documents: Annotated[list[Path], typer.Option(
        "--documents", help="(home) Document files or folders (*.txt, *.md; a passage per file, named by its "
                            "stem) the teacher reads; needs --questions. Repeatable.")] = [],
    questions: Annotated[Optional[Path], typer.Option(
        "--questions", help="(--documents) JSONL: question, answer, passage (a document's stem). The student "
                            "sees the question only; held-out questions are scored closed-book.")] = None,
    augment: Annotated[Optional[int], typer.Option(
        "--augment", callback=usage.number(minimum=0, maximum=16),
        help="(home) Surface variants of each training prompt (punctuation and spacing changed) trained on as "
             "well, 0 to 16. Default: 4 with --documents on the embedded model, else 0.")] = None,
) -> None:
    """Teach a model (or the champion of a home) the skill in DATA.

    DATA rows hold strings, or chat message lists as TRL's conversational datasets (``prompt`` ending with a
    user message after an optional system message; ``demonstration`` as assistant messages).

    Into a home, the candidate is gated against the champion; exit code 1 when the gate rejects it. The
    consolidation methods (ewc, rehearsal, ...) continue the champion's protection state. Into a model folder
    (--out), a consolidation method protects what --prior names; with nothing to protect it is an error.
    Options marked (home) or (--out) apply in that mode only; given in the other, they are refused.
    """
    from retain.home import is_home

    options = usage.parse_sets(set_)
    if is_home(model):
        check_mode(ctx, HOME)
        from retain.home import learn_in_home
        from retain.train.loop import process_state
        if process_state(device).num_processes > 1:
            raise RetainError("a home learns in one process; under a multi-process launch use --out", field="MODEL")
        given = dict(method=method, options=options, seed=seed, lora=lora, force=force, quiet=quiet, epochs=epochs,
                     lr=lr, batch_size=batch_size, scorer=scorer, mlflow_uri=mlflow, lock_timeout=wait, name=name,
                     accept_flagged=accept_flagged, rate_search=not no_rate_search)
        if augment is not None:
            given["augment"] = augment
        source = _source(data, from_feedback, since, documents, questions)
        if source == "feedback":
            from retain.home.feedback import learn_from_feedback
            outcome = learn_from_feedback(model, since, **given)
        elif source == "documents":
            from retain.home.documents import learn_from_documents
            # passes and batch size the user did not give: the documents budget of the home's model
            for option in ("epochs", "batch_size"):
                if not usage.given(ctx, option):
                    given[option] = None
            outcome = learn_from_documents(model, documents, questions, **given)
        else:
            outcome = learn_in_home(model, data, **given)
        # A candidate the gate rejects is recorded, but the command did not do what was asked: exit 1.
        if not outcome.promoted:
            raise typer.Exit(1)
        return
    check_mode(ctx, FOLDER)
    if data is None:
        raise RetainError("missing argument (the skill file to learn)", field="DATA")
    if out is None:
        raise RetainError("is required when MODEL is not a home", field="--out")
    from retain import api
    from retain.console import console
    result = api.learn(model, data, method or "sdft", str(out), lora=lora, seed=seed, options=options, epochs=epochs,
                       lr=lr, batch_size=batch_size, scorer=scorer or "exact", overwrite=overwrite, quiet=quiet,
                       protect=prior, dtype=dtype, device=device, mixed_precision=mixed_precision,
                       grad_accum=grad_accum, gradient_checkpointing=gradient_checkpointing,
                       model_options=_model_options(max_prompt_tokens, max_new_tokens, trust_remote_code,
                                                    attn_implementation))
    if result.out is not None:  # only the main process of a multi-process launch writes and says so
        console(stderr=True, quiet=quiet).print(f"Saved to [bold]{result.out}[/]")


@app.command("eval")
def eval_(
    model: Annotated[str, typer.Argument(help="`embedded` or a local causal LM (or adapter) folder.")],
    data: Annotated[Path, typer.Argument(help="JSONL with prompt and answer (or demonstration).")],
    scorer: Annotated[str, typer.Option("--scorer", callback=usage.scorer,
                                        help="exact, alnum, or module:function.")] = "exact",
    with_demonstration: Annotated[bool, typer.Option(
        "--with-demonstration", help="Show each query's demonstration in the prompt (the teacher's view).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    device: Device = "auto",
    max_prompt_tokens: MaxPromptTokens = None,
    max_new_tokens: MaxNewTokens = None,
    trust_remote_code: TrustRemoteCode = False,
    attn_implementation: AttnImplementation = None,
) -> None:
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
