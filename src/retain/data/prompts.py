"""The text a student and a teacher see. The teacher's wording is the SDFT paper's (Shenfeld et al.,
"Self-Distillation Enables Continual Learning", 2026; docs/references.md).

Two spellings of that wording exist here, and which one a model gets is the model adapter's choice
(:attr:`retain.models.causal_lm.CausalLMAdapter.teacher_template`):

- :data:`OFFICIAL_TEACHER_TEMPLATE`, the official code's string with its exact whitespace (Shenfeld et al. 2026,
  idanshen/Self-Distillation ``main.py``: a ``string.Template`` written as a triple-quoted block, so it starts
  and ends with a newline and blank lines surround the demonstration): the default for every outside model;
- :data:`PAPER_TEACHER_TEMPLATE`, the same words with compact whitespace: the template the embedded model was
  pretrained with (``retain.models.tiny.build``), which it and every model derived from it keep.

TRL's ``SDFTConfig.teacher_prompt_template`` default, ``"{prompt}\\n\\n{privileged_context}"``, is available by
passing ``{prompt}\\n\\n{demonstration}`` as ``sdft.teacher_template``.
"""

from __future__ import annotations

from retain.data.skills import Example
from retain.errors import RetainError

OFFICIAL_TEACHER_TEMPLATE = (
    "\n{prompt}\n\nThis is an example for a response to the question:\n{demonstration}\n\n"
    "Now answer with a response of your own, including the thinking process.\n"
)
PAPER_TEACHER_TEMPLATE = (
    "{prompt}\nThis is an example for a response to the question: {demonstration}\n"
    "Now answer with a response of your own, including the thinking process."
)


def validate_template(template: str, field: str = "teacher_template") -> None:
    for needed in ("{prompt}", "{demonstration}"):
        if needed not in template:
            raise RetainError(f"must contain {needed}", field=field)
    try:
        template.format(prompt="", demonstration="")
    except (KeyError, IndexError, ValueError) as err:
        raise RetainError(f"is not a valid template ({err})", field=field) from None


def teacher_message(example: Example, template: str) -> str:
    """The user message of the teacher: the query with the expert's demonstration for that same query."""
    return template.format(prompt=example.prompt, demonstration=example.demonstration)
