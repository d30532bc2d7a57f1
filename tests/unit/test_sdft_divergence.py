"""SDFT's divergences and reduction against brute-force computations on small logits."""

import math

import pytest
import torch

from retain.evaluate.divergence import sequence_mean, skip_mask, token_divergence


def _probs(logits):
    e = [math.exp(x) for x in logits]
    z = sum(e)
    return [x / z for x in e]


def _kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q) if pi > 0)


def _brute(student, teacher, alpha, top_k=None, tail=False):
    if top_k is not None and tail:
        # the full distributions on the student's top k, plus one bucket with the mass outside them
        keep = sorted(range(len(student)), key=lambda i: -student[i])[:top_k]
        s = [_probs(student)[i] for i in keep]
        t = [_probs(teacher)[i] for i in keep]
        s, t = s + [1 - sum(s)], t + [1 - sum(t)]
    else:
        if top_k is not None:
            keep = sorted(range(len(student)), key=lambda i: -student[i])[:top_k]
            student = [student[i] for i in keep]
            teacher = [teacher[i] for i in keep]
        s, t = _probs(student), _probs(teacher)
    if alpha == 0.0:
        return _kl(t, s)
    if alpha == 1.0:
        return _kl(s, t)
    m = [alpha * ti + (1 - alpha) * si for si, ti in zip(s, t)]
    return alpha * _kl(t, m) + (1 - alpha) * _kl(s, m)


@pytest.fixture
def logits():
    g = torch.Generator().manual_seed(0)
    return (torch.randn(2, 3, 7, generator=g, dtype=torch.float64),
            torch.randn(2, 3, 7, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("top_k,tail", [(None, False), (3, False), (3, True)])
def test_divergence_matches_brute_force(logits, alpha, top_k, tail):
    student, teacher = logits
    got = token_divergence(student, teacher, alpha=alpha, top_k=top_k, tail=tail)
    assert got.shape == (2, 3)
    for b in range(2):
        for t in range(3):
            want = _brute(student[b, t].tolist(), teacher[b, t].tolist(), alpha, top_k, tail)
            assert got[b, t].item() == pytest.approx(want, rel=1e-5, abs=1e-7)


def test_forward_and_reverse_differ_and_vanish_at_equality(logits):
    student, teacher = logits
    assert not torch.allclose(token_divergence(student, teacher, 0.0), token_divergence(student, teacher, 1.0))
    for alpha in (0.0, 0.5, 1.0):
        assert token_divergence(student, student.clone(), alpha).abs().max().item() < 1e-6


def test_forward_kl_gradient_is_student_minus_teacher_probs(logits):
    student, teacher = logits
    student = student.clone().requires_grad_(True)
    token_divergence(student, teacher, 0.0).sum().backward()
    want = torch.softmax(student.detach(), -1) - torch.softmax(teacher, -1)
    assert torch.allclose(student.grad, want, atol=1e-6)


def test_top_k_selects_the_students_top_tokens():
    student = torch.tensor([[0.0, 5.0, 4.0, -1.0]])
    teacher = torch.tensor([[9.0, 0.0, 1.0, 0.0]])
    # On the student's top-2 tokens (1 and 2) the teacher's huge mass on token 0 is invisible.
    want = _brute([5.0, 4.0], [0.0, 1.0], 0.0)
    assert token_divergence(student, teacher, 0.0, top_k=2).item() == pytest.approx(want, rel=1e-6)


def test_skip_mask_drops_first_tokens_of_each_row():
    mask = torch.tensor([[True, True, True, True, False], [True, True, False, False, False]])
    got = skip_mask(mask, 3)
    assert got.tolist() == [[False, False, False, True, False], [False, False, False, False, False]]
    assert skip_mask(mask, 0).tolist() == mask.tolist()


def test_sequence_mean_averages_per_sequence_then_over_sequences():
    values = torch.tensor([[1.0, 3.0, 100.0], [10.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
    mask = torch.tensor([[True, True, False], [True, False, False], [False, False, False]])
    # Row 0: (1+3)/2 = 2, row 1: 10, row 2 has no tokens and is left out: (2 + 10) / 2 = 6.
    assert sequence_mean(values, mask).item() == pytest.approx(6.0)


# -- gradients: every divergence against autograd on an explicit probability-space formula ------------------


def _explicit(student, teacher, alpha, top_k=None, tail=False):
    """The divergence per position from probabilities written out (softmax by hand, the mixture M in
    probability space, the top-k restriction by an explicit sort, the tail as 1 minus the kept mass), so
    autograd on it is an independent check."""
    s = student.exp() / student.exp().sum(-1, keepdim=True)
    t = teacher.exp() / teacher.exp().sum(-1, keepdim=True)
    if top_k is not None:
        rows = student.detach().reshape(-1, student.shape[-1])
        keep = torch.tensor([sorted(range(row.numel()), key=lambda i: -row[i].item())[:top_k] for row in rows])
        keep = keep.reshape(*student.shape[:-1], top_k)
        s, t = s.gather(-1, keep), t.gather(-1, keep)
        if tail:
            s = torch.cat([s, 1 - s.sum(-1, keepdim=True)], -1)
            t = torch.cat([t, 1 - t.sum(-1, keepdim=True)], -1)
        else:
            s, t = s / s.sum(-1, keepdim=True), t / t.sum(-1, keepdim=True)

    def kl(p, q):
        return (p * (p.log() - q.log())).sum(-1)
    if alpha == 0.0:
        return kl(t, s)
    if alpha == 1.0:
        return kl(s, t)
    m = alpha * t + (1 - alpha) * s
    return alpha * kl(t, m) + (1 - alpha) * kl(s, m)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("top_k,tail", [(None, False), (3, False), (3, True)])
def test_divergence_gradient_matches_autograd_on_the_explicit_formula(logits, alpha, top_k, tail):
    student, teacher = logits
    # random weights per position so a wrong gradient cannot hide in a sum that cancels
    weights = torch.rand(2, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    s1 = student.clone().requires_grad_(True)
    t1 = teacher.clone().requires_grad_(True)
    (token_divergence(s1, t1, alpha=alpha, top_k=top_k, tail=tail) * weights).sum().backward()
    s2 = student.clone().requires_grad_(True)
    t2 = teacher.clone().requires_grad_(True)
    (_explicit(s2, t2, alpha, top_k, tail) * weights).sum().backward()
    assert s1.grad.abs().max() > 1e-3
    torch.testing.assert_close(s1.grad.double(), s2.grad, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(t1.grad.double(), t2.grad, rtol=1e-5, atol=1e-8)
    if top_k is not None and not tail:
        # renormalised on the top k, tokens outside it get no gradient at all
        outside = torch.ones_like(student, dtype=torch.bool).scatter(-1, student.topk(top_k, -1).indices, False)
        assert s1.grad[outside].abs().max() == 0


def test_reverse_kl_gradient_is_the_closed_form(logits):
    """d KL(S || T) / d s_i = p_i (log p_i - log q_i - KL(S || T)), with p = softmax(s), q = softmax(t)."""
    student, teacher = logits
    student = student.clone().requires_grad_(True)
    token_divergence(student, teacher, 1.0).sum().backward()
    log_p, log_q = torch.log_softmax(student.detach(), -1), torch.log_softmax(teacher, -1)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1, keepdim=True)
    torch.testing.assert_close(student.grad, log_p.exp() * (log_p - log_q - kl), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("skip", [0, 1, 3])
def test_skip_mask_masks_exactly_the_first_skip_positions(skip):
    lengths = [5, 3, 1, 0]
    mask = torch.tensor([[t < n for t in range(6)] for n in lengths])
    want = [[skip <= t < n for t in range(6)] for n in lengths]
    assert skip_mask(mask, skip).tolist() == want
