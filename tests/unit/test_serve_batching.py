"""The server's model side without HTTP: requests waiting together are generated in one batch (per model), each
answer equal to the one the request alone gets and cut at its own token limit; the request checks of the
protocol return OpenAI-style errors naming the parameter."""

from __future__ import annotations

import json

import pytest

from retain.serve.engine import Batcher, Served, prompt_ids
from retain.serve.protocol import ApiError, Limits, cut_at_stop, parse_generation

WORDS = ("plokm", "zerta", "quvan", "midor", "bex", "tanolu")


def _request(text: str, max_tokens: int = 16):
    body = {"messages": [{"role": "user", "content": text}], "max_tokens": max_tokens}
    return parse_generation(json.dumps(body).encode(), "chat", Limits())


def test_requests_waiting_together_are_one_batch_with_the_answers_they_get_alone(embedded_lm):
    served = Served("v1", embedded_lm)
    other = Served("v2", embedded_lm)  # another version: never batched with v1's requests
    batcher = Batcher(max_batch=16)
    asks = [(served, f"reverse {w}", 16) for w in WORDS] + [(served, "upper abcdef", 3), (other, "sort cab", 16)]
    futures = [batcher.submit(s, prompt_ids(s.adapter, _request(t, n)), _request(t, n)) for s, t, n in asks]
    batcher.start()
    try:
        got = [f.result(timeout=120) for f in futures]
    finally:
        batcher.stop()
    assert [g.batch_size for g in got] == [7] * 7 + [1]
    assert [g.version for g in got] == ["v1"] * 7 + ["v2"]
    assert [g.text for g in got[:6]] == [w[::-1] for w in WORDS] and all(g.stopped for g in got[:6])
    assert got[6].text == "ABC" and not got[6].stopped and len(got[6].tokens) == 3
    assert got[7].text == "abc"
    alone = embedded_lm.decode(embedded_lm.generate([embedded_lm.prompt_ids("reverse tanolu")], max_new_tokens=16,
                                                    do_sample=False)[0])
    assert got[5].text == alone
    assert "".join(got[0].pieces(3)) == got[0].text[:3]


@pytest.mark.parametrize("body, param", [
    ({"messages": [{"role": "user", "content": "x"}], "temperature": -1}, "temperature"),
    ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
    ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
    ({"messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
    ({"messages": [{"role": "user", "content": "x"}], "stop": ["a"] * 5}, "stop"),
    ({"messages": [{"role": "user", "content": "x", "tool_calls": []}]}, "tool_calls"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 3}]}, "messages[0].content"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "user", "content": "x"}], "logit_bias": {}}, "logit_bias"),
])
def test_a_bad_field_is_a_400_naming_it(body, param):
    with pytest.raises(ApiError) as err:
        parse_generation(json.dumps(body).encode(), "chat", Limits())
    assert err.value.status == 400 and err.value.param == param
    assert set(err.value.body()["error"]) == {"message", "type", "param", "code"}


def test_defaults_parts_and_stops():
    request = parse_generation(json.dumps({"messages": [
        {"role": "developer", "content": [{"type": "text", "text": "be "}, {"type": "text", "text": "brief"}]},
        {"role": "user", "content": "hi"}]}).encode(), "chat", Limits(default_max_tokens=7))
    assert request.messages[0] == {"role": "system", "content": "be brief"}
    assert (request.max_tokens, request.sampling, request.stream) == (7, (0.0, 1.0), False)
    assert cut_at_stop("abc.def", [".", "e"]) == ("abc", True) and cut_at_stop("abc", ["x"]) == ("abc", False)
