"""One writer at a time: a second writer waits for the lock or fails naming who holds it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from retain.errors import RetainError
from retain.ledger.operations import rollback
from retain.ledger.verify import verify

HOLD = """
import sys, time
from pathlib import Path
from retain.ledger.core import Home
home = Home.open(sys.argv[1])
with home.writing("learn"):
    Path(sys.argv[2]).write_text("locked")
    time.sleep(float(sys.argv[3]))
"""


def hold_lock(root: Path, seconds: float, tmp: Path) -> subprocess.Popen:
    flag = tmp / "locked.flag"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root), str(flag), str(seconds)])
    deadline = time.monotonic() + 600
    while not flag.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the holder never took the lock"
        time.sleep(0.05)
    return proc


def test_a_second_writer_fails_with_who_holds_the_lock(tmp_path, new_home, learn, change_one_layer):
    home, base = new_home(tmp_path)
    candidate = change_one_layer(base, tmp_path / "m2")
    # held far longer than the test needs (it is killed below), so a slow machine cannot release it early
    proc = hold_lock(home.root, 600, tmp_path)
    try:
        before = home.audit.read()
        with pytest.raises(RetainError, match=rf"the home is busy: pid {proc.pid} \(learn, since .*\) is writing"):
            learn(home, candidate, "add", 0.9)
        with pytest.raises(RetainError, match="the home is busy"):
            rollback(home, "v1")
        assert home.audit.read() == before
    finally:
        proc.kill()
        proc.wait()


def test_a_second_writer_with_a_timeout_waits_for_the_first(tmp_path, new_home, learn, change_one_layer):
    home, base = new_home(tmp_path)
    proc = hold_lock(home.root, 2.5, tmp_path)
    try:
        start = time.monotonic()
        with home.writing("learn", timeout=600):
            waited = time.monotonic() - start
        assert waited > 0.5
        assert proc.wait(timeout=600) == 0
    finally:
        proc.kill()
    learn(home, change_one_layer(base, tmp_path / "m2"), "add", 0.9)
    assert verify(home.root).ok


def test_the_lock_is_released_when_its_holder_dies(tmp_path, new_home, learn, change_one_layer):
    home, base = new_home(tmp_path)
    proc = hold_lock(home.root, 60, tmp_path)
    proc.kill()
    proc.wait()
    assert learn(home, change_one_layer(base, tmp_path / "m2"), "add", 0.9).version == "v2"
