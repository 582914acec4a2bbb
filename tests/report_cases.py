"""Runs for the report tests: a tiny real run, and a large synthetic one made from it (its
metrics replaced by 100k steps and 200 evaluations, as a long run would log them)."""
import json
import math
import shutil

import numpy as np

from fasttrain.config import TrainConfig
from fasttrain.train import train

# samples that a page must show as text, never as markup
AWKWARD = '</script><script>alert(1)</script> <!-- "quoted" & <b>bold</b> \u2028 caf\u00e9 \ufffd'


def tiny_run(corpus_file, out_dir, **kw):
    """A finished 60-step run of a tiny model with evaluations at 0, 20, 40, 60."""
    base = dict(data=str(corpus_file), context=4, n_embd=8, hidden=32, batch_size=64, steps=60,
                warmup=5, lr=1e-2, min_lr=1e-3, eval_interval=20, checkpoint_interval=20,
                log_interval=20, sample_tokens=60, out_dir=str(out_dir))
    train(TrainConfig(**{**base, **kw}), progress=False)
    return out_dir


def large_run(small_run, out_dir, steps=100_000, evals=200, sample_chars=400):
    """A copy of `small_run` whose config and metrics are those of a run of `steps` steps with
    `evals` evaluations and samples of `sample_chars` characters."""
    shutil.copytree(small_run, out_dir)
    cfg = json.loads((out_dir / "config.json").read_text())
    cfg.update(steps=steps, eval_interval=steps // evals, warmup=2000)
    (out_dir / "config.json").write_text(json.dumps(cfg))
    rng = np.random.default_rng(0)
    s = np.arange(1, steps + 1)
    loss = 1.3 + 4.3 * np.exp(-s / 3000) + 0.1 * rng.standard_normal(steps)
    words = "the of and a to in is that for it as with was on be by".split()
    lines = []
    for step in range(0, steps + 1):
        if step % cfg["eval_interval"] == 0:
            v = 1.35 + 4.2 * math.exp(-step / 3000)
            text = "The " + " ".join(rng.choice(words, sample_chars // 3))[:sample_chars - 4]
            if step == steps // 2:
                text = AWKWARD
            lines.append({"step": step, "split": "val", "loss": v, "perplexity": math.exp(v),
                          "sample": text})
        if step < steps:
            lr = 3e-3 * min(1.0, (step + 1) / 2000)
            lines.append({"step": step + 1, "split": "train", "loss": float(loss[step]),
                          "lr": lr, "grad_norm": 0.5, "tokens_per_s": 55_000.0})
    (out_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return out_dir
