"""The model side of the server: which champion answers, and batched generation.

:class:`Champion` holds the served model. A watcher thread reads the home's champion from its database every
``poll_seconds`` (one indexed read); when a learn promotes a new champion or a rollback restores an old one, the
new version is materialised and loaded beside the old one, then swapped in with one reference assignment. A
request takes the reference once, when it starts, and keeps it to the end, so requests in flight finish on the
model they started with and every answer comes from exactly one version.

:class:`Batcher` is the one thread that generates. Requests that arrive while it is busy (or within
``wait_seconds`` of each other) are generated together, one left-padded batch per (model, sampling) group.
"""

from __future__ import annotations

import queue
import sqlite3
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from retain.serve.protocol import ApiError, GenerationRequest


@dataclass(frozen=True)
class Served:
    """One loaded version of the home."""

    version: str
    adapter: Any  # retain.models.causal_lm.CausalLMAdapter


def champion_name(root: Path) -> str:
    """The home's champion as its database says now (read-only, no lock)."""
    conn = sqlite3.connect(f"file:{(root / 'ledger.sqlite').absolute()}?mode=ro", uri=True, timeout=10)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='champion'").fetchone()
    finally:
        conn.close()
    if not row:
        raise RuntimeError(f"{root}: the home has no champion")
    return row[0]


def load_version(root: Path, version: str) -> Served:
    """Materialise ``version`` of the home (adapters merged) and load it for generation."""
    from retain import api
    from retain.home.versions import materialize
    from retain.ledger.core import Home
    from retain.models.merge import quiet_hf

    with tempfile.TemporaryDirectory(prefix="retain-serve-") as tmp:
        folder = materialize(Home.open(root), version, Path(tmp) / "model")
        with quiet_hf():
            adapter = api.load_model(str(folder))
    adapter.model.eval()
    return Served(version, adapter)


class Champion:
    """The served champion of the home at ``root``, swapped atomically when the home's champion changes."""

    def __init__(self, root: Path, poll_seconds: float = 1.0, quiet: bool = True) -> None:
        self.root = Path(root)
        self.poll_seconds = poll_seconds
        self.console = Console(stderr=True, quiet=quiet)
        self._current = load_version(self.root, champion_name(self.root))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.swaps = 0

    def current(self) -> Served:
        return self._current

    def refresh(self) -> bool:
        """Load and swap in the home's champion if it changed; whether it did."""
        name = champion_name(self.root)
        if name == self._current.version:
            return False
        served = load_version(self.root, name)
        previous, self._current = self._current, served  # the swap: one reference, requests keep theirs
        self.swaps += 1
        self.console.print(f"serving {name} (was {previous.version})")
        return True

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception as err:  # a half-written home or a failed load: keep serving, try again
                self.console.print(f"champion check failed, still serving {self._current.version}: {err}")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="retain-champion", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


@dataclass
class Job:
    served: Served
    prompt: list[int]
    request: GenerationRequest
    result: Future


@dataclass(frozen=True)
class Generated:
    """What one request got: its completion's token ids (without the EOS), whether it stopped at EOS, the text
    they decode to and its pieces token by token (what a stream sends), the version that answered."""

    tokens: list[int]
    stopped: bool
    version: str
    batch_size: int
    prompt_tokens: int
    text: str
    steps: tuple[str, ...]

    def pieces(self, limit: int) -> list[str]:
        """The stream's text pieces, cut to the first ``limit`` characters (a stop string ends the answer)."""
        out, used = [], 0
        for piece in self.steps:
            piece = piece[:max(0, limit - used)]
            used += len(piece)
            if piece:
                out.append(piece)
        return out


def decoded_steps(adapter: Any, tokens: list[int]) -> tuple[str, tuple[str, ...]]:
    """The text of ``tokens`` and the piece each token adds to it (a token may add nothing on its own)."""
    steps, before = [], ""
    for k in range(1, len(tokens) + 1):
        now = adapter.decode(tokens[:k])
        steps.append(now[len(before):] if now.startswith(before) else now)
        before = now
    text = adapter.decode(tokens)
    return text, tuple(steps)


def prompt_ids(adapter: Any, request: GenerationRequest) -> list[int]:
    """The request's prompt as the model sees it (chat: through its chat template), checked against the
    positions the answer needs."""
    if request.kind == "chat":
        context = tuple((m["role"], m["content"]) for m in request.messages[:-1])
        ids = adapter.prompt_ids(request.messages[-1]["content"], context)
    else:
        ids = adapter.tokenizer(request.prompt, add_special_tokens=True)["input_ids"]
    limit = adapter.positions - request.max_tokens if adapter.positions else None
    if limit is not None and len(ids) > limit:
        raise ApiError(400, f"This model's maximum context length is {adapter.positions} tokens; your prompt is "
                            f"{len(ids)} tokens and asks for {request.max_tokens} more", param="messages",
                       code="context_length_exceeded")
    return list(ids)


class Batcher:
    """One generating thread; requests waiting together are generated as one batch (at most ``max_batch``)."""

    def __init__(self, max_batch: int = 16, wait_seconds: float = 0.005) -> None:
        self.max_batch, self.wait_seconds = max_batch, wait_seconds
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.batch_sizes: deque[int] = deque(maxlen=10_000)

    def submit(self, served: Served, prompt: list[int], request: GenerationRequest) -> Future:
        job = Job(served, prompt, request, Future())
        self._queue.put(job)
        return job.result

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="retain-batcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _take(self) -> list[Job] | None:
        first = self._queue.get()
        if first is None:
            return None
        jobs, deadline = [first], time.monotonic() + self.wait_seconds
        while len(jobs) < self.max_batch:
            try:
                job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)
                break
            jobs.append(job)
        return jobs

    def _run(self) -> None:
        while (jobs := self._take()) is not None:
            groups: dict[tuple[int, Any, Any], list[Job]] = {}
            for job in jobs:
                key = (id(job.served), job.request.sampling, job.request.seed)
                groups.setdefault(key, []).append(job)
            for group in groups.values():
                self._generate(group)

    def _generate(self, group: list[Job]) -> None:
        import torch

        served, request = group[0].served, group[0].request
        temperature, top_p = request.sampling
        try:
            if request.seed is not None:
                torch.manual_seed(request.seed)
            outs = served.adapter.generate([j.prompt for j in group],
                                           max_new_tokens=max(j.request.max_tokens for j in group),
                                           do_sample=temperature > 0, temperature=temperature or 1.0, top_p=top_p)
        except Exception as err:  # reported to each request of the batch; the thread keeps serving
            for job in group:
                job.result.set_exception(err)
            return
        self.batch_sizes.append(len(group))
        eos = set(served.adapter.eos_ids)
        for job, out in zip(group, outs):
            head = out[:job.request.max_tokens]  # what this request alone would have generated
            stop = next((i for i, t in enumerate(head) if t in eos), None)
            tokens = head if stop is None else head[:stop]
            text, steps = decoded_steps(served.adapter, tokens)
            job.result.set_result(Generated(tokens, stop is not None, served.version, len(group), len(job.prompt),
                                            text, steps))
