"""Shared fixtures. With FASTTRAIN_STRICT=1 (set by .ci/run) a backend that fails to load or a
missing PyTorch is a test failure, not a skip, so CI cannot go green by skipping the core."""
import os
import shutil

import numpy as np
import pytest
from hypothesis import settings

import fasttrain
from fasttrain.kernels import BACKENDS, backend_status

STRICT = os.environ.get("FASTTRAIN_STRICT") == "1"

# hypothesis profiles (tests/test_properties.py): "ci", the default, is bounded (about a minute
# for the whole file) and derandomized, so a CI run is reproducible; HYPOTHESIS_PROFILE=thorough
# draws 13x more examples, at random.
settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True, database=None,
                          print_blob=True)
settings.register_profile("thorough", max_examples=800, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _backend_param(name):
    why = backend_status()[name]
    if why is None or STRICT:
        return pytest.param(name, id=name)
    return pytest.param(name, id=name, marks=pytest.mark.skip(reason=f"backend {name}: {why}"))


# FASTTRAIN_TEST_BACKENDS=c (comma-separated) narrows the `backend` fixture: .ci/sanitize uses it
# to run only the instrumented C backend under AddressSanitizer.
_ONLY = os.environ.get("FASTTRAIN_TEST_BACKENDS")
TEST_BACKENDS = tuple(b for b in BACKENDS if not _ONLY or b in _ONLY.split(","))
BACKEND_PARAMS = [_backend_param(name) for name in TEST_BACKENDS]


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request):
    """Every backend, each test once per backend."""
    return request.param


@pytest.fixture(params=[1, 2], ids=lambda n: f"threads{n}")
def threads(request):
    """Run the test with 1 and with 2 threads, then restore the count."""
    before = fasttrain.get_num_threads()
    fasttrain.set_num_threads(request.param)
    yield request.param
    fasttrain.set_num_threads(before)


@pytest.fixture(scope="session")
def torch():
    """PyTorch, the oracle; skipped (or, under FASTTRAIN_STRICT=1, failed) when absent."""
    if STRICT:
        import torch

        return torch
    return pytest.importorskip("torch", reason="PyTorch is not installed (CI installs torch==2.13.0)")


def assert_close(actual, desired, *, rtol, atol, what=""):
    """|actual - desired| <= atol + rtol * |desired| elementwise, with NaN matching NaN and inf
    matching the same inf; on failure, names the largest differences and the worst element."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.shape == desired.shape, f"{what}: shape {actual.shape} != {desired.shape}"
    with np.errstate(invalid="ignore", over="ignore"):
        common = np.result_type(actual.dtype, desired.dtype, np.float32)
        a, d = actual.astype(common, copy=False), desired.astype(common, copy=False)
        err = np.abs(a - d)
        ok = (err <= atol + rtol * np.abs(d)) | (a == d) | (np.isnan(a) & np.isnan(d))
    if ok.all():
        return
    k = np.unravel_index(np.argmax(~ok), ok.shape) if ok.ndim else ()
    finite = np.isfinite(err)
    rel = err[finite] / np.maximum(np.abs(d[finite]), 1e-30)
    raise AssertionError(
        f"{what}: {np.count_nonzero(~ok)} of {ok.size} elements differ; max |diff| "
        f"{err[finite].max(initial=0):.3e}, max rel diff {rel.max(initial=0):.3e}; first at "
        f"{tuple(int(i) for i in k)}: {a[k]!r} vs {d[k]!r} (rtol={rtol}, atol={atol})")


def numeric_gradient(loss, args, arg, h=1e-6):
    """Central finite differences of the scalar loss(*args) with respect to args[arg], element
    by element (float64 arguments)."""
    numeric = np.zeros_like(args[arg])
    for idx in np.ndindex(numeric.shape):
        plus, minus = [a.copy() for a in args], [a.copy() for a in args]
        plus[arg][idx] += h
        minus[arg][idx] -= h
        numeric[idx] = (loss(*plus) - loss(*minus)) / (2 * h)
    return numeric


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory):
    """60 kB of the built-in corpus as a text file: the data of the small training runs."""
    from fasttrain.data import builtin_corpus

    path = tmp_path_factory.mktemp("corpus") / "text.txt"
    path.write_text(builtin_corpus()[:60_000])
    return path


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium; it is in fasttrain[test])"
    for exe, package in (("chromium", "chromium"), ("chromedriver", "chromium-driver")):
        if shutil.which(exe) is None:
            return f"{exe} is not on PATH (Debian: apt-get install {package})"
    return None


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium, headless, driven through chromedriver by selenium
    (https://www.selenium.dev/documentation/webdriver/), shared by the page tests. Without
    chromium, chromedriver or selenium they skip, saying which is missing; under
    FASTTRAIN_STRICT=1 (CI, whose .ci/run installs chromium first) they fail instead."""
    why = _browser_missing()
    if why:
        if STRICT:
            pytest.fail(f"FASTTRAIN_STRICT=1: {why}")
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1100,1000", "--allow-file-access-from-files"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the driver's path is given, so selenium's manager never looks for (or downloads) one
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    yield driver
    driver.quit()


def page_problems(driver) -> list:
    """Console errors and warnings since the last call, and any resource the page fetched (a
    self-contained page fetches no script, style, image or data file)."""
    problems = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    fetched = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    return problems + [f"fetched {url}" for url in fetched]
