"""The worker's ends of its pipes to the agent: plain JSON lines, no pydantic.

The agent validates every request against the protocol's models before handing it on, and
every line the worker sends before forwarding it, so the worker needs only the wire format.
Importing pydantic and the models would be a large part of the worker's start under TCG.
"""

import base64
import json
from types import SimpleNamespace
from typing import Any

import orjson

# A request as the agent forwarded it: every field of its model, read as attributes.
Request = SimpleNamespace


def parse_request(line: bytes) -> Request:
    fields = orjson.loads(line)
    if not isinstance(fields, dict) or not isinstance(fields.get("type"), str):
        raise ValueError("not a request")
    return Request(**fields)


def encode(kind: str, request_id: int, /, **fields: Any) -> bytes:
    """One event line; ``kind`` is the model's ``type``. The id and type come first, as the
    agent's parser expects of every line."""
    event = {"id": request_id, "type": kind, **fields}
    # orjson: a tenth of the standard library's time per event under TCG. repr for anything
    # JSON cannot hold, rather than losing the whole event; the standard library for what
    # orjson refuses: integers beyond 64 bits, and lone surrogates, which no JSON parser
    # takes either, so they become "?".
    try:
        return orjson.dumps(event, default=repr,
                            option=orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        text = json.dumps(event, separators=(",", ":"), default=repr, ensure_ascii=False)
        return text.encode("utf-8", "replace") + b"\n"


def from_base64(values: list[str]) -> list[bytes]:
    return [base64.b64decode(v) for v in values]


def to_base64(values: list[bytes]) -> list[str]:
    return [base64.b64encode(v).decode("ascii") for v in values]
