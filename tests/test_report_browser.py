"""report.html in a real browser (conftest's headless chromium): it loads without console
errors or fetches, the slider moves through the samples, the schedule explorer redraws for
other settings (and computes what fasttrain/schedule.py computes), a screenshot shows the
plots' colours, and the page of a 100k-step run opens in well under a second."""
import io

import numpy as np
import pytest

from fasttrain.dynamics.report import write_report
from fasttrain.schedule import learning_rate
from conftest import page_problems
from report_cases import AWKWARD, large_run, tiny_run


@pytest.fixture(scope="module")
def runs(corpus_file, tmp_path_factory):
    base = tmp_path_factory.mktemp("report-runs")
    small = tiny_run(corpus_file, base / "tiny")
    big = large_run(small, base / "big")
    write_report(big)
    return small, big


@pytest.fixture
def loaded(browser, runs):
    browser.get((runs[0] / "report.html").as_uri())
    return browser


def _state(driver):
    return driver.execute_script(
        "return {state: report.state, drawn: report.drawn, draws: report.draws, "
        "head: document.getElementById('sample-head').textContent, "
        "sample: document.getElementById('sample').textContent, "
        "loss: document.getElementById('loss').toDataURL(), "
        "schedule: document.getElementById('schedule').toDataURL()}")


def _val(run):
    import json

    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == "val"]


def test_loads_without_errors_or_fetches(loaded, runs):
    assert not page_problems(loaded)
    s = _state(loaded)
    val = _val(runs[0])
    assert s["state"]["eval"] == len(val) - 1 and s["sample"] == val[-1]["sample"]
    assert "step 60" in s["head"] and f"{val[-1]['perplexity']:.2f}" in s["head"]
    rows = loaded.execute_script(
        "return [...document.querySelectorAll('#sample-rows tr')].map(tr => tr.textContent)")
    assert len(rows) == len(val) and all(r["sample"] in row for r, row in zip(val, rows))


def test_the_slider_changes_the_shown_sample(loaded, runs):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    val = _val(runs[0])
    slider = loaded.find_element(By.ID, "slider")
    before = _state(loaded)
    slider.send_keys(Keys.HOME)
    first = _state(loaded)
    assert first["state"]["eval"] == 0 and first["sample"] == val[0]["sample"]
    assert "step 0 " in first["head"] and first["loss"] != before["loss"]   # the marker moved
    slider.send_keys(Keys.ARROW_RIGHT)
    second = _state(loaded)
    assert second["state"]["eval"] == 1 and second["sample"] == val[1]["sample"] != val[0]["sample"]
    loaded.find_element(By.ID, "next").click()
    assert _state(loaded)["sample"] == val[2]["sample"]
    assert not page_problems(loaded)


def test_the_schedule_controls_change_the_drawn_curve(loaded):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    start = _state(loaded)
    drawn = np.array(start["drawn"]["schedule"])
    expected = [learning_rate(int(s), lr=1e-2, min_lr=1e-3, warmup=5, steps=60) for s in drawn[:, 0]]
    np.testing.assert_allclose(drawn[:, 1], expected, rtol=1e-12)
    before = start
    for control, value in (("s-kind", "linear"), ("s-warmup", "20"), ("s-steps", "200"),
                           ("s-lr", "0.03"), ("s-min", "0"), ("s-kind", "constant")):
        el = loaded.find_element(By.ID, control)
        if control == "s-kind":
            Select(el).select_by_value(value)
        else:
            el.clear()
            el.send_keys(value)
        after = _state(loaded)
        assert after["drawn"]["schedule"] != before["drawn"]["schedule"], control
        assert after["schedule"] != before["schedule"], control
        before = after
    s = after["state"]["schedule"]
    assert s == {"lr": 0.03, "min_lr": 0, "warmup": 20, "steps": 200, "kind": "constant"}
    # the page's schedule is schedule.py's, for every kind
    for kind in ("cosine", "linear", "constant"):
        settings = dict(lr=0.02, min_lr=0.001, warmup=7, steps=50)
        got = loaded.execute_script(
            "return [...Array(60).keys()].map(k => report.learningRate(k, arguments[0]))",
            {**settings, "kind": kind})
        want = [learning_rate(k, schedule=kind, **settings) for k in range(60)]
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=kind)
    loaded.find_element(By.ID, "s-reset").click()
    assert _state(loaded)["drawn"]["schedule"] == start["drawn"]["schedule"]


def test_the_x_axis_can_be_tokens_or_epochs(loaded):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    steps = _state(loaded)
    Select(loaded.find_element(By.ID, "xaxis")).select_by_value("epochs")
    epochs = _state(loaded)
    assert epochs["state"]["xaxis"] == "epochs" and epochs["loss"] != steps["loss"]
    assert not page_problems(loaded)


def _colours(png):
    import matplotlib.image

    img = matplotlib.image.imread(io.BytesIO(png))[..., :3]    # (H, W, 3) in [0, 1]
    return (img * 255).astype(int).reshape(-1, 3)


def _share(pixels, hex_colour, tol=40):
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return np.mean(np.abs(pixels - rgb).max(axis=1) <= tol)


def test_a_screenshot_has_the_plots_colours(loaded):
    from selenium.webdriver.common.by import By

    loss = _colours(loaded.find_element(By.ID, "loss").screenshot_as_png)
    assert _share(loss, "#0969da") > 0.002, "the training loss (blue)"
    assert _share(loss, "#cf222e") > 0.001, "the validation loss (red)"
    assert _share(loss, "#ffffff", 5) > 0.5, "a white background"
    lr = _colours(loaded.find_element(By.ID, "lr").screenshot_as_png)
    assert _share(lr, "#1a7f37") > 0.002, "the learning rate (green)"
    schedule = _colours(loaded.find_element(By.ID, "schedule").screenshot_as_png)
    assert _share(schedule, "#1a7f37") > 0.002 and _share(schedule, "#8c959f", 20) > 0.001


def test_a_large_run_opens_fast(browser, runs):
    big = runs[1]
    browser.get((big / "report.html").as_uri())
    timing = browser.execute_script(
        "const n = performance.getEntriesByType('navigation')[0];"
        "return {load: n.loadEventEnd, ready: report.ready, evals: DATA.val.length};")
    assert not page_problems(browser)
    assert timing["evals"] == 201
    print(f"100k-step page: script done at {timing['ready']:.0f} ms, load event at "
          f"{timing['load']:.0f} ms")
    assert timing["ready"] < 1000 and timing["load"] < 1000, timing
    # the sample with markup in it is shown as text
    browser.execute_script("document.getElementById('slider').value = 100;"
                           "document.getElementById('slider').dispatchEvent(new Event('input'))")
    assert _state(browser)["sample"] == AWKWARD
    assert not page_problems(browser)


def test_the_lr_sweep_page_and_the_links_between_pages(browser, runs, tmp_path):
    import shutil

    from selenium.webdriver.common.by import By

    from fasttrain.dynamics import landscape, landscape_html, lrsweep

    shutil.copytree(runs[0], tmp_path / "mlp")
    write_report(tmp_path / "mlp")
    (tmp_path / "lr-sweep").mkdir()
    rng = np.random.default_rng(0)
    sweep = [{"lr": lr, "losses": list(5.5 * np.exp(-k * np.arange(300) / 300)
                                       + 0.05 * rng.standard_normal(300)),
              "val_loss": 2.0 + k / 10, "diverged_at": None} for k, lr in enumerate((1e-3, 1e-2))]
    sweep.append({"lr": 1.0, "losses": [5.5, 9.0, float("inf")], "val_loss": float("nan"),
                  "diverged_at": 3})
    lrsweep.write_page(sweep, tmp_path / "lr-sweep" / "lr_sweep.html", "a sweep")
    (tmp_path / "landscape").mkdir()
    landscape_html.write_page(landscape.run_all(["bowl"], ["sgd"], [0.03], 20),
                              tmp_path / "landscape" / "landscape.html")

    browser.get((tmp_path / "lr-sweep" / "lr_sweep.html").as_uri())
    assert not page_problems(browser)
    before = browser.execute_script("return document.getElementById('curves').toDataURL()")
    rows = browser.find_elements(By.CSS_SELECTOR, "#runs tr")
    assert len(rows) == 4 and "diverged at step 3" in rows[3].text and "best" in rows[1].text
    rows[2].click()
    assert browser.execute_script("return sweep.selected") == 1
    assert browser.execute_script("return document.getElementById('curves').toDataURL()") != before
    # each page's links lead to the other pages, which open without problems
    for label, title in (("run mlp", "fasttrain run mlp"), ("landscape", "fasttrain landscape"),
                         ("lr sweep", "fasttrain lr sweep")):
        browser.find_element(By.LINK_TEXT, label).click()
        assert browser.title == title and not page_problems(browser)
