"""The text a student and a teacher see. The teacher's wording is the SDFT paper's (REFERENCE section 1)."""

from __future__ import annotations

from retain.data.skills import Example
from retain.errors import RetainError

# Shenfeld et al. 2026, the teacher prompt of the official code: the question, the demonstration introduced
# as an example response, then a request for a response of the model's own.
PAPER_TEACHER_TEMPLATE = (
    "{prompt}\nThis is an example for a response to the question: {demonstration}\n"
    "Now answer with a response of your own, including the thinking process."
)
# TRL's SDFTTrainer default, for users who want it.
TRL_TEACHER_TEMPLATE = "{prompt}\n\n{demonstration}"


def validate_template(template: str) -> None:
    for needed in ("{prompt}", "{demonstration}"):
        if needed not in template:
            raise RetainError(f"must contain {needed}", field="teacher_template")
    try:
        template.format(prompt="", demonstration="")
    except (KeyError, IndexError, ValueError) as err:
        raise RetainError(f"is not a valid template ({err})", field="teacher_template") from None


def teacher_message(example: Example, template: str = PAPER_TEACHER_TEMPLATE) -> str:
    """The user message of the teacher: the query with the expert's demonstration for that same query."""
    return template.format(prompt=example.prompt, demonstration=example.demonstration)
