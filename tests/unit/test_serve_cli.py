"""``retain serve``'s bad options: one line naming the option, exit code 2, before any model is loaded."""

from __future__ import annotations

import pytest

from retain.cli import main


def run_main(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stopped:
        main([str(a) for a in args])
    return stopped.value.code, capsys.readouterr().err


@pytest.fixture
def home(tmp_path):
    root = tmp_path / "home"
    root.mkdir()
    (root / "home.json").write_text('{"format": "retain-home/1"}\n')
    return root


@pytest.mark.parametrize("args, message", [
    (["--port", "70000"], "--port: must be at most 65535, got 70000"),
    (["--max-tokens", "8", "--default-tokens", "9"], "--default-tokens: must be at most --max-tokens (8)"),
    (["--host", "0.0.0.0"], "--api-key: binding to 0.0.0.0 serves other machines: give --api-key (or set "
                            "RETAIN_API_KEY)"),
    (["--host", "192.168.1.5", "--api-key", "alice:"], "--api-key: an API key must not be empty"),
    (["--poll-seconds", "0"], "--poll-seconds: must be > 0, got 0"),
    (["--keep-served-days", "0"], "--keep-served-days: must be > 0, got 0"),
])
def test_a_bad_option_is_one_line(capsys, monkeypatch, home, args, message):
    monkeypatch.delenv("RETAIN_API_KEY", raising=False)
    code, err = run_main(capsys, "serve", home, *args)
    assert (code, err) == (2, f"retain: error: {message}\n")


def test_not_a_home(capsys, tmp_path):
    code, err = run_main(capsys, "serve", tmp_path / "nowhere")
    assert code == 2 and err.endswith("not a retain home (create one with: retain init HOME)\n")


def test_the_served_store_drops_answers_past_its_window_and_keeps_pending_feedback(tmp_path, monkeypatch):
    from retain.home import feedback

    clock = [1_000_000.0]
    monkeypatch.setattr(feedback.time, "time", lambda: clock[0])
    store = feedback.ServedStore(tmp_path / "served.sqlite", keep_days=1.0)
    forever = feedback.ServedStore(tmp_path / "forever.sqlite", keep_days=None)
    for target in (store, forever):
        target.put({"response_id": "old", "version": "v1", "answer": "a"})
    store.hold({"id": "fb-1", "response_id": "old"})
    clock[0] += 86400.0 + 1  # a day and a second later
    for target in (store, forever):
        target.put({"response_id": "new", "version": "v1", "answer": "b"})
    assert store.get("old") is None and store.get("new")["answer"] == "b" and store.count() == 1
    assert [p["id"] for p in store.pending()] == ["fb-1"]
    assert forever.get("old") is not None and forever.count() == 2
