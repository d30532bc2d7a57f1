"""Forgeries by someone who can write the home but has no key: each passes the hash chain (it is recomputed)
and is caught once the home is keyed. The unkeyed runs are the controls: the same forgery passes there, so the
key is what catches it."""

from __future__ import annotations

import json
import os
import stat

import pytest

from retain.errors import RetainError
from retain.ledger import audit, keys, store
from retain.ledger.core import Home
from retain.ledger.hashing import ZERO_SHA, canonical_json, sha256_bytes
from retain.ledger.tensors import tensor_blob, weights_sha256
from retain.ledger.verify import export_anchor, verify


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv(keys.ENV, raising=False)
    return tmp_path / "config" / "retain"


def make_home(tmp_path, new_home, learn, change_one_layer):
    """v2 learned and promoted, v3 rejected by the gate (new skill below the floor)."""
    home, base = new_home(tmp_path)
    learn(home, change_one_layer(base, tmp_path / "m2"), "add", 0.9)
    learn(home, change_one_layer(base, tmp_path / "m3", delta=0.02), "mul", 0.1)
    assert home.champion() == "v2" and home.version("v3")["status"] == "rejected"
    home.conn.close()
    return home.root


def rewrite(root, edit, write):
    """The attacker: edit the parsed entries, recompute every hash of the chain, rebuild the database
    (``write``: the ``write_log`` fixture)."""
    entries, problems = audit.parse((root / "audit.jsonl").read_bytes())
    assert not problems
    datas = edit([dict(e.data) for e in entries])
    lines, prev = [], ZERO_SHA
    for i, data in enumerate(datas):
        data["seq"], data["prev_sha256"] = i + 1, prev
        raw = canonical_json(data)
        prev = sha256_bytes(raw)
        lines.append(raw + b"\n")
    write(root, lines)


def promote_v3(datas):
    last = datas[-1]
    return datas + [{**{k: v for k, v in last.items() if k not in ("key", "mac")}, "op": last["op"],
                     "last": True, "payload": {"type": "promoted", "version": "v3", "previous": "v2",
                                               "reason": "passed the gate"}}]


def edit_score(datas):
    for data in datas:
        if data["payload"]["type"] == "version_created" and data["payload"]["version"] == "v2":
            data["payload"]["record"]["scores"]["skills"]["add"] = 0.99
    return datas


def swap_tensor(root):
    """Replace one tensor of v2 with other values and store consistent blobs, manifest and record hashes."""
    home = Home.open(root)
    manifest = home.manifest("v2")
    tensors = manifest["safetensors"]["model.safetensors"]["tensors"]
    index = [n for n, _ in tensors].index("model.layers.1.mlp.down_proj.weight")
    old = home.objects.get(tensors[index][1])
    header = old[: len(old) - 16 * 32 * 4]
    tensors[index][1] = home.objects.put(header + bytes(16 * 32 * 4))
    manifest_sha = home.objects.put(canonical_json(manifest))
    home.conn.close()

    def edit(datas):
        for data in datas:
            if data["payload"]["type"] == "version_created" and data["payload"]["version"] == "v2":
                art = data["payload"]["record"]["artifacts"]
                art["manifest_sha256"], art["weights_sha256"] = manifest_sha, weights_sha256(manifest)
        return datas
    assert tensor_blob  # the blob layout the header slice relies on
    return edit


def cut_last_operation(datas):
    ops = [d["op"] for d in datas]
    return [d for d in datas if d["op"] != ops[-1]]


FORGERIES = {"appended promotion": promote_v3, "recomputed-chain edit": edit_score,
             "cut last operation": cut_last_operation}


@pytest.mark.parametrize("name", [*FORGERIES, "tensor swap"])
def test_forgeries_pass_an_unkeyed_home_but_not_a_keyed_one(tmp_path, config, name, new_home, learn,
                                                           change_one_layer, write_log):
    unkeyed = make_home(tmp_path / "plain", new_home, learn, change_one_layer)
    rewrite(unkeyed, swap_tensor(unkeyed) if name == "tensor swap" else FORGERIES[name], write_log)
    keys.init()
    keyed = make_home(tmp_path / "keyed", new_home, learn, change_one_layer)
    rewrite(keyed, swap_tensor(keyed) if name == "tensor swap" else FORGERIES[name], write_log)
    problems = verify(keyed).problems
    assert problems, name
    if name == "cut last operation":
        assert problems == ["audit.jsonl: ends at entry 6 but this machine signed entry 8 here (the log was cut)"]
    elif name == "appended promotion":
        assert problems[0] == "audit.jsonl:9: not signed, though every entry from 1 on must be (appended or " \
                              "rewritten without the key)"
        # The replay refuses the promotion too, and the champion stays v2.
        assert "audit.jsonl:9: promoted v3 although its gate decision is 'rejected' with no recorded --force " \
               "reason: refused, the champion was not changed" in problems
    else:
        assert problems[0].startswith("audit.jsonl:") and "signature does not match" in problems[0]
    # The control: without a key only the refused promotion is visible (and readers refuse the home); the other
    # forgeries are consistent.
    keys.key_path().unlink()
    keyless = verify(unkeyed, finish=False)
    if name == "appended promotion":
        assert [p for p in keyless.problems if "refused" in p]
        with pytest.raises(RetainError, match="the home does not verify: audit.jsonl:9: promoted v3 although"):
            Home.open(unkeyed)
    else:
        assert keyless.ok, keyless.problems


def test_an_appended_promotion_is_not_applied_by_the_next_reader(tmp_path, config, new_home, learn,
                                                                change_one_layer):
    keys.init()
    root = make_home(tmp_path, new_home, learn, change_one_layer)
    raw = (root / "audit.jsonl").read_bytes()
    entries, _ = audit.parse(raw)
    forged = promote_v3([dict(e.data) for e in entries])[-1]
    forged["prev_sha256"], forged["seq"] = entries[-1].sha256, 9
    (root / "audit.jsonl").write_bytes(raw + canonical_json(forged) + b"\n")
    with pytest.raises(RetainError, match="does not verify: audit.jsonl:9: not signed"):
        Home.open(root)
    conn = store.connect(root / "ledger.sqlite")
    assert store.meta(conn, "champion") == "v2" and store.head(conn)[0] == 8


def test_anchor_catches_a_cut_on_another_machine(tmp_path, config, new_home, learn, change_one_layer, write_log):
    keys.init()
    root = make_home(tmp_path, new_home, learn, change_one_layer)
    anchor = tmp_path / "head.json"
    record = export_anchor(root, anchor)
    assert record["seq"] == 8 and "mac" in record
    assert verify(root, anchor=anchor).notes[-1] == "matches the anchor at entry 8; 0 entries since"
    rewrite(root, cut_last_operation, write_log)
    # Drop this machine's witness: only the anchor remembers the head now.
    for path in (config / "witness").iterdir():
        path.unlink()
    assert verify(root).ok
    assert verify(root, anchor=anchor).problems == [
        "audit.jsonl: ends at entry 6 but the anchor head.json has entry 8 (the log was cut)"]
    anchor.write_text(anchor.read_text().replace('"seq":8', '"seq":6'))
    assert "the anchor's signature does not match" in verify(root, anchor=anchor).problems[0]


def test_a_stripped_and_rechained_log_is_caught_by_the_witness(tmp_path, config, new_home, learn,
                                                              change_one_layer, write_log):
    keys.init()
    root = make_home(tmp_path, new_home, learn, change_one_layer)
    rewrite(root, lambda datas: [{k: v for k, v in d.items() if k not in ("key", "mac")} for d in edit_score(datas)],
            write_log)
    # home.json says the home is signed, and this machine's witness holds another entry 8.
    assert verify(root).problems == [
        "audit.jsonl:1: not signed, though home.json says the home is (the signatures were stripped)",
        "audit.jsonl:8: entry 8 is not the one this machine signed here (the log was rewritten)",
        "ledger.sqlite: applied entries up to 8, past entry 0, the last one the checks trust"]


def test_writing_a_signed_home_needs_its_key(tmp_path, config, new_home, learn, change_one_layer, monkeypatch):
    keys.init()
    root = make_home(tmp_path, new_home, learn, change_one_layer)
    os.unlink(keys.key_path())
    with pytest.raises(RetainError, match=r"the audit log is signed \(key .*\) but no key is set here"):
        with Home.open(root).writing("learn"):
            pass
    monkeypatch.setenv(keys.ENV, "another secret of enough length")
    with pytest.raises(RetainError, match="signed with key .*, not yours"):
        with Home.open(root).writing("learn"):
            pass
    assert any("not yours" in p for p in verify(root).problems)


def test_key_init_writes_a_private_key_once(config, monkeypatch):
    path = keys.init()
    assert path == config / "key" and stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = keys.load()
    assert secret is not None and len(secret.secret) == 32
    with pytest.raises(RetainError, match="already exists"):
        keys.init()
    path.chmod(0o644)
    with pytest.raises(RetainError, match="readable by others"):
        keys.load()
    monkeypatch.setenv(keys.ENV, "short")
    with pytest.raises(RetainError, match="too short"):
        keys.load()
    monkeypatch.setenv(keys.ENV, "ab" * 32)
    assert keys.load().secret == bytes.fromhex("ab" * 32)


def test_every_entry_of_a_keyed_home_is_signed(tmp_path, config, new_home, learn, change_one_layer):
    key_file = keys.init()
    root = make_home(tmp_path, new_home, learn, change_one_layer)
    key = keys.load()
    lines = [json.loads(line) for line in (root / "audit.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and all(key.check(line) for line in lines)
    assert verify(root).ok
    assert key_file.exists()


def test_key_sign_starts_signing_a_home_made_before_the_key(tmp_path, config, new_home, learn, change_one_layer,
                                                            write_log):
    from retain.ledger.anchors import sign_home

    root = make_home(tmp_path, new_home, learn, change_one_layer)
    assert verify(root).notes[0].startswith("the audit log is not signed")
    with pytest.raises(RetainError, match="no signing key"):
        sign_home(root)
    keys.init()
    assert sign_home(root) == (9, True)
    # Signing again writes nothing and says where signing started.
    assert sign_home(root) == (9, False)
    report = verify(root)
    assert report.ok and "entries 1-8 predate the signing key" in report.notes
    # From now on an unsigned append is caught, as in a home keyed from the start.
    rewrite(root, promote_v3, write_log)
    assert verify(root).problems[0].startswith("audit.jsonl:10: not signed, though every entry from 9 on must be")
