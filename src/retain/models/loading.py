"""Loading a Hugging Face causal LM: ``embedded``, a local folder, or a hub id already in the local Hugging Face
cache (never the network), a full model or a PEFT LoRA adapter folder, optionally with a fresh LoRA adapter."""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import torch

from retain.errors import RetainError
from retain.models.causal_lm import EMBEDDED, CausalLMAdapter

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache as ``huggingface_hub`` finds it, read at call time (``HF_HUB_CACHE``, else
    ``HF_HOME/hub``, else ``$XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub``)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def cached_hub_model(repo_id: str) -> Path | None:
    """The snapshot folder of ``repo_id`` (``refs/main``) in the local hub cache, or None; never the network,
    so ``HF_HUB_OFFLINE=1`` changes nothing (retain downloads no model at run time)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json", cache_dir=hub_cache_dir()) \
        or try_to_load_from_cache(repo_id, "adapter_config.json", cache_dir=hub_cache_dir())
    return Path(found).parent if isinstance(found, str) else None


def resolve_model_path(path: str | Path) -> Path:
    """``embedded``, a local directory holding a causal LM, or a hub id (``Qwen/Qwen2.5-0.5B-Instruct``) whose
    snapshot is in the local Hugging Face cache; a clear error for anything else."""
    if str(path) == EMBEDDED:
        from retain.models.tiny.store import embedded_dir
        return embedded_dir()
    p = Path(path)
    if not p.exists() and HUB_ID.match(str(path)):
        snapshot = cached_hub_model(str(path))
        if snapshot is None:
            raise RetainError(f"is neither a local folder nor a model in the local Hugging Face cache "
                              f"({hub_cache_dir()}); retain never downloads: fetch it first with "
                              f"`hf download {path}`", file=str(path))
        p = snapshot
    if not p.exists():
        raise RetainError("model directory does not exist", file=str(p))
    if not p.is_dir():
        raise RetainError("model path is not a directory", file=str(p))
    if not (p / "config.json").exists() and not (p / "adapter_config.json").exists():
        raise RetainError("holds no causal LM (no config.json or adapter_config.json)", file=str(p))
    return p


def _lora_base_path(adapter_dir: Path) -> Path:
    base = json.loads((adapter_dir / "adapter_config.json").read_text()).get("base_model_name_or_path")
    if not base:
        raise RetainError("adapter_config.json names no base model", file=str(adapter_dir / "adapter_config.json"),
                          field="base_model_name_or_path")
    return resolve_model_path(base)


def load_adapter(path: str | Path, *, lora: bool = False, lora_r: int = 8, lora_alpha: int = 16,
                 dtype: torch.dtype | str = torch.float32, trust_remote_code: bool = False,
                 attn_implementation: str | None = None, max_prompt_tokens: int | None = None,
                 max_new_tokens: int | None = None) -> CausalLMAdapter:
    """Load ``embedded``, a local causal LM folder (a full model or a PEFT LoRA adapter folder) or a hub id in
    the local cache, through ``from_pretrained`` with ``local_files_only``.

    With ``lora=True`` a fresh LoRA adapter is added on every linear layer and only it is trainable.
    ``trust_remote_code`` and ``attn_implementation`` are passed to ``from_pretrained`` as given;
    ``max_prompt_tokens`` and ``max_new_tokens`` are the adapter's length limits (see the module's docstring).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    # Loading bars from transformers for a model that loads in milliseconds are noise on our progress bars.
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")
    model_dir = resolve_model_path(path)
    is_adapter_dir = (model_dir / "adapter_config.json").exists() and not (model_dir / "config.json").exists()
    base_dir = _lora_base_path(model_dir) if is_adapter_dir else model_dir
    from retain.safetensors_file import check_complete
    for folder in {model_dir, base_dir}:
        check_complete(folder)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir if (model_dir / "tokenizer_config.json").exists()
                                                  else base_dir, local_files_only=True,
                                                  trust_remote_code=trust_remote_code)
        extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
        model = AutoModelForCausalLM.from_pretrained(base_dir, local_files_only=True, dtype=dtype,
                                                     trust_remote_code=trust_remote_code, **extra)
    except (OSError, ValueError, KeyError, ImportError) as err:  # ImportError: an attention kernel not installed
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RetainError(f"cannot load a causal LM ({first})", file=str(model_dir)) from None
    if is_adapter_dir:
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, model_dir, is_trainable=lora)
    elif lora:
        from peft import LoraConfig, get_peft_model
        config = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=0.0, target_modules="all-linear",
                            task_type="CAUSAL_LM")
        model = get_peft_model(model, config)
        # a hub id stays an id, so the adapter folder loads wherever that model is cached
        hub = not Path(path).exists() and HUB_ID.match(str(path))
        model.peft_config["default"].base_model_name_or_path = str(path) if hub else str(base_dir.resolve())
    model.eval()
    return CausalLMAdapter(model, tokenizer, str(path), max_prompt_tokens=max_prompt_tokens,
                           max_new_tokens=max_new_tokens)


def load_shape(path: str | Path, *, trust_remote_code: bool = False, max_prompt_tokens: int | None = None,
               max_new_tokens: int | None = None) -> CausalLMAdapter:
    """The tokenizer and the architecture of the causal LM in the folder ``path`` (its config and tokenizer
    files; no weights are read: the parameters are meta tensors). Enough to check lengths and completion masks
    (:meth:`CausalLMAdapter.check_lengths`, ``Objective.check_examples``) before anything heavy runs or a lock
    is taken; nothing can be computed with it."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
        config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError, ImportError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RetainError(f"cannot load a causal LM's tokenizer and config ({first})", file=str(path)) from None
    return CausalLMAdapter(model, tokenizer, str(path), max_prompt_tokens=max_prompt_tokens,
                           max_new_tokens=max_new_tokens)
