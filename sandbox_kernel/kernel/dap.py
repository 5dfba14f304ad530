"""What the host takes of the Debug Adapter Protocol from the guest: checked, bounded messages.

debugpy's adapter runs in the VM, where the cell's code can talk to it or write to the pipe
it answers on; so every DAP message from the guest is untrusted. A response must answer a
request the host sent; an event must be one debugpy sends, with a body that is an object;
both are bounded in size, and events in rate.
"""

from __future__ import annotations

import json
import time
from typing import Any

JSONDict = dict[str, Any]

MAX_RESPONSE_BYTES = 8 * 2**20
MAX_EVENT_BYTES = 256 * 2**10
# Events per second a guest may send on average, and in a burst: stepping sends a few per
# step, a cell that prints under the debugger one per write.
EVENT_RATE = 200.0
EVENT_BURST = 1000.0
# What debugpy's adapter sends; anything else is dropped.
EVENTS = frozenset({
    "initialized", "stopped", "continued", "exited", "terminated", "thread", "output",
    "breakpoint", "module", "loadedSource", "process", "capabilities", "progressStart",
    "progressUpdate", "progressEnd", "invalidated", "memory", "debugpyWaitingForServer",
    "debugpySockets",
})


class BadMessage(ValueError):
    pass


def size_of(message: JSONDict) -> int:
    return len(json.dumps(message, separators=(",", ":"), ensure_ascii=False))


def response(message: Any) -> JSONDict:
    """A response as the frontend will get it, or ``BadMessage``."""
    if not isinstance(message, dict) or message.get("type") != "response":
        raise BadMessage("not a response")
    if not isinstance(message.get("request_seq"), int) or not isinstance(
            message.get("command"), str) or not isinstance(message.get("success"), bool):
        raise BadMessage("a response needs request_seq, command and success")
    body = message.get("body", {})
    if not isinstance(body, dict):
        raise BadMessage("a response's body must be an object")
    if size_of(message) > MAX_RESPONSE_BYTES:
        raise BadMessage("a response over the size limit")
    checked: JSONDict = {"seq": _int(message.get("seq")), "type": "response",
                         "request_seq": message["request_seq"], "success": message["success"],
                         "command": message["command"], "body": body}
    if isinstance(message.get("message"), str):
        checked["message"] = message["message"][:4096]
    return checked


def event(message: Any) -> JSONDict:
    """An event as the frontend will get it, or ``BadMessage``."""
    if not isinstance(message, dict) or message.get("type") != "event":
        raise BadMessage("not an event")
    name = message.get("event")
    if name not in EVENTS:
        raise BadMessage(f"not an event debugpy sends: {str(name)[:80]!r}")
    body = message.get("body", {})
    if not isinstance(body, dict):
        raise BadMessage("an event's body must be an object")
    if size_of(message) > MAX_EVENT_BYTES:
        raise BadMessage("an event over the size limit")
    return {"seq": _int(message.get("seq")), "type": "event", "event": name, "body": body}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class EventBudget:
    """A token bucket: a guest that floods events loses the excess, not the host its time."""

    def __init__(self, rate: float = EVENT_RATE, burst: float = EVENT_BURST) -> None:
        self._rate = rate
        self._burst = burst
        self._tokens = burst
        self._at = time.monotonic()
        self.dropped = 0

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.dropped += 1
        return False


def failure(request: JSONDict, why: str) -> JSONDict:
    """A response that says the request failed, and why."""
    return {"seq": 0, "type": "response", "request_seq": _int(request.get("seq")),
            "success": False, "command": str(request.get("command", "")), "message": why,
            "body": {}}


def success(request: JSONDict, body: JSONDict | None = None) -> JSONDict:
    return {"seq": 0, "type": "response", "request_seq": _int(request.get("seq")),
            "success": True, "command": str(request.get("command", "")), "body": body or {}}
