"""The landscape: the surfaces' gradients against finite differences, trajectories against the
optimizers' update rules (and PyTorch), the tutorial's story on the default surface, divergence,
bad arguments, and what `fasttrain landscape` writes (PNGs with content, one self-contained HTML
page). The page in a real browser: test_landscape_browser.py."""
import json
import re

import numpy as np
import pytest

from fasttrain.cli import main
from fasttrain.dynamics import landscape as L
from fasttrain.dynamics.landscape_html import page_data
from conftest import assert_close


@pytest.mark.parametrize("name", list(L.SURFACES))
def test_gradients_match_finite_differences(name):
    s = L.SURFACES[name]
    rng = np.random.default_rng(0)
    x0, x1, y0, y1 = s.extent
    pts = np.column_stack([rng.uniform(x0, x1, 50), rng.uniform(y0, y1, 50)])
    h = 1e-6
    gx, gy = s.grad(pts[:, 0], pts[:, 1])
    fdx = (s.f(pts[:, 0] + h, pts[:, 1]) - s.f(pts[:, 0] - h, pts[:, 1])) / (2 * h)
    fdy = (s.f(pts[:, 0], pts[:, 1] + h) - s.f(pts[:, 0], pts[:, 1] - h)) / (2 * h)
    assert_close(gx, fdx, rtol=1e-6, atol=1e-6, what=f"{name} df/dx")
    assert_close(gy, fdy, rtol=1e-6, atol=1e-6, what=f"{name} df/dy")
    for m in s.minima:  # the minima are where the gradient vanishes, and lowest on the grid
        assert np.allclose(s.grad(*m), 0.0, atol=1e-12)
        assert s.f(*m) <= L.loss_grid(name)[2].min() + 1e-12


def _reference(surface, optimizer, lr, steps):
    """The update rules written out in numpy (torch.optim.SGD / Adam's documented algorithms)."""
    s = L.SURFACES[surface]
    p = np.array(s.start, dtype=np.float64)
    buf, m, v = np.zeros(2), np.zeros(2), np.zeros(2)
    out = [p.copy()]
    b1, b2 = L.ADAM_BETAS
    for t in range(1, steps + 1):
        g = np.array(s.grad(*p))
        if optimizer == "adam":
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            p = p - lr / (1 - b1 ** t) * m / (np.sqrt(v) / np.sqrt(1 - b2 ** t) + 1e-8)
        else:
            buf = (L.MOMENTUM if optimizer == "momentum" else 0.0) * buf + g
            p = p - lr * buf
        out.append(p.copy())
    return np.array(out)


@pytest.mark.parametrize("optimizer", L.OPTIMIZERS)
@pytest.mark.parametrize("surface", ["bowl", "rosenbrock"])
def test_trajectory_follows_the_update_rule(surface, optimizer, backend):
    t = L.run(surface, optimizer, 0.005, 60, backend=backend)
    assert t.status != "diverged"
    assert_close(t.points, _reference(surface, optimizer, 0.005, 60), rtol=1e-12, atol=1e-12,
                 what=f"{surface} {optimizer}")
    assert_close(t.losses, L.SURFACES[surface].f(*t.points.T), rtol=0, atol=0, what="losses")


def test_adam_trajectory_matches_pytorch(torch):
    s = L.SURFACES["bowl"]
    p = torch.tensor(s.start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([p], lr=0.1, betas=L.ADAM_BETAS)
    points = [p.detach().numpy().copy()]
    for _ in range(100):
        opt.zero_grad()
        loss = torch.log1p(0.5 * (2.0 * p[0] ** 2 + 30.0 * p[1] ** 2))
        loss.backward()
        opt.step()
        points.append(p.detach().numpy().copy())
    assert_close(L.run("bowl", "adam", 0.1, 100).points, np.array(points), rtol=1e-10,
                 atol=1e-12, what="adam vs torch.optim.Adam")


def test_the_tutorial_story_holds_on_the_default_surface():
    """SGD at 0.005 barely moves, at 0.1 overshoots or diverges, at 0.03-0.05 reaches the
    minimum; Adam reaches it across a wider range."""
    surface, steps = L.DEFAULT_SURFACE, L.DEFAULT_STEPS
    slow = L.run(surface, "sgd", 0.005, steps)
    assert slow.status == "on its way" and slow.progress < 0.25, slow.summary
    for lr in (0.03, 0.04, 0.05):
        t = L.run(surface, "sgd", lr, steps)
        assert t.status == "reached", (lr, t.summary)
    fast = L.run(surface, "sgd", 0.1, steps)
    assert fast.status in ("overshoots", "diverged"), fast.summary
    grid = (0.005, 0.01, 0.03, 0.05, 0.1, 0.2, 0.3)
    reached = {o: {lr for lr in grid if L.run(surface, o, lr, steps).status == "reached"}
               for o in ("sgd", "adam")}
    assert reached["sgd"] < reached["adam"], reached          # a strict superset
    assert {0.03, 0.05, 0.1, 0.2, 0.3} <= reached["adam"], reached


def test_divergence_stops_the_trajectory():
    t = L.run("quadratic", "sgd", 1.0, 50)   # curvature 10: |1 - 10 lr| = 9 per step
    assert t.status == "diverged" and t.diverged_at == 1 and t.summary == "diverged at step 1"
    assert len(t.points) == len(t.losses) == 2
    x0, x1, y0, y1 = L.SURFACES["quadratic"].extent
    assert not (y0 <= t.points[-1, 1] <= y1)
    # an overflow to inf also stops it, and the JSON for the page says null, not Infinity
    t = L.run("rosenbrock", "sgd", 1e308, 5)
    assert t.status == "diverged" and t.diverged_at == 1 and not np.isfinite(t.points[-1]).all()
    json.dumps(t.to_json(), allow_nan=False)


@pytest.mark.parametrize("args,message", [
    (["--surface", "moon"], "unknown surface 'moon'"),
    (["--optimizer", "sgd,lion"], "unknown optimizer 'lion'"),
    (["--lr", "0.01,0"], "learning rates must be finite and > 0, got 0.0"),
    (["--lr", "-0.1"], "learning rates must be finite and > 0, got -0.1"),
    (["--steps", "0"], "steps must be >= 1"),
    (["--optimizer", ","], "give at least one optimizer"),
])
def test_bad_arguments_are_clear_errors(args, message, tmp_path, capsys):
    assert main(["landscape", *args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())   # checked before anything is written


def test_lr_that_is_not_a_number_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["landscape", "--lr", "fast"])
    assert e.value.code == 2 and "expected comma-separated numbers" in capsys.readouterr().err


def _png(path):
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    return matplotlib.image.imread(path)[..., :3]   # (H, W, 3) floats in [0, 1]


def test_cli_writes_pngs_and_a_self_contained_page(tmp_path, capsys):
    out = tmp_path / "ls"
    assert main(["landscape", "--surface", "bowl,saddle", "--optimizer", "sgd,momentum",
                 "--lr", "0.005,0.03", "--steps", "60", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "bowl: f = " in printed and "sgd      lr 0.005" in printed
    for surface in ("bowl", "saddle"):
        img = _png(out / f"landscape_{surface}.png")
        assert img.shape[0] >= 400 and img.shape[1] >= 600, img.shape
        r, g, b = img[..., 0], img[..., 1], img[..., 2]
        red = np.mean((r > 0.6) & (r > g + 0.3) & (r > b + 0.3))
        green = np.mean((g > r + 0.15) & (g > b + 0.1))
        assert red > 0.05 and green > 0.003, (surface, red, green)   # green low, red high
        loss = _png(out / f"loss_{surface}.png")
        assert loss.shape[0] >= 250 and loss.std() > 0.05
    text = (out / "landscape.html").read_text()
    assert not re.search(r"https?://|<script[^>]+src=|<link|@import|url\(", text)
    data = json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>',
                                text, re.S).group(1).replace("<\\/", "</"))
    assert set(data["surfaces"]) == {"bowl", "saddle"} and data["steps"] == 60
    ref = L.run("saddle", "momentum", 0.03, 60)
    assert_close(np.array(data["runs"]["saddle"]["momentum"]["0.03"]["points"]), ref.points,
                 rtol=1e-4, atol=1e-5, what="embedded trajectory")
    s = data["surfaces"]["bowl"]
    import base64
    bands = np.frombuffer(base64.b64decode(s["bands"]), np.uint8).reshape(s["ny"], s["nx"])
    assert bands.max() == len(s["colours"]) - 1 and bands.min() == 0
    # the minimum is in the lowest band, the corners in high ones
    assert bands[s["ny"] // 2, s["nx"] // 2] == 0 and bands[0, 0] > len(s["colours"]) // 2


def test_page_data_is_strict_json_even_with_divergence():
    results = L.run_all(["quadratic"], ["sgd"], [1.0, 0.1], 20)
    json.dumps(page_data(results), allow_nan=False)
