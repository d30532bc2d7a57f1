"""Self-generated rehearsal: fair groups per source, answers from the pre-task model, batch mixing, SDFT's
teacher on prompts that already show a demonstration, and state that round-trips."""

from __future__ import annotations

import random

import torch

from retain.data.skills import Example
from retain.methods.rehearsal import Rehearsal, Rehearsed


def _prompts(prefix: str, n: int) -> list[Example]:
    return [Example(prompt=f"{prefix} {i}", demonstration="") for i in range(n)]


def test_groups_share_the_buffer_fairly_and_keep_their_own_prompts():
    r = Rehearsal(Rehearsal.Config(size=10, seed=3))
    r.offer(_prompts("prior", 4))
    r.offer(_prompts("first", 20))
    assert [len(g) for g in r.groups] == [4, 6]
    r.offer(_prompts("second", 20) + _prompts("prior", 4))  # prompts already held are not stored twice
    assert [len(g) for g in r.groups] == [3, 3, 4]
    assert {p.split()[0] for p, _ in r.groups[0]} == {"prior"} and {p.split()[0] for p, _ in r.groups[2]} == {"second"}
    assert len(set(r.items)) == len(r.items) == 10


def test_before_task_answers_with_the_current_model_and_mix_adds_ratio_per_new_example(tiny_adapter):
    adapter = tiny_adapter(seed=1, init_range=0.5)
    r = Rehearsal(Rehearsal.Config(size=8, ratio=0.5, max_new_tokens=4))
    r.offer(_prompts("reverse", 6) + [Rehearsed(prompt="q\nshown demo", demonstration="", shown=True)])
    r.before_task(adapter)
    expected = adapter.answer([Example(prompt=p, demonstration="") for p, _ in r.items], max_new_tokens=4)
    assert [(e.prompt, e.demonstration) for e in r.answered] == [(p, a) for (p, _), a in zip(r.items, expected)
                                                                if a.strip()]
    assert all(e.shown == (e.prompt == "q\nshown demo") for e in r.answered)
    batch = _prompts("new", 6)
    mixed = r.mix(batch, random.Random(0))
    assert mixed[:6] == batch and len(mixed) == 6 + 3 and all(isinstance(e, Rehearsed) for e in mixed[6:])


def test_sdft_teacher_sees_a_shown_prompt_as_it_is(tiny_adapter):
    from retain.methods.sdft import SDFT

    adapter = tiny_adapter(seed=2, init_range=0.5)
    seen: list[list[int]] = []
    original = adapter.completion_logits

    def recording(prompts, completions, *args, **kwargs):
        seen.append([list(p) for p in prompts])
        return original(prompts, completions, *args, **kwargs)

    adapter.completion_logits = recording
    sdft = SDFT(SDFT.Config(teacher="live", skip_tokens=0, max_new_tokens=3))
    shown = Rehearsed(prompt="abc\nThis is an example for a response to the question: cba", demonstration="cba",
                      shown=True)
    plain = Rehearsed(prompt="abc", demonstration="cba")
    torch.manual_seed(0)
    sdft.before_task(adapter)
    sdft.loss(adapter, [shown, plain])
    student, teacher = seen[0], seen[1]
    assert teacher[0] == student[0] == adapter.student_ids(shown)
    assert teacher[1] == adapter.teacher_ids(plain) != student[1]


def test_state_round_trips_and_a_smaller_buffer_keeps_fair_shares():
    r = Rehearsal(Rehearsal.Config(size=12, seed=5))
    for prefix in ("a", "b", "c"):
        r.offer(_prompts(prefix, 10))
    again = Rehearsal(Rehearsal.Config(size=12, seed=5))
    again.load_state(r.state_dict(), r.extra_state())
    assert again.groups == r.groups
    again.offer(_prompts("d", 10))
    r.offer(_prompts("d", 10))
    assert again.groups == r.groups  # the generator's state came back too
    small = Rehearsal(Rehearsal.Config(size=6))
    small.load_state({}, r.extra_state())
    assert [len(g) for g in small.groups] == [1, 1, 2, 2]
    assert set(small.items) <= set(r.items)
