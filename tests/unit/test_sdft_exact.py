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


@pytest.mark.parametrize("alpha,top_k", [(0.0, None), (1.0, None), (0.5, None), (0.0, 5)])
@pytest.mark.parametrize("skip", [0, 1, 3])
def test_live_teacher_loss_and_gradient_match_brute_force(adapter, monkeypatch, alpha, top_k, skip):
    cfg = SDFT.Config(teacher="live", alpha=alpha, top_k=top_k, skip_tokens=skip, teacher_template=TEMPLATE)
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
    assert want.item() > 0.05
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
