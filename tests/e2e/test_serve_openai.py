"""``retain serve`` as a user runs it: a real uvicorn process on a loopback port, spoken to with the official
``openai`` client (chat, streaming, completions, errors), raw HTTP for what a client library would refuse to send
(malformed JSON, an oversized body, a missing token), feedback on an answer, requests batched together, and a
promotion while requests are in flight: no request fails and each answer is exactly what the version named in
its ``system_fingerprint`` answers."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.slow
RETAIN = str(Path(sys.executable).with_name("retain"))
PROMPTS = [f"{skill} {word}" for skill in ("reverse", "sort", "upper", "double") for word in
           ("plokm", "zerta", "quvan", "midor")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Live:
    """A ``retain serve`` process and how to reach it."""

    def __init__(self, home: Path, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.proc = subprocess.Popen([RETAIN, "serve", str(home), "--port", str(self.port), "--poll-seconds", "0.2",
                                      *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stdout.read()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.3)
        raise AssertionError("the server did not start")

    def raw(self, path: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict]:
        request = urllib.request.Request(self.url + path, data=data, headers=headers or {},
                                         method="POST" if data is not None else "GET")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return {**os.environ, "OMP_NUM_THREADS": "1", "XDG_CONFIG_HOME": str(tmp_path_factory.mktemp("config")),
            "RETAIN_API_KEY": ""}


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    from retain.home import init_home_from_model
    return init_home_from_model(tmp_path_factory.mktemp("serve") / "home", "embedded", protect=()).root


@pytest.fixture(scope="module")
def live(home, env):
    server = Live(home, env)
    yield server
    server.close()


def client(live: Live, key: str = "unused") -> "openai.OpenAI":
    return openai.OpenAI(base_url=live.url, api_key=key, max_retries=0, timeout=60)


def test_chat_stream_completions_and_models(live, home):
    c = client(live)
    assert [m.id for m in c.models.list().data] == [home.name]
    answer = c.chat.completions.create(model=home.name, messages=[{"role": "user", "content": "reverse plokm"}])
    assert answer.choices[0].message.content == "mkolp" and answer.choices[0].finish_reason == "stop"
    assert answer.system_fingerprint == "v1" and answer.id.startswith("chatcmpl-")
    assert answer.usage.completion_tokens == 5
    chunks = list(c.chat.completions.create(model="champion", messages=[{"role": "user", "content": "sort zerta"}],
                                            stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "aertz"
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == 5 and len({ch.id for ch in chunks}) == 1
    text = c.completions.create(model=home.name, prompt="Q: upper quvan\nA: ", max_tokens=3)
    assert text.choices[0].text == "QUV" and text.choices[0].finish_reason == "length"


def test_bad_requests_are_400_with_an_openai_error_body(live, home):
    c = client(live)
    with pytest.raises(openai.BadRequestError) as err:
        c.chat.completions.create(model=home.name, messages=[{"role": "user", "content": "x"}], extra_body={"bogus": 1})
    assert err.value.code == "unknown_parameter" and err.value.param == "bogus"
    with pytest.raises(openai.BadRequestError) as err:
        c.chat.completions.create(model=home.name, messages=[{"role": "user", "content": "x"}], max_tokens=100_000)
    assert err.value.param == "max_tokens"
    with pytest.raises(openai.BadRequestError):
        c.chat.completions.create(model=home.name, messages=[{"role": "assistant", "content": "x"}])
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    status, body = live.raw("/chat/completions", b'{"messages": [')
    assert status == 400 and body["error"]["code"] == "invalid_json" and body["error"]["type"] == "invalid_request_error"
    status, body = live.raw("/chat/completions", b"[1, 2]")
    assert status == 400 and "JSON object" in body["error"]["message"]
    big = http.client.HTTPConnection("127.0.0.1", live.port, timeout=60)
    big.putrequest("POST", "/v1/chat/completions")
    big.putheader("Content-Length", str(2 << 20))
    big.endheaders()  # the server answers from the header, before any of the body arrives
    response = big.getresponse()
    assert response.status == 413 and json.loads(response.read())["error"]["code"] == "request_too_large"
    big.close()
    status, body = live.raw("/chat/completions", json.dumps(
        {"messages": [{"role": "user", "content": "a" * 600}]}).encode())
    assert status == 400 and body["error"]["code"] == "context_length_exceeded"
    status, body = live.raw("/nowhere")
    assert status == 404 and "error" in body
    # after all that the server still answers
    assert c.chat.completions.create(model=home.name, messages=[{"role": "user", "content": "upper ab"}]
                                     ).choices[0].message.content == "AB"


def test_feedback_names_a_served_answer(live, home):
    c = client(live)
    answer = c.chat.completions.create(model=home.name, messages=[{"role": "user", "content": "capital zorbia"}])
    status, body = live.raw("/feedback", json.dumps({"response_id": answer.id, "rating": -1,
                                                     "correction": "kelm"}).encode())
    assert status == 200 and body["status"] == "recorded" and body["served_by"] == "v1"
    again = live.raw("/feedback", json.dumps({"response_id": answer.id, "rating": -1, "correction": "kelm"}).encode())
    assert again[1]["id"] == body["id"]  # the same feedback is recorded once
    assert live.raw("/feedback", json.dumps({"response_id": "chatcmpl-none", "rating": 1}).encode())[0] == 404
    bad = live.raw("/feedback", json.dumps({"response_id": answer.id, "rating": 7}).encode())
    assert bad[0] == 400 and bad[1]["error"]["param"] == "rating"
    assert live.raw("/feedback", json.dumps({"response_id": answer.id, "rating": 1, "who": "x"}).encode())[0] == 400
    from retain.home.feedback import list_feedback
    (item,) = [f for f in list_feedback(home) if f["response_id"] == answer.id]
    assert item["correction"] == "kelm" and item["status"] == "new" and item["user"] is None
    assert item["conversation"]["messages"] == [{"role": "user", "content": "capital zorbia"}]
    assert item["conversation"]["answer"] == answer.choices[0].message.content
    events = [json.loads(line)["payload"] for line in (home / "audit.jsonl").read_text().splitlines()]
    assert [e["id"] for e in events if e["type"] == "feedback"].count(body["id"]) == 1


def test_feedback_while_a_learn_holds_the_lock_is_pending_then_recorded(live, home):
    from retain.home.feedback import list_feedback
    from retain.ledger import lock

    answer = client(live).chat.completions.create(model=home.name, messages=[{"role": "user", "content": "sort bca"}])
    with lock.exclusive(home / "lock", "learn"):  # what a learn holds for minutes
        status, body = live.raw("/feedback", json.dumps({"response_id": answer.id, "rating": 1}).encode())
        assert status == 200 and body["status"] == "pending"
        assert [f["status"] for f in list_feedback(home) if f["id"] == body["id"]] == ["pending"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and [f["status"] for f in list_feedback(home) if f["id"] == body["id"]] != ["new"]:
        time.sleep(0.5)
    assert [f["status"] for f in list_feedback(home) if f["id"] == body["id"]] == ["new"]


def test_a_token_is_required_when_keys_are_set_and_off_localhost(home, env):
    refused = subprocess.run([RETAIN, "serve", str(home), "--host", "0.0.0.0", "--port", str(free_port())],
                             env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--api-key" in refused.stderr and refused.stderr.count("\n") == 1
    keyed = Live(home, env, "--api-key", "alice:s3cret")
    try:
        with pytest.raises(openai.AuthenticationError):
            client(keyed, "wrong").models.list()
        assert keyed.raw("/models")[0] == 401
        answer = client(keyed, "s3cret").chat.completions.create(
            model=home.name, messages=[{"role": "user", "content": "double ab"}])
        assert answer.choices[0].message.content == "aabb"
        status, body = keyed.raw("/feedback", json.dumps({"response_id": answer.id, "rating": 1}).encode(),
                                 {"Authorization": "Bearer s3cret"})
        assert status == 200
        from retain.home.feedback import list_feedback
        assert [f["user"] for f in list_feedback(home) if f["id"] == body["id"]] == ["alice"]
    finally:
        keyed.close()


def _expected(home: Path, version: str) -> dict[str, str]:
    from retain.serve.engine import load_version
    adapter = load_version(home, version).adapter
    return {p: adapter.decode(adapter.generate([adapter.prompt_ids(p)], max_new_tokens=16, do_sample=False)[0])
            for p in PROMPTS}


def _promote_changed_copy(home: Path) -> None:
    """Record a v2 whose weights differ from v1's (every tensor scaled) and promote it, as a learn does."""
    import torch
    from safetensors.torch import load_file, save_file

    from retain.data.skills import Example, Skill
    from retain.ledger.core import Home
    from retain.ledger.operations import Candidate, record_candidate
    from retain.ledger.store import known_scores

    from retain.home.versions import materialize

    opened = Home.open(home)
    folder = materialize(opened, "v1", home.parent / "v2-weights")
    for file in folder.glob("*.safetensors"):
        state = load_file(file)
        torch.manual_seed(0)
        save_file({k: v + 0.05 * torch.randn_like(v) for k, v in state.items()}, file, metadata={"format": "pt"})
    skill = Skill("changed", test=[Example("changed a", "a")])
    with opened.writing("learn"):
        champion = known_scores(opened.conn, "v1")
        record_candidate(opened, Candidate(folder=folder, kind="full", method="sft", skill=skill,
                                           scores={**champion, "skills": {"changed": 1.0}},
                                           champion_scores={**champion, "skills": {"changed": 0.0}}),
                         force="a promotion under load, in a test")


def test_batching_and_a_promotion_while_requests_are_in_flight(live, home):
    before = _expected(home, "v1")
    results: list[tuple[str, str, str]] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def ask(k: int) -> None:
        c = client(live)
        i = k
        while not stop.is_set():
            prompt = PROMPTS[i % len(PROMPTS)]
            try:
                r = c.chat.completions.create(model=home.name, max_tokens=16,
                                              messages=[{"role": "user", "content": prompt}])
                results.append((prompt, r.system_fingerprint, r.choices[0].message.content))
            except BaseException as err:  # any failed request fails the test
                failures.append(err)
            i += 1

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    time.sleep(3)
    _promote_changed_copy(home)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(v == "v2" for _, v, _ in results[-8:]):
        time.sleep(0.2)
    time.sleep(2)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures[:3]
    after = _expected(home, "v2")
    assert sum(before[p] != after[p] for p in PROMPTS) >= len(PROMPTS) // 2  # the versions tell apart
    versions = [v for _, v, _ in results]
    assert "v1" in versions and "v2" in versions
    assert versions.index("v2") > 0 and "v1" not in versions[versions.index("v2") + 8:]
    wrong = [(p, v, a) for p, v, a in results if a != {"v1": before, "v2": after}[v][p]]
    assert not wrong, wrong[:5]
    assert live.raw("/models")[1]["data"][0]["version"] == "v2"


def test_the_readmes_correcting_user_script(live, home, env):
    """``examples/correct_answers.py``, as the README runs it: every answer is rated, every wrong one corrected
    with the skill's right answer; ``--check`` asks words never asked and sends nothing; no server, or an error from
    it: one line, exit 2."""
    import importlib.util
    import re

    from retain.data.synthetic import PRIOR_RULES
    from retain.evaluate.scorers import get_scorer
    from retain.home.feedback import list_feedback

    script = str(Path(__file__).parents[2] / "examples" / "correct_answers.py")
    before = {f["id"] for f in list_feedback(home)}
    done = subprocess.run([sys.executable, script, "--url", live.url, "--questions", "26", "--skill", "sort"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    new = [f for f in list_feedback(home) if f["id"] not in before]
    assert len(new) == 26 and all(f["conversation"]["messages"][0]["content"].startswith("sort ") for f in new)
    wrong = 0
    for f in new:
        word = f["conversation"]["messages"][0]["content"].split()[1]
        right = bool(get_scorer("alnum")(f["conversation"]["answer"], PRIOR_RULES["sort"](word)))
        assert f["rating"] == (1 if right else -1)
        assert f["correction"] == (None if right else PRIOR_RULES["sort"](word))
        wrong += not right
    assert 0 < wrong < 26  # the base sorts most words right (24 of these 26): both kinds of feedback
    # the champion is v1, or the version an earlier test of this module promoted
    assert re.fullmatch(rf"sort: {26 - wrong}/26 right \({(26 - wrong) / 26:.0%}\), answered by v\d+; "
                        rf"corrected {wrong}, rated {26 - wrong} good", done.stdout.strip()), done.stdout
    spec = importlib.util.spec_from_file_location("correct_answers", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    asked = {f["conversation"]["messages"][0]["content"] for f in new}
    assert asked == {q for q, _ in module.questions("sort", 26, 0, False)}
    assert not asked & {q for q, _ in module.questions("sort", 26, 0, True)}  # --check asks other words
    check = subprocess.run([sys.executable, script, "--url", live.url, "--questions", "26", "--skill", "sort",
                            "--check"], capture_output=True, text=True, timeout=300, env=env)
    assert check.returncode == 0 and re.search(r"answered by v\d+; checked$", check.stdout.strip()), check.stderr
    assert len(list_feedback(home)) == len(before) + 26  # nothing sent
    gone = subprocess.run([sys.executable, script, "--url", f"http://127.0.0.1:{free_port()}/v1", "--questions",
                           "1"], capture_output=True, text=True, timeout=60, env=env)
    assert gone.returncode == 2 and len(gone.stderr.strip().splitlines()) == 1
    assert "is `retain serve` running there?" in gone.stderr
    wrong_path = subprocess.run([sys.executable, script, "--url", live.url[:-len("/v1")] + "/v2", "--questions", "1"],
                                capture_output=True, text=True, timeout=60, env=env)
    assert wrong_path.returncode == 2 and len(wrong_path.stderr.strip().splitlines()) == 1
    assert "/v2/chat/completions: HTTP 404: Unknown route" in wrong_path.stderr
