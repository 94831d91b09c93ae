"""Required coverage: with ``MAZEAGENT_REQUIRE_ALL=1`` (set by ``make test`` and ``.ci/run``) a missing reference
(procgen, torch, the Slurm controller, a browser) fails the run instead of skipping its tests, so CI cannot go
green with whole modules silently gone. A plain ``pytest`` still skips, and ``-ra`` prints why.

Only third-party references and services go through here: our own modules are imported normally, so an
ImportError in them is an error, never a skip.
"""
from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType

import pytest

SWITCH = "MAZEAGENT_REQUIRE_ALL"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
# where a module's reference comes from, for the failure message
INSTALL = {"procgen": "make setup (requirements/nodeps.txt: procgen-mirror, gym3)",
           "torch": "make setup-test (requirements/test.txt)",
           "nbclient": "make setup-test (requirements/test.txt)",
           "selenium": "make setup-test (requirements/test.txt)"}
BROWSER_PACKAGES = "apt-get install chromium chromium-driver (.ci/run does it)"


def required_coverage() -> bool:
    return os.environ.get(SWITCH, "").strip().lower() in ("1", "true", "yes", "on")


def require(ok: bool, why: str) -> None:
    """Stop the current test (or module, at import time) unless ``ok``: fail under the switch, else skip."""
    __tracebackhide__ = True  # report the caller's line, not this one
    if ok:
        return
    if required_coverage():
        pytest.fail(f"{why} -- required because {SWITCH} is on (unset it to skip instead)", pytrace=False)
    pytest.skip(why, allow_module_level=True)


def require_module(name: str, why: str) -> ModuleType:
    """``import name`` or :func:`require` it. Errors other than ImportError propagate: a broken install is a bug."""
    __tracebackhide__ = True
    try:
        return importlib.import_module(name)
    except ImportError as e:
        problem = str(e)
    hint = f"; install it with {INSTALL[name.split('.')[0]]}" if name.split(".")[0] in INSTALL else ""
    require(False, f"{name} is not importable ({problem}): {why}{hint}")
    raise AssertionError("unreachable: require() raised")


def require_browser(why: str) -> str:
    """Path of a headless-capable Chromium/Chrome (``MAZEAGENT_BROWSER`` overrides the search), or require it."""
    explicit = os.environ.get("MAZEAGENT_BROWSER")
    __tracebackhide__ = True
    found = shutil.which(explicit) if explicit else next(filter(None, map(shutil.which, BROWSERS)), None)
    require(found is not None, f"no browser found ({explicit or ' / '.join(BROWSERS)} on PATH; {BROWSER_PACKAGES}): "
                               f"{why}")
    return found


def require_browser_driver(why: str) -> tuple[str, str]:
    """``(browser, chromedriver)`` paths for Selenium (``MAZEAGENT_CHROMEDRIVER`` overrides the search), or require
    them; the driver is never downloaded (Selenium Manager stays offline)."""
    __tracebackhide__ = True
    browser = require_browser(why)
    explicit = os.environ.get("MAZEAGENT_CHROMEDRIVER")
    driver = shutil.which(explicit or "chromedriver")
    require(driver is not None, f"no chromedriver found ({explicit or 'chromedriver'} on PATH; "
                                f"{BROWSER_PACKAGES}): {why}")
    return browser, driver
