"""SDFT computed by brute force and compared position by position: completion logits against each sequence run
alone, the loss with different teacher and student prompts against separate forwards and an explicit KL per
position, its gradient, the skip mask, the roles, the teacher's weights (no gradient, EMA) (REFERENCE section 1).

Only the sampling of rollouts is replaced (by fixed completions): it is not what these tests check.
"""

from __future__ import annotations

import copy

import pytest
import torch

from retain.data.prompts import teacher_message
from retain.data.skills import Example
from retain.methods.sdft import SDFT

# peaked, position-dependent distributions: divergences of order 0.1 to 1, far above float32 noise
INIT_RANGE = 0.3
TEMPLATE = "{prompt} | example: {demonstration} | now you"
EXAMPLES = [Example(prompt="ab", demonstration="xyz"), Example(prompt="a longer question?", demonstration="k"),
            Example(prompt="mid q", demonstration="a fairly long demonstration")]
COMPLETIONS = ["hello w", "k9", "abcdefghij"]


@pytest.fixture
def adapter(tiny_adapter):
    torch.set_num_threads(1)
    return tiny_adapter(init_range=INIT_RANGE)


def alone(model, prompt: list[int], completion: list[int]) -> torch.Tensor:
    """Logits predicting each completion token from one unpadded forward of ``prompt + completion``."""
    logits = model(input_ids=torch.tensor([prompt + completion])).logits[0]
    return logits[len(prompt) - 1:len(prompt) - 1 + len(completion)]


def divergence(s: torch.Tensor, t: torch.Tensor, alpha: float, top_k: int | None) -> torch.Tensor:
    """One position's divergence between student logits ``s`` and teacher logits ``t`` ([V] each), written out."""
    if top_k is not None:
        keep = torch.tensor(sorted(range(s.numel()), key=lambda i: -s[i].item())[:top_k])
        s, t = s[keep], t[keep]
    p_s = s.double().exp() / s.double().exp().sum()
    p_t = t.double().exp() / t.double().exp().sum()

    def kl(p, q):
        return (p * (p.log() - q.log())).sum()
    if alpha == 0.0:
        return kl(p_t, p_s)
    if alpha == 1.0:
        return kl(p_s, p_t)
    m = alpha * p_t + (1 - alpha) * p_s
    return alpha * kl(p_t, m) + (1 - alpha) * kl(p_s, m)


def brute_loss(adapter, student_model, teacher_model, cfg: SDFT.Config, completions: list[list[int]],
               swap_roles: bool = False) -> torch.Tensor:
    """Separate forwards per sequence; logits / temperature; the divergence at every completion position from
    ``skip_tokens`` on; the mean over each sequence's kept positions, then over the sequences that have any."""
    per_sequence = []
    for example, completion in zip(EXAMPLES, completions):
        student_prompt = adapter.prompt_ids(example.prompt)
        teacher_prompt = adapter.prompt_ids(teacher_message(example, cfg.teacher_template))
        if swap_roles:
            student_prompt, teacher_prompt = teacher_prompt, student_prompt
        s = alone(student_model, student_prompt, completion) / cfg.temperature
        with torch.no_grad():
            t = alone(teacher_model, teacher_prompt, completion) / cfg.temperature
        terms = [divergence(s[i], t[i], cfg.alpha, cfg.top_k) for i in range(cfg.skip_tokens, len(completion))]
        if terms:
            per_sequence.append(sum(terms) / len(terms))
    return sum(per_sequence) / len(per_sequence)


def fixed_rollouts(sdft: SDFT, adapter, monkeypatch) -> list[list[int]]:
    """Replace only the sampling: the student's 'samples' are fixed completions of different lengths."""
    completions = [adapter.completion_ids(text) for text in COMPLETIONS]
    monkeypatch.setattr(sdft, "rollouts", lambda *args, **kwargs: (list(EXAMPLES), [list(c) for c in completions]))
    return completions


def grads(model) -> dict[str, torch.Tensor]:
    out = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out


# -- completion logits ----------------------------------------------------------------------------------------


def test_completion_logits_match_each_sequence_run_alone_position_by_position(adapter):
    prompts = [adapter.prompt_ids(text) for text in ("a", "a much longer prompt than the others", "mid")]
    completions = [adapter.completion_ids(text) for text in ("xyz12", "", "qq")]
    assert len({len(p) for p in prompts}) == 3 and [len(c) for c in completions] == [6, 1, 3]
    logits, mask = adapter.completion_logits(prompts, completions)
    assert logits.shape == (3, 6, len(adapter.tokenizer)) and mask.shape == (3, 6)
    assert mask.tolist() == [[t < len(c) for t in range(6)] for c in completions]
    with torch.no_grad():
        for b, (p, c) in enumerate(zip(prompts, completions)):
            want = alone(adapter.model, p, c)
            for t in range(len(c)):
                torch.testing.assert_close(logits[b, t], want[t], rtol=1e-5, atol=1e-5)
            # the check can tell neighbouring positions apart
            assert (want[1:] - want[:-1]).abs().max() > 1e-2 if len(c) > 1 else True


# -- the loss ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha,top_k,temperature", [(0.0, None, 1.0), (1.0, None, 0.5), (0.5, None, 2.0),
                                                     (0.0, 5, 0.7)])
@pytest.mark.parametrize("skip", [0, 1, 3])
def test_live_teacher_loss_and_gradient_match_brute_force(adapter, monkeypatch, alpha, top_k, temperature, skip):
    cfg = SDFT.Config(teacher="live", alpha=alpha, top_k=top_k, skip_tokens=skip, temperature=temperature,
                      teacher_template=TEMPLATE)
    sdft = SDFT(cfg)
    completions = fixed_rollouts(sdft, adapter, monkeypatch)
    sdft.before_task(adapter)
    got = sdft.loss(adapter, EXAMPLES)
    got.backward()
    got_grads = grads(adapter.model)
    want = brute_loss(adapter, adapter.model, adapter.model, cfg, completions)
    want.backward()
    want_grads = grads(adapter.model)
    sdft.after_task(adapter)
    assert want.item() > 0.01
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    # the live teacher is the student under no_grad: only the student's forward carries a gradient
    assert got_grads.keys() == want_grads.keys() and got_grads
    for name, g in want_grads.items():
        torch.testing.assert_close(got_grads[name], g.to(got_grads[name].dtype), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("skip", [0, 1, 3])
def test_skip_tokens_leave_out_exactly_the_first_positions(adapter, monkeypatch, skip):
    cfg = SDFT.Config(teacher="live", skip_tokens=skip, teacher_template=TEMPLATE)
    sdft = SDFT(cfg)
    completions = fixed_rollouts(sdft, adapter, monkeypatch)
    with torch.no_grad():
        got = sdft.loss(adapter, EXAMPLES).item()
        near = {s: brute_loss(adapter, adapter.model, adapter.model,
                              SDFT.Config(teacher="live", skip_tokens=s, teacher_template=TEMPLATE), completions).item()
                for s in (skip - 1, skip, skip + 1) if s >= 0}
    assert got == pytest.approx(near[skip], rel=1e-5)
    # an off-by-one skip gives a loss this test would see
    assert all(abs(v - near[skip]) > 1e-3 * near[skip] for s, v in near.items() if s != skip)


def test_swapping_teacher_and_student_changes_the_loss_and_is_caught(adapter, monkeypatch):
    cfg = SDFT.Config(teacher="live", skip_tokens=0, teacher_template=TEMPLATE)
    sdft = SDFT(cfg)
    completions = fixed_rollouts(sdft, adapter, monkeypatch)
    with torch.no_grad():
        got = sdft.loss(adapter, EXAMPLES).item()
        right = brute_loss(adapter, adapter.model, adapter.model, cfg, completions).item()
        swapped = brute_loss(adapter, adapter.model, adapter.model, cfg, completions, swap_roles=True).item()
    assert got == pytest.approx(right, rel=1e-5)
    assert abs(swapped - right) > 1e-2 * right


# -- the teacher's own weights: frozen and EMA ---------------------------------------------------------------


def perturb(adapter, seed: int, scale: float = 0.1) -> None:
    """Move every trainable weight of the student, so that student and teacher differ everywhere."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in adapter.trainable_parameters().values():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def snapshot(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in tensors.items()}


@pytest.fixture(params=[False, True], ids=["full", "lora"])
def any_adapter(request, tiny_adapter):
    torch.set_num_threads(1)
    adapter = tiny_adapter(lora=request.param, init_range=INIT_RANGE)
    if request.param:  # LoRA's B starts at zero: give the adapter weights that change the model
        perturb(adapter, seed=7, scale=0.5)
    return adapter


@pytest.mark.parametrize("kind", ["ema", "frozen"])
def test_snapshot_teacher_loss_and_gradient_match_brute_force(any_adapter, monkeypatch, kind):
    adapter = any_adapter
    cfg = SDFT.Config(teacher=kind, skip_tokens=1, temperature=0.8, teacher_template=TEMPLATE)
    sdft = SDFT(cfg)
    completions = fixed_rollouts(sdft, adapter, monkeypatch)
    teacher_model = copy.deepcopy(adapter.model).eval()  # the model as the task starts
    sdft.before_task(adapter)
    perturb(adapter, seed=1)  # the student moves on; a snapshot teacher must not
    got = sdft.loss(adapter, EXAMPLES)
    got.backward()
    got_grads = grads(adapter.model)
    assert all(t.grad is None for t in adapter.teacher_parameters().values())
    want = brute_loss(adapter, adapter.model, teacher_model, cfg, completions)
    want.backward()
    want_grads = grads(adapter.model)
    live = brute_loss(adapter, adapter.model, adapter.model, cfg, completions).item()
    sdft.after_task(adapter)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    assert abs(live - want.item()) > 1e-2 * want.item()  # the teacher's weights matter to this check
    assert got_grads.keys() == want_grads.keys() == set(adapter.trainable_parameters())
    for name, g in want_grads.items():
        torch.testing.assert_close(got_grads[name], g.to(got_grads[name].dtype), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["live", "ema", "frozen"])
def test_teacher_logits_carry_no_gradient(any_adapter, kind):
    adapter = any_adapter
    adapter.start_teacher(kind)
    adapter.model.train()
    prompts = [adapter.prompt_ids("ab"), adapter.prompt_ids("a longer one")]
    completions = [adapter.completion_ids("xy"), adapter.completion_ids("z")]
    with adapter.teacher_view(kind) as view:
        assert view.kind == kind
        teacher, _ = view.completion_logits(prompts, completions)
        assert not adapter.model.training
    student, _ = adapter.completion_logits(prompts, completions)
    assert adapter.model.training  # the view restores training mode
    assert not teacher.requires_grad and teacher.grad_fn is None
    assert student.requires_grad
    (student * teacher).sum().backward()
    assert all(t.grad is None for t in adapter.teacher_parameters().values())
    assert (kind == "live") == (adapter.teacher_parameters() == {})
    adapter.release_teacher()


def test_ema_teacher_moves_by_exactly_the_rate(any_adapter, monkeypatch):
    """teacher <- (1 - rate) * teacher + rate * student, through SDFT's after_step and the adapter directly,
    and the teacher view then scores with exactly those weights. A rate of 0.5 could not tell rate from
    1 - rate; 0.25 and 0.1 can."""
    adapter = any_adapter
    sdft = SDFT(SDFT.Config(teacher="ema", ema_rate=0.25, teacher_template=TEMPLATE))
    sdft.before_task(adapter)
    teacher = snapshot(adapter.teacher_parameters())
    assert teacher.keys() == set(adapter.trainable_parameters())
    for rate, step in ((0.25, lambda: sdft.after_step(adapter)), (0.1, lambda: adapter.update_teacher(0.1))):
        perturb(adapter, seed=int(rate * 100))
        student = snapshot(adapter.trainable_parameters())
        assert min((student[n] - teacher[n]).abs().max().item() for n in teacher) > 1e-3
        step()
        teacher = {n: (1 - rate) * teacher[n] + rate * student[n] for n in teacher}
        for name, t in adapter.teacher_parameters().items():
            torch.testing.assert_close(t, teacher[name], rtol=1e-6, atol=1e-7)
        # the student did not move
        assert all(torch.equal(p, student[n]) for n, p in adapter.trainable_parameters().items())
    # the teacher view scores with the teacher's weights: a copy of the model holding them gives the same logits
    reference = copy.deepcopy(adapter.model).eval()
    with torch.no_grad():
        for name, p in reference.named_parameters():
            if name in teacher:
                p.copy_(teacher[name])
    prompt, completion = adapter.prompt_ids("ab"), adapter.completion_ids("xyz")
    with adapter.teacher_view("ema") as teacher:
        got, _ = teacher.completion_logits([prompt], [completion])
    with torch.no_grad():
        torch.testing.assert_close(got[0], alone(reference, prompt, completion), rtol=1e-5, atol=1e-5)
    sdft.after_task(adapter)
    assert adapter.teacher_parameters() == {}


def test_frozen_teacher_does_not_move(any_adapter):
    adapter = any_adapter
    sdft = SDFT(SDFT.Config(teacher="frozen", teacher_template=TEMPLATE))
    sdft.before_task(adapter)
    teacher = snapshot(adapter.teacher_parameters())
    perturb(adapter, seed=3)
    sdft.after_step(adapter)
    adapter.update_teacher(0.5)
    assert all(torch.equal(t, teacher[n]) for n, t in adapter.teacher_parameters().items())
    sdft.after_task(adapter)
