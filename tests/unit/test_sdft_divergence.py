"""SDFT's divergences and reduction against brute-force computations on small logits."""

import math

import pytest
import torch

from retain.methods.divergence import sequence_mean, skip_mask, token_divergence


def _probs(logits):
    e = [math.exp(x) for x in logits]
    z = sum(e)
    return [x / z for x in e]


def _kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q) if pi > 0)


def _brute(student, teacher, alpha, top_k=None):
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
    return torch.randn(2, 3, 7, generator=g, dtype=torch.float64), torch.randn(2, 3, 7, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
@pytest.mark.parametrize("top_k", [None, 3])
def test_divergence_matches_brute_force(logits, alpha, top_k):
    student, teacher = logits
    got = token_divergence(student, teacher, alpha=alpha, top_k=top_k)
    assert got.shape == (2, 3)
    for b in range(2):
        for t in range(3):
            want = _brute(student[b, t].tolist(), teacher[b, t].tolist(), alpha, top_k)
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
