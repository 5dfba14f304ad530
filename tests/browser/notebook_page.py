"""A JupyterLab 4 notebook as a user sees it: cells typed and run from the keyboard, outputs
read from the DOM, toolbar buttons clicked. Every wait is on a DOM condition, with a deadline."""

import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

T = TypeVar("T")

UI_TIMEOUT = 30  # Lab's own reactions: a cell added, a dialog shown
CELL_TIMEOUT = 60  # a cell once the VM is up
CELLS = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell"
STDOUT = '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stdout"]'
STDERR = '.jp-RenderedText[data-mime-type="application/vnd.jupyter.stderr"]'
DONE_PROMPT = re.compile(r"^\[\d+\]:$")


class NotebookPage:
    def __init__(self, driver: WebDriver, artifacts: Path) -> None:
        self.driver = driver
        self.artifacts = artifacts
        self.shots = 0

    def wait(self, what: str, condition: Callable[[WebDriver], T | bool | None],
             timeout: float = UI_TIMEOUT) -> T:
        """The condition's first truthy value; on timeout the error says what was awaited."""
        def check(driver: WebDriver) -> T | bool | None:
            try:
                return condition(driver)
            except StaleElementReferenceException:  # Lab re-rendered it: look again
                return None
        waiter = WebDriverWait(self.driver, timeout, poll_frequency=0.2)
        return waiter.until(check, f"waited {timeout} s for {what}")  # type: ignore[return-value]

    def find(self, css: str, within: WebElement | None = None) -> list[WebElement]:
        return (within or self.driver).find_elements(By.CSS_SELECTOR, css)

    def shown(self, css: str, within: WebElement | None = None) -> list[WebElement]:
        return [e for e in self.find(css, within) if e.is_displayed()]

    def one(self, what: str, css: str, timeout: float = UI_TIMEOUT,
            within: WebElement | None = None) -> WebElement:
        def shown(_: WebDriver) -> WebElement | None:
            return next(iter(self.shown(css, within)), None)
        return self.wait(f"{what} ({css})", shown, timeout)

    def screenshot(self, name: str, showing: WebElement | None = None) -> Path:
        """Saves the window, with ``showing`` (a cell) scrolled to its middle."""
        if showing is not None:
            self.driver.execute_script(
                "arguments[0].scrollIntoView({block: 'center'})", showing)
        self.shots += 1
        path = self.artifacts / f"{self.shots:02d}-{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    # The notebook

    def new_notebook(self, kernel_display_name: str) -> None:
        card = self.one(f"the launcher's {kernel_display_name!r} notebook card",
                        f'.jp-LauncherCard[data-category="Notebook"]'
                        f'[title="{kernel_display_name}"]', timeout=60)
        card.click()
        self.one("the new notebook's first cell", f"{CELLS} .cm-content")

    def kernel_name(self) -> str:
        return self.one("the toolbar's kernel name", ".jp-Toolbar-kernelName").text

    def wait_kernel_connected(self, timeout: float) -> None:
        """Until the status bar shows the kernel idle, as a user waits for it: a cell run
        before Lab has a kernel connection is dropped by Lab, whatever the kernel, and keeps
        its ``[ ]:`` (the toolbar names the kernel before that)."""
        self.wait("the status bar to show the kernel idle",
                  lambda d: "| Idle" in d.find_element(By.ID, "jp-main-statusbar").text, timeout)

    def wait_kernel_idle(self, timeout: float) -> None:
        self.one("the kernel idle in the toolbar",
                 '.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout)

    def cells(self) -> list[WebElement]:
        return self.find(CELLS)

    def last_editor(self) -> WebElement:
        return self.one("the last cell's editor", ".cm-content", within=self.cells()[-1])

    def type_code(self, code: str) -> WebElement:
        """Types ``code`` into the last cell, the empty one a run leaves (lines without
        indentation: the editor would indent again what it indents itself)."""
        editor = self.last_editor()
        editor.click()
        for number, line in enumerate(code.splitlines()):
            editor.send_keys((Keys.ENTER if number else "") + line)
        self.wait("the last cell to hold the code", lambda _: self.last_editor().text == code)
        return editor

    def type_block(self, code: str) -> WebElement:
        """Types ``code`` into the last cell with its own indentation: after each Enter,
        Shift+Home selects what the editor indented, and the line's text replaces it."""
        editor = self.last_editor()
        editor.click()
        for number, line in enumerate(code.splitlines()):
            if number:
                editor.send_keys(Keys.ENTER, Keys.SHIFT, Keys.HOME, Keys.SHIFT)
            if line:
                editor.send_keys(line)
            elif number:
                editor.send_keys(Keys.DELETE)  # nothing to type: drop the indentation
        self.wait("the last cell to hold the code", lambda _: self.last_editor().text == code)
        return editor

    def run_cell(self, code: str) -> WebElement:
        """Types and runs a cell (Shift+Enter, which adds the next cell); returns the cell,
        which may still be running."""
        count = len(self.cells())
        self.type_code(code).send_keys(Keys.SHIFT, Keys.ENTER)
        self.wait("the next cell added by the run", lambda _: len(self.cells()) > count)
        return self.cells()[count - 1]

    def wait_done(self, cell: WebElement, timeout: float = CELL_TIMEOUT) -> str:
        """Waits for the cell's prompt to show its execution count; returns the prompt."""
        def prompt(_: WebDriver) -> str:
            return cell.find_element(By.CSS_SELECTOR, ".jp-InputPrompt").text.strip()
        return self.wait("the cell's run to end", lambda d: DONE_PROMPT.match(prompt(d))
                         and prompt(d), timeout)

    def output_text(self, cell: WebElement, css: str = STDOUT) -> str:
        # textContent, not what is rendered: Lab skips painting cells scrolled out of view.
        return "".join(e.get_attribute("textContent") or "" for e in self.find(css, cell))

    def wait_output(self, cell: WebElement, text: str, css: str = STDOUT,
                    timeout: float = CELL_TIMEOUT) -> str:
        return self.wait(f"{text!r} in the cell's output",
                         lambda _: text in (found := self.output_text(cell, css)) and found,
                         timeout)

    def run_and_read(self, code: str, css: str = STDOUT, timeout: float = CELL_TIMEOUT) -> str:
        """Runs a cell to its end; its output of the kind ``css`` names."""
        cell = self.run_cell(code)
        self.wait_done(cell, timeout)
        return self.output_text(cell, css)

    def click_toolbar(self, command: str) -> None:
        self.one(f"the toolbar's {command} button",
                 f'.jp-NotebookPanel-toolbar [data-command="{command}"]').click()
