"""A causal LM's text side: prompts through the chat template, the length limits, completions and decoding.

Lengths: a prompt (the student's, or the teacher's with its demonstration) longer than ``max_prompt_tokens`` is
rejected, never truncated, with one line naming the file and line it came from: cutting a prompt would train
on a task the user did not write, and cutting it from the left removes the chat template's start. The default
limit is the model's positions (``max_position_embeddings``) less the tokens kept for generation
(``max_new_tokens``, else :data:`RESERVED_NEW_TOKENS`, SDFT's rollout length); generation never runs past the
positions.
"""

from __future__ import annotations

from typing import Any

from retain.data.prompts import OFFICIAL_TEACHER_TEMPLATE, PAPER_TEACHER_TEMPLATE, teacher_message
from retain.data.skills import Example
from retain.errors import RetainError

RESERVED_NEW_TOKENS = 64  # positions kept for generation when max_new_tokens is not set (SDFT's default)


def default_teacher_template(tokenizer: Any) -> str:
    """The embedded model's own template for it and every model derived from it (recognised by its chat
    template, which they keep), the official code's for every other model (see :mod:`retain.data.prompts`)."""
    from retain.models.tiny.tokenizer import CHAT_TEMPLATE
    return PAPER_TEACHER_TEMPLATE if getattr(tokenizer, "chat_template", None) == CHAT_TEMPLATE \
        else OFFICIAL_TEACHER_TEMPLATE


class LMText:
    """Token ids of prompts and completions for one tokenizer, within the model's positions.

    Prompts go through the tokenizer's chat template when it has one (an example's ``context`` messages, then
    one user message, generation prompt added), else the raw text followed by a newline. A completion ends
    with the tokenizer's EOS token; generation stops at any of :attr:`eos_ids` (the tokenizer's and every one
    the generation config lists, as chat models have several). The teacher prompt uses
    :attr:`teacher_template` unless a template is given. Prompts longer than :attr:`max_prompt_tokens` are
    rejected (see the module's docstring).
    """

    def __init__(self, tokenizer: Any, source: str, *, positions: int | None, listed_eos: Any = None,
                 max_prompt_tokens: int | None = None, max_new_tokens: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.source = source
        self.eos_id = tokenizer.eos_token_id
        listed = listed_eos if isinstance(listed_eos, (list, tuple)) else [listed_eos]
        self.eos_ids = list(dict.fromkeys(t for t in [self.eos_id, *listed] if t is not None))
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        self.positions = positions
        self.max_new_tokens = max_new_tokens
        self.max_prompt_tokens = self._prompt_limit(max_prompt_tokens)
        self.teacher_template = default_teacher_template(tokenizer)

    # -- lengths -------------------------------------------------------------------------------------
    def _prompt_limit(self, asked: int | None) -> int | None:
        """``asked``, checked against the positions, or the positions less the tokens kept for generation."""
        new = self.max_new_tokens or RESERVED_NEW_TOKENS
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise RetainError(f"must be >= 1, got {self.max_new_tokens}", field="--max-new-tokens")
        if asked is not None and asked < 1:
            raise RetainError(f"must be >= 1, got {asked}", field="--max-prompt-tokens")
        if self.positions is None:
            return asked
        if asked is not None and asked + new > self.positions:
            raise RetainError(f"{asked} prompt tokens + {new} new tokens exceed the model's {self.positions} "
                              "positions (max_position_embeddings)", field="--max-prompt-tokens")
        if new >= self.positions:
            raise RetainError(f"{new} new tokens leave no room for a prompt in the model's {self.positions} "
                              "positions (max_position_embeddings)", field="--max-new-tokens")
        return asked if asked is not None else self.positions - new

    def _fit(self, ids: list[int], example: Example, whose: str, field: str) -> list[int]:
        if self.max_prompt_tokens is not None and len(ids) > self.max_prompt_tokens:
            file, _, line = (example.source or "").rpartition(":")
            raise RetainError(f"the {whose} prompt is {len(ids)} tokens, over the limit of {self.max_prompt_tokens}"
                              f" (--max-prompt-tokens; the model has {self.positions} positions): shorten it or "
                              "drop the line", file=file or None, line=int(line) if line.isdigit() else None,
                              field=field)
        return ids

    def check_lengths(self, examples: list[Example], *, teacher: bool = False,
                      template: str | None = None) -> None:
        """Raise, before anything runs, for the first example whose student prompt (or teacher prompt, when
        ``teacher``) is over :attr:`max_prompt_tokens`, or whose prompt and demonstration together exceed
        the positions (an SFT target)."""
        for e in examples:
            self.student_ids(e)
            if teacher:
                self.teacher_ids(e, template)
            if e.demonstration:
                self.fit_sequence(self.student_ids(e), self.completion_ids(e.demonstration), e)

    def fit_sequence(self, prompt: list[int], completion: list[int], example: Example) -> None:
        """Raise when a prompt and its completion together exceed the model's positions."""
        if self.positions is not None and len(prompt) + len(completion) > self.positions:
            file, _, line = (example.source or "").rpartition(":")
            raise RetainError(f"prompt and demonstration are {len(prompt) + len(completion)} tokens, over the "
                              f"model's {self.positions} positions: shorten them or drop the line",
                              file=file or None, line=int(line) if line.isdigit() else None, field="demonstration")

    # -- text -> ids ---------------------------------------------------------------------------------
    def prompt_ids(self, message: str, context: tuple[tuple[str, str], ...] = ()) -> list[int]:
        """The prompt of one user ``message`` after the ``context`` messages (a system message, earlier turns)."""
        if getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": r, "content": c} for r, c in context] + [{"role": "user", "content": message}]
            out = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            return list(out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out)
        if context:
            raise RetainError("conversational data (messages before the last user turn) needs a tokenizer with a "
                              f"chat template, and {self.source}'s has none", field="prompt")
        return self.tokenizer(message + "\n", add_special_tokens=True)["input_ids"]

    def student_ids(self, example: Example) -> list[int]:
        return self._fit(self.prompt_ids(example.prompt, example.context), example, "student's", "prompt")

    def teacher_ids(self, example: Example, template: str | None = None) -> list[int]:
        """The teacher's prompt: the same context, and the last user turn with the demonstration in it (TRL's
        ``DemonstrationTeacherContextBuilder`` for conversational prompts)."""
        ids = self.prompt_ids(teacher_message(example, template or self.teacher_template), example.context)
        return self._fit(ids, example, "teacher's (prompt with its demonstration)", "demonstration")

    def completion_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.eos_id]

    def decode(self, completion: list[int]) -> str:
        return self.tokenizer.decode([t for t in completion if t not in self.eos_ids], skip_special_tokens=True)
