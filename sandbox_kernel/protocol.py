"""Messages between host and guest agent: one JSON object per line, a pydantic model each.

The guest agent imports this same module (it is copied into the initramfs), so the two sides
cannot drift apart. Every request carries an ``id``; every event echoes the id of the request
it answers (0 for unsolicited events such as ``hello``).
"""

import base64
import json
import re
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
)

from sandbox_kernel.constants import (
    CMD_PORT,
    EVT_PORT,
    FINAL_EVENT_TYPES,
    MAX_LINE_BYTES,
    PROTOCOL_VERSION,
    SHARE_PORT,
    WHEELHOUSE_PORT,
)

__all__ = ["CMD_PORT", "EVT_PORT", "MAX_LINE_BYTES", "PROTOCOL_VERSION", "SHARE_PORT",
           "WHEELHOUSE_PORT"]

JSONDict = dict[str, Any]


def _from_base64(value: Any) -> Any:
    return base64.b64decode(value, validate=True) if isinstance(value, str) else value


# Raw bytes in Python, base64 text on the wire (comm buffers, entropy).
Base64Bytes = Annotated[
    bytes,
    BeforeValidator(_from_base64),
    PlainSerializer(lambda b: base64.b64encode(b).decode("ascii"), return_type=str),
]


class Message(BaseModel):
    """Base of every request and event."""

    # Validators are built on first use: building all of them costs about a second of guest
    # start-up under TCG, and each side uses only some.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
    id: int = Field(ge=0)


# --- requests: host -> guest ---------------------------------------------------------------

class Ping(Message):
    type: Literal["ping"] = "ping"


class Execute(Message):
    type: Literal["execute"] = "execute"
    code: str
    silent: bool = False
    store_history: bool = True
    user_expressions: dict[str, str] = {}
    allow_stdin: bool = False
    parent_msg_id: str = ""  # of the Jupyter request; ipywidgets' Output widget needs it


class Interrupt(Message):
    """Interrupts whatever the worker runs now; harmless when it is idle."""

    type: Literal["interrupt"] = "interrupt"


class InputReply(Message):
    """Answers the ``input_request`` of execute request ``id``."""

    type: Literal["input_reply"] = "input_reply"
    value: str


class Complete(Message):
    type: Literal["complete"] = "complete"
    code: str
    cursor_pos: int = Field(ge=0)


class Inspect(Message):
    type: Literal["inspect"] = "inspect"
    code: str
    cursor_pos: int = Field(ge=0)
    detail_level: Literal[0, 1] = 0


class IsComplete(Message):
    type: Literal["is_complete"] = "is_complete"
    code: str


class History(Message):
    type: Literal["history"] = "history"
    hist_access_type: Literal["tail", "range", "search"]
    output: bool = False
    raw: bool = True
    session: int = 0
    start: int = 0
    stop: int | None = None
    n: int | None = None
    pattern: str = "*"
    unique: bool = False


class CommOpen(Message):
    type: Literal["comm_open"] = "comm_open"
    comm_id: str
    target_name: str
    data: JSONDict = {}
    metadata: JSONDict = {}
    buffers: list[Base64Bytes] = []
    parent_msg_id: str = ""


class CommMsg(Message):
    type: Literal["comm_msg"] = "comm_msg"
    comm_id: str
    data: JSONDict = {}
    metadata: JSONDict = {}
    buffers: list[Base64Bytes] = []
    parent_msg_id: str = ""


class CommClose(Message):
    type: Literal["comm_close"] = "comm_close"
    comm_id: str
    data: JSONDict = {}
    metadata: JSONDict = {}
    parent_msg_id: str = ""


class CommInfo(Message):
    type: Literal["comm_info"] = "comm_info"
    target_name: str | None = None


class Reseed(Message):
    """Sent after a snapshot restore or a cold boot: fresh entropy, the host's wall clock and
    its time zone."""

    type: Literal["reseed"] = "reseed"
    entropy: Base64Bytes
    wall_time: float
    timezone: str = Field("", max_length=64)  # POSIX TZ; "" for UTC
    # After a restore: replace the snapshot's worker with a freshly executed one, whose hash
    # seed and address layout are its own.
    fresh_python: bool = False


class SetClock(Message):
    """The host's wall clock, once the host has the channel of a restored guest: the reseed
    that was waiting in its port (vm/port_pairs.py) carries the launch's time, tens of ms old
    by the time the guest reads it."""

    type: Literal["set_clock"] = "set_clock"
    wall_time: float


class Warm(Message):
    """Before a snapshot: import what most notebooks import, outside the user's namespace."""

    type: Literal["warm"] = "warm"
    # numpy 2 imports numpy.random on first use, which is slow under TCG.
    modules: list[str] = ["numpy", "numpy.random", "matplotlib", "matplotlib.pyplot",
                          "ipywidgets"]


def _inside(most_parts: int) -> Any:
    """A check that a path stays inside the folder it is relative to."""
    def check(path: str) -> str:
        parts = path.split("/")
        if not 0 < len(parts) <= most_parts or len(path) > 4096 or "\0" in path or any(
                part in ("", ".", "..") for part in parts):
            raise ValueError(f"{path!r} is not a path inside the folder")
        return path
    return check


FOLDER_UNAVAILABLE = "FolderUnavailable"
WHEELHOUSE_UNAVAILABLE = "WheelhouseUnavailable"


class MountShare(Message):
    """After a start: the host serves the notebook's folder on the share port; the guest mounts
    it at /home/user/<name>, the cell's working directory, with its writes kept in the VM but
    for the ``writable`` subfolders, whose writes reach the host. No name: nothing is shared,
    and the description says why. ``wheelhouse``: the host serves a folder of wheels on the
    wheelhouse port too, which the guest mounts read-only for pip. The agent mounts the folder
    first: if it cannot, or then cannot mount the wheelhouse, it answers with the agent error
    ``FOLDER_UNAVAILABLE`` or ``WHEELHOUSE_UNAVAILABLE``, having kept what it did mount, and
    the host asks again without the part that failed."""

    type: Literal["mount_share"] = "mount_share"
    name: Annotated[str, AfterValidator(_inside(1))] | None = None
    writable: list[Annotated[str, AfterValidator(_inside(32))]] = []
    wheelhouse: bool = False
    description: str = Field("", max_length=4096)  # what %sandbox says


class EndWorker(Message):
    """Ends the worker's processes at once (a cell past its time limit that an interrupt did
    not stop); a fresh worker starts, and the cell in flight gets a WorkerDied reply."""

    type: Literal["end_worker"] = "end_worker"
    cell: int  # the execute request past its limit: a worker already on the next is spared


class PrepareSnapshot(Message):
    """Before a snapshot: flush and drop the guest's caches so the saved state is small."""

    type: Literal["prepare_snapshot"] = "prepare_snapshot"


# --- the debugger: requests the worker's debug thread serves while a cell runs ------------

class DebugStart(Message):
    """Starts debugpy in the worker, once, when it is idle; from then on the worker's debug
    thread serves the requests below, a stopped or running cell notwithstanding."""

    type: Literal["debug_start"] = "debug_start"


class DapSend(Message):
    """A Debug Adapter Protocol message for debugpy's adapter in the guest; no answer (the
    adapter's response comes as a ``DapMessage``)."""

    type: Literal["dap_send"] = "dap_send"
    message: JSONDict


class DumpCell(Message):
    """Writes a cell's code to the file it is compiled under, for breakpoints in it."""

    type: Literal["dump_cell"] = "dump_cell"
    code: str


class DebugInspect(Message):
    """The namespace as the variable explorer shows it between breakpoints (``reference`` 0:
    its top level), one variable's rich display, the loaded modules, or a file's text as the
    worker's user reads it."""

    type: Literal["debug_inspect"] = "debug_inspect"
    what: Literal["variables", "rich", "modules", "source"]
    reference: int = Field(0, ge=0)
    name: str = Field("", max_length=256)
    path: str = Field("", max_length=4096)


class DebugStop(Message):
    """Ends the debug session: the debug thread leaves debugpy's adapter."""

    type: Literal["debug_stop"] = "debug_stop"


Request = Annotated[
    Ping | Execute | Interrupt | InputReply | Complete | Inspect | IsComplete | History
    | CommOpen | CommMsg | CommClose | CommInfo | Reseed | SetClock | Warm | MountShare
    | PrepareSnapshot
    | EndWorker | DebugStart | DapSend | DumpCell | DebugInspect | DebugStop,
    Field(discriminator="type"),
]

# --- events: guest -> host -----------------------------------------------------------------

class Hello(Message):
    """Said by the agent when it starts and whenever the host (re)connects."""

    type: Literal["hello"] = "hello"
    agent_version: str


class Pong(Message):
    type: Literal["pong"] = "pong"
    agent_version: str
    protocol: int = PROTOCOL_VERSION  # the host refuses an agent that speaks another


class OutputChunk(Message):
    type: Literal["output"] = "output"
    name: Literal["stdout", "stderr"]
    text: str


class DisplayData(Message):
    type: Literal["display_data"] = "display_data"
    data: JSONDict
    metadata: JSONDict = {}
    transient: JSONDict = {}
    update: bool = False


class ExecuteResult(Message):
    type: Literal["execute_result"] = "execute_result"
    execution_count: int
    data: JSONDict
    metadata: JSONDict = {}


class ClearOutput(Message):
    type: Literal["clear_output"] = "clear_output"
    wait: bool = False


class InputRequest(Message):
    type: Literal["input_request"] = "input_request"
    prompt: str
    password: bool = False


class CommEvent(Message):
    """A comm message that guest code sends (widgets)."""

    type: Literal["comm"] = "comm"
    kind: Literal["comm_open", "comm_msg", "comm_close"]
    comm_id: str
    target_name: str | None = None
    target_module: str | None = None
    data: JSONDict = {}
    metadata: JSONDict = {}
    buffers: list[Base64Bytes] = []


class ErrorOutput(Message):
    """A traceback IPython shows, published as ipykernel does: the cell's own error, or one
    shown on the way (a failing formatter or callback, ``showtraceback()`` in user code)."""

    type: Literal["error"] = "error"
    ename: str
    evalue: str
    traceback: list[str] = []


PublishedType = Literal["stream", "display_data", "update_display_data", "execute_result",
                        "error", "clear_output", "comm_open", "comm_msg", "comm_close"]


class Published(Message):
    """An IOPub message that code in the guest sent itself (``kernel.session.send``). The host
    reads its content as the event of that type and builds the message; the guest picks neither
    channel, header nor parent."""

    type: Literal["published"] = "published"
    msg_type: PublishedType
    content: JSONDict
    metadata: JSONDict = {}
    buffers: list[Base64Bytes] = []


class ExecuteReply(Message):
    """The end of an execute request: how the cell ended."""

    type: Literal["execute_reply"] = "execute_reply"
    status: Literal["ok", "error", "aborted"]
    execution_count: int = 0
    ename: str = ""
    evalue: str = ""
    traceback: list[str] = []
    error_shown: bool = False  # the error above went out as an ErrorOutput already
    user_expressions: JSONDict = {}
    payload: list[JSONDict] = []


class CompleteReply(Message):
    type: Literal["complete_reply"] = "complete_reply"
    matches: list[str]
    cursor_start: int
    cursor_end: int
    metadata: JSONDict = {}


class InspectReply(Message):
    type: Literal["inspect_reply"] = "inspect_reply"
    found: bool
    data: JSONDict = {}
    metadata: JSONDict = {}


class IsCompleteReply(Message):
    type: Literal["is_complete_reply"] = "is_complete_reply"
    status: Literal["complete", "incomplete", "invalid", "unknown"]
    indent: str = ""


class HistoryReply(Message):
    type: Literal["history_reply"] = "history_reply"
    history: list[tuple[int, int, str | tuple[str, str | None]]]


class CommInfoReply(Message):
    type: Literal["comm_info_reply"] = "comm_info_reply"
    comms: dict[str, dict[str, str]]


class DebugStarted(Message):
    """debugpy's adapter listens on ``port`` of the guest's loopback; cells are compiled under
    ``tmp_prefix``; ``skip_paths`` hold the guest's own code, which stepping skips."""

    type: Literal["debug_started"] = "debug_started"
    port: int = Field(gt=0, lt=65536)
    tmp_prefix: str = Field(max_length=4096)
    skip_paths: list[Annotated[str, Field(max_length=4096)]] = Field([], max_length=16)


class DapMessage(Message):
    """A message from debugpy's adapter (a response or an event); the host checks it."""

    type: Literal["dap_message"] = "dap_message"
    message: JSONDict


class DebugInspectReply(Message):
    type: Literal["debug_inspect_reply"] = "debug_inspect_reply"
    body: JSONDict


class Ack(Message):
    """Ends a request that has no answer of its own (interrupt, comm, reseed, shutdown)."""

    type: Literal["ack"] = "ack"


class AgentError(Message):
    """The agent could not serve request ``id`` (or, with id 0, a line it could not read)."""

    type: Literal["agent_error"] = "agent_error"
    error_type: str
    message: str


Event = Annotated[
    Hello | Pong | OutputChunk | DisplayData | ExecuteResult | ClearOutput | ErrorOutput
    | InputRequest | CommEvent | Published | ExecuteReply | CompleteReply | InspectReply
    | IsCompleteReply | HistoryReply | CommInfoReply | DebugStarted | DapMessage
    | DebugInspectReply | Ack | AgentError,
    Field(discriminator="type"),
]

def _by_type(union: Any) -> dict[str, type[Message]]:
    members = get_args(get_args(union)[0])  # Annotated[A | B | ..., Field(...)]
    return {m.model_fields["type"].default: m for m in members}


REQUESTS = _by_type(Request)
EVENTS = _by_type(Event)
# Events that end the stream of the request they answer.
FINAL_EVENTS = tuple(EVENTS[kind] for kind in sorted(FINAL_EVENT_TYPES))
_ANSWERS = {"ping": "pong", "execute": "execute_reply", "complete": "complete_reply",
            "inspect": "inspect_reply", "is_complete": "is_complete_reply",
            "history": "history_reply", "comm_info": "comm_info_reply",
            "debug_start": "debug_started", "debug_inspect": "debug_inspect_reply"}


def ends(request_type: str) -> frozenset[str]:
    """The event types that may end a request of ``request_type``: its own answer (an ack
    for those that have none), or the agent's error."""
    return frozenset({_ANSWERS.get(request_type, "ack"), "agent_error"})


def build_all() -> None:
    """Builds every model's validator and serializer now rather than on first use: done in
    the guest before a snapshot, so that restored VMs do not each pay for it."""
    for model in (*REQUESTS.values(), *EVENTS.values()):
        model.model_rebuild(force=True)


# What ``encode`` writes first; reading the type from there spares parsing big lines twice.
# It only picks the model: that model still validates the whole line, type field included.
_HEAD = re.compile(rb'\{"id":\d+,"type":"([a-z_]+)"')


def line_type(raw: bytes | memoryview) -> str | None:
    """The type an encoded line starts with; no validation."""
    head = _HEAD.match(raw)
    return head.group(1).decode() if head else None


def _parse(raw: bytes | str, models: dict[str, type[Message]]) -> Message:
    """Same checks as validating the discriminated union, but builds only the model used."""
    data = raw.encode() if isinstance(raw, str) else raw
    head = _HEAD.match(data)
    try:
        kind = head.group(1).decode() if head else json.loads(data)["type"]
        model = models[kind]
    except (ValueError, KeyError, TypeError) as exc:
        raise MessageError(f"not a protocol message: {exc!r}") from None
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise MessageError(str(exc)) from None


def parse_request(raw: bytes | str) -> Request:
    return _parse(raw, REQUESTS)  # type: ignore[return-value]


def parse_event(raw: bytes | str) -> Event:
    return _parse(raw, EVENTS)  # type: ignore[return-value]


class MessageError(ValueError):
    """A line that is not a valid message of the expected direction."""


def to_json(message: BaseModel) -> bytes:
    # Straight to bytes: model_dump_json() decodes pydantic's bytes into a str, which then has
    # to be encoded again; for a 256 KiB output chunk in the guest that is two copies more.
    return message.__pydantic_serializer__.to_json(message)


def encode(message: BaseModel) -> bytes:
    return to_json(message) + b"\n"
