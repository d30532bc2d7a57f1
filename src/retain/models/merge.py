"""A LoRA version's full model: its parent's weights with the adapter merged in (PEFT ``merge_and_unload``).

A home stores a LoRA version as its adapter only; whenever a full model is needed (the next learn, export,
diff, the MLflow mirror) :meth:`retain.ledger.core.Home.materialize` writes the chain of adapters and has
:func:`merge_adapter` (which its caller hands it: the ledger stores and never loads a model) merge each onto the
nearest full ancestor. On CPU the merge is deterministic, so the same version always gives the same weights.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

WEIGHT_FILES = (".safetensors", ".safetensors.index.json", ".bin", ".bin.index.json")


@contextmanager
def quiet_hf() -> Iterator[None]:
    """Loading and saving a home's versions is plumbing: hide its progress bars and deprecation notes."""
    from transformers.utils import logging

    bars = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        if bars:
            logging.enable_progress_bar()


def merge_adapter(parent_dir: Path, adapter_dir: Path, out: Path) -> None:
    """Write ``parent + adapter`` as a plain ``save_pretrained`` folder into ``out``."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    with quiet_hf():
        model = AutoModelForCausalLM.from_pretrained(parent_dir, local_files_only=True, dtype="auto")
        merged = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
        for path in parent_dir.iterdir():
            if path.is_file() and not path.name.endswith(WEIGHT_FILES):
                shutil.copy2(path, out / path.name)
        merged.save_pretrained(out, safe_serialization=True)
