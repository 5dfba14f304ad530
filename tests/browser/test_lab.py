"""The sandbox kernel in a real JupyterLab, as a user drives it: a headless chromium opens a
notebook on "Python 3 (sandbox VM)" from Lab's launcher, then types and runs cells, moves a
slider, answers input(), completes with Tab, interrupts and restarts from the toolbar, and
stops at a breakpoint in JupyterLab's debugger.
The tests run in order on one notebook (later ones use what earlier ones left); each keeps
a screenshot (see tests/README.md for where)."""

import contextlib
import json

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement

from tests.browser.conftest import KERNEL_DISPLAY_NAME
from tests.browser.lab import Lab
from tests.browser.notebook_page import STDERR, NotebookPage
from tests.kernel.kernels import BOOT_TIMEOUT, KERNEL_NAME

# The first test's budget holds Lab's start, chromium's and the session's first VM start
# (a cold boot that takes the snapshot); a hung Lab or page fails well within it.
pytestmark = [pytest.mark.vm, pytest.mark.browser, pytest.mark.timeout(2 * BOOT_TIMEOUT + 120)]
# A KVM probe, a cold boot and the snapshot, on a machine whose other VMs take its cores.
FIRST_CELL_TIMEOUT = 2 * BOOT_TIMEOUT
RESULT = '.jp-OutputArea-executeResult [data-mime-type="text/plain"]'


def test_a_new_notebook_runs_on_the_sandbox_kernel_and_prints(page: NotebookPage) -> None:
    page.wait(f"the toolbar to name {KERNEL_DISPLAY_NAME!r}",
              lambda _: page.kernel_name() == KERNEL_DISPLAY_NAME)
    page.wait_kernel_connected(FIRST_CELL_TIMEOUT)
    cell = page.run_cell('print("hello from the VM,", 6 * 7)')
    page.wait_done(cell, FIRST_CELL_TIMEOUT)
    assert page.output_text(cell) == "hello from the VM, 42\n"
    page.screenshot("print", cell)


def test_a_matplotlib_plot_appears(page: NotebookPage) -> None:
    cell = page.run_cell("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()")
    image = page.one("the plot", '.jp-RenderedImage[data-mime-type="image/png"] img',
                     timeout=120, within=cell)
    width = page.wait("the plot's PNG decoded", lambda d: d.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", image))
    assert width > 200  # matplotlib's default figure, not a broken-image icon
    page.wait_done(cell)
    page.screenshot("plot", cell)


def test_a_slider_moved_in_the_browser_reaches_the_kernel(page: NotebookPage) -> None:
    cell = page.run_cell("import ipywidgets as w\nslider = w.IntSlider(value=3, max=10)\nslider")
    handle = page.one("the slider's handle", ".widget-slider .noUi-handle", within=cell)
    readout = page.one("the slider's readout", ".widget-readout", within=cell)
    page.wait("the readout to show 3", lambda _: readout.text == "3")
    # Dragged past the end of the track it stops at its maximum, then two steps back.
    ActionChains(page.driver).click_and_hold(handle).move_by_offset(600, 0).release().perform()
    page.wait("the readout to show 10", lambda _: readout.text == "10")
    handle.send_keys(Keys.ARROW_LEFT, Keys.ARROW_LEFT)
    page.wait("the readout to show 8", lambda _: readout.text == "8")
    page.screenshot("slider", cell)
    assert page.run_and_read("print(slider.value)") == "8\n"


def test_input_is_answered_in_the_browser(page: NotebookPage) -> None:
    cell = page.run_cell('name = input("Your name? ")\nprint("hello", name)')
    box = page.one("the input box", ".jp-Stdin-input", within=cell)
    assert "Your name?" in page.one("input()'s prompt", ".jp-Stdin-prompt", within=cell).text
    box.send_keys("Ada")
    page.screenshot("input-asked", cell)
    box.send_keys(Keys.ENTER)
    page.wait_done(cell)
    assert "hello Ada\n" in page.output_text(cell)
    page.screenshot("input-answered", cell)


def test_tab_completes_from_the_kernel_s_namespace(page: NotebookPage) -> None:
    page.run_and_read("sandbox_alpha = 1\nsandbox_alphabet = 2")
    editor = page.type_code("sandbox_al")
    completer = _completer_after_tab(page, editor)
    matches = page.wait("the completer's items", lambda _: {
        e.text: e for e in page.shown(".jp-Completer-item .jp-Completer-match", completer)})
    assert {"sandbox_alpha", "sandbox_alphabet"} <= set(matches), list(matches)
    page.screenshot("completion", page.cells()[-1])
    matches["sandbox_alphabet"].click()
    page.wait("the completer to close", lambda _: not page.shown(".jp-Completer"))
    page.wait("the chosen name in the cell",
              lambda _: page.last_editor().text == "sandbox_alphabet")
    cell = page.cells()[-1]
    page.last_editor().send_keys(Keys.SHIFT, Keys.ENTER)
    page.wait_done(cell)
    assert page.output_text(cell, RESULT) == "2"


def _completer_after_tab(page: NotebookPage, editor: WebElement) -> WebElement:
    # Once in some runs the first Tab shows nothing (the kernel's reply unseen by Lab?
    # not yet understood): a user presses it again, and so does the test, twice at most.
    for _ in range(2):
        editor.send_keys(Keys.TAB)
        with contextlib.suppress(TimeoutException):
            return page.one("the completer", ".jp-Completer", timeout=10)
    editor.send_keys(Keys.TAB)
    return page.one("the completer", ".jp-Completer", timeout=10)


def test_interrupt_from_the_toolbar(page: NotebookPage) -> None:
    cell = page.run_cell('import time\nprint("sleeping", flush=True)\ntime.sleep(600)')
    page.wait_output(cell, "sleeping")
    page.screenshot("interrupt-running", cell)
    page.click_toolbar("notebook:interrupt-kernel")
    page.wait_done(cell)
    assert "KeyboardInterrupt" in page.output_text(cell, STDERR)
    page.screenshot("interrupted", cell)
    # The same VM goes on, with what the notebook defined.
    assert page.run_and_read("print(sandbox_alpha)") == "1\n"


def test_restart_from_the_toolbar(page: NotebookPage) -> None:
    page.click_toolbar("notebook:restart-kernel")
    dialog = page.one("the restart dialog", ".jp-Dialog")
    assert "Restart" in dialog.text
    page.screenshot("restart-asked")
    page.one("the dialog's Restart button", ".jp-Dialog .jp-mod-accept").click()
    page.wait("the dialog to close", lambda _: not page.shown(".jp-Dialog"))
    # A fresh VM: the counter starts again and the names are gone.
    cell = page.run_cell("print(sandbox_alpha)")
    assert page.wait_done(cell, FIRST_CELL_TIMEOUT) == "[1]:"
    assert "NameError" in page.output_text(cell, STDERR)
    page.screenshot("restarted", cell)


def test_the_saved_notebook_names_the_sandbox_kernel(page: NotebookPage, lab: Lab) -> None:
    page.click_toolbar("docmanager:save")
    # Lab offers a new name on an untitled notebook's first save: it keeps its own.
    page.one("the rename dialog's Rename and Save", ".jp-Dialog .jp-mod-accept").click()
    saved = lab.root / "Untitled.ipynb"
    page.wait("the notebook saved with its outputs",
              lambda _: saved.exists() and "hello from the VM, 42" in saved.read_text())
    assert json.loads(saved.read_text())["metadata"]["kernelspec"]["name"] == KERNEL_NAME


# The debugger: JupyterLab's own panel on debugpy in the VM. Its first start there (the import,
# the adapter) takes seconds under TCG, more on a loaded machine.
DEBUGGER_TIMEOUT = 120
DEBUGGER_SWITCH = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-DebuggerBugButton"
DEBUGGED_CELL = "def f(a, b):\n    c = a + b\n    return c\n\nf(2, 3)"


def test_the_debugger_stops_at_a_breakpoint_and_continues(page: NotebookPage) -> None:
    page.wait_kernel_idle(FIRST_CELL_TIMEOUT)
    # Lab enables the switch once kernel_info says the kernel supports the debugger.
    page.one("the toolbar's debugger switch enabled",
             f'{DEBUGGER_SWITCH}:not([aria-disabled="true"]):not([disabled])').click()
    page.one("the debugger switch on", f'{DEBUGGER_SWITCH}[aria-pressed="true"]',
             DEBUGGER_TIMEOUT)
    page.one("the debugger sidebar", ".jp-DebuggerSidebar", DEBUGGER_TIMEOUT)
    editor = page.type_block(DEBUGGED_CELL)
    cell = page.cells()[-1]
    gutter = page.wait("the breakpoint gutter beside line 2", lambda d: d.execute_script(
        _GUTTER_OF_LINE, cell, 2), DEBUGGER_TIMEOUT)
    ActionChains(page.driver).move_to_element(gutter).click().perform()
    # The dot in the cell (drawn only when the cell's path, from Lab's first debugInfo, is
    # the one the kernel gave the breakpoint) and the line in the Breakpoints panel.
    page.one("the breakpoint's dot beside line 2", ".cm-breakpoint-icon", within=gutter)
    assert page.one("the breakpoint in the Breakpoints panel",
                    ".jp-DebuggerBreakpoints .jp-DebuggerBreakpoint-line").text == "2"
    editor.send_keys(Keys.SHIFT, Keys.ENTER)
    frame = page.one("the stopped frame in the Callstack panel",
                     ".jp-DebuggerCallstackFrame-name", DEBUGGER_TIMEOUT)
    assert frame.text == "f"
    line = page.one("the stopped line highlighted in the cell",
                    ".cm-line.jp-DebuggerEditor-highlight", within=cell)
    assert line.text.strip() == "c = a + b"
    variables = page.wait("a = 2 in the Variables panel", lambda d: (
        found := d.execute_script(_VARIABLES)) and ["a", "2"] in found and found)
    assert ["b", "3"] in variables
    page.screenshot("debugger-stopped", cell)
    # The sidebar draws the Callstack panel's toolbar in its title, outside the panel.
    page.one("the Callstack's Continue button",
             '[aria-label="Callstack panel toolbar"] [data-command="debugger:continue"]').click()
    page.wait_done(cell)
    assert page.output_text(cell, RESULT) == "5"
    page.wait("the Callstack panel emptied",
              lambda _: not page.find(".jp-DebuggerCallstackFrame"))
    page.screenshot("debugger-continued", cell)
    page.one("the debugger switch", DEBUGGER_SWITCH).click()
    page.one("the debugger switch off", f'{DEBUGGER_SWITCH}[aria-pressed="false"]')


# The breakpoint gutter's element level with the cell's line (1-based), once it is drawn.
_GUTTER_OF_LINE = """
const [cell, number] = arguments;
const line = cell.querySelectorAll('.cm-line')[number - 1];
if (!line) return null;
const top = line.getBoundingClientRect().top;
for (const e of cell.querySelectorAll('.cm-gutter.cm-breakpoint-gutter > .cm-gutterElement')) {
  const box = e.getBoundingClientRect();
  if (box.height > 0 && Math.abs(box.top - top) < 2) return e;
}
return null;
"""
# The Variables panel's names and values, as it shows them (a tree or a grid).
_VARIABLES = """
return [...document.querySelectorAll('.jp-DebuggerVariables-body .jp-DebuggerVariables-name')]
  .map(e => [e.textContent.replace(/:$/, '').trim(),
             (e.parentElement.querySelector('.jp-DebuggerVariables-detail') || {}).textContent]);
"""
