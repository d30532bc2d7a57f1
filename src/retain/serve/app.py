"""The ASGI app of ``retain serve``: an OpenAI-compatible API on a home's champion, and feedback on its answers.

Routes: ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions`` (both with server-sent
events when ``stream`` is true: ``chat.completion.chunk`` / ``text_completion`` chunks, then ``data: [DONE]``)
and ``POST /v1/feedback``. Every answer's id is kept in the home's served store (:mod:`retain.home.feedback`) so
feedback can name it; its ``system_fingerprint`` (and the ``x-retain-version`` header) is the version that
answered. With API keys, every route needs ``Authorization: Bearer KEY``; a key written ``NAME:SECRET`` names
who gave the feedback sent with it. Bad input of any kind is an HTTP error with an OpenAI-style body; the
server itself never stops for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from retain.errors import RetainError
from retain.home.feedback import KEEP_DAYS, ServedStore, commit_feedback, feedback_body, flush_pending
from retain.serve.engine import Batcher, Champion, Generated, prompt_ids
from retain.serve.protocol import ApiError, GenerationRequest, Limits, cut_at_stop, parse_feedback, parse_generation


def parse_keys(values: list[str]) -> dict[str, str | None]:
    """``SECRET`` or ``NAME:SECRET`` values -> {secret: name or None}."""
    keys: dict[str, str | None] = {}
    for value in values:
        name, sep, secret = value.partition(":")
        secret, name = (secret, name) if sep else (value, "")
        if not secret.strip():
            raise RetainError("an API key must not be empty", field="--api-key")
        keys[secret] = name or None
    return keys


def _error(err: ApiError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status)


class Server:
    """The state behind the routes: the champion, the batcher, the served store, the keys and limits."""

    def __init__(self, home: Path, *, keys: dict[str, str | None] | None = None, limits: Limits = Limits(),
                 poll_seconds: float = 1.0, max_batch: int = 16, model_name: str | None = None,
                 quiet: bool = True, keep_served_days: float | None = KEEP_DAYS) -> None:
        self.home = Path(home)
        self.keys = keys or {}
        self.limits = limits
        self.model_name = model_name or self.home.resolve().name
        self.champion = Champion(self.home, poll_seconds, quiet=quiet)
        self.batcher = Batcher(max_batch=max_batch)
        self.served = ServedStore.of(self.home, keep_served_days)
        self.keep_served_days = keep_served_days
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        self.batcher.start()
        self.champion.start()
        self._flusher = threading.Thread(target=self._flush, name="retain-feedback", daemon=True)
        self._flusher.start()

    def stop(self) -> None:
        self._stop.set()
        self.champion.stop()
        self.batcher.stop()

    def _flush(self) -> None:
        while not self._stop.wait(2.0):
            with contextlib.suppress(Exception):
                flush_pending(self.home)

    # -- request plumbing ----------------------------------------------------------------------------
    def user(self, request: Request) -> str | None:
        """Who the bearer token names (``None`` without keys or for an unnamed key); 401 for a wrong token."""
        if not self.keys:
            return None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        for secret, name in self.keys.items():
            if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), secret.encode()):
                return name
        raise ApiError(401, "Incorrect API key provided: send Authorization: Bearer KEY", code="invalid_api_key")

    async def body(self, request: Request) -> bytes:
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > self.limits.max_body_bytes):
            raise ApiError(413, f"The request body is over the limit of {self.limits.max_body_bytes} bytes",
                           code="request_too_large")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > self.limits.max_body_bytes:
                raise ApiError(413, f"The request body is over the limit of {self.limits.max_body_bytes} bytes",
                               code="request_too_large")
        return raw

    def check_model(self, name: str | None) -> None:
        if name not in (None, self.model_name, "champion"):
            raise ApiError(404, f"The model {name!r} does not exist: this server serves {self.model_name!r}",
                           param="model", code="model_not_found")

    async def generate(self, request: GenerationRequest) -> Generated:
        served = self.champion.current()  # held by this request to its end: the swap cannot change it
        prompt = prompt_ids(served.adapter, request)
        return await asyncio.wrap_future(self.batcher.submit(served, prompt, request))

    # -- routes --------------------------------------------------------------------------------------
    async def models(self, request: Request) -> Response:
        self.user(request)
        return JSONResponse({"object": "list", "data": [
            {"id": self.model_name, "object": "model", "created": 0, "owned_by": "retain",
             "version": self.champion.current().version}]})

    async def completions(self, request: Request, kind: str) -> Response:
        self.user(request)
        parsed = parse_generation(await self.body(request), kind, self.limits)
        self.check_model(parsed.model)
        out = await self.generate(parsed)
        text, cut = cut_at_stop(out.text, parsed.stop)
        finish = "stop" if out.stopped or cut else "length"
        rid = ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex
        record = {"response_id": rid, "version": out.version, "kind": kind, "answer": text,
                  **({"messages": parsed.messages} if kind == "chat" else {"prompt": parsed.prompt})}
        await run_in_threadpool(self.served.put, record)
        headers = {"x-retain-version": out.version}
        usage = {"prompt_tokens": out.prompt_tokens, "completion_tokens": len(out.tokens),
                 "total_tokens": out.prompt_tokens + len(out.tokens)}
        created = int(time.time())
        head = {"id": rid, "created": created, "model": self.model_name, "system_fingerprint": out.version}
        if parsed.stream:
            return StreamingResponse(self._events(head, kind, out, text, finish, usage if parsed.include_usage
                                                  else None), media_type="text/event-stream", headers=headers)
        if kind == "chat":
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish,
                      "logprobs": None}
            return JSONResponse({**head, "object": "chat.completion", "choices": [choice], "usage": usage},
                                headers=headers)
        choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
        return JSONResponse({**head, "object": "text_completion", "choices": [choice], "usage": usage},
                            headers=headers)

    async def _events(self, head: dict[str, Any], kind: str, out: Generated, text: str, finish: str,
                      usage: dict[str, int] | None) -> AsyncIterator[bytes]:
        """The answer as server-sent events: one chunk per piece of text the tokens decode to."""
        def event(delta: dict[str, Any] | str | None, reason: str | None, extra: dict[str, Any] | None = None) -> bytes:
            if kind == "chat":
                choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": reason,
                                                     "logprobs": None}]
                chunk = {**head, "object": "chat.completion.chunk", "choices": choices}
            else:
                choices = [] if delta is None else [{"index": 0, "text": delta, "finish_reason": reason,
                                                     "logprobs": None}]
                chunk = {**head, "object": "text_completion", "choices": choices}
            return b"data: " + json.dumps({**chunk, **(extra or {})}).encode() + b"\n\n"

        if kind == "chat":
            yield event({"role": "assistant", "content": ""}, None)
        for piece in out.pieces(len(text)):
            yield event({"content": piece} if kind == "chat" else piece, None)
        yield event({} if kind == "chat" else "", finish)
        if usage is not None:
            yield event(None, None, {"usage": usage})
        yield b"data: [DONE]\n\n"

    async def feedback(self, request: Request) -> Response:
        user = self.user(request)
        body = parse_feedback(await self.body(request))
        conversation = await run_in_threadpool(self.served.get, body["response_id"])
        if conversation is None:
            kept = f" in the last {self.keep_served_days:g} days" if self.keep_served_days is not None else ""
            raise ApiError(404, f"No response of this server{kept} has the id {body['response_id']!r}",
                           param="response_id", code="response_not_found")
        try:
            event = feedback_body(conversation, body.get("rating"), body.get("correction"), user)
        except RetainError as err:
            raise ApiError(400, f"{err.field}: {err.message}" if err.field else err.message, param=err.field,
                           code="invalid_value") from None
        try:
            await run_in_threadpool(commit_feedback, self.home, [event], 0.5)
            status = "recorded"
        except RetainError:  # the home is busy (a learn holds its lock): committed when it is free
            await run_in_threadpool(self.served.hold, event)
            status = "pending"
        return JSONResponse({"id": event["id"], "object": "feedback", "status": status,
                             "response_id": body["response_id"], "served_by": conversation["version"]})


def create_app(server: Server) -> Starlette:
    """The Starlette app over ``server`` (started and stopped with the app's lifespan)."""

    def guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as err:
                return _error(err)
            except Exception as err:  # never let one request take the server down
                return _error(ApiError(500, f"The server failed on this request: {type(err).__name__}: {err}",
                                       kind="server_error", code="internal_error"))
        return endpoint

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        message = {404: f"Unknown route {request.url.path}", 405: f"Method {request.method} not allowed here"}
        return _error(ApiError(status, message.get(status, str(getattr(exc, "detail", exc))),
                               code="not_found" if status == 404 else None))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        server.start()
        try:
            yield
        finally:
            server.stop()

    routes = [
        Route("/v1/models", guarded(server.models), methods=["GET"]),
        Route("/v1/chat/completions", guarded(lambda r: server.completions(r, "chat")), methods=["POST"]),
        Route("/v1/completions", guarded(lambda r: server.completions(r, "completion")), methods=["POST"]),
        Route("/v1/feedback", guarded(server.feedback), methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})
