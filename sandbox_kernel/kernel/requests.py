"""What a Jupyter request's content must hold before it is handled. ipykernel answers a
request it cannot read with nothing at all (it logs, and the frontend waits for ever); the
sandbox kernel answers every one, with an error when its content is wrong."""

from typing import Any

Fields = dict[str, tuple[tuple[type, ...], bool]]  # name -> (accepted types, required)

_STR, _BOOL, _INT = (str,), (bool,), (int,)
_OPT_INT = (int, type(None))
_OPT_STR = (str, type(None))

CONTENTS: dict[str, Fields] = {
    "execute_request": {"code": (_STR, True), "silent": (_BOOL, False),
                        "store_history": (_BOOL, False), "user_expressions": ((dict,), False),
                        "allow_stdin": (_BOOL, False), "stop_on_error": (_BOOL, False)},
    "complete_request": {"code": (_STR, True), "cursor_pos": (_OPT_INT, True)},
    "inspect_request": {"code": (_STR, True), "cursor_pos": (_INT, True),
                        "detail_level": (_INT, False)},
    "is_complete_request": {"code": (_STR, True)},
    "history_request": {"hist_access_type": (_STR, True), "output": (_BOOL, False),
                        "raw": (_BOOL, False), "session": (_OPT_INT, False),
                        "start": (_OPT_INT, False), "stop": (_OPT_INT, False),
                        "n": (_OPT_INT, False), "pattern": (_OPT_STR, False),
                        "unique": (_BOOL, False)},
    "comm_info_request": {"target_name": (_OPT_STR, False)},
    "shutdown_request": {"restart": (_BOOL, True)},
    "comm_open": {"comm_id": (_STR, True), "target_name": (_STR, True),
                  "data": ((dict,), False)},
    "comm_msg": {"comm_id": (_STR, True), "data": ((dict,), False)},
    "comm_close": {"comm_id": (_STR, True), "data": ((dict,), False)},
}


def problem(msg_type: str, content: Any) -> str | None:
    """Why ``content`` cannot be handled, or None."""
    if not isinstance(content, dict):
        return f"the content of a {msg_type} must be an object"
    for name, (types, required) in CONTENTS.get(msg_type, {}).items():
        if name not in content:
            if required:
                return f"a {msg_type} needs {name!r}"
            continue
        value = content[name]
        # JSON has no int/bool confusion; Python does (True is an int).
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"{name!r} of a {msg_type} cannot be {type(value).__name__}"
    expressions = content.get("user_expressions") or {}
    if msg_type == "execute_request" and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in expressions.items()):
        return "user_expressions must map names to code strings"
    return None


def error_reply(msg_type: str, why: str, execution_count: int) -> dict[str, Any]:
    """The reply content for a request that could not be handled."""
    if msg_type == "is_complete_request":  # its reply has no error status
        return {"status": "unknown"}
    content: dict[str, Any] = {"status": "error", "ename": "BadRequest", "evalue": why,
                               "traceback": [f"BadRequest: {why}"]}
    if msg_type == "execute_request":
        content.update(execution_count=execution_count, payload=[], user_expressions={})
    return content
