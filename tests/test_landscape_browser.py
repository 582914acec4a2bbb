"""The landscape page in a real browser: Debian's chromium, headless, driven through
chromedriver by selenium (https://www.selenium.dev/documentation/webdriver/). The page must load
without console errors, its controls must change the trajectory it draws, its buttons must
animate it, and a screenshot must show the contour map. The browser is conftest's (it skips, or
under FASTTRAIN_STRICT=1 fails, without chromium)."""
import io
import time

import numpy as np
import pytest

from fasttrain.dynamics import landscape as L
from fasttrain.dynamics.landscape_html import write_page
from conftest import page_problems


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    path = tmp_path_factory.mktemp("page") / "landscape.html"
    results = L.run_all(["bowl", "rosenbrock"], ["sgd", "adam"], [0.005, 0.03, 0.1], 150)
    write_page(results, path, "bowl")
    return path, results


@pytest.fixture
def loaded(browser, page):
    path, results = page
    browser.get(path.as_uri())
    browser.execute_script("return document.readyState")
    return browser, results


def _state(driver):
    return driver.execute_script(
        "return {state: explorer.state, drawn: explorer.drawn, draws: explorer.draws, "
        "status: document.getElementById('status').textContent, "
        "pixels: document.getElementById('map').toDataURL()}")


def _choose(driver, control, value):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, control)).select_by_value(value)


def test_page_loads_without_console_errors(loaded):
    driver, results = loaded
    assert not page_problems(driver)
    s = _state(driver)
    assert s["draws"] >= 1 and s["state"]["surface"] == "bowl"
    expected = results["bowl"]["sgd"][0.005]
    assert np.allclose(s["drawn"], expected.points, rtol=1e-4, atol=1e-5)
    assert s["status"] == expected.summary


def test_controls_change_the_drawn_trajectory(loaded):
    driver, results = loaded
    before = _state(driver)
    for control, value, key in (("lr", "0.1", ("bowl", "sgd", 0.1)),
                                ("optimizer", "adam", ("bowl", "adam", 0.1)),
                                ("surface", "rosenbrock", ("rosenbrock", "adam", 0.1))):
        _choose(driver, control, value)
        after = _state(driver)
        assert after["state"][control] == value
        assert after["drawn"] != before["drawn"] and after["pixels"] != before["pixels"], control
        surface, opt, lr = key
        expected = results[surface][opt][lr]
        assert np.allclose(after["drawn"], expected.points, rtol=1e-4, atol=1e-5), key
        assert after["status"] == expected.summary
        before = after


def test_buttons_animate_the_ball(loaded):
    from selenium.webdriver.common.by import By

    driver, results = loaded
    driver.find_element(By.ID, "reset").click()
    s = _state(driver)
    assert s["state"]["frame"] == 0 and len(s["drawn"]) == 1
    driver.find_element(By.ID, "step").click()
    driver.find_element(By.ID, "step").click()
    assert len(_state(driver)["drawn"]) == 3
    driver.find_element(By.ID, "play").click()
    deadline = time.monotonic() + 20
    seen = set()
    while time.monotonic() < deadline:
        s = _state(driver)
        seen.add(s["state"]["frame"])
        if not s["state"]["playing"]:
            break
        time.sleep(0.05)
    assert s["state"]["frame"] == 150 and not s["state"]["playing"]
    assert len(seen) >= 3, seen                          # it moved through frames on its own
    assert s["status"] == results["bowl"]["sgd"][0.005].summary


def test_screenshot_shows_the_contour_map(loaded, tmp_path):
    import matplotlib.image
    from selenium.webdriver.common.by import By

    driver, _ = loaded
    png = driver.find_element(By.ID, "map").screenshot_as_png
    (tmp_path / "map.png").write_bytes(png)
    img = matplotlib.image.imread(io.BytesIO(png))[..., :3]      # (H, W, 3) in [0, 1]
    assert img.shape[0] >= 300 and img.shape[1] >= 500, img.shape
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    red = np.mean((r > 0.6) & (r > g + 0.3) & (r > b + 0.3))
    green = np.mean((g > r + 0.15) & (g > b + 0.1))
    assert red > 0.1 and green > 0.003, (red, green)            # red walls, a green bottom
    colours = len(np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    assert colours >= 20, colours                                # bands, not a flat fill
    whole = matplotlib.image.imread(io.BytesIO(driver.get_screenshot_as_png()))
    assert whole[..., :3].std() > 0.1
