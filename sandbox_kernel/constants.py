"""Names and limits both sides agree on; free of imports so that start-up paths stay light."""

PROTOCOL_VERSION = 2
MAX_LINE_BYTES = 16 * 2**20
CMD_PORT = "org.sandbox.cmd"
EVT_PORT = "org.sandbox.evt"
# Raw FUSE requests and replies for the shared folder (no JSON: see sandbox_kernel/share).
SHARE_PORT = "org.sandbox.share"
# The same for the wheelhouse, a host folder of wheels pip installs from, mounted read-only.
WHEELHOUSE_PORT = "org.sandbox.wheelhouse"
WHEELHOUSE_PATH = "/opt/wheelhouse"
# The event types that end the request they answer. The host's models and the worker, which
# writes events without them, both read it here.
FINAL_EVENT_TYPES = frozenset({
    "pong", "execute_reply", "complete_reply", "inspect_reply", "is_complete_reply",
    "history_reply", "comm_info_reply", "debug_started", "debug_inspect_reply", "ack",
    "agent_error",
})
# The IOPub message types that code in the guest may publish itself, through the kernel's
# session as in ipykernel: what a kernel publishes for a cell. Never status, execute_input,
# or anything of another channel.
GUEST_IOPUB_TYPES = frozenset({
    "stream", "display_data", "update_display_data", "execute_result", "error",
    "clear_output", "comm_open", "comm_msg", "comm_close",
})
