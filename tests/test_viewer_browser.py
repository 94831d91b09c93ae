"""`mazeagent view` in a real browser: Debian's headless Chromium driven by Selenium through chromium-driver (never
downloaded: SE_OFFLINE), against the real server with the bundled agent. Clicks, drags and the slider go through
the page's pointer and input events; what the page then holds (``window.viewerState``) is checked against the
notebook API on the same maze.

``MAZEAGENT_SCREENSHOT=docs/viewer.png`` also writes the final screenshot there (a small palette PNG), which is how
docs/viewer.png is refreshed.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from required import require_browser_driver, require_module

BROWSER, DRIVER = require_browser_driver("the viewer's browser test drives the page in headless Chromium")
webdriver = require_module("selenium.webdriver", "the viewer's browser test drives the page with Selenium")

import mazeagent as ma  # noqa: E402
from mazeagent.nets.hooks import DEFAULT_LAYER  # noqa: E402
from mazeagent.viewer.server import start  # noqa: E402
from mazeagent.viewer.session import Viewer  # noqa: E402

SIZE = 440  # the canvases' side in CSS pixels (index.html)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from selenium.webdriver.chrome.service import Service

    agent = ma.load_agent()
    server, thread = start(Viewer(agent, ma.Maze.from_seed(0)))
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download a driver or a browser
    opts = webdriver.ChromeOptions()
    opts.binary_location = BROWSER
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1320,760", "--hide-scrollbars"):
        opts.add_argument(arg)
    downloads = tmp_path_factory.mktemp("downloads")
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    driver.set_script_timeout(30)
    try:
        driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        driver.get(server.url)
        yield driver, agent, downloads
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()
        thread.join(10)


def state(driver, expr: str = "S"):
    return driver.execute_script(f"const S = window.viewerState; return JSON.parse(JSON.stringify({expr}));")


def wait_for(driver, expr: str, timeout: float = 120.0):
    """Poll a JS expression over ``window.viewerState`` (as ``S``) until it is truthy and no request is pending."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if state(driver, f"!!({expr}) && S.busy === 0"):
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {expr}; state: {state(driver, '{error: S.error, busy: S.busy}')}")


def maze_of(driver) -> ma.Maze:
    return ma.Maze.from_json(json.dumps(state(driver, "S.maze")))


def at_square(driver, canvas_id: str, sq: tuple[int, int], n: int):
    """(element, x, y offsets from its centre) of a square's centre (row 0 at the bottom). The window shows the
    whole canvas: WebDriver's offsets are from the centre of the element's visible part."""
    el = driver.find_element("id", canvas_id)
    assert driver.execute_script("return arguments[0].getBoundingClientRect().bottom <= window.innerHeight", el)
    cell = SIZE / n
    return el, round((sq[1] + 0.5) * cell - SIZE / 2), round((n - 1 - sq[0] + 0.5) * cell - SIZE / 2)


def click_square(driver, sq, n, canvas_id="maze"):
    from selenium.webdriver import ActionChains

    el, x, y = at_square(driver, canvas_id, sq, n)
    ActionChains(driver).move_to_element_with_offset(el, x, y).click().perform()


def drag(driver, a, b, n):
    from selenium.webdriver import ActionChains

    el, x0, y0 = at_square(driver, "maze", a, n)
    _, x1, y1 = at_square(driver, "maze", b, n)
    ActionChains(driver).move_to_element_with_offset(el, x0, y0).click_and_hold() \
        .move_to_element_with_offset(el, (x0 + x1) // 2, (y0 + y1) // 2).move_to_element_with_offset(el, x1, y1) \
        .release().perform()


def assert_view_is_the_apis(driver, agent, maze):
    view = state(driver, "S.view")
    np.testing.assert_array_equal(np.array(view["field"]["probs"], np.float32), agent.vector_field(maze).probs)
    want = agent.act_probs(maze)  # by name: the driver hands objects back with their keys sorted
    np.testing.assert_allclose([view["act_probs"][k] for k in want], list(want.values()), atol=1e-5)
    shown = driver.find_element("id", "probs-original").text
    assert shown.startswith("at the mouse: left ") and f"{view['act_probs']['right']:.3f}" in shown
    return view


def test_the_viewer_in_a_real_browser(page, tmp_path):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    driver, agent, downloads = page
    wait_for(driver, "S.version >= 1")
    m = maze_of(driver)
    assert m == ma.Maze.from_seed(0)
    first = assert_view_is_the_apis(driver, agent, m)

    # click a wall square: the wall opens, and the field and the probabilities follow the API's for the new maze
    wall = (1, 0)  # next to the mouse, so the probabilities at the mouse change
    assert m.level.walls[wall]
    v = state(driver, "S.version")
    click_square(driver, wall, m.size)
    wait_for(driver, f"S.version > {v}")
    m = maze_of(driver)
    assert m == ma.Maze.from_seed(0).without_wall(*wall)
    view = assert_view_is_the_apis(driver, agent, m)
    assert view["field"]["squares"] != first["field"]["squares"] and view["act_probs"] != first["act_probs"]

    # drag the cheese to another open square
    target = (0, 2)
    v = state(driver, "S.version")
    drag(driver, m.cheese, target, m.size)
    wait_for(driver, f"S.version > {v}")
    m = maze_of(driver)
    assert m.cheese == target
    assert_view_is_the_apis(driver, agent, m)

    # the cheese vector with the slider: the patched field is the API's patched field at the slider's coefficient
    driver.find_element("css selector", "input[name=patch][value=cheese_vector]").click()
    slider = driver.find_element("id", "coeff")
    v = state(driver, "S.version")
    slider.send_keys(Keys.ARROW_LEFT, Keys.ARROW_LEFT)  # -1.0 -> -1.2, through the page's input events
    coeff = float(slider.get_attribute("value"))
    assert coeff == pytest.approx(-1.2)
    wait_for(driver, f"S.version > {v} && S.view.patched")
    with agent.patched(ma.cheese_vector(agent, m, coeff=coeff)):
        np.testing.assert_allclose(state(driver, "S.view.patched.field.probs"), agent.vector_field(m).probs,
                                   atol=1e-6)

    # pick a layer and a channel: the heatmap is run_with_cache's channel
    layer = "embedder.block3.res1.resadd_out"
    v = state(driver, "S.version")
    Select(driver.find_element("id", "layer")).select_by_value(layer)
    channel = driver.find_element("id", "channel")
    channel.clear()
    channel.send_keys("2", Keys.TAB)
    wait_for(driver, f"S.version > {v} && S.view.activation.layer === '{layer}' && S.view.activation.channel === 2")
    _, cache = agent.run_with_cache(m)
    np.testing.assert_array_equal(np.array(state(driver, "S.view.activation.values"), np.float32),
                                  cache[layer][..., 2])

    # save, change the maze, load the saved file back
    driver.find_element("id", "save").click()
    wait_for(driver, "S.savedText")
    saved = state(driver, "S.savedText")
    assert saved == m.to_json() + "\n"
    end = time.monotonic() + 10
    while not (downloads / "maze-0.json").exists() and time.monotonic() < end:
        time.sleep(0.1)
    assert (downloads / "maze-0.json").read_text() == saved
    v = state(driver, "S.version")
    click_square(driver, (1, 2), m.size)
    wait_for(driver, f"S.version > {v}")
    assert maze_of(driver) != m
    v = state(driver, "S.version")
    driver.find_element("id", "load").send_keys(str(downloads / "maze-0.json"))
    wait_for(driver, f"S.version > {v}")
    assert maze_of(driver) == m

    # a bad request: its message is shown, and the page keeps working
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    driver.find_element("id", "load").send_keys(str(bad))
    wait_for(driver, "S.error")
    box = driver.find_element("id", "error")
    assert box.is_displayed() and box.text.startswith("cannot load the maze: not a maze file (invalid JSON:")
    drag(driver, m.cheese, (1, 1), m.size)  # onto a wall: the server refuses
    wait_for(driver, "S.error && S.error.includes('on a wall')")
    assert box.text.startswith("cheese square (1, 1) is on a wall")
    v = state(driver, "S.version")
    click_square(driver, (1, 2), m.size)
    wait_for(driver, f"S.version > {v}")
    assert maze_of(driver) == (m.without_wall(1, 2) if m.level.walls[1, 2] else m.with_wall(1, 2))
    assert not box.is_displayed()

    # the screenshot: a clamp patch beside the original field, the default layer's heatmap
    driver.find_element("css selector", "input[name=patch][value=clamp]").click()
    Select(driver.find_element("id", "layer")).select_by_value(DEFAULT_LAYER)
    v = state(driver, "S.version")
    click_square(driver, (m.size - 1, m.size - 1), m.size, canvas_id="patched")
    wait_for(driver, f"S.version > {v} && S.view.patched")
    v = state(driver, "S.version")
    click_square(driver, (m.size - 1, 0), m.size, canvas_id="patched")  # compiled by now: the times shown are warm
    wait_for(driver, f"S.version > {v} && S.view.patched")
    shot = tmp_path / "viewer.png"
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("MAZEAGENT_SCREENSHOT"):
        from PIL import Image

        Image.open(shot).convert("RGB").quantize(256).save(Path(os.environ["MAZEAGENT_SCREENSHOT"]), optimize=True)
