"""IOPub messages that guest code published itself, read as the guest's own events.

A library in the guest may call ``kernel.session.send(kernel.iopub_socket, msg_type, content)``
as it would under ipykernel. Its content is untrusted: it is read field by field into the event
model of that type, which checks it as it checks every event, and only the fields the message
type has are kept. The bridge then builds the message as for any other event.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from sandbox_kernel import protocol as p

JSONDict = dict[str, Any]


def as_event(published: p.Published) -> p.Event | None:
    """The event that ``published`` stands for, or None when its content is not what a
    message of its type holds."""
    try:
        return _build(published)
    except (ValidationError, TypeError):
        return None


def _build(published: p.Published) -> p.Event:
    kind, content = published.msg_type, published.content
    model, names = _FIELDS[kind]
    fields = {name: content[name] for name in names if name in content}
    if kind == "update_display_data":
        fields["update"] = True
    elif kind.startswith("comm_"):
        fields.update(kind=kind, metadata=published.metadata, buffers=published.buffers)
    return model.model_validate({**fields, "id": published.id})  # type: ignore[return-value]


# Each message type's event, and the content fields it takes from the message.
_DISPLAY = ("data", "metadata", "transient")
_COMM = ("comm_id", "target_name", "target_module", "data")
_FIELDS: dict[str, tuple[type[p.Message], tuple[str, ...]]] = {
    "stream": (p.OutputChunk, ("name", "text")),
    "display_data": (p.DisplayData, _DISPLAY),
    "update_display_data": (p.DisplayData, _DISPLAY),
    "execute_result": (p.ExecuteResult, ("execution_count", "data", "metadata")),
    "error": (p.ErrorOutput, ("ename", "evalue", "traceback")),
    "clear_output": (p.ClearOutput, ("wait",)),
    "comm_open": (p.CommEvent, _COMM),
    "comm_msg": (p.CommEvent, _COMM),
    "comm_close": (p.CommEvent, _COMM),
}
