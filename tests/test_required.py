"""The required-coverage switch itself: under it a missing reference fails, without it the test skips."""
import os

import pytest

from required import SWITCH, require, require_browser, require_browser_driver, require_module


@pytest.mark.parametrize("value, outcome, says", [("1", pytest.fail.Exception, f"absent.*{SWITCH} is on"),
                                                  ("0", pytest.skip.Exception, "^absent$"),
                                                  ("", pytest.skip.Exception, "^absent$")])
def test_missing_reference_fails_only_under_the_switch(monkeypatch, value, outcome, says):
    monkeypatch.setenv(SWITCH, value)
    require(True, "present")  # no effect
    with pytest.raises(outcome, match=says):
        require(False, "absent")
    with pytest.raises(outcome, match="no_such_module_xyz is not importable.*why it matters"):
        require_module("no_such_module_xyz", "why it matters")
    assert require_module("json", "stdlib").dumps([1]) == "[1]"


def test_browser_helper_finds_the_named_browser_or_requires_one(monkeypatch, tmp_path):
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("MAZEAGENT_BROWSER", str(fake))
    assert require_browser("render the report") == str(fake)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("MAZEAGENT_BROWSER")
    assert require_browser("render the report") == str(fake)  # found on PATH by name
    fake.unlink()
    monkeypatch.setenv(SWITCH, "1")
    with pytest.raises(pytest.fail.Exception, match="no browser found.*render the report"):
        require_browser("render the report")
    monkeypatch.setenv(SWITCH, "0")
    with pytest.raises(pytest.skip.Exception, match="no browser found"):
        require_browser("render the report")
    assert os.environ[SWITCH] == "0"


def test_the_browser_driver_is_required_beside_the_browser(monkeypatch, tmp_path):
    for name in ("chromium", "chromedriver"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("MAZEAGENT_BROWSER", raising=False)
    monkeypatch.delenv("MAZEAGENT_CHROMEDRIVER", raising=False)
    assert require_browser_driver("drive the viewer") == (str(tmp_path / "chromium"), str(tmp_path / "chromedriver"))
    (tmp_path / "chromedriver").unlink()
    monkeypatch.setenv(SWITCH, "1")
    with pytest.raises(pytest.fail.Exception, match="no chromedriver found.*chromium-driver.*drive the viewer"):
        require_browser_driver("drive the viewer")
    monkeypatch.setenv(SWITCH, "0")
    with pytest.raises(pytest.skip.Exception, match="no chromedriver found"):
        require_browser_driver("drive the viewer")
