"""Ed25519 signatures of audit entries (RFC 8032) and the public keys a machine without the signing key checks
them with: what ``sig`` and ``mac`` each cover, the derived key, pins (``retain key trust``, trust on first use,
``--public-key`` / ``RETAIN_PUBLIC_KEY``) and bad input."""

from __future__ import annotations

import copy
import hashlib
import json
import os

import pytest

from retain.cli import main
from retain.errors import RetainError
from retain.ledger import audit, keys, store
from retain.ledger.core import Home
from retain.ledger.hashing import ZERO_SHA, canonical_json, sha256_bytes
from retain.ledger.verify import export_anchor, verify

SECRET = bytes(range(32))
OTHER = b"another secret of enough length!"


def entry() -> dict:
    return {"seq": 7, "time": "2025-01-02T03:04:05.678+00:00", "op": 6, "last": True, "prev_sha256": "ab" * 32,
            "payload": {"type": "promoted", "version": "v3", "previous": "v2", "reason": "passed the gate",
                        "scores": {"add": 0.9, "mul": [1, 2]}}}


def flips(data: object, path: tuple = ()):
    """Every leaf of ``data`` changed once (a string: one character; a number: +1; a bool: negated), as
    ``(path, changed copy)``."""
    if isinstance(data, dict):
        for name, value in data.items():
            for where, changed in flips(value, path + (name,)):
                yield where, {**data, name: changed}
    elif isinstance(data, list):
        for i, value in enumerate(data):
            for where, changed in flips(value, path + (i,)):
                yield where, data[:i] + [changed] + data[i + 1:]
    elif isinstance(data, bool):
        yield path, not data
    elif isinstance(data, (int, float)):
        yield path, data + 1
    elif isinstance(data, str):
        yield path, (data[:-1] + ("0" if data[-1:] != "0" else "1")) if data else "x"


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv(keys.ENV, raising=False)
    monkeypatch.delenv(keys.PUBLIC_ENV, raising=False)
    return tmp_path / "config" / "retain"


# -- the keys and what each signature covers -----------------------------------------------------------------


def test_the_public_key_is_derived_from_the_secret_and_stable():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    one, again, other = keys.Key(SECRET, "a"), keys.Key(SECRET, "b"), keys.Key(OTHER, "c")
    assert one.public == again.public and one.public.text == again.public.text
    assert one.public != other.public
    seed = hashlib.sha256(b"retain-ed25519:" + SECRET).digest()
    raw = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(serialization.Encoding.Raw,
                                                                               serialization.PublicFormat.Raw)
    assert one.public.raw == raw and one.public.text == "ed25519:" + raw.hex()
    # Deterministic (RFC 8032): one secret signs one entry one way, on any machine.
    assert one.sign(entry(), "h") == again.sign(entry(), "h")


def test_rfc8032_test_vector_1():
    """RFC 8032, section 7.1, TEST 1: the seed, its public key and the signature of the empty message."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    public = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    sig = ("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0"
           "595bbe24655141438e7a100b")
    assert keys.parse_public("ed25519:" + public).raw == bytes.fromhex(public)
    assert Ed25519PrivateKey.from_private_bytes(seed).sign(b"").hex() == sig


def test_sig_and_mac_cover_what_the_docstring_says():
    key = keys.Key(SECRET, "test")
    signed = key.sign(entry(), "home-1")
    assert set(signed) == {*entry(), "key", "home", "sig", "mac"}
    assert key.check(signed, "home-1") and key.public.check(signed, "home-1")
    changed = 0
    for where, forged in flips(signed):
        if where == ("mac",):
            # The signature does not cover the MAC (the MAC covers the signature): only the key finds this one.
            assert key.public.check(forged, "home-1") and not key.check(forged, "home-1")
        else:
            assert not key.public.check(forged, "home-1"), where
            assert not key.check(forged, "home-1"), where
        changed += 1
    assert changed == 16
    # A field added or taken away (other than the signatures themselves) fails both.
    assert not key.public.check({**signed, "extra": 1}) and not key.check({**signed, "extra": 1})
    for name in ("seq", "payload", "key", "home"):
        less = {k: v for k, v in signed.items() if k != name}
        assert not key.public.check(less) and not key.check(less), name
    # Without its signature an entry checks with neither (the MAC covers the sig; the public key needs it).
    bare = {k: v for k, v in signed.items() if k != "sig"}
    assert not key.public.check(bare) and not key.check(bare)


def test_a_signature_from_another_key_or_for_another_home_fails():
    mine, theirs = keys.Key(SECRET, "mine"), keys.Key(OTHER, "theirs")
    forged = theirs.sign(entry(), "home-1")
    assert theirs.public.check(forged, "home-1")
    assert not mine.public.check(forged, "home-1") and not mine.check(forged, "home-1")
    # Their signature under my MAC and key id: the MAC fails (it covers the sig), and the signature too.
    signed = mine.sign(entry(), "home-1")
    swapped = {**signed, "sig": forged["sig"]}
    assert not mine.public.check(swapped, "home-1") and not mine.check(swapped, "home-1")
    assert not mine.public.check(signed, "home-2") and not mine.check(signed, "home-2")
    # Not a signature at all.
    for bad in ("", "zz" * 64, "00" * 63, 7, None):
        assert not mine.public.check({**signed, "sig": bad}, "home-1")


def test_an_entry_signed_before_signatures_checks_with_the_key_as_before():
    key = keys.Key(SECRET, "test")
    legacy = {**entry(), "key": key.id, "home": "home-1"}
    legacy["mac"] = key.mac(canonical_json(legacy))
    assert key.check(legacy, "home-1")
    assert not key.public.check(legacy, "home-1")
    assert not key.check({**legacy, "seq": 8}, "home-1")


@pytest.mark.parametrize("text", ["", "ed25519:", "ed25519:" + "ab" * 31, "ed25519:" + "zz" * 32, "ab" * 33,
                                  "ed25519:" + "ff" * 32, "rsa:" + "ab" * 32, "ed25519:" + "ab" * 32 + " extra"])
def test_a_malformed_public_key_is_one_error_naming_where_it_came_from(text):
    with pytest.raises(RetainError, match=r"^--public-key: not an Ed25519 public key"):
        keys.parse_public(text, field="--public-key")


def test_a_public_key_is_read_with_or_without_its_prefix():
    public = keys.Key(SECRET, "test").public
    for text in (public.text, public.raw.hex(), "  " + public.text.upper().replace("ED25519", "ed25519") + "\n"):
        assert keys.parse_public(text) == public


# -- the commands --------------------------------------------------------------------------------------------


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as err:
        code = err.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_key_public_prints_the_derived_key(config, capsys):
    code, _, err = run_main(capsys, "key", "public")
    assert code == 2 and "no signing key here" in err and err.count("\n") == 1
    keys.init()
    code, out, _ = run_main(capsys, "key", "public")
    assert code == 0 and out.strip() == keys.load().public.text


def test_key_trust_pins_a_key_and_refuses_a_malformed_one(config, capsys):
    code, _, err = run_main(capsys, "key", "trust", "ed25519:" + "ab" * 31)
    assert code == 2 and err.startswith("retain: error: PUBLIC_KEY: not an Ed25519 public key") and \
        err.count("\n") == 1
    assert not config.exists()
    public = keys.Key(SECRET, "test").public
    code, out, _ = run_main(capsys, "key", "trust", public.text)
    assert code == 0 and out.startswith(f"trusted: {public.text}")
    assert (config / "trusted_keys").read_text() == public.text + "\n"
    code, out, _ = run_main(capsys, "key", "trust", public.raw.hex())
    assert code == 0 and "already trusted" in out and keys.trusted() == [public]
    code, out, _ = run_main(capsys, "key", "trust", "--remove", public.text)
    assert code == 0 and out.startswith("no longer trusted") and keys.trusted() == []


def test_a_hand_edited_trusted_keys_file_is_one_error_with_its_line(config):
    config.mkdir(parents=True)
    (config / "trusted_keys").write_text(keys.Key(SECRET, "t").public.text + "  # mine\n\nnot a key\n")
    with pytest.raises(RetainError, match=r"trusted_keys:3: not an Ed25519 public key"):
        keys.trusted()


# -- homes read by a machine without the signing key ---------------------------------------------------------


@pytest.fixture
def signed_home(tmp_path, config, new_home, learn, change_one_layer):
    """A home signed by this machine's key (v2 learned); returns its root and the key."""
    keys.init()
    home, base = new_home(tmp_path / "h")
    learn(home, change_one_layer(base, tmp_path / "m2"), "add", 0.9)
    home.conn.close()
    return home.root, keys.load()


def elsewhere(monkeypatch, tmp_path, name: str = "elsewhere"):
    """Become another machine: no signing key, no witness, nothing pinned."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / name))
    return tmp_path / name / "retain"


def test_the_home_names_its_public_key_in_home_json_and_a_signed_entry(signed_home):
    root, key = signed_home
    mark = json.loads((root / "home.json").read_text())
    assert mark["public_key"] == key.public.text and mark["signed"] is True
    entries, _ = audit.parse((root / "audit.jsonl").read_bytes())
    assert entries[0].payload["type"] == "init" and entries[0].payload["public_key"] == key.public.text
    assert all(key.public.check(e.data, mark["id"]) for e in entries)


def test_first_use_pins_the_home_and_a_later_key_fails_naming_both(signed_home, monkeypatch, tmp_path, write_log):
    root, key = signed_home
    home_id = json.loads((root / "home.json").read_text())["id"]
    pins = elsewhere(monkeypatch, tmp_path) / "known_homes"
    # verify alone does not trust a key only the home names, and pins nothing
    assert "which only the home names" in verify(root, finish=False).problems[0]
    assert not pins.exists()
    report = verify(root, finish=False, no_key=True)  # accepting it pins it
    assert report.ok, report.problems
    assert any(f"checked with public key {key.public.text}" in n and "trusted on first use" in n
               for n in report.notes)
    pinned = json.loads((pins / f"{home_id}.json").read_text())
    assert pinned["public_key"] == key.public.text and pinned["id"] == home_id
    # The attacker re-signs the whole log with a key pair of their own.
    theirs = keys.Key(OTHER, "attacker")
    lines, prev = [], ZERO_SHA
    for e in audit.parse((root / "audit.jsonl").read_bytes())[0]:
        data = {k: v for k, v in e.data.items() if k not in ("mac", "sig", "key", "home")}
        data["prev_sha256"] = prev
        if "public_key" in data["payload"]:
            data["payload"]["public_key"] = theirs.public.text
        raw = canonical_json(theirs.sign(data, home_id))
        prev = sha256_bytes(raw)
        lines.append(raw + b"\n")
    write_log(root, lines)
    mark = json.loads((root / "home.json").read_text())
    (root / "home.json").write_text(json.dumps({**mark, "public_key": theirs.public.text}))
    problems = verify(root, finish=False).problems
    assert problems[0].startswith(f"audit.jsonl:1: names public key {theirs.public.text}, but the home's "
                                  f"signatures are checked here with public key {key.public.text} (pinned on this "
                                  f"machine when it first read home {home_id}")
    with pytest.raises(RetainError, match="re-signed with another key pair"):
        Home.open(root)
    # A machine that never saw the home trusts, on first use, what it reads now, if told to: inherently.
    elsewhere(monkeypatch, tmp_path, "fresh")
    assert not verify(root, finish=False).ok
    assert verify(root, finish=False, no_key=True).ok


def test_a_given_public_key_checks_the_signatures(signed_home, monkeypatch, tmp_path):
    root, key = signed_home
    elsewhere(monkeypatch, tmp_path)
    wrong = keys.Key(OTHER, "other").public
    assert verify(root, finish=False, public=key.public).ok
    problems = verify(root, finish=False, public=wrong).problems
    assert problems[0].startswith(f"audit.jsonl:1: names public key {key.public.text}, but the home's signatures "
                                  f"are checked here with public key {wrong.text} (given for this command)")
    monkeypatch.setenv(keys.PUBLIC_ENV, wrong.text)
    with pytest.raises(RetainError, match="given for this command"):
        Home.open(root)
    monkeypatch.setenv(keys.PUBLIC_ENV, "ed25519:nonsense")
    with pytest.raises(RetainError, match=r"^\$RETAIN_PUBLIC_KEY: not an Ed25519 public key"):
        Home.open(root)
    monkeypatch.setenv(keys.PUBLIC_ENV, key.public.text)
    Home.open(root).conn.close()


def test_verify_refuses_a_malformed_public_key_and_writes_nothing(signed_home, monkeypatch, tmp_path, capsys):
    root, _ = signed_home
    config = elsewhere(monkeypatch, tmp_path)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    code, _, err = run_main(capsys, "verify", str(root), "--public-key", "ed25519:1234")
    assert code == 2 and err.startswith("retain: error: --public-key: not an Ed25519 public key")
    assert err.count("\n") == 1
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before and not config.exists()


def test_a_trusted_key_machine_fails_closed_on_an_unsigned_home(tmp_path, config, new_home, monkeypatch):
    home, _ = new_home(tmp_path / "plain")
    home.conn.close()
    assert verify(home.root).ok
    keys.trust(keys.Key(SECRET, "t").public)
    problems = verify(home.root, finish=False).problems
    assert problems[0].startswith("audit.jsonl:1: not signed, though this machine holds the public keys trusted")
    with pytest.raises(RetainError, match="not signed, though this machine holds"):
        Home.open(home.root)


def test_a_reader_applies_pending_entries_whose_signatures_check_and_refuses_one_that_does_not(
        signed_home, monkeypatch, tmp_path):
    root, key = signed_home
    home_id = json.loads((root / "home.json").read_text())["id"]
    home = Home.open(root)
    seq, sha, size = store.head(home.conn)
    home.conn.close()
    event = {"type": "rolled_back", "version": "v1", "previous": "v2", "reason": "a committed, unapplied write"}
    entries, data = audit.encode([event], seq, sha, size, key, home_id)
    pristine = (root / "audit.jsonl").read_bytes()
    # Forged: the same entry with its reason changed after signing (chain recomputed: it is the last line).
    forged = copy.deepcopy(entries[0].data)
    forged["payload"]["reason"] = "changed after signing"
    (root / "audit.jsonl").write_bytes(pristine + canonical_json(forged) + b"\n")
    elsewhere(monkeypatch, tmp_path)
    keys.trust(key.public)
    with pytest.raises(RetainError, match="Ed25519 signature does not check"):
        Home.open(root)
    conn = store.connect(root / "ledger.sqlite")
    assert store.head(conn)[0] == seq and store.meta(conn, "champion") == "v2"
    conn.close()
    # The genuine entry checks with the public key alone, so a reader applies it (as one with the key would).
    (root / "audit.jsonl").write_bytes(pristine + data)
    opened = Home.open(root)
    assert store.head(opened.conn)[0] == seq + 1 and opened.champion() == "v1"
    opened.conn.close()
    assert verify(root).ok


def test_a_machine_without_the_key_cannot_write_even_when_it_checks(signed_home, monkeypatch, tmp_path):
    root, key = signed_home
    elsewhere(monkeypatch, tmp_path)
    keys.trust(key.public)
    assert verify(root).ok
    before = (root / "audit.jsonl").read_bytes()
    with pytest.raises(RetainError, match=r"the audit log is signed \(key .*\) but no key is set here to sign"):
        with Home.open(root).writing("rollback"):
            pass
    assert (root / "audit.jsonl").read_bytes() == before


def test_an_anchor_is_checked_with_the_public_key(signed_home, monkeypatch, tmp_path):
    root, key = signed_home
    anchor = tmp_path / "head.json"
    record = export_anchor(root, anchor)
    assert "sig" in record and "mac" in record
    elsewhere(monkeypatch, tmp_path)
    keys.trust(key.public)
    assert verify(root, anchor=anchor).ok
    anchor.write_text(anchor.read_text().replace(record["exported_at"], "2000-01-01T00:00:00.000+00:00"))
    assert "the anchor's Ed25519 signature does not check" in verify(root, anchor=anchor).problems[0]


def test_a_stripped_home_at_a_pinned_place_fails(signed_home, monkeypatch, tmp_path, write_log):
    """Stripped of every signature, its id and its public key, the home is found by where it lives."""
    root, _ = signed_home
    elsewhere(monkeypatch, tmp_path)
    assert verify(root, finish=False, no_key=True).ok
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    lines, prev = [], ZERO_SHA
    for e in audit.parse((root / "audit.jsonl").read_bytes())[0]:
        data = {k: v for k, v in e.data.items() if k not in ("mac", "sig", "key", "home")}
        data["payload"].pop("home_id", None)
        data["payload"].pop("public_key", None)
        data["prev_sha256"] = prev
        raw = canonical_json(data)
        prev = sha256_bytes(raw)
        lines.append(raw + b"\n")
    write_log(root, lines)
    (root / "home.json").write_text('{"format": "retain-home/1"}')
    elsewhere(monkeypatch, tmp_path)
    assert "not signed, though this machine holds public key" in verify(root, finish=False).problems[0]
    elsewhere(monkeypatch, tmp_path, "fresh")
    assert verify(root, finish=False).ok
    assert os.environ["XDG_CONFIG_HOME"].endswith("fresh")


def test_an_entry_without_a_signature_after_signed_ones_fails_without_the_key(signed_home, monkeypatch, tmp_path,
                                                                              capsys, write_log):
    """A MAC (made up or replayed) is all a keyless machine cannot check: from the first signed entry on, every
    entry must carry an Ed25519 signature, so one that carries a MAC alone fails there."""
    root, key = signed_home
    home_id = json.loads((root / "home.json").read_text())["id"]
    entries, _ = audit.parse((root / "audit.jsonl").read_bytes())
    data = {"seq": entries[-1].seq + 1, "time": entries[-1].data["time"], "op": entries[-1].seq + 1, "last": True,
            "prev_sha256": entries[-1].sha256, "key": key.id, "home": home_id,
            "payload": {"type": "rolled_back", "version": "v1", "previous": "v2", "reason": "forged"}}
    data["mac"] = "0" * 64
    lines = [(root / "audit.jsonl").read_bytes(), canonical_json(data) + b"\n"]
    write_log(root, lines)
    elsewhere(monkeypatch, tmp_path)
    keys.trust(key.public)
    code, out, _ = run_main(capsys, "verify", str(root), "--no-key")
    assert code == 1 and f"audit.jsonl:{data['seq']}: no Ed25519 signature, though every entry from 1 on has one" \
        in out
    code, out, _ = run_main(capsys, "verify", str(root), "--public-key", key.public.text)
    assert code == 1 and "no Ed25519 signature" in out
    (root / "audit.jsonl").write_bytes(lines[0])
    write_log(root, lines[:1])
    code, out, _ = run_main(capsys, "verify", str(root), "--public-key", key.public.text)
    assert code == 0 and f"Ed25519 signatures checked with public key {key.public.text} (given for this " \
        "command)" in out
