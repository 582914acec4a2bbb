"""The training configuration: types, overrides, TOML, errors that name the key."""
import pytest

from fasttrain.config import ConfigError, TrainConfig, load_toml, parse_overrides
from fasttrain.schedule import from_config, learning_rate


def test_defaults_validate():
    TrainConfig().validate()


def test_overrides_are_typed():
    cfg = TrainConfig().override(parse_overrides(["--lr=0.01", "--steps", "7", "--data=x.txt"]),
                                 "cli")
    assert cfg.lr == 0.01 and cfg.steps == 7 and cfg.data == "x.txt"


def test_each_model_starts_from_its_own_defaults(tmp_path):
    from fasttrain.config import MODEL_DEFAULTS, describe
    from fasttrain.train import resolve_config

    mlp, gpt = resolve_config({}, None, False), resolve_config({"model": "gpt"}, None, False)
    assert mlp == TrainConfig()
    assert gpt == TrainConfig(model="gpt", **MODEL_DEFAULTS["gpt"]).validate()
    assert (gpt.n_embd, gpt.batch_size, gpt.out_dir) == (128, 32, "runs/gpt")
    # the file's model picks the defaults too; its keys and the command line's win over them
    path = tmp_path / "run.toml"
    path.write_text('model = "gpt"\nlr = 1e-3\n')
    cfg = resolve_config({"steps": "5"}, str(path), False)
    assert (cfg.model, cfg.lr, cfg.steps, cfg.n_embd) == ("gpt", 1e-3, 5, 128)
    assert resolve_config({"model": "mlp"}, str(path), False).n_embd == TrainConfig().n_embd
    with pytest.raises(ConfigError, match="model must be one of mlp, gpt"):
        resolve_config({"model": "rnn"}, None, False)
    assert "--lr=0.003" in describe() and "[model gpt: 0.004]" in describe()


@pytest.mark.parametrize("args,message", [
    (["--learning_rate=1"], "unknown key 'learning_rate'"),
    (["--steps=ten"], "steps must be int; got 'ten'"),
    (["--lr=fast"], "lr must be float"),
    (["--steps"], "--steps needs a value"),
    (["steps=3"], "expected --key=value"),
])
def test_bad_overrides_name_the_key(args, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig().override(parse_overrides(args), "cli")


@pytest.mark.parametrize("change,message", [
    (dict(activation="relu"), "activation must be one of"),
    (dict(context=0), "context must be >= 1"),
    (dict(lr=-1.0), "lr must be >= 0"),
    (dict(batch_size=10, grad_accum=3), "multiple of grad_accum"),
    (dict(val_fraction=1.0), "val_fraction"),
    (dict(beta2=1.0), "beta2 must be in"),
    (dict(backend="gpu"), "backend must be one of"),
])
def test_bad_values(change, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig().override(change, "test").validate()


def test_toml(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('lr = 0.002\nsteps = 10\nactivation = "gelu"\n')
    cfg = TrainConfig().override(load_toml(str(path)), str(path))
    assert (cfg.lr, cfg.steps, cfg.activation) == (0.002, 10, "gelu")
    path.write_text('steps = "ten"\n')
    with pytest.raises(ConfigError, match="steps must be int"):
        TrainConfig().override(load_toml(str(path)), str(path))
    path.write_text("steps = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(str(path))
    with pytest.raises(ConfigError, match="no such file"):
        load_toml(str(tmp_path / "missing.toml"))


def test_saved_config_round_trips(tmp_path):
    cfg = TrainConfig(lr=0.5, steps=3)
    cfg.save(tmp_path / "config.json")
    import json

    assert TrainConfig.from_dict(json.loads((tmp_path / "config.json").read_text())) == cfg


def test_schedules():
    kw = dict(lr=1.0, min_lr=0.1, warmup=10, steps=110)
    assert learning_rate(0, **kw) == pytest.approx(0.1)         # warmup starts above 0
    assert learning_rate(9, **kw) == pytest.approx(1.0)         # ... and ends at lr
    assert learning_rate(10, **kw) == pytest.approx(1.0)        # cosine starts at lr
    assert learning_rate(60, **kw) == pytest.approx(0.55)       # halfway: the mean
    assert learning_rate(110, **kw) == pytest.approx(0.1)       # ends at min_lr
    assert learning_rate(60, **kw, schedule="linear") == pytest.approx(0.55)
    assert learning_rate(100, **kw, schedule="constant") == 1.0
    lrs = from_config(TrainConfig(steps=50, warmup=5))
    assert len(lrs) == 50 and max(lrs) == pytest.approx(TrainConfig().lr)
    with pytest.raises(ValueError, match="schedule"):
        learning_rate(20, **kw, schedule="step")


def test_resume_applies_the_config_file_over_the_saved_config(tmp_path):
    """`fasttrain train --resume --config run.toml`: the file goes on top of the run's saved
    config.json (then --key=value on top of it), as resolve_config says, not silently dropped."""
    from fasttrain.train import resolve_config

    run = tmp_path / "run"
    run.mkdir()
    TrainConfig(out_dir=str(run), steps=10, hidden=32, lr=0.01).save(run / "config.json")
    toml = tmp_path / "more.toml"
    toml.write_text(f'out_dir = "{run}"\nsteps = 25\neval_interval = 5\n')
    cfg = resolve_config({}, str(toml), resume=True)
    assert (cfg.steps, cfg.eval_interval) == (25, 5)  # from the file
    assert (cfg.hidden, cfg.lr) == (32, 0.01)  # from the saved run, not the defaults
    cfg = resolve_config({"steps": "30"}, str(toml), resume=True)
    assert cfg.steps == 30  # the command line last
