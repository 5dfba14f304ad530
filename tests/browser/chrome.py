"""Debian's chromium, headless, driven through Debian's chromedriver: nothing is downloaded
(selenium's own driver manager is never reached, since the driver's path is given)."""

import os
import shutil
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

# Debian's packages put them here; CHROMIUM / CHROMEDRIVER name others.
BROWSER_NAMES = ("chromium", "chromium-browser")
DRIVER_NAMES = ("chromedriver",)
REQUIRED_ENV = "SANDBOX_KERNEL_TESTS_BROWSER"
WINDOW = (1400, 1000)


def _which(env: str, names: tuple[str, ...]) -> str | None:
    if os.environ.get(env):
        return shutil.which(os.environ[env])
    return next((path for name in names if (path := shutil.which(name))), None)


def browser_binaries() -> tuple[str, str] | str:
    """(chromium, chromedriver), or what is missing and how to install it."""
    browser = _which("CHROMIUM", BROWSER_NAMES)
    driver = _which("CHROMEDRIVER", DRIVER_NAMES)
    if browser and driver:
        return browser, driver
    missing = " and ".join(n for n, found in (("chromium", browser),
                                               ("chromedriver", driver)) if not found)
    return f"{missing} not found: apt-get install chromium chromium-driver (or make test-tools)"


def start_chromium(browser: str, driver: str, log: Path) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                 # As root (CI) chromium's own sandbox cannot start; containers have a small
                 # /dev/shm; there is no GPU.
                 "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--no-first-run", "--no-default-browser-check", "--disable-extensions"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, on failure
    service = Service(executable_path=driver, log_output=str(log))
    return webdriver.Chrome(options=options, service=service)
