"""Output widgets under nbclient, the sandbox kernel next to stock ipykernel: the same notebook
run on both must give the same outputs, in its cells and in its Output widgets."""

import re
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.kernel.kernels import BOOT_TIMEOUT, KERNEL_NAME

pytestmark = [pytest.mark.vm, pytest.mark.timeout(900)]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"

CELLS = [
    "import ipywidgets as w\nfrom IPython.display import display, clear_output",
    # clear_output with and without wait, inside an Output widget and in the cell; each
    # widget its own, so that its final state shows what its cell sent it
    "o1 = w.Output()\ndisplay(o1)\nwith o1:\n    print('a')\n    clear_output(wait=True)\n"
    "    print('b')\nprint('cell')",
    "o2 = w.Output()\ndisplay(o2)\nwith o2:\n    print('gone')\n    clear_output()\n"
    "    print('c')\ndisplay('after')",
    "print('x')\nclear_output(wait=True)\nprint('y')",
    "print('p')\nclear_output()\nprint('q')",
    "o3 = w.Output()\ndisplay(o3)\nwith o3:\n    print('gone')\n    clear_output(wait=True)\n"
    "display('after a wait in the widget')\nprint('print')",
    "print('a later print')\ndisplay('a later display')",
    # nested Output widgets
    "outer, inner = w.Output(), w.Output()\ndisplay(outer)\nwith outer:\n    print('o1')\n"
    "    display(inner)\n    with inner:\n        print('i1')\n        clear_output(wait=True)\n"
    "        print('i2')\n    print('o2')\nprint('cell')",
    "print('a later print')\ndisplay('a later display')",
    # display ids, in the cell and in a widget
    "o4 = w.Output()\ndisplay(o4)\nh = display('one', display_id=True)\nwith o4:\n"
    "    h2 = display('two', display_id='d2')\nh.update('one updated')\nh2.update('two updated')",
    # errors inside an Output widget
    "o5 = w.Output()\ndisplay(o5)\nwith o5:\n    print('before the error')\n    1/0\n"
    "print('after the error')",
    "o6 = w.Output()\ndisplay(o6)\nwith o6:\n    raise ValueError('in the widget')",
    "print('a later print')\ndisplay({'a': 1}, raw=False)",
    # the capture decorator, as interact uses it
    "o7 = w.Output()\ndisplay(o7)\n@o7.capture(clear_output=True, wait=True)\ndef show(n):\n"
    "    print('n =', n)\nshow(1)\nshow(2)\nprint('beside')",
    # the widget's own methods, and one shown as the cell's result
    "o8 = w.Output()\nwith o8:\n    print('before it is shown')\no8.clear_output(wait=True)\n"
    "o8.append_stdout('appended\\n')\no8.append_display_data('appended display')\no8",
    "print('a later print')\n'a later result'",
    # interact, which routes its function's output into an Output widget
    "def f(x):\n    print('x is', x)\n    display(x * 2)\n    return x + 1\n"
    "_ = w.interact(f, x=3)\nprint('after interact')",
    "print('the very last')\n'the very last result'",
]


def _executed(kernel_name: str) -> nbformat.NotebookNode:
    # A cell may wait for a first start that takes the snapshot: minutes on a busy machine.
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    NotebookClient(nb, kernel_name=kernel_name, timeout=300, allow_errors=True,
                   startup_timeout=BOOT_TIMEOUT).execute()
    return nb


def normalised(nb: nbformat.NotebookNode) -> list[list[Any]]:
    """Each cell's outputs, with each widget in place of its view: its model's name, its
    children, and for an Output widget its own outputs. Model ids are random: left out."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})

    def widget(model_id: str) -> Any:
        model = state.get(model_id.removeprefix("IPY_MODEL_"), {})
        fields = model.get("state", {})
        return {"widget": model.get("model_name"),
                "children": [widget(c) for c in fields.get("children", [])],
                "outputs": [output(o) for o in _joined(fields.get("outputs", []))]}

    def output(out: Any) -> Any:
        view = out.get("data", {}).get(WIDGET_VIEW)
        if view is not None:
            return widget(view["model_id"])
        text = re.sub(r"ipykernel_\d+", "ipykernel_<pid>", repr(dict(out)))
        return re.sub(r"In\[\d+\]", "In[n]", text)

    return [[output(o) for o in _joined(cell.outputs)] for cell in nb.cells]


def _joined(outputs: list[Any]) -> list[Any]:
    """Consecutive pieces of one stream as one output, as a frontend shows them: where ipykernel
    cuts a stream depends on when its output thread runs."""
    joined: list[Any] = []
    for out in outputs:
        last = joined[-1] if joined else None
        if last is not None and out.get("output_type") == "stream" \
                and last.get("output_type") == "stream" and last["name"] == out["name"]:
            joined[-1] = {**last, "text": last["text"] + out["text"]}
        else:
            joined.append(out)
    return joined


def test_output_widgets_route_as_under_ipykernel() -> None:
    expected = normalised(_executed("python3"))
    got = normalised(_executed(KERNEL_NAME))
    for number, (want, have) in enumerate(zip(expected, got, strict=True)):
        assert (number, have) == (number, want)
