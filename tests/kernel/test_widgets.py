"""Comms: ipywidgets in both directions, the Output widget and interact."""

from typing import Any

import pytest

from tests.kernel.kernels import (
    Kernel,
    iopub_until_idle,
    run,
    stdout_of,
)

pytestmark = [pytest.mark.vm, pytest.mark.timeout(240)]


def _comm_msgs(msgs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in msgs if m["msg_type"] == kind]


def test_widget_syncs_both_ways(kernel: Kernel) -> None:
    _, kc = kernel
    _, msgs = run(kc, "import ipywidgets as w\nslider = w.IntSlider(value=3)\nslider",
                  timeout=120)
    opens = _comm_msgs(msgs, "comm_open")
    slider_open = next(m for m in opens if m["content"]["data"]["state"].get("_model_name")
                       == "IntSliderModel")
    assert slider_open["content"]["target_name"] == "jupyter.widget"
    assert slider_open["content"]["data"]["state"]["value"] == 3
    comm_id = slider_open["content"]["comm_id"]
    view = next(m for m in msgs if m["msg_type"] == "execute_result")
    assert view["content"]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] \
        == comm_id

    # frontend -> kernel: the user drags the slider
    update = kc.session.msg("comm_msg", {"comm_id": comm_id, "data": {
        "method": "update", "state": {"value": 7}, "buffer_paths": []}})
    kc.shell_channel.send(update)
    assert stdout_of(run(kc, "print(slider.value)")[1]) == "7\n"

    # kernel -> frontend: code sets the value
    _, msgs = run(kc, "slider.value = 9")
    updates = [m["content"]["data"] for m in _comm_msgs(msgs, "comm_msg")
               if m["content"]["comm_id"] == comm_id]
    assert {"method": "update", "state": {"value": 9}, "buffer_paths": []} in updates

    info = kc.comm_info(target_name="jupyter.widget", reply=True, timeout=30)["content"]
    assert comm_id in info["comms"]


def _output_widget_steps(msgs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """What the frontend's Output widget goes by: its msg_id as it changes, and the text."""
    steps = []
    for m in msgs:
        state = m["content"].get("data", {}).get("state", {}) if m["msg_type"] == "comm_msg" \
            else {}
        if "msg_id" in state:
            steps.append(("msg_id", state["msg_id"]))
        elif m["msg_type"] == "stream":
            steps.append(("stream", m["content"]["text"]))
    return steps


def test_output_widget_takes_what_is_printed_inside_it(kernel: Kernel) -> None:
    # The frontend puts output whose parent is the widget's msg_id into the widget, while
    # that msg_id is set; ipywidgets sets it from the kernel's parent request.
    _, kc = kernel
    msg_id = kc.execute("import ipywidgets as w\nout = w.Output()\ndisplay(out)\n"
                        "with out:\n    print('inside')\nprint('outside')")
    msgs = iopub_until_idle(kc, msg_id)
    assert _output_widget_steps(msgs) == [("msg_id", msg_id), ("stream", "inside\n"),
                                          ("msg_id", ""), ("stream", "outside\n")]


def test_interact_shows_its_function_s_output_when_the_slider_moves(kernel: Kernel) -> None:
    _, kc = kernel
    _, msgs = run(kc, "from ipywidgets import interact\n"
                      "def tenfold(x):\n    print(x * 10)\n_ = interact(tenfold, x=1)")
    slider = next(m["content"]["comm_id"] for m in _comm_msgs(msgs, "comm_open")
                  if m["content"]["data"]["state"].get("_model_name") == "IntSliderModel")
    update = kc.session.msg("comm_msg", {"comm_id": slider, "data": {
        "method": "update", "state": {"value": 2}, "buffer_paths": []}})
    kc.shell_channel.send(update)
    moved = update["header"]["msg_id"]
    msgs = iopub_until_idle(kc, moved)
    assert ("stream", "20\n") in _output_widget_steps(msgs)
    steps = _output_widget_steps(msgs)
    assert steps.index(("msg_id", moved)) < steps.index(("stream", "20\n")) \
        < steps.index(("msg_id", ""))
