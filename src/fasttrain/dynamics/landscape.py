"""A ball rolling downhill: optimizers on 2-D loss surfaces, run on fasttrain's own kernels.

Each surface is a function f(x, y) with its analytic gradient, a start point, the window that is
plotted and where its minima are. `run` takes one optimizer at one learning rate from the start
for a number of steps; the parameter is a 2-element float64 array updated in place by the same
fused kernels that train the language model:

    sgd       kernels.sgd_step(momentum=0)                 torch.optim.SGD
    momentum  kernels.sgd_step(momentum=0.9)               torch.optim.SGD(momentum=0.9)
    adam      kernels.adamw_step(weight_decay=0)           torch.optim.Adam (betas 0.9, 0.999)

The default surface, "bowl", is chosen so that the story a tutorial tells holds (and
tests/test_landscape.py asserts it): in 150 steps from its start, SGD at lr 0.005 covers a fifth
of the way, at 0.03-0.05 it reaches the minimum, at 0.1 it overshoots and bounces across the
valley without settling; Adam, whose step is about lr whatever the gradient's size
(Kingma & Ba 2015, section 2.1), reaches the minimum from 0.03 to 0.3. Why a bowl with flat rims
(the log of a quadratic) and not a plain quadratic: on a quadratic the distance to the minimum
shrinks like (1 - lr·h)^steps, so a learning rate 6x smaller always covers most of the way a
larger one covers; far from the minimum of log(1 + q) the slope is small (about 2/r), as on the
plateaus of real losses, and a small learning rate crawls.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

OPTIMIZERS = ("sgd", "momentum", "adam")
MOMENTUM = 0.9
ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults


@dataclass(frozen=True)
class Surface:
    name: str
    formula: str            # as printed on the plots and the page
    about: str              # what it shows, one line
    f: object               # f(x, y) -> loss, elementwise over arrays
    grad: object            # grad(x, y) -> (df/dx, df/dy), elementwise over arrays
    start: tuple            # (x0, y0)
    extent: tuple           # (xmin, xmax, ymin, ymax): the plotted window; leaving it = diverged
    minima: tuple           # ((x, y), ...) where f is lowest

    @property
    def tolerance(self) -> float:
        """How near a minimum counts as having reached it: 1% of the window's width."""
        return 0.01 * (self.extent[1] - self.extent[0])


def _bowl():
    a, b = 2.0, 30.0  # curvatures at the minimum: SGD is stable there for lr < 2/30 = 0.067

    def f(x, y):
        return np.log1p(0.5 * (a * x * x + b * y * y))

    def grad(x, y):
        d = 1.0 + 0.5 * (a * x * x + b * y * y)
        return a * x / d, b * y / d

    return Surface("bowl", "log(1 + x² + 15y²)",
                   "a bowl with flat rims: small lr crawls, large lr bounces across the valley",
                   f, grad, (2.5, 1.0), (-3.0, 3.0, -2.0, 2.0), ((0.0, 0.0),))


def _quadratic():
    a, b = 1.0, 10.0  # SGD converges for lr < 2/10

    def f(x, y):
        return 0.5 * (a * x * x + b * y * y)

    def grad(x, y):
        return a * x, b * y

    return Surface("quadratic", "(x² + 10y²) / 2",
                   "a plain elongated bowl: the step shrinks with the slope",
                   f, grad, (2.5, 1.0), (-3.0, 3.0, -2.0, 2.0), ((0.0, 0.0),))


def _ravine():
    a, b = 0.2, 40.0  # condition number 200: the floor is 200x flatter than the walls

    def f(x, y):
        return 0.5 * (a * x * x + b * y * y)

    def grad(x, y):
        return a * x, b * y

    return Surface("ravine", "(0.2x² + 40y²) / 2",
                   "a narrow valley: SGD zigzags between the walls and creeps along the floor",
                   f, grad, (-2.5, 0.8), (-3.0, 3.0, -2.0, 2.0), ((0.0, 0.0),))


def _rosenbrock():
    # Rosenbrock (1960) with b = 10 instead of the classic 100: with b = 100 the valley's walls
    # are so steep (curvature ~1000) that SGD diverges for any lr above 0.002.
    b = 10.0

    def f(x, y):
        return (1.0 - x) ** 2 + b * (y - x * x) ** 2

    def grad(x, y):
        r = y - x * x
        return -2.0 * (1.0 - x) - 4.0 * b * x * r, 2.0 * b * r

    return Surface("rosenbrock", "(1 - x)² + 10(y - x²)²",
                   "a curved valley: easy to fall into, slow to follow to its end",
                   f, grad, (-1.5, 2.0), (-2.0, 2.0, -1.0, 3.0), ((1.0, 1.0),))


def _saddle():
    def f(x, y):
        return 0.5 * x * x + 0.25 * (y * y - 1.0) ** 2

    def grad(x, y):
        return x, y * (y * y - 1.0)

    return Surface("saddle", "x²/2 + (y² - 1)²/4",
                   "a saddle at the origin between two minima: plain SGD lingers on it",
                   f, grad, (2.0, 0.01), (-2.5, 2.5, -2.0, 2.0), ((0.0, 1.0), (0.0, -1.0)))


SURFACES = {s.name: s for s in (_bowl(), _quadratic(), _ravine(), _rosenbrock(), _saddle())}
DEFAULT_SURFACE = "bowl"
DEFAULT_LRS = (0.005, 0.03, 0.1)
DEFAULT_STEPS = 150


@dataclass
class Trajectory:
    surface: str
    optimizer: str
    lr: float
    steps: int                          # the steps asked for (fewer were taken if it diverged)
    points: np.ndarray                  # (K + 1, 2): the start, then after each step
    losses: np.ndarray                  # (K + 1,)
    status: str                         # "reached", "diverged", "overshoots" or "on its way"
    reached_at: int | None = None       # first step from which it stays near a minimum
    diverged_at: int | None = None      # the step that left the window or went non-finite
    progress: float = 0.0               # fraction of the start's distance to a minimum covered
    summary: str = field(default="")

    def to_json(self) -> dict:
        return {"points": [[_round(x), _round(y)] for x, y in self.points],
                "losses": [_round(v) for v in self.losses], "status": self.status,
                "summary": self.summary}


def _round(v: float) -> float | None:
    return float(f"{v:.5g}") if math.isfinite(v) else None


def check_arguments(surfaces, optimizers, lrs, steps) -> None:
    """ValueError naming the first bad argument."""
    for what, values in (("surface", surfaces), ("optimizer", optimizers), ("learning rate", lrs)):
        if not values:
            raise ValueError(f"give at least one {what}")
    for s in surfaces:
        if s not in SURFACES:
            raise ValueError(f"unknown surface {s!r}; choose from {', '.join(SURFACES)}")
    for o in optimizers:
        if o not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {o!r}; choose from {', '.join(OPTIMIZERS)}")
    for lr in lrs:
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"learning rates must be finite and > 0, got {lr}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")


def run(surface: str, optimizer: str, lr: float, steps: int = DEFAULT_STEPS, *,
        backend=None) -> Trajectory:
    """`steps` steps of `optimizer` at `lr` on `surface` from its start, on the kernels."""
    from fasttrain.kernels import adamw_step, sgd_step

    check_arguments([surface], [optimizer], [lr], steps)
    s = SURFACES[surface]
    xmin, xmax, ymin, ymax = s.extent
    param = np.array(s.start, dtype=np.float64)   # (2,) the ball's position: x, y
    grad = np.zeros(2)                            # (2,)
    m, v = np.zeros(2), np.zeros(2)               # Adam's moments; m is SGD's momentum buffer
    points, losses = [param.copy()], [float(s.f(*param))]
    diverged_at = None
    for step in range(1, steps + 1):
        grad[:] = s.grad(*param)
        if optimizer == "adam":
            adamw_step(param, grad, m, v, step=step, lr=lr, beta1=ADAM_BETAS[0],
                       beta2=ADAM_BETAS[1], weight_decay=0.0, backend=backend)
        else:
            sgd_step(param, grad, m, lr=lr, momentum=MOMENTUM if optimizer == "momentum" else 0.0,
                     backend=backend)
        points.append(param.copy())
        with np.errstate(over="ignore", invalid="ignore"):
            losses.append(float(s.f(*param)))
        x, y = param
        if not (np.isfinite(param).all() and math.isfinite(losses[-1])
                and xmin <= x <= xmax and ymin <= y <= ymax):
            diverged_at = step
            break
    points = np.array(points)
    return _judge(s, optimizer, lr, steps, points, np.array(losses), diverged_at)


def _judge(s: Surface, optimizer, lr, steps, points, losses, diverged_at) -> Trajectory:
    """Name what happened, in the words of the tutorial."""
    minima = np.array(s.minima)
    with np.errstate(invalid="ignore", over="ignore"):
        dist = np.min(np.linalg.norm(points[:, None, :] - minima[None], axis=2), axis=1)
    t = Trajectory(s.name, optimizer, lr, steps, points, losses, "on its way",
                   diverged_at=diverged_at)
    t.progress = float(1.0 - dist[-1] / dist[0]) if math.isfinite(dist[-1]) else -math.inf
    near = dist <= s.tolerance
    if diverged_at is not None:
        t.status = "diverged"
        t.summary = f"diverged at step {diverged_at}"
    elif near[-1]:
        far = np.nonzero(~near)[0]
        t.reached_at = int(far[-1] + 1) if len(far) else 0
        t.status = "reached"
        t.summary = f"reached the minimum at step {t.reached_at}"
    elif dist.min() < 0.5 * dist[-1]:
        # it came much closer than it is now: it passed the minimum and was thrown back
        t.status = "overshoots"
        t.summary = f"overshoots: bounces, ends {dist[-1]:.2g} from the minimum"
    else:
        t.summary = f"on its way: covered {100 * t.progress:.0f}% of the distance"
    return t


def run_all(surfaces, optimizers, lrs, steps, *, backend=None) -> dict:
    """{surface: {optimizer: {lr: Trajectory}}} for every combination."""
    check_arguments(surfaces, optimizers, lrs, steps)
    return {s: {o: {lr: run(s, o, lr, steps, backend=backend) for lr in lrs} for o in optimizers}
            for s in surfaces}


def loss_grid(surface: str, nx: int = 240, ny: int = 160):
    """(xs (nx,), ys (ny,), Z (ny, nx)) over the surface's window."""
    s = SURFACES[surface]
    xs = np.linspace(s.extent[0], s.extent[1], nx)
    ys = np.linspace(s.extent[2], s.extent[3], ny)
    X, Y = np.meshgrid(xs, ys)
    return xs, ys, s.f(X, Y)


def log_levels(Z: np.ndarray, n: int = 24) -> np.ndarray:
    """n + 1 contour levels, spaced evenly in log(loss - min + floor): fine near the minimum,
    where the motion is, coarse on the walls. The floor, 5% of the median height above the
    minimum, keeps the levels from crowding into a dot at the minimum."""
    lo, hi = float(Z.min()), float(Z.max())
    floor = 0.05 * float(np.median(Z - lo)) or 1e-12
    return lo - floor + np.geomspace(floor, hi - lo + floor, n + 1)


def loss_bands(surface: str, nx: int = 240, ny: int = 160):
    """(levels (n + 1,), bands (ny, nx) uint8): which band between levels each grid cell's loss
    falls in; row 0 is the lowest y. The PNGs and the HTML page draw the same bands."""
    _, _, Z = loss_grid(surface, nx, ny)
    levels = log_levels(Z)
    bands = np.clip(np.searchsorted(levels, Z) - 1, 0, len(levels) - 2).astype(np.uint8)
    return levels, bands
