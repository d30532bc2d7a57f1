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
    original = adapter.logits_through  # every forward, the student's and the teacher's, runs through it

    def recording(module, prompts, completions, *args, **kwargs):
        seen.append([list(p) for p in prompts])
        return original(module, prompts, completions, *args, **kwargs)

    adapter.logits_through = recording
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


def test_target_ce_trains_the_drawn_examples_with_cross_entropy_beside_the_batch(tiny_adapter):
    import torch.nn.functional as F

    adapter = tiny_adapter(seed=3, init_range=0.5)
    r = Rehearsal(Rehearsal.Config(size=8, ratio=0.5, target="ce"))
    r.answered = [Rehearsed(prompt=f"reverse {w}", demonstration=w[::-1]) for w in ("abc", "dog", "xyz", "moon")]
    batch = _prompts("new", 4)
    assert r.mix(batch, random.Random(1)) == batch  # the batch the objective trains is the new task's alone
    drawn = r.draw(batch, random.Random(1))
    assert len(drawn) == 2 and all(e in r.answered for e in drawn)
    logits, targets = adapter.predictions(drawn)
    expected = 0.5 * F.cross_entropy(logits.float(), targets)
    assert torch.allclose(r.drawn_loss(adapter, drawn), expected, atol=0, rtol=1e-6)
    # draw sets how many are drawn, ratio still weighs the term
    r.config.draw = 0.75
    drawn = r.draw(batch, random.Random(1))
    assert len(drawn) == 3
    logits, targets = adapter.predictions(drawn)
    assert torch.allclose(r.drawn_loss(adapter, drawn), 0.5 * F.cross_entropy(logits.float(), targets), rtol=1e-6)
    r.config.draw = None
    r.config.target = "objective"
    assert len(r.mix(batch, random.Random(1))) == 6 and r.draw(batch, random.Random(1)) == []


def test_the_loop_trains_the_drawn_examples_once_per_step(tiny_adapter):
    """train_task adds drawn_loss for what draw returned, at every step, once (not once per micro-batch)."""
    from retain.methods.sft import SFT
    from retain.train.loop import TrainConfig, train_task

    calls = []

    class Counting(Rehearsal):
        def drawn_loss(self, adapter, drawn):
            calls.append(len(drawn))
            return super().drawn_loss(adapter, drawn)

    adapter = tiny_adapter(seed=3)
    r = Counting(Rehearsal.Config(size=8, ratio=2.0, draw=0.5, target="ce"))
    r.answered = [Rehearsed(prompt=f"reverse {w}", demonstration=w[::-1]) for w in ("abc", "dog", "xyz", "moon")]
    r.before_task = lambda adapter: None  # keep the hand-made rehearsed examples
    examples = [Example(prompt=f"new {i}", demonstration="ab") for i in range(8)]
    train_task(adapter, SFT(), [r], examples, TrainConfig(epochs=1, batch_size=4, grad_accum=2, lr=1e-3))
    assert calls == [2, 2]


def test_refresh_false_keeps_the_answers_given_when_each_prompt_was_stored(tiny_adapter):
    adapter = tiny_adapter(seed=4, init_range=0.5)
    kept = Rehearsal(Rehearsal.Config(size=16, max_new_tokens=4, refresh=False))
    fresh = Rehearsal(Rehearsal.Config(size=16, max_new_tokens=4))
    prior = [Example(prompt="reverse abc", demonstration="cba"), Example(prompt="sort dog", demonstration="")]
    for r in (kept, fresh):
        r.protect(adapter, prior)
    own = adapter.answer([Example(prompt="sort dog", demonstration="")], max_new_tokens=4)[0]
    assert kept.answers == {("reverse abc", False): "cba", ("sort dog", False): own}
    task = _prompts("new", 3)
    for r in (kept, fresh):
        r.after_task(adapter, task)  # the model that learned the task answers its prompts now
    after_task = adapter.answer([Example(prompt=e.prompt, demonstration="") for e in task], max_new_tokens=4)
    assert [kept.answers[(e.prompt, False)] for e in task] == after_task
    with torch.no_grad():  # the model moves on (as the next task's training would)
        for p in adapter.model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    for r in (kept, fresh):
        r.before_task(adapter)
    answers = {e.prompt: e.demonstration for e in kept.answered}
    assert answers["reverse abc"] == "cba" and answers["sort dog"] == own
    assert [answers[e.prompt] for e, a in zip(task, after_task) if a.strip()] == [a for a in after_task if a.strip()]
    now = adapter.answer([Example(prompt=p, demonstration="") for p, _ in fresh.items], max_new_tokens=4)
    assert [e.demonstration for e in fresh.answered] == [a for a in now if a.strip()]
    assert now != [kept.answers[item] for item in fresh.items]  # the moved model answers differently
    # the answers are state: they come back with it, and a smaller buffer forgets those of dropped prompts
    again = Rehearsal(Rehearsal.Config(size=16, refresh=False))
    again.load_state({}, kept.extra_state())
    assert again.answers == kept.answers
    small = Rehearsal(Rehearsal.Config(size=2, refresh=False))
    small.load_state({}, kept.extra_state())
    assert set(small.answers) == set(small.items) and len(small.items) == 2
