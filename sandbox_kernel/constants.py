"""Names and limits both sides agree on; free of imports so that start-up paths stay light."""

PROTOCOL_VERSION = 1
MAX_LINE_BYTES = 16 * 2**20
CMD_PORT = "org.sandbox.cmd"
EVT_PORT = "org.sandbox.evt"
