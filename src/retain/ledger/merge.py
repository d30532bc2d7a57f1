"""A LoRA version's full model: its parent's weights with the adapter merged in (PEFT ``merge_and_unload``).

LoRA versions store only the adapter; whenever a full model is needed (the next learn, export, diff) the chain
of adapters is merged onto the nearest full ancestor. On CPU the merge is deterministic, so the same version
always gives the same weights.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

WEIGHT_FILES = (".safetensors", ".safetensors.index.json", ".bin", ".bin.index.json")


def merge_adapter(parent_dir: Path, adapter_dir: Path, out: Path) -> None:
    """Write ``parent + adapter`` as a plain ``save_pretrained`` folder into ``out``."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    # The merge is plumbing under a ledger command: its progress bars and deprecation notes are noise there.
    bars = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = AutoModelForCausalLM.from_pretrained(parent_dir, local_files_only=True, dtype="auto")
            merged = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
            for path in parent_dir.iterdir():
                if path.is_file() and not path.name.endswith(WEIGHT_FILES):
                    shutil.copy2(path, out / path.name)
            merged.save_pretrained(out, safe_serialization=True)
    finally:
        if bars:
            logging.enable_progress_bar()
