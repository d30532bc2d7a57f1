"""SDFT's teacher (owned by the model adapter), its prompt, and the loss options that match TRL and the official
code: temperature-scaled logits, the top-k tail bucket, the skip check and the trained-token counts."""

import copy
import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from retain.data.prompts import OFFICIAL_TEACHER_TEMPLATE, PAPER_TEACHER_TEMPLATE, teacher_message, validate_template
from retain.data.skills import Example
from retain.errors import RetainError
from retain.evaluate.divergence import token_divergence
from retain.methods.registry import parse_method
from retain.methods.sdft import SDFT
from retain.models.causal_lm import TEACHER_ADAPTER, CausalLMAdapter
from retain.models.tiny.tokenizer import build_tokenizer

BATCH = [Example(prompt="abc", demonstration="cba"), Example(prompt="hello", demonstration="olleh")]
COMPLETIONS = [[5, 9, 13, 7, 2], [11, 2]]  # fixed "rollouts" of different lengths, one ending early


class FixedRollouts(SDFT):
    """SDFT whose sampled completions are fixed, so a loss can be recomputed by hand."""

    def rollouts(self, adapter, batch):
        return list(batch), [list(c) for c in COMPLETIONS]


def _perturb(model: torch.nn.Module, seed: int = 1, scale: float = 0.3) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(scale * torch.randn(p.shape, generator=gen))


def _row_logits(model, prompt: list[int], completion: list[int]) -> torch.Tensor:
    """Logits predicting each completion token, from one unpadded sequence (independent of completion_logits)."""
    out = model(input_ids=torch.tensor([prompt + completion])).logits[0]
    return out[len(prompt) - 1:len(prompt) - 1 + len(completion)]


def _brute_forward_kl(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    log_s = student - torch.log(torch.exp(student).sum(-1, keepdim=True))
    log_t = teacher - torch.log(torch.exp(teacher).sum(-1, keepdim=True))
    return (torch.exp(log_t) * (log_t - log_s)).sum(-1)


def _brute_loss(adapter, teacher_model, template, temperature, skip):
    rows = []
    for example, completion in zip(BATCH, COMPLETIONS):
        s = _row_logits(adapter.model, adapter.student_ids(example), completion).double()
        with torch.no_grad():
            t = _row_logits(teacher_model, adapter.prompt_ids(teacher_message(example, template)), completion).double()
        kl = _brute_forward_kl(s / temperature, t / temperature)[skip:]
        if kl.numel():
            rows.append(kl.mean())
    return torch.stack(rows).mean()


def _grads(adapter) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in adapter.trainable_parameters().items() if p.grad is not None}


# -- the teacher prompt ---------------------------------------------------------------------------------------


def test_official_template_has_the_official_codes_whitespace_and_the_embedded_model_keeps_its_own(tiny_adapter):
    e = Example(prompt="atbash abc", demonstration="z-y-x", answer="zyx")
    # idanshen/Self-Distillation main.py: a triple-quoted string.Template, newline first and last
    assert teacher_message(e, OFFICIAL_TEACHER_TEMPLATE) == (
        "\natbash abc\n\nThis is an example for a response to the question:\nz-y-x\n\n"
        "Now answer with a response of your own, including the thinking process.\n")
    assert teacher_message(e, PAPER_TEACHER_TEMPLATE) == (
        "atbash abc\nThis is an example for a response to the question: z-y-x\n"
        "Now answer with a response of your own, including the thinking process.")
    assert teacher_message(e, "{prompt}\n\n{demonstration}") == "atbash abc\n\nz-y-x"
    embedded_family = tiny_adapter()
    assert embedded_family.teacher_template == PAPER_TEACHER_TEMPLATE
    other_tokenizer = build_tokenizer()
    other_tokenizer.chat_template = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    outside = CausalLMAdapter(embedded_family.model, other_tokenizer, "outside")
    assert outside.teacher_template == OFFICIAL_TEACHER_TEMPLATE
    assert outside.tokenizer.decode(outside.teacher_ids(e)) == "<s>" + teacher_message(e, OFFICIAL_TEACHER_TEMPLATE)


def test_teacher_and_student_prompts_go_through_the_chat_template(tiny_adapter):
    adapter = tiny_adapter()
    e = Example(prompt="atbash abc", demonstration="z-y-x")
    assert adapter.tokenizer.decode(adapter.student_ids(e)) == "<s>Q: atbash abc\nA: "
    teacher = adapter.tokenizer.decode(adapter.teacher_ids(e))
    assert teacher.startswith("<s>Q: atbash abc\nThis is an example") and teacher.endswith("thinking process.\nA: ")
    assert adapter.tokenizer.decode(adapter.teacher_ids(e, "{prompt}|{demonstration}")) == "<s>Q: atbash abc|z-y-x\nA: "


@pytest.mark.parametrize("template", ["{prompt} only", "{demonstration} only", "{prompt}{demonstration}{oops}"])
def test_bad_templates_are_user_errors_naming_the_field(template):
    with pytest.raises(RetainError):
        validate_template(template)
    with pytest.raises(RetainError) as err:
        SDFT(SDFT.Config(teacher_template=template))
    assert err.value.field == "sdft.teacher_template"


# -- the teacher, through the adapter -------------------------------------------------------------------------


def test_ema_teacher_moves_by_the_rate_toward_the_student(tiny_adapter):
    adapter = tiny_adapter()
    sdft = SDFT(SDFT.Config(teacher="ema", ema_rate=0.25))
    sdft.before_task(adapter)
    teacher_before = {n: t.clone() for n, t in adapter.teacher_parameters().items()}
    assert set(teacher_before) == set(adapter.trainable_parameters())
    _perturb(adapter.model)
    sdft.after_step(adapter)
    student = adapter.trainable_parameters()
    for name, t in adapter.teacher_parameters().items():
        torch.testing.assert_close(t, 0.75 * teacher_before[name] + 0.25 * student[name].detach())
        assert not t.requires_grad


def test_frozen_teacher_does_not_move_and_live_teacher_holds_nothing(tiny_adapter):
    adapter = tiny_adapter()
    frozen = SDFT(SDFT.Config(teacher="frozen"))
    frozen.before_task(adapter)
    before = {n: t.clone() for n, t in adapter.teacher_parameters().items()}
    _perturb(adapter.model)
    frozen.after_step(adapter)
    assert all(torch.equal(before[n], t) for n, t in adapter.teacher_parameters().items())
    frozen.after_task(adapter)
    assert adapter.teacher_parameters() == {} and frozen.memory_bytes() > 0
    live = SDFT(SDFT.Config(teacher="live"))
    live.before_task(adapter)
    assert adapter.teacher_parameters() == {} and adapter.teacher_bytes() == 0
    with pytest.raises(RuntimeError):
        with adapter.teacher_view("ema"):
            pass


def test_lora_ema_teacher_is_a_second_adapter_released_after_the_task(tiny_adapter, tmp_path):
    adapter = tiny_adapter(lora=True)
    sdft = SDFT(SDFT.Config(teacher="ema", ema_rate=0.5))
    sdft.before_task(adapter)
    assert TEACHER_ADAPTER in adapter.model.peft_config
    teacher = adapter.teacher_parameters()
    names = {id(p): n for n, p in adapter.model.named_parameters()}
    assert teacher and all(f".{TEACHER_ADAPTER}." in names[id(t)] for t in teacher.values())
    name = next(n for n in teacher if "lora_B" in n)
    with torch.no_grad():
        adapter.trainable_parameters()[name].fill_(2.0)
        teacher[name].fill_(0.0)
    sdft.after_step(adapter)
    torch.testing.assert_close(teacher[name], torch.full_like(teacher[name], 1.0))
    trainable = set(adapter.trainable_parameters())
    with adapter.teacher_view("ema") as view:
        view.completion_logits([adapter.prompt_ids("abc")], [[5, 2]])
    assert set(adapter.trainable_parameters()) == trainable  # the view gives the student back its adapter
    assert all(".default." in n for n in trainable)  # only the student's adapter trains
    adapter.save(tmp_path / "during")
    assert not any(TEACHER_ADAPTER in p.name for p in (tmp_path / "during").rglob("*"))
    sdft.after_task(adapter)
    assert TEACHER_ADAPTER not in adapter.model.peft_config and sdft.memory_bytes() > 0
    assert all(".default." in n for n in adapter.trainable_parameters())


@pytest.mark.parametrize("lora", [False, True])
def test_frozen_teacher_is_the_model_at_the_start_of_the_task(tiny_adapter, lora):
    adapter = tiny_adapter(lora=lora, init_range=1.0)
    _perturb(adapter.model, seed=2)  # under LoRA the adapter now differs from the bare base model
    prompts, completions = [adapter.prompt_ids("abc")], [[5, 9, 2]]
    with torch.no_grad():
        at_start = adapter.completion_logits(prompts, completions)[0]
        bare_base = None
        if lora:
            with adapter.model.disable_adapter():
                bare_base = adapter.completion_logits(prompts, completions)[0]
    adapter.start_teacher("frozen")
    _perturb(adapter.model, seed=3)
    adapter.update_teacher(0.5)  # a frozen teacher ignores EMA steps
    with adapter.teacher_view("frozen") as view:
        teacher = view.completion_logits(prompts, completions)[0]
        # the student is not switched: inside the view its own logits are still its own
        torch.testing.assert_close(adapter.completion_logits(prompts, completions)[0],
                                   adapter.logits_through(adapter.model, prompts, completions)[0])
    student = adapter.completion_logits(prompts, completions)[0]
    torch.testing.assert_close(teacher, at_start)
    assert not torch.allclose(student, at_start, atol=1e-3)
    if lora:
        assert not torch.allclose(teacher, bare_base, atol=1e-3)
    adapter.release_teacher()


def test_teacher_view_is_eval_mode_without_gradients_and_restores_everything(tiny_adapter):
    torch.manual_seed(0)
    tok = build_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, attention_dropout=0.5, initializer_range=1.0,
                         bos_token_id=1, eos_token_id=2, pad_token_id=0)
    adapter = CausalLMAdapter(LlamaForCausalLM(config), tok, "dropout")
    prompts, completions = [adapter.prompt_ids("abcdef")], [[5, 9, 13, 2]]
    adapter.model.eval()
    with torch.no_grad():
        eval_logits = adapter.completion_logits(prompts, completions)[0]
    adapter.model.train()
    for kind in ("live", "ema"):
        if kind != "live":
            adapter.start_teacher(kind)
        with adapter.teacher_view(kind) as teacher:
            first = teacher.completion_logits(prompts, completions)[0]
            second = teacher.completion_logits(prompts, completions)[0]
        assert adapter.model.training
        assert not first.requires_grad
        torch.testing.assert_close(first, second)
        torch.testing.assert_close(first, eval_logits)
    assert adapter.completion_logits(prompts, completions)[0].requires_grad
    adapter.release_teacher()


# -- the loss against a brute-force computation ----------------------------------------------------------------


@pytest.mark.parametrize("kind, temperature", [("live", 1.0), ("live", 2.0), ("ema", 0.7), ("frozen", 1.0)])
def test_sdft_loss_and_gradient_match_brute_force_with_temperature_scaled_logits(tiny_adapter, kind, temperature):
    adapter = tiny_adapter(init_range=1.0)
    template = "{prompt} -> {demonstration}"  # teacher and student prompts differ
    sdft = FixedRollouts(SDFT.Config(teacher=kind, temperature=temperature, skip_tokens=1, teacher_template=template))
    sdft.before_task(adapter)
    teacher_model = adapter.model if kind == "live" else copy.deepcopy(adapter.model)
    if kind != "live":
        _perturb(adapter.model, seed=4, scale=0.2)  # the student has moved away from its teacher
    loss = sdft.loss(adapter, BATCH)
    loss.backward()
    got = _grads(adapter)
    adapter.model.zero_grad()
    want = _brute_loss(adapter, teacher_model, template, temperature, skip=1)
    want.backward()
    assert loss.item() == pytest.approx(want.item(), rel=1e-4) and want.item() > 1e-3
    expected = _grads(adapter)
    assert set(got) == set(expected)
    for name in got:
        torch.testing.assert_close(got[name], expected[name].float(), rtol=1e-3, atol=1e-6)
    assert sdft.token_stats() == {"trained": 4 + 1, "total": 5 + 2}
    sdft.after_task(adapter)


def test_temperature_changes_the_loss_and_is_the_identity_at_one(tiny_adapter):
    adapter = tiny_adapter(init_range=1.0)
    losses = {}
    for t in (1.0, 3.0):
        sdft = FixedRollouts(SDFT.Config(teacher="live", temperature=t, skip_tokens=0,
                                         teacher_template="{prompt}: {demonstration}"))
        losses[t] = sdft.loss(adapter, BATCH).item()
    assert losses[1.0] != pytest.approx(losses[3.0], rel=1e-2)


def test_sdft_loss_is_zero_when_teacher_is_student_on_the_same_prompt(tiny_adapter):
    adapter = tiny_adapter()
    sdft = SDFT(SDFT.Config(teacher="live", teacher_template="{prompt}{demonstration}", skip_tokens=0,
                            max_new_tokens=5))
    torch.manual_seed(0)
    assert sdft.loss(adapter, [Example(prompt="abc", demonstration="")]).item() == pytest.approx(0.0, abs=1e-6)


def _tail_brute_force(student: torch.Tensor, teacher: torch.Tensor, k: int, alpha: float) -> list[float]:
    """The top-k + tail divergence of every row in float64 on Python floats (math.fsum):
    the tail's mass is summed from the probabilities outside the top k (never 1 - captured)."""
    out = []
    for row in range(student.shape[0]):
        def probs(logits):
            top = max(logits)
            e = [math.exp(x - top) for x in logits]
            return [x / math.fsum(e) for x in e]
        s, t = probs(student[row].tolist()), probs(teacher[row].tolist())
        keep = sorted(range(len(s)), key=lambda i: -student[row, i].item())[:k]
        rest = [i for i in range(len(s)) if i not in keep]
        ps = [s[i] for i in keep] + [math.fsum(s[i] for i in rest)]
        pt = [t[i] for i in keep] + [math.fsum(t[i] for i in rest)]
        m = [alpha * b + (1 - alpha) * a for a, b in zip(ps, pt)]

        def kl(p, q):
            return math.fsum(pi * math.log(pi / qi) for pi, qi in zip(p, q) if pi > 0)
        out.append(kl(pt, ps) if alpha == 0 else kl(ps, pt) if alpha == 1
                   else alpha * kl(pt, m) + (1 - alpha) * kl(ps, m))
    return out


@pytest.mark.parametrize("alpha", [0.0, 0.4, 1.0])
def test_top_k_tail_bucket_matches_brute_force(alpha):
    gen = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(3, 7, generator=gen, dtype=torch.float64), torch.randn(3, 7, generator=gen,
                                                                                         dtype=torch.float64)
    got = token_divergence(student, teacher, alpha=alpha, top_k=3, tail=True)
    assert got.dtype == torch.float64  # float64 in, float64 throughout
    assert got.tolist() == pytest.approx(_tail_brute_force(student, teacher, 3, alpha), rel=1e-10, abs=1e-14)
    assert not torch.allclose(got, token_divergence(student, teacher, alpha=alpha, top_k=3))


@pytest.mark.parametrize("alpha", [0.0, 0.4, 1.0])
def test_top_k_tail_bucket_is_exact_at_large_logit_scale_in_float32(alpha):
    """At logit scale 20 the top k hold all but ~1e-6 of the mass: ``log(1 - captured)`` in float32 is off by
    up to 0.5 per token there; the tail's own logsumexp is not. The tolerance is float32's, on any CPU."""
    gen = torch.Generator().manual_seed(1)
    student64 = 20 * torch.randn(16, 50, generator=gen, dtype=torch.float64)
    teacher64 = student64 + 10 * torch.randn(16, 50, generator=gen, dtype=torch.float64)
    want = _tail_brute_force(student64, teacher64, 5, alpha)
    got = token_divergence(student64.float(), teacher64.float(), alpha=alpha, top_k=5, tail=True)
    assert got.dtype == torch.float32
    assert got.tolist() == pytest.approx(want, rel=1e-3, abs=1e-5)


# -- the skip check and the options -----------------------------------------------------------------------------


def test_a_skip_that_masks_the_answers_stops_before_training(tiny_adapter):
    adapter = tiny_adapter()
    short = [Example(prompt=f"w{i}", demonstration=d) for i, d in enumerate(["a.e", "bf", "c.g"])]
    with pytest.raises(RetainError) as err:
        SDFT().check_examples(adapter, short)
    assert err.value.field == "sdft.skip_tokens" and "--set sdft.skip_tokens=0" in str(err.value)
    assert "\n" not in str(err.value)
    SDFT(SDFT.Config(skip_tokens=0)).check_examples(adapter, short)
    SDFT().check_examples(adapter, [Example(prompt="w", demonstration="abcdefgh")])  # 5 of 8 tokens train


def test_parse_method_builds_objective_and_names_bad_fields():
    objective, plugins = parse_method("sdft", {"sdft": {"teacher": "frozen", "alpha": "0.5", "top_k": "20",
                                                        "top_k_tail": "true"}})
    cfg = objective.config
    assert (cfg.teacher, cfg.alpha, cfg.top_k, cfg.top_k_tail) == ("frozen", 0.5, 20, True) and plugins == []
    for bad, field in (({"teacher": "moving"}, "teacher"), ({"ema_rate": "-1"}, "ema_rate"), ({"alpha": "2"}, "alpha"),
                       ({"ema_rate": "abc"}, "ema_rate"), ({"nope": 1}, "nope"), ({"top_k_tail": "yes"}, "top_k_tail"),
                       ({"skip_tokens": "2.5"}, "skip_tokens")):
        with pytest.raises(RetainError) as err:
            parse_method("sdft", {"sdft": bad})
        assert err.value.field == f"sdft.{field}"
    for config, field in ((SDFT.Config(top_k="20"), "top_k"), (SDFT.Config(temperature=0), "temperature"),
                          (SDFT.Config(skip_tokens=True), "skip_tokens")):
        with pytest.raises(RetainError) as err:
            SDFT(config)
        assert err.value.field == f"sdft.{field}"
    with pytest.raises(RetainError):
        parse_method("sdft+sft")
    with pytest.raises(RetainError):
        parse_method("sdfx")
