"""report.html, without a browser (tests/test_report_browser.py opens it): written at the end
of training and by `fasttrain report`, self-contained, holding the run's samples, compute and
schedule; under 2 MB for 100k steps and 200 evaluations; linked with the other pages."""
import json
import re
import time

import pytest

from fasttrain.cli import main
from fasttrain.dynamics import estimate
from fasttrain.dynamics.report import THIN, report_data, write_report
from report_cases import AWKWARD, large_run, tiny_run


@pytest.fixture(scope="module")
def run(corpus_file, tmp_path_factory):
    return tiny_run(corpus_file, tmp_path_factory.mktemp("runs") / "tiny")


def embedded(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    return json.loads(m.group(1))


def assert_self_contained(page: str):
    assert not re.search(r"<(script|img|iframe)[^>]+src=|<link[^>]+href=|url\(|@import", page)
    assert "http://" not in page and "https://" not in page
    assert page.count("</script>") == 2          # the data element and the one script


def test_training_writes_the_report(run):
    page = (run / "report.html").read_text()
    assert_self_contained(page)
    data = embedded(page)
    metrics = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in metrics if r["split"] == "val"]
    assert [v["step"] for v in data["val"]] == [0, 20, 40, 60]
    assert [v["sample"] for v in data["val"]] == [r["sample"] for r in val]
    assert data["train"]["step"] == list(range(1, 61)) and len(data["train"]["loss"]) == 60
    assert data["params"] == 11_552 and data["tokens"] == 60 * 64
    flops = {c["name"]: c["flops"] for c in data["compute"]}
    assert flops["this run"] == 6 * 11_552 * 60 * 64
    assert flops["GPT-3"] == pytest.approx(3.15e23, rel=1e-2)      # 6 x 175e9 x 300e9
    assert flops["Chinchilla"] == pytest.approx(5.88e23, rel=1e-2)  # 6 x 70e9 x 1.4e12
    assert data["schedule"] == {"lr": 1e-2, "min_lr": 1e-3, "warmup": 5, "steps": 60,
                                "kind": "cosine"}


def test_fasttrain_report_rewrites_it(run, capsys):
    (run / "report.html").unlink()
    assert main(["report", "--run", str(run)]) == 0
    assert (run / "report.html").exists() and "wrote" in capsys.readouterr().out
    assert main(["report", "--run", str(run / "nothing")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_a_large_run_gives_a_small_page(run, tmp_path):
    big = large_run(run, tmp_path / "big")
    t0 = time.perf_counter()
    path = write_report(big)
    seconds = time.perf_counter() - t0
    size = (big / "report.html").stat().st_size
    page = (big / "report.html").read_text()
    data = embedded(page)
    assert size < 2_000_000, size
    assert len(data["train"]["loss"]) == THIN and data["train"]["thinned"]
    assert data["train"]["step"][0] < 100 and data["train"]["step"][-1] > 99_900
    assert len(data["val"]) == 201 and data["val"][100]["sample"] == AWKWARD
    assert_self_contained(page)       # the awkward sample closed no element
    print(f"100k steps, 200 evaluations: {size / 1e3:.0f} kB, written in {seconds:.2f} s")
    assert path == str(big / "report.html")


def test_pages_link_to_each_other(run, tmp_path):
    """A run, a landscape and an lr sweep side by side each link to the other two, whichever
    was written first."""
    import shutil

    from fasttrain.dynamics import landscape, landscape_html, lrsweep

    shutil.copytree(run, tmp_path / "mlp")
    write_report(tmp_path / "mlp")
    results = landscape.run_all(["bowl"], ["sgd"], [0.03], 10)
    landscape_html.write_page(results, (tmp_path / "landscape").mkdir() or
                              tmp_path / "landscape" / "landscape.html")
    sweep = [{"lr": 1e-3, "losses": [5.0, 4.0, float("nan")], "val_loss": float("nan"),
              "diverged_at": 3}]
    (tmp_path / "lr-sweep").mkdir()
    lrsweep.write_page(sweep, tmp_path / "lr-sweep" / "lr_sweep.html", "a sweep")
    pages = {"mlp/report.html": ("../landscape/landscape.html", "../lr-sweep/lr_sweep.html"),
             "landscape/landscape.html": ("../mlp/report.html", "../lr-sweep/lr_sweep.html"),
             "lr-sweep/lr_sweep.html": ("../mlp/report.html", "../landscape/landscape.html")}
    css = None
    for page, links in pages.items():
        text = (tmp_path / page).read_text()
        nav = re.search(r"<nav.*?</nav>", text, re.S).group(0)
        assert re.findall(r'href="([^"]+)"', nav) == list(links), (page, nav)
        style = re.search(r"<style>(.*?)</style>", text, re.S).group(1)
        assert css is None or style.startswith(css), "one look: the shared CSS comes first"
        css = css or style[:style.index("#") if "#" in style else len(style)]
        assert_self_contained(text)
    assert embedded((tmp_path / "lr-sweep" / "lr_sweep.html").read_text())["runs"][0]["val_loss"] is None


def test_landmarks_sit_with_the_estimate_constants():
    n, d, _ = estimate.LANDMARKS["GPT-3"]
    assert estimate.training_flops(n, d) == pytest.approx(3.15e23, rel=1e-3)
    n, d, _ = estimate.LANDMARKS["Chinchilla"]
    assert d / n == pytest.approx(estimate.CHINCHILLA_TOKENS_PER_PARAM)
