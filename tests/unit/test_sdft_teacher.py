"""The SDFT teacher: prompt building, the EMA update, the LoRA teacher as a second adapter."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from retain.data.prompts import PAPER_TEACHER_TEMPLATE, teacher_message, validate_template
from retain.data.skills import Example
from retain.errors import RetainError
from retain.methods.registry import parse_method
from retain.methods.sdft import SDFT, TEACHER_ADAPTER
from retain.models.causal_lm import CausalLMAdapter
from retain.models.tiny.tokenizer import build_tokenizer


def tiny_adapter(lora: bool = False) -> CausalLMAdapter:
    torch.manual_seed(0)
    tok = build_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = LlamaForCausalLM(config)
    if lora:
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    return CausalLMAdapter(model, tok, "tiny")


def test_teacher_message_uses_the_papers_wording():
    e = Example(prompt="atbash abc", demonstration="z-y-x", answer="zyx")
    assert teacher_message(e) == ("atbash abc\nThis is an example for a response to the question: z-y-x\n"
                                  "Now answer with a response of your own, including the thinking process.")
    assert teacher_message(e, "{prompt}\n\n{demonstration}") == "atbash abc\n\nz-y-x"
    assert PAPER_TEACHER_TEMPLATE.count("{demonstration}") == 1


def test_teacher_and_student_prompts_go_through_the_chat_template():
    adapter = tiny_adapter()
    e = Example(prompt="atbash abc", demonstration="z-y-x")
    student = adapter.tokenizer.decode(adapter.student_ids(e))
    teacher = adapter.tokenizer.decode(adapter.teacher_ids(e))
    assert student == "<s>Q: atbash abc\nA: "
    assert teacher.startswith("<s>Q: atbash abc\nThis is an example") and teacher.endswith("thinking process.\nA: ")


@pytest.mark.parametrize("template", ["{prompt} only", "{demonstration} only", "{prompt}{demonstration}{oops}"])
def test_bad_templates_are_user_errors(template):
    with pytest.raises(RetainError):
        validate_template(template)


def test_ema_teacher_moves_by_the_rate_toward_the_student():
    adapter = tiny_adapter()
    sdft = SDFT(SDFT.Config(teacher="ema", ema_rate=0.25))
    sdft.before_task(adapter)
    teacher_before = [p.detach().clone() for p in sdft._teacher_model.parameters()]
    with torch.no_grad():
        for p in adapter.model.parameters():
            p.add_(1.0)
    sdft.after_step(adapter)
    for t0, t1, s in zip(teacher_before, sdft._teacher_model.parameters(), adapter.model.parameters()):
        assert torch.allclose(t1, 0.75 * t0 + 0.25 * s, atol=1e-6)


def test_frozen_teacher_does_not_move_and_live_teacher_holds_nothing():
    adapter = tiny_adapter()
    frozen = SDFT(SDFT.Config(teacher="frozen"))
    frozen.before_task(adapter)
    before = [p.detach().clone() for p in frozen._teacher_model.parameters()]
    with torch.no_grad():
        for p in adapter.model.parameters():
            p.add_(1.0)
    frozen.after_step(adapter)
    assert all(torch.equal(a, b) for a, b in zip(before, frozen._teacher_model.parameters()))
    live = SDFT(SDFT.Config(teacher="live"))
    live.before_task(adapter)
    assert live._teacher_model is None


def test_lora_ema_teacher_is_a_second_adapter_not_a_model_copy():
    adapter = tiny_adapter(lora=True)
    sdft = SDFT(SDFT.Config(teacher="ema", ema_rate=0.5))
    sdft.before_task(adapter)
    assert sdft._teacher_model is None
    assert TEACHER_ADAPTER in adapter.model.peft_config
    params = dict(adapter.model.named_parameters())
    name = next(n for n in params if ".default." in n and "lora_B" in n)
    teacher_name = name.replace(".default.", f".{TEACHER_ADAPTER}.")
    with torch.no_grad():
        params[name].fill_(2.0)
        params[teacher_name].fill_(0.0)
    sdft.after_step(adapter)
    assert torch.allclose(params[teacher_name], torch.full_like(params[teacher_name], 1.0))
    # Only the student's adapter trains; the teacher adapter is released after the task.
    assert all(".default." in n for n in adapter.trainable_parameters())
    sdft.after_task(adapter)
    assert TEACHER_ADAPTER not in adapter.model.peft_config
    assert sdft.memory_bytes() > 0


def test_sdft_loss_is_zero_when_teacher_is_student_on_the_same_prompt():
    adapter = tiny_adapter()
    template = "{prompt}"  # the teacher then sees exactly the student's prompt
    sdft = SDFT(SDFT.Config(teacher="live", teacher_template=template + "{demonstration}", skip_tokens=0,
                            max_new_tokens=5))
    batch = [Example(prompt="abc", demonstration="")]
    torch.manual_seed(0)
    assert sdft.loss(adapter, batch).item() == pytest.approx(0.0, abs=1e-6)


def test_parse_method_builds_objective_and_rejects_bad_values():
    objective, plugins = parse_method("sdft", {"sdft": {"teacher": "frozen", "alpha": "0.5", "top_k": "20"}})
    assert objective.config.teacher == "frozen" and objective.config.alpha == 0.5 and objective.config.top_k == 20
    assert plugins == []
    for bad in ({"teacher": "moving"}, {"ema_rate": "-1"}, {"alpha": "2"}, {"ema_rate": "abc"}, {"nope": 1}):
        with pytest.raises(RetainError):
            parse_method("sdft", {"sdft": bad})
    with pytest.raises(RetainError):
        parse_method("sdft+sft")
    with pytest.raises(RetainError):
        parse_method("sdfx")
