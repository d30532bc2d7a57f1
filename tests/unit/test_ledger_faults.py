"""Faults answered cleanly: a missing database, a failed or killed write, unreferenced blobs, a stale init,
a truncated model file, a read-only medium and a full disk (the last two in a user namespace, where the test
can mount; skipped otherwise)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from retain.errors import RetainError
from retain.ledger import keys, store
from retain.ledger.core import Home
from retain.ledger.gc import collect
from retain.safetensors_file import check_complete
from retain.ledger.verify import verify
from retain.models.merge import merge_adapter


@pytest.fixture(autouse=True)
def no_key(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv(keys.ENV, raising=False)


def can_mount() -> str | None:
    """Why namespaced mounts are unavailable here, or ``None`` when they work."""
    if not shutil.which("unshare"):
        return "no unshare command"
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"cannot mount in a user namespace: {probe.stderr.strip()[:80]}"


needs_mount = pytest.mark.skipif(can_mount() is not None, reason=str(can_mount()))


def test_a_missing_database_is_reported_then_rebuilt_only_with_repair(tmp_path, new_home, learn, change_one_layer):
    home, base = new_home(tmp_path)
    learn(home, change_one_layer(base, tmp_path / "m2"), "add", 0.9)
    home.conn.close()
    for name in ("ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm"):
        (home.root / name).unlink(missing_ok=True)
    with pytest.raises(RetainError, match="ledger database is missing; retain verify HOME --repair"):
        Home.open(home.root)
    assert not (home.root / "ledger.sqlite").exists()
    report = verify(home.root)
    assert report.problems == ["ledger.sqlite: missing (retain verify HOME --repair rebuilds it from the audit log)"]
    assert not (home.root / "ledger.sqlite").exists()
    repaired = verify(home.root, repair=True)
    assert repaired.ok and repaired.notes[-1] == "rebuilt ledger.sqlite from 6 audit entries"
    assert Home.open(home.root).champion() == "v2"


def test_repair_refuses_a_log_that_does_not_verify(tmp_path, new_home):
    home, _ = new_home(tmp_path)
    home.conn.close()
    (home.root / "ledger.sqlite").unlink()
    log = home.root / "audit.jsonl"
    log.write_bytes(log.read_bytes().replace(b'"floor"', b'"flour"'))
    # The first operation no longer chains on: nothing of the log can be trusted, so nothing is rebuilt.
    with pytest.raises(RetainError, match="no entry of the audit log can be trusted"):
        verify(home.root, repair=True)
    assert not (home.root / "ledger.sqlite").exists()


def test_a_failed_write_takes_back_its_blobs_and_temporary_files(tmp_path, new_home, change_one_layer):
    home, base = new_home(tmp_path)
    before = set(home.objects)
    with pytest.raises(ValueError, match="boom"):
        with home.writing("learn"):
            home.store_model(change_one_layer(base, tmp_path / "m2"))
            assert set(home.objects) - before
            (home.tmp / "scratch").write_text("x")
            raise ValueError("boom")
    assert set(home.objects) == before and list(home.tmp.iterdir()) == []
    assert verify(home.root).ok


def test_gc_removes_only_unreferenced_blobs(tmp_path, new_home, learn, change_one_layer):
    home, base = new_home(tmp_path)
    learn(home, change_one_layer(base, tmp_path / "m2"), "add", 0.9)
    loose = home.objects.put(b"left by a crash before its commit")
    assert verify(home.root).notes[-1].startswith("1 unreferenced objects (33 bytes)")
    assert collect(home.root, dry_run=True).objects == 1 and home.objects.has(loose)
    done = collect(home.root)
    assert (done.objects, done.bytes) == (1, 33) and not home.objects.has(loose)
    report = verify(home.root)
    assert report.ok and not [n for n in report.notes if "unreferenced" in n]
    assert Home.open(home.root).materialize("v2", tmp_path / "out", merge_adapter).is_dir()


def test_gc_refuses_when_a_manifest_is_damaged(tmp_path, new_home):
    home, _ = new_home(tmp_path)
    manifest = home.objects.path(home.version("v1")["manifest_sha256"])
    manifest.write_bytes(manifest.read_bytes()[:-1])
    count = len(list(home.objects))
    with pytest.raises(RetainError, match="manifest of v1 is missing or damaged"):
        collect(home.root)
    assert len(list(home.objects)) == count


KILLED_WRITER = """
import os, sys
from retain.ledger.core import Home
home = Home.open(sys.argv[1])
with home.writing("learn"):
    with home.work_dir("learn") as work:
        (work / "candidate.bin").write_bytes(b"x" * 100000)
        print(work, flush=True)
        os._exit(137)
"""


def test_a_killed_writer_leaves_its_work_folder_only_inside_the_home_and_the_next_command_removes_it(
        tmp_path, new_home):
    home, _ = new_home(tmp_path)
    home.conn.close()
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(home.root)], capture_output=True, text=True,
                          env={**os.environ, "TMPDIR": str(system_tmp)}, timeout=900)
    assert proc.returncode == 137, proc.stderr[-2000:]
    work = Path(proc.stdout.strip())
    assert work.parent == home.root / "tmp" and work.name.startswith("learn-") and work.is_dir()
    assert list(system_tmp.iterdir()) == []
    Home.open(home.root).versions()
    assert list((home.root / "tmp").iterdir()) == []


def test_a_killed_init_leaves_a_build_folder_that_the_next_init_removes(tmp_path, new_home):
    stale = tmp_path / ".home.init-deadbeef"
    (stale / "objects").mkdir(parents=True)
    (stale / "lock").write_text("{}")
    home, _ = new_home(tmp_path)
    assert home.root == tmp_path / "home" and not stale.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".home")] == []


def test_a_truncated_safetensors_file_is_one_line(tmp_path, tiny_model):
    model = tiny_model(tmp_path / "model")
    check_complete(model)
    weights = model / "model.safetensors"
    size = weights.stat().st_size
    os.truncate(weights, size - 100)
    with pytest.raises(RetainError, match=f"model.safetensors: truncated: {size - 100} bytes where its header "
                                          f"needs {size}"):
        check_complete(model)


READ_ONLY = """
import json, sys
from pathlib import Path
from retain.errors import RetainError
from retain.ledger.core import Home
from retain.ledger.verify import verify
from retain.models.merge import merge_adapter
root, out = Path(sys.argv[1]), Path(sys.argv[2])
home = Home.open(root)
result = {"readonly": home.readonly, "versions": [v["name"] for v in home.versions()], "champion": home.champion(),
          "materialized": sorted(p.name for p in home.materialize("v2", out / "v2", merge_adapter).iterdir())}
report = verify(root)
result["verify"] = {"ok": report.ok, "problems": report.problems, "notes": report.notes}
try:
    with home.writing("rollback"):
        pass
except RetainError as err:
    result["write"] = str(err)
print(json.dumps(result))
"""


@needs_mount
def test_a_read_only_home_serves_reads_and_verifies(tmp_path, new_home, learn, change_one_layer):
    home, base = new_home(tmp_path)
    learn(home, change_one_layer(base, tmp_path / "m2"), "add", 0.9)
    home.conn.close()
    view, out = tmp_path / "ro", tmp_path / "out"
    view.mkdir()
    out.mkdir()
    script = (f"mount --bind {home.root} {view} && mount -o remount,bind,ro {view} && "
              f"{sys.executable} -c '{READ_ONLY}' {view} {out}")
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["readonly"] and result["versions"] == ["v1", "v2"] and result["champion"] == "v2"
    assert "model.safetensors" in result["materialized"]
    assert result["verify"]["ok"], result["verify"]
    assert result["write"].endswith("the home is read-only (read-only medium or no write permission); rollback "
                                    "needs to write to the home")


DISK_FULL = """
import json, os, shutil, sys
from pathlib import Path
from retain.data.skills import Example, Skill
from retain.errors import RetainError
from retain.ledger.core import Home
from retain.ledger.operations import Candidate, record_candidate
from retain.ledger.store import known_scores
from retain.ledger.verify import verify
src, mnt, candidate = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
root = mnt / "home"
shutil.copytree(src, root)
home = Home.open(root)
before = sorted(home.objects)
filler = mnt / "filler"
with open(filler, "wb", buffering=0) as handle:
    try:
        while True:
            handle.write(b"0" * 4096)
    except OSError:
        pass
os.truncate(filler, filler.stat().st_size - int(sys.argv[4]))
test = [Example(prompt=f"add {i}?", demonstration=f"add-{i}", answer=str(i)) for i in range(6)]
result = {}
try:
    with home.writing("learn"):
        champion = known_scores(home.conn, home.champion())
        scores = {"probes": champion["probes"], "skills": {"add": 0.9}}
        record_candidate(home, Candidate(folder=candidate, kind="full", method="sft",
                                         skill=Skill(name="add", train=test, test=test), scores=scores,
                                         champion_scores={**champion, "skills": {"add": 0.0}}))
except RetainError as err:
    result["error"] = str(err)
result["objects_unchanged"] = sorted(home.objects) == before
result["tmp"] = sorted(str(p.relative_to(mnt)) for p in mnt.rglob("*.tmp")) + os.listdir(root / "tmp")
result["full_open"] = Home.open(root).versions()[-1]["name"]
filler.unlink()
result["verify"] = verify(root).problems
result["versions"] = [v["name"] for v in Home.open(root).versions()]
print(json.dumps(result))
"""


@needs_mount
@pytest.mark.parametrize("keyed", [False, True])
@pytest.mark.parametrize("free", [4096, 16384])
def test_a_full_disk_is_one_line_and_leaves_nothing_behind(tmp_path, new_home, change_one_layer, free, keyed):
    """With 4 KiB left the blobs do not fit (nothing is recorded); with 16 KiB the audit append fits and the
    database transaction does not (the learn is committed; the database catches up once there is space).
    Keyed, the home is signed, the copy on the small disk takes its own id at its first write, and the witness
    (outside that disk) raises no alarm afterwards."""
    if keyed:
        keys.init()
    home, base = new_home(tmp_path)
    home.conn.close()
    candidate = change_one_layer(base, tmp_path / "m2")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    size = sum(p.stat().st_size for p in home.root.rglob("*") if p.is_file()) + 256 * 1024
    script = (f"mount -t tmpfs -o size={size} tmpfs {mnt} && "
              f"{sys.executable} -c '{DISK_FULL}' {home.root} {mnt} {candidate} {free}")
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["tmp"] == [] and result["verify"] == []
    if keyed and result["error"].endswith("learn recorded nothing"):
        # Signed entries (and the copy's home_id entry) are longer: at 16 KiB too the learn may not fit.
        assert result["versions"] == ["v1"]
    elif free == 4096:
        assert result["error"] == f"{mnt}/home: no space left on the device; learn recorded nothing"
        assert result["objects_unchanged"] and result["versions"] == ["v1"] and result["full_open"] == "v1"
    else:
        assert result["error"] == (f"{mnt}/home: no space left on the device after learn was committed to the "
                                   "audit log; the database catches up on the next command once there is space")
        assert result["versions"] == ["v1", "v2"]
    assert store.TABLES  # the database schema the verify above compared
