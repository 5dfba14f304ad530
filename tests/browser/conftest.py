"""The browser test's set-up: one JupyterLab, one headless chromium and one notebook for the
module, screenshots kept as artifacts, and on a failure a screenshot, the Lab log and the
browser's console in the report."""

import os
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser.chrome import REQUIRED_ENV, browser_binaries, start_chromium
from tests.browser.lab import Lab, running_lab
from tests.browser.notebook_page import NotebookPage

ARTIFACTS_ENV = "SANDBOX_KERNEL_TEST_ARTIFACTS"
DEFAULT_ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts"
KERNEL_DISPLAY_NAME = "Python 3 (sandbox VM)"
# What a failure report needs, whichever fixture got how far.
RUNNING: dict[str, object] = {}


@pytest.fixture(scope="module")
def artifacts() -> Path:
    """Where screenshots and logs go: $SANDBOX_KERNEL_TEST_ARTIFACTS/browser, or .artifacts/
    browser in the checkout. Not pytest's temporary folders: any other pytest run on the
    machine may prune those."""
    folder = Path(os.environ.get(ARTIFACTS_ENV) or DEFAULT_ARTIFACTS) / "browser"
    shutil.rmtree(folder, ignore_errors=True)  # only this run's
    folder.mkdir(parents=True)
    RUNNING["artifacts"] = folder
    return folder


@pytest.fixture(scope="module")
def chromium() -> tuple[str, str]:
    found = browser_binaries()
    if isinstance(found, str):
        if os.environ.get(REQUIRED_ENV) == "1":
            pytest.fail(f"{found}; {REQUIRED_ENV}=1 says the browser test must run")
        pytest.skip(found)
    return found


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[Lab]:
    with running_lab(tmp_path_factory.mktemp("lab")) as lab:
        RUNNING["lab"] = lab
        try:
            yield lab
        finally:
            RUNNING.pop("lab")
    shutil.copy(lab.log, artifacts / "lab.log")


@pytest.fixture(scope="module")
def driver(chromium: tuple[str, str], artifacts: Path) -> Iterator[WebDriver]:
    driver = start_chromium(*chromium, log=artifacts / "chromedriver.log")
    RUNNING["driver"] = driver
    try:
        yield driver
    finally:
        RUNNING.pop("driver")
        driver.quit()


@pytest.fixture(scope="module")
def page(driver: WebDriver, lab: Lab, artifacts: Path) -> NotebookPage:
    """A new notebook on the sandbox kernel, made from Lab's launcher as a user makes it.
    (The browser first: without it the test is skipped before Lab starts.)"""
    page = NotebookPage(driver, artifacts)
    driver.get(lab.lab_url())
    page.new_notebook(KERNEL_DISPLAY_NAME)
    return page


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, object, object]:
    report = yield
    assert isinstance(report, pytest.TestReport)
    if report.failed and "driver" in RUNNING:
        report.sections.extend(_failure_sections(item.name, call.when))
    return report


def _failure_sections(test: str, when: str) -> list[tuple[str, str]]:
    driver = RUNNING["driver"]
    assert isinstance(driver, WebDriver)
    folder = RUNNING["artifacts"]
    assert isinstance(folder, Path)
    shot = folder / f"FAILED-{test}-{when}.png"
    sections = [("screenshot", str(shot) if driver.save_screenshot(str(shot)) else "none")]
    console = "\n".join(f"{e['level']} {e['message']}" for e in driver.get_log("browser"))
    sections.append(("browser console", console or "(empty)"))
    lab = RUNNING.get("lab")
    if isinstance(lab, Lab):
        sections.append(("JupyterLab log (its end)", lab.log_tail()))
    return sections


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if "artifacts" in RUNNING:
        terminalreporter.write_line(f"Browser test screenshots and logs: {RUNNING['artifacts']}")
