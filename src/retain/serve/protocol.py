"""The OpenAI chat and completions request bodies the server accepts, checked field by field.

Anything else is an :class:`ApiError` that becomes an HTTP error with an OpenAI-style body
(``{"error": {"message", "type", "param", "code"}}``, the shape the ``openai`` client parses): malformed JSON,
an unknown field, a wrong type, a value out of range, a prompt too long for the model. Sampling defaults to
greedy (``temperature`` 0) so that an answer a user corrects is the answer the model gives.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "developer", "user", "assistant")
COMMON = {"model", "max_tokens", "temperature", "top_p", "n", "stream", "stream_options", "stop", "seed", "user"}
CHAT_FIELDS = COMMON | {"messages", "max_completion_tokens"}
COMPLETION_FIELDS = COMMON | {"prompt"}
FEEDBACK_FIELDS = {"response_id", "rating", "correction"}


class ApiError(Exception):
    """An error answered with ``status`` and an OpenAI-style body."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class Limits:
    """What one request may ask: body size, generated tokens, messages, stop strings."""

    max_body_bytes: int = 1 << 20
    max_tokens: int = 256
    default_max_tokens: int = 64
    max_messages: int = 64
    max_stop: int = 4


@dataclass
class GenerationRequest:
    """A checked request: the chat messages (or raw prompt), how much to generate and how."""

    kind: str  # "chat" or "completion"
    model: str | None
    messages: list[dict[str, str]] = field(default_factory=list)
    prompt: str = ""
    max_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    stream: bool = False
    include_usage: bool = False
    stop: list[str] = field(default_factory=list)
    seed: int | None = None

    @property
    def sampling(self) -> tuple[float, float]:
        return (self.temperature, self.top_p) if self.temperature > 0 else (0.0, 1.0)


def parse_json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as err:
        raise ApiError(400, f"We could not parse the JSON body of your request ({err})", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object", code="invalid_json")
    return body


def _unknown(body: dict[str, Any], known: set[str]) -> None:
    for name in sorted(body):
        if name not in known:
            raise ApiError(400, f"Unrecognized request argument supplied: {name}", param=name,
                           code="unknown_parameter")


def _number(body: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ApiError(400, f"{name} must be a number from {low:g} to {high:g}, got {value!r}", param=name,
                       code="invalid_value")
    return float(value)


def _whole(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(400, f"{name} must be a whole number from {low} to {high}, got {value!r}", param=name,
                       code="invalid_value")
    return value


def _text(value: Any, param: str) -> str:
    """A message's content: a string, or a list of ``{"type": "text", "text": ...}`` parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
                                       and set(p) <= {"type", "text"} for p in value):
        return "".join(p["text"] for p in value)
    raise ApiError(400, f"{param} must be a string or a list of text parts", param=param, code="invalid_type")


def _messages(value: Any, limits: Limits) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise ApiError(400, "messages must be a non-empty list", param="messages", code="invalid_type")
    if len(value) > limits.max_messages:
        raise ApiError(400, f"at most {limits.max_messages} messages, got {len(value)}", param="messages",
                       code="invalid_value")
    out = []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise ApiError(400, f"{where} must be an object", param=where, code="invalid_type")
        _unknown(message, {"role", "content", "name"})
        role = message.get("role")
        if role not in ROLES:
            raise ApiError(400, f"{where}.role must be one of {', '.join(ROLES)}, got {role!r}",
                           param=f"{where}.role", code="invalid_value")
        # the chat template knows system, user and assistant; a developer message is the newer name of system
        out.append({"role": "system" if role == "developer" else role,
                    "content": _text(message.get("content"), f"{where}.content")})
    if out[-1]["role"] != "user":
        raise ApiError(400, "the last message must be a user message", param=f"messages[{len(out) - 1}].role",
                       code="invalid_value")
    return out


def parse_generation(raw: bytes, kind: str, limits: Limits) -> GenerationRequest:
    """A checked chat (``kind="chat"``) or completions request, or an :class:`ApiError`."""
    body = parse_json(raw)
    _unknown(body, CHAT_FIELDS if kind == "chat" else COMPLETION_FIELDS)
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise ApiError(400, "model must be a string", param="model", code="invalid_type")
    request = GenerationRequest(kind=kind, model=model)
    if kind == "chat":
        request.messages = _messages(body.get("messages"), limits)
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str) or not prompt:
            raise ApiError(400, "prompt must be a non-empty string", param="prompt", code="invalid_type")
        request.prompt = prompt
    asked = [_whole(body, name, 1, limits.max_tokens) for name in ("max_tokens", "max_completion_tokens")]
    request.max_tokens = next((a for a in asked if a is not None), limits.default_max_tokens)
    request.temperature = _number(body, "temperature", 0.0, 0.0, 2.0)
    request.top_p = _number(body, "top_p", 1.0, 0.0, 1.0) or 1.0
    _whole(body, "n", 1, 1)  # one choice per request
    request.seed = _whole(body, "seed", 0, 2**63 - 1)
    for name in ("stream",):
        if body.get(name) is not None and not isinstance(body[name], bool):
            raise ApiError(400, f"{name} must be true or false", param=name, code="invalid_type")
    request.stream = bool(body.get("stream"))
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict) or set(options) - {"include_usage"} \
                or not isinstance(options.get("include_usage", False), bool):
            raise ApiError(400, "stream_options must be {\"include_usage\": true|false}", param="stream_options",
                           code="invalid_value")
        request.include_usage = options.get("include_usage", False)
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop if stop is not None else []
    if not isinstance(stops, list) or len(stops) > limits.max_stop or not all(isinstance(s, str) and s for s in stops):
        raise ApiError(400, f"stop must be a string or a list of at most {limits.max_stop} non-empty strings",
                       param="stop", code="invalid_value")
    request.stop = stops
    if body.get("user") is not None and not isinstance(body["user"], str):
        raise ApiError(400, "user must be a string", param="user", code="invalid_type")
    return request


def parse_feedback(raw: bytes) -> dict[str, Any]:
    """A checked feedback body: ``response_id``, ``rating`` (-1, 0, 1), optional ``correction``."""
    body = parse_json(raw)
    _unknown(body, FEEDBACK_FIELDS)
    if not isinstance(body.get("response_id"), str) or not body["response_id"]:
        raise ApiError(400, "response_id must be the id of a response this server gave", param="response_id",
                       code="invalid_value")
    return body


def cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    """``text`` up to the first stop string, and whether one was found."""
    cuts = [text.find(s) for s in stops if s in text]
    return (text[:min(cuts)], True) if cuts else (text, False)
