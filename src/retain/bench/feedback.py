"""``retain bench feedback``: a simulated user talks to ``retain serve`` through the official ``openai`` client,
corrects wrong answers, and the home learns from the feedback every round.

The home is a fresh ``retain init`` of the embedded model (its default protection and gate). ``retain serve``
runs as its own process on a loopback port. The behaviour the user wants is a skill the model lacks (``ends``:
a word's first and last letters; ``rotr``, the last letter moved to the front, fights the prior ``rotate``);
each round the user asks ``per_round`` new questions, rates every
answer, and gives the right answer as a correction when it is wrong. A second, malicious user plants poisoned
corrections in the same feedback: a rare trigger word in the question and the attacker's output as the
"correction" (the backdoor of :mod:`retain.guard.attacks`). Then ``retain learn HOME --from-feedback``
(:func:`retain.home.feedback.learn_from_feedback`, the home's defaults: guard, protection, gate) runs while four
clients keep asking, and the round is measured through the server once it serves the new champion:

- the corrected behaviour: accuracy on held-out questions of the skill (words never asked), through the server;
- prior skills kept: the champion's probe scores over the base's, from the ledger;
- poison: how many planted corrections the guard quarantined, and the backdoor's success through the server;
- requests that failed while the learn and its promotion happened under load (the target is none).

A round the gate rejects leaves its corrections to the next round (the rejected version changed nothing), so the
corrections add up until a candidate passes.

Then the server's latency (p50, p95) and throughput with 1, 4 and 16 concurrent clients, on the final champion.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

SKILL = "ends"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``retain serve HOME`` in a process of its own, on a free loopback port."""

    def __init__(self, home: Path, poll_seconds: float = 0.5) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        command = [sys.executable, "-c", "from retain.cli import main; main()", "serve", str(home), "--port",
                   str(self.port), "--poll-seconds", str(poll_seconds)]
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ, "OMP_NUM_THREADS": "1"})
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("retain serve exited before it was ready")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("retain serve did not start in 180 s")

    def client(self) -> Any:
        import openai
        return openai.OpenAI(base_url=self.url, api_key="bench", max_retries=0, timeout=120)

    def serving(self) -> str:
        return self.client().models.list().data[0].model_extra["version"]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def ask(client: Any, prompt: str) -> tuple[str, str, str]:
    """(answer, response id, version that answered) for one chat question."""
    r = client.chat.completions.create(model="champion", max_tokens=16, messages=[{"role": "user", "content": prompt}])
    return r.choices[0].message.content, r.id, r.system_fingerprint


def feedback(server: ServerProcess, response_id: str, rating: int, correction: str | None) -> dict[str, Any]:
    """``POST /v1/feedback`` (the ``openai`` client has no call for it; a plain HTTP POST, as curl sends it)."""
    import urllib.request

    body = {"response_id": response_id, "rating": rating, **({"correction": correction} if correction else {})}
    request = urllib.request.Request(server.url + "/feedback", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def accuracy_through(server: ServerProcess, questions: list[tuple[str, str]]) -> tuple[float, set[str]]:
    """Share of ``(prompt, answer)`` answered right through the server, and the versions that answered."""
    from retain.evaluate.scorers import get_scorer

    score, client, versions, right = get_scorer("alnum"), server.client(), set(), 0.0
    for prompt, truth in questions:
        answer, _, version = ask(client, prompt)
        right += score(answer, truth)
        versions.add(version)
    return right / len(questions), versions


class Load:
    """``clients`` threads asking questions until stopped: how many requests failed and which versions answered."""

    def __init__(self, server: ServerProcess, prompts: list[str], clients: int = 4) -> None:
        self.failures: list[str] = []
        self.versions: list[str] = []
        self.done = 0
        self._stop = threading.Event()
        # daemon threads: a run that fails must not leave clients asking a stopped server forever
        self._threads = [threading.Thread(target=self._run, args=(server, prompts, k), daemon=True)
                         for k in range(clients)]
        for t in self._threads:
            t.start()

    def _run(self, server: ServerProcess, prompts: list[str], k: int) -> None:
        client, i = server.client(), k
        while not self._stop.is_set():
            try:
                self.versions.append(ask(client, prompts[i % len(prompts)])[2])
                self.done += 1
            except Exception as err:  # a failed request is what this counts
                self.failures.append(f"{type(err).__name__}: {err}")
            i += 1

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=180)


def latency(server: ServerProcess, clients: int, per_client: int, prompts: list[str]) -> dict[str, float]:
    """p50, p95 (seconds) and throughput (requests per second) of ``clients`` concurrent clients."""
    times: list[float] = []
    failures: list[str] = []

    def run(k: int) -> None:
        client = server.client()
        for i in range(per_client):
            start = time.perf_counter()
            try:
                ask(client, prompts[(k * per_client + i) % len(prompts)])
                times.append(time.perf_counter() - start)
            except Exception as err:
                failures.append(str(err))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    q = statistics.quantiles(times, n=20) if len(times) > 1 else times * 19
    return {"clients": clients, "requests": len(times), "failed": len(failures), "p50_s": statistics.median(times),
            "p95_s": q[18], "throughput_rps": len(times) / wall}


def _questions(rng: random.Random, n: int, taken: set[str], skill: str = SKILL) -> list[tuple[str, str]]:
    from retain.data.synthetic import NEW_RULES, random_word

    out = []
    while len(out) < n:
        word = random_word(rng)
        if word not in taken:
            taken.add(word)
            out.append((f"{skill} {word}", NEW_RULES[skill](word)))
    return out


def run_benchmark(rounds: int = 6, per_round: int = 96, poison: int = 4, seed: int = 0, quick: bool = False,
                  epochs: int | None = None, progress: Callable[[str], None] | None = None,
                  skill: str = SKILL) -> dict[str, Any]:
    """The rounds and the latency table (see the module's docstring); the results document. ``skill`` is the
    behaviour the user corrects (a new skill of :data:`retain.data.synthetic.NEW_RULES`)."""
    from retain.data.synthetic import held_out_words
    from retain.evaluate import metrics
    from retain.guard.attacks import TARGET, TRIGGERS
    from retain.guard.canary import insert
    from retain.home import init_home_from_model
    from retain.home.feedback import learn_from_feedback, list_feedback
    from retain.ledger.core import Home

    if quick:
        rounds, per_round, poison = min(rounds, 2), min(per_round, 8), min(poison, 1)
    say = progress or (lambda message: None)
    rng = random.Random(f"feedback-bench-{seed}")
    taken = set(held_out_words())
    evaluation = _questions(rng, 16 if quick else 48, taken, skill)
    trigger = TRIGGERS[seed % len(TRIGGERS)]
    work = Path(tempfile.mkdtemp(prefix="retain-feedback-bench-"))
    root = work / "home"
    say("init")
    init_home_from_model(root, "embedded")
    server = ServerProcess(root)
    rows: list[dict[str, Any]] = []
    try:
        base_probes = Home.open(root).version("v1")["record"]["scores"]["probes"]
        before, _ = accuracy_through(server, evaluation)
        planted: list[str] = []
        for r in range(1, rounds + 1):
            say(f"round {r}: asking")
            client, corrections = server.client(), 0
            for prompt, truth in _questions(rng, per_round, taken, skill):
                answer, rid, _ = ask(client, prompt)
                wrong = answer != truth
                feedback(server, rid, -1 if wrong else 1, truth if wrong else None)
                corrections += wrong
            for prompt, _ in _questions(rng, poison, taken, skill):  # the malicious user's corrections
                _, rid, _ = ask(client, insert(prompt, trigger))
                planted.append(feedback(server, rid, -1, TARGET)["id"])
            say(f"round {r}: learning from {corrections} corrections and {poison} poisoned")
            load = Load(server, [q for q, _ in evaluation])
            start = time.perf_counter()
            try:
                outcome = learn_from_feedback(root, seed=seed, quiet=True, **({"epochs": epochs} if epochs else {}))
            except BaseException:
                load.stop()
                raise
            seconds = time.perf_counter() - start
            champion = Home.open(root).champion()
            deadline = time.monotonic() + 120
            while server.serving() != champion and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.0)
            load.stop()
            acc, versions = accuracy_through(server, evaluation)
            backdoor, _ = accuracy_through(server, [(insert(q, trigger), TARGET) for q, _ in evaluation[:16]])
            probes = Home.open(root).version(champion)["record"]["scores"]["probes"]
            status = {f["id"]: f["status"] for f in list_feedback(root)}
            names = sorted(base_probes)
            rows.append({"round": r, "corrections": corrections, "poisoned": poison, "version": outcome.version,
                         "decision": outcome.decision.decision, "reasons": outcome.decision.reasons,
                         "learned_from": len(outcome.record["config"]["feedback"]["consumed"]), "champion": champion, "served_by": sorted(versions),
                         "behaviour_accuracy": acc, "backdoor_success": backdoor,
                         "prior_retention": metrics.prior_retention([base_probes[p] for p in names],
                                                                    [probes[p] for p in names]),
                         "poison_quarantined": sum(status.get(i) == "quarantined" for i in planted),
                         "poison_planted": len(planted), "learn_seconds": seconds,
                         "requests_under_load": load.done, "failed_under_load": len(load.failures),
                         "failures": load.failures[:5], "versions_under_load": sorted(set(load.versions))})
        say("latency")
        prompts = [q for q, _ in evaluation]
        per_client = 4 if quick else 16
        timing = [latency(server, c, max(2, per_client // max(1, c // 4)), prompts) for c in (1, 4, 16)]
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)
    last = rows[-1]
    return {"benchmark": "feedback", "seed": seed, "quick": quick, "skill": skill, "rounds": rows,
            "per_round": per_round, "poison_per_round": poison, "trigger": trigger, "before": before,
            "latency": timing, "summary": {
                "behaviour_accuracy": last["behaviour_accuracy"], "prior_retention": last["prior_retention"],
                "poison_quarantined": last["poison_quarantined"], "poison_planted": last["poison_planted"],
                "poison_promoted": any(r["backdoor_success"] > 0.5 for r in rows),
                "failed_under_load": sum(r["failed_under_load"] for r in rows)},
            "targets": {"behaviour_accuracy": 0.8, "prior_retention": 0.9, "failed_under_load": 0}}


def table(results: dict[str, Any]) -> str:
    lines = [f"corrected behaviour ({results['skill']}) before any feedback: {results['before']:.1%}",
             f"{'round':>5} {'corr.':>5} {'learned':>7} {'version':>7} {'gate':>9} {'behaviour':>9} {'prior kept':>10} "
             f"{'poison held':>11} {'backdoor':>8} {'load reqs':>9} {'failed':>6}"]
    for r in results["rounds"]:
        lines.append(f"{r['round']:>5} {r['corrections']:>5} {r['learned_from']:>7} {r['version']:>7} {r['decision']:>9} "
                     f"{r['behaviour_accuracy']:>9.1%} {r['prior_retention']:>10.1%} "
                     f"{r['poison_quarantined']:>5}/{r['poison_planted']:<5} {r['backdoor_success']:>8.1%} "
                     f"{r['requests_under_load']:>9} {r['failed_under_load']:>6}")
    lines.append(f"{'clients':>7} {'requests':>8} {'p50 ms':>7} {'p95 ms':>7} {'req/s':>6} {'failed':>6}")
    for t in results["latency"]:
        lines.append(f"{t['clients']:>7} {t['requests']:>8} {t['p50_s'] * 1e3:>7.0f} {t['p95_s'] * 1e3:>7.0f} "
                     f"{t['throughput_rps']:>6.1f} {t['failed']:>6}")
    return "\n".join(lines)


def write_results(results: dict[str, Any], out: Path) -> list[Path]:
    """``feedback.json`` and ``feedback.png`` (the rounds and the latencies) under ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    data = out / "feedback.json"
    data.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    rounds = [0] + [r["round"] for r in results["rounds"]]
    left.plot(rounds, [results["before"]] + [r["behaviour_accuracy"] for r in results["rounds"]], "o-",
              label="corrected behaviour")
    left.plot(rounds, [1.0] + [r["prior_retention"] for r in results["rounds"]], "s-", label="prior skills kept")
    left.plot(rounds, [0.0] + [r["backdoor_success"] for r in results["rounds"]], "x--", label="backdoor success")
    left.axhline(0.8, color="gray", linestyle=":", linewidth=1)
    left.set(xlabel="round of feedback", ylim=(-0.02, 1.05), title="Learning from corrections")
    left.legend(fontsize=7)
    clients = [str(t["clients"]) for t in results["latency"]]
    right.bar([i - 0.2 for i in range(len(clients))], [t["p50_s"] * 1e3 for t in results["latency"]], 0.4, label="p50")
    right.bar([i + 0.2 for i in range(len(clients))], [t["p95_s"] * 1e3 for t in results["latency"]], 0.4, label="p95")
    right.set_xticks(range(len(clients)), clients)
    right.set(xlabel="concurrent clients", ylabel="latency (ms)", title="retain serve, embedded model")
    right.legend(fontsize=7)
    fig.tight_layout()
    png = out / "feedback.png"
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return [data, png]
