"""`fasttrain bench`: the command runs (tiny shapes), writes the documented JSON, compares runs,
reports a missing PyTorch as missing, and refuses bad arguments clearly."""
import contextlib
import importlib.util
import io
import json
import sys

import pytest

from fasttrain import bench
from fasttrain.bench import gpt_step
from fasttrain.cli import main

ROW_FIELDS = {"kernel", "op", "shape", "backend", "median_s", "min_s", "max_s", "times_s",
              "vs_numpy", "vs_torch", "vs_torch_peer", "rate", "rate_unit", "limit", "of_limit",
              "slow_by_design"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One tiny run of every kernel through the command line, its JSON and its stdout."""
    path = tmp_path_factory.mktemp("bench") / "run.json"
    out = io.StringIO()  # capsys is per test; this run is shared by the module
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        rc = main(["bench", "--tiny", "--json", str(path)])
    assert rc == 0, out.getvalue()
    return json.loads(path.read_text()), out.getvalue(), path


def test_tiny_run_writes_the_documented_json(tiny_run):
    result, _, _ = tiny_run
    assert result["schema"] == bench.SCHEMA and result["mode"] == "tiny"
    for key in ("date", "cpu", "cores", "threads", "simd", "blas", "blas_forced", "limits",
                "missing", "failed", "rounds", "results"):
        assert key in result, key
    assert set(result["versions"]) >= {"fasttrain", "numpy", "scipy", "numba", "torch"}
    assert result["versions"]["numpy"] and result["versions"]["scipy"]
    assert result["simd"] in ("avx512", "avx2", "baseline")
    assert result["limits"]["gemm_gflops"] > 0 and result["limits"]["bandwidth_gbps"] > 0
    assert result["failed"] == {}
    assert {r["kernel"] for r in result["results"]} == set(bench.KERNEL_NAMES)
    for r in result["results"]:
        assert set(r) == ROW_FIELDS
        assert len(r["times_s"]) == result["rounds"]
        assert 0 < r["min_s"] <= r["median_s"] <= r["max_s"]
        if r["backend"] == "numpy":
            assert r["vs_numpy"] == 1.0  # a ratio of each round's time to itself
        if r["limit"] == "bandwidth":
            assert r["of_limit"] == pytest.approx(r["rate"] / result["limits"]["bandwidth_gbps"])
        if r["limit"] == "gemm" and r["rate_unit"] == "GFLOP/s":
            assert r["of_limit"] == pytest.approx(r["rate"] / result["limits"]["gemm_gflops"])
    c_ce = next(r for r in result["results"]
                if r["kernel"] == "crossentropy" and r["backend"] == "c")
    assert c_ce["rate_unit"] == "GB/s" and c_ce["limit"] == "bandwidth"
    step = next(r for r in result["results"] if r["kernel"] == "train_step" and r["backend"] == "c")
    assert step["rate_unit"] == "tokens/s" and step["of_limit"] is None
    # the GPT's step: tokens/s, and its model FLOPs as a share of the GEMM rate (MFU)
    gpt = {r["backend"]: r for r in result["results"] if r["kernel"] == "gpt_step"}
    assert set(gpt) == {"c", "numpy", "torch", "torch compile"}  # compile ran, or failed says why
    (shape,) = gpt_step.TINY
    L, H, C, T, B, V = shape
    for r in gpt.values():
        assert r["shape"] == "L1 H2 C32 T16 B2 V64" and r["rate_unit"] == "tokens/s"
        assert r["rate"] == pytest.approx(B * T / r["median_s"])
        assert r["limit"] == "gemm" and r["of_limit"] == pytest.approx(
            gpt_step.flops(*shape) / r["median_s"] / 1e9 / result["limits"]["gemm_gflops"])


def test_tiny_run_prints_one_table_with_every_backend(tiny_run, torch):
    result, out, _ = tiny_run
    assert "| kernel" in out and "vs numpy" in out and "vs torch" in out and "of limit" in out
    backends = {r["backend"] for r in result["results"]}
    assert {"c", "numpy", "torch"} <= backends
    assert "torch fused" in {r["backend"] for r in result["results"] if r["kernel"] == "adamw"}
    c_rows = [r for r in result["results"] if r["backend"] == "c"]
    assert all(r["vs_torch"] is not None for r in c_rows)


def test_tiny_run_records_which_twins_are_slow_by_design(tiny_run):
    """The reason lives once, on the twin (kernels/numba/_slow.py); the run's rows carry it."""
    from fasttrain.kernels import numba as twins

    result, _, _ = tiny_run
    why = twins.tanh_forward.slower_than_numpy
    assert twins.tanh_forward.__doc__.startswith(
        "Slower than the numpy reference, and meant to stay so: " + why)
    notes = {(r["kernel"], r["op"], r["backend"]): r["slow_by_design"] for r in result["results"]}
    assert notes[("elementwise", "tanh forward", "numba")] == f"numba tanh_forward: {why}"
    assert notes[("crossentropy", "fwd+bwd", "numba")] == (
        "numba softmax_cross_entropy: " + twins.softmax_cross_entropy.slower_than_numpy)
    marked = {("elementwise", "tanh forward", "numba"), ("crossentropy", "fwd+bwd", "numba")}
    for key, note in notes.items():  # the fast twins, c and the reference say nothing
        assert (note is None) == (key not in marked), (key, note)


def test_the_table_gives_the_reason_under_a_slow_twin_once():
    result = _result(vs_numpy=0.5, vs_torch=0.4, of_limit=0.1)
    slow = result["results"][0]
    slow.update(backend="numba", slow_by_design="numba softmax_cross_entropy: no SVML")
    fast = dict(slow, shape="8x4096", vs_numpy=2.0)  # the same twin, faster than numpy here
    slower = dict(slow, shape="16x16")
    unknown = dict(slow, shape="32x16", vs_numpy=None)  # numpy not in the run: nothing to say
    old = dict(slow, shape="4x4", backend="c")
    del old["slow_by_design"]  # a row from a run saved before the field existed
    result["results"] += [fast, slower, unknown, old]
    lines = bench.table(result).splitlines()
    rows = {line.split("|")[2].strip(): line.split("|")[3].strip() for line in lines
            if line.startswith("| ") and "kernel" not in line}
    assert rows == {"8x16": "numba [1]", "8x4096": "numba", "16x16": "numba [1]",
                    "32x16": "numba", "4x4": "c"}
    assert lines[-2:] == ["", "[1] slower than the numpy reference by design: numba "
                              "softmax_cross_entropy: no SVML"]
    plain = bench.table(_result(vs_numpy=2.0, vs_torch=1.0, of_limit=0.1))
    assert "by design" not in plain and plain.splitlines()[-1].startswith("| crossentropy")


def test_a_slow_mark_needs_its_reason():
    from fasttrain.kernels.numba._slow import slower_than_numpy

    with pytest.raises(ValueError, match="needs the reason"):
        slower_than_numpy(" ")


def test_interleaved_settings_run_in_their_own_processes():
    """The settings of `--kernels interleaved` without torch at the tiny shape, each in a fresh
    process: every kernel timed; and each setting's work between calls (none, a copy, a busy
    wait, numpy's GEMMs, those and torch's), timed too."""
    from fasttrain.bench import interleaved

    settings = [s for s in interleaved.SETTINGS if "torch" not in s]
    for setting in settings:
        result = interleaved.run_worker(setting, interleaved.TINY[0], 2, True, cpu=True)
        times = result["times"]
        assert set(times) == {*interleaved.KERNELS, "gpt chain"}, setting
        assert all(len(t) == 2 and min(t) > 0 for t in times.values()), setting
        assert set(result["cpu_ms"]) == set(times), setting
        for kernel, cpu in result["cpu_ms"].items():  # the caller ran the call: it spent CPU
            assert cpu["caller"] > 0 and min(cpu.values()) >= 0, (setting, kernel, cpu)
        between = result["between_ms"]
        if setting == "alone":
            assert between < 0.1, between  # two clock reads, nothing between
        if setting == "mix idle":  # the busy wait lasts what it says
            assert between >= interleaved.IDLE_S / 32 * 1e3, between
    assert [len(interleaved._others(s, True)) for s in settings] == [0, 1, 1, 1]
    chain = interleaved.run_worker("alone", interleaved.TINY[0], 1, True, chain_only=True)
    assert list(chain["times"]) == ["gpt chain"] and len(chain["times"]["gpt chain"]) == 1


def test_interleaved_as_a_script_refuses_an_unknown_setting_without_a_runpy_warning():
    """`python -m fasttrain.bench.interleaved` (the per-thread CPU of each kernel, as the README
    shows): a setting it does not know is an error naming the settings, before any work; and
    importing fasttrain.bench imports no case module, so runpy does not warn that the module
    was imported before it ran (-W error turns that warning into a failure)."""
    import subprocess

    done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m",
                           "fasttrain.bench.interleaved", "mix nothing"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "unknown setting(s) 'mix nothing'" in done.stderr and "'mix idle'" in done.stderr
    assert "RuntimeWarning" not in done.stderr, done.stderr


def test_interleaved_cpu_accounting_sees_a_thread_that_spins_beside_the_kernel():
    """_cpu_during puts the CPU of a thread burning it during the call under 'other threads',
    and the caller's own under 'caller'."""
    import hashlib
    import threading
    import time

    from fasttrain.bench import interleaved

    if not interleaved._threads():
        pytest.skip("no /proc/self/task here")
    stop, data = threading.Event(), bytes(1 << 20)

    def spin():  # hashing releases the GIL: CPU burnt beside the caller, as a BLAS pool's
        while not stop.is_set():
            hashlib.sha256(data).digest()
    spinner = threading.Thread(target=spin)

    def call():  # 2 ms of the caller's CPU
        end = time.perf_counter() + 0.002
        while time.perf_counter() < end:
            pass
    spinner.start()
    try:
        cpu = interleaved._cpu_during(call, [], team=set())
    finally:
        stop.set()
        spinner.join()
    assert cpu["team"] == 0
    assert cpu["caller"] > 0.2 and cpu["other threads"] > 0.2, cpu
    quiet = interleaved._cpu_during(call, [], team=set())
    assert quiet["other threads"] < 0.2 * cpu["other threads"], (quiet, cpu)
    if importlib.util.find_spec("torch"):
        assert [len(interleaved._others(s, True)) for s in interleaved.SETTINGS[4:]] == [2, 2]


def _result(**ratios):
    """A crafted run: c's ratios at one shape."""
    return {"schema": bench.SCHEMA, "date": "2026-11-27T00:00:00+00:00", "cpu": "test CPU",
            "cores": 2, "threads": 2, "simd": "avx2", "platform": "Linux x86_64",
            "mode": "quick", "rounds": 3, "versions": {"fasttrain": "0", "numpy": "2"},
            "blas": [], "blas_forced": {}, "missing": {}, "failed": {},
            "limits": {"bandwidth_gbps": 30.0, "bandwidth_bytes": 1 << 28,
                       "bandwidth_per_threads": {"1": 25.0, "2": 30.0}, "gemm_gflops": 100.0,
                       "gemm_n": 2048},
            "results": [dict({"kernel": "crossentropy", "op": "fwd+bwd", "shape": "8x16",
                              "backend": "c", "median_s": 1e-3, "min_s": 1e-3, "max_s": 2e-3,
                              "times_s": [1e-3] * 3, "vs_torch_peer": "torch", "rate": 12.0,
                              "rate_unit": "GB/s", "limit": "bandwidth"}, **ratios)]}


def _write(path, data):
    path.write_text(json.dumps(data))
    return str(path)


def test_compare_flags_a_regression_and_not_equal_runs(tmp_path, capsys):
    old = _write(tmp_path / "old.json", _result(vs_numpy=20.0, vs_torch=10.0, of_limit=0.4))
    worse = _write(tmp_path / "new.json", _result(vs_numpy=20.0, vs_torch=8.0, of_limit=0.4))
    assert main(["bench", "--results", worse, "--compare", old]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "vs_torch 10 -> 8 (-20%)" in out
    assert "1 regression(s) beyond 10%" in out
    # the same drop under a looser threshold, and an identical run: no regression
    assert main(["bench", "--results", worse, "--compare", old, "--threshold", "0.25"]) == 0
    assert "REGRESSION" not in capsys.readouterr().out
    assert main(["bench", "--results", old, "--compare", old]) == 0
    out = capsys.readouterr().out
    assert "REGRESSION" not in out and "no regression beyond 10%" in out


def test_compare_says_when_the_machines_differ(tmp_path):
    old, new = _result(vs_numpy=2.0, vs_torch=None, of_limit=None), _result(
        vs_numpy=2.5, vs_torch=None, of_limit=None)
    new["cpu"], new["blas_forced"] = "another CPU", {"OPENBLAS_CORETYPE": "Haswell"}
    report, regressions = bench.compare(old, new, 0.1)
    assert regressions == [] and "cpu differs" in report and "blas_forced differs" in report
    assert "vs_numpy 2 -> 2.5 (+25%)" in report


def test_missing_torch_is_reported_not_an_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    lines = []
    result = bench.run(["crossentropy", "adamw"], mode="tiny", progress=False, log=lines.append)
    assert "PyTorch is not installed" in result["missing"]["torch"]
    assert result["versions"]["torch"] is None and result["failed"] == {}
    assert {r["backend"] for r in result["results"]} == {"c", "numba", "numpy"}
    assert not any(r["backend"].startswith("torch") for r in result["results"])
    assert all(r["vs_torch"] is None for r in result["results"])
    assert "missing: torch: PyTorch is not installed" in bench.header(result)
    head, _, *rows = [line for line in bench.table(result).splitlines() if line.startswith("|")]
    column = [c.strip() for c in head.split("|")].index("vs torch")
    assert {row.split("|")[column].strip() for row in rows} == {"-"}


@pytest.mark.parametrize("argv, message", [
    (["--kernels", "crossentropy,rmsnorm"], "unknown kernel 'rmsnorm'; choose from "),
    (["--kernels", ","], "unknown kernel ','; choose from "),
    (["--backends", "c,jax"], "unknown backend 'jax'; choose from c,numba,numpy,torch"),
    (["--threads", "0"], "expected a positive integer, got '0'"),
    (["--threads", "two"], "expected a positive integer, got 'two'"),
])
def test_bad_arguments_are_clear_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", *argv])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_files_and_threshold_are_clear_errors(tmp_path, capsys):
    not_json = tmp_path / "x.json"
    not_json.write_text("not json")
    assert main(["bench", "--results", str(not_json)]) == 2
    assert "cannot read" in capsys.readouterr().err
    other = _write(tmp_path / "other.json", {"loss": 1.0})
    assert main(["bench", "--results", other]) == 2
    assert "is not a fasttrain bench JSON" in capsys.readouterr().err
    assert main(["bench", "--results", other, "--threshold", "1.5"]) == 2
    assert "--threshold must be in [0, 1)" in capsys.readouterr().err


def test_plot_writes_a_png(tiny_run, tmp_path, capsys):
    _, _, path = tiny_run
    png = tmp_path / "speedups.png"
    assert main(["bench", "--results", str(path), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_fails_before_measuring(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setattr(bench, "run", lambda *a, **k: pytest.fail("measured before failing"))
    assert main(["bench", "--quick", "--plot", str(tmp_path / "p.png")]) == 2
    assert "--plot needs matplotlib: pip install 'fasttrain[plot]'" in capsys.readouterr().err


def test_forced_blas_is_named_with_the_kernel_that_runs(monkeypatch):
    monkeypatch.setenv("MKL_DEBUG_CPU_TYPE", "5")  # read by MKL at load only: harmless here
    env = bench.environment(2, None)
    assert env["blas_forced"]["MKL_DEBUG_CPU_TYPE"] == "5"
    env["blas"] = [{"internal_api": "openblas", "version": "0.3.30", "architecture": "Haswell"}]
    warning = bench.blas_warning(env)
    assert "MKL_DEBUG_CPU_TYPE=5" in warning and "openblas 0.3.30: Haswell" in warning
    assert bench.blas_warning(dict(env, blas_forced={})) is None


def test_backends_choose_the_contenders():
    result = bench.run(["crossentropy"], mode="tiny", progress=False, log=lambda s: None,
                       backends=["c", "numpy"])
    assert [r["backend"] for r in result["results"]] == ["c", "numpy"]
    assert result["backends"] == ["c", "numpy"]


def test_quick_measures_one_shape_per_kernel_and_full_the_benchmarks_shapes():
    quick = bench.plan_cases(bench.KERNEL_NAMES, "quick", with_torch=True)
    assert len({(c.kernel, c.shape) for c in quick}) == len(bench.KERNEL_NAMES)
    assert [c.op for c in quick if c.kernel == "elementwise"] == ["tanh forward", "tanh backward"]
    full = bench.plan_cases(bench.KERNEL_NAMES, "full", with_torch=True)
    shapes = {k: {c.shape for c in full if c.kernel == k} for k in bench.KERNEL_NAMES}
    assert shapes["crossentropy"] == {f"{N}x{V}" for N, V in bench.CROSSENTROPY_SHAPES}
    assert shapes["linear"] == {"x".join(map(str, s)) for s in bench.LINEAR_SHAPES}
    assert len(shapes["adamw"]) == len(bench.ADAMW_MODELS)
    assert len([c for c in full if c.kernel == "elementwise"]) == 4 * len(bench.ELEMENTWISE_SHAPES)
    assert all("torch" in c.contenders for c in full)
    assert not any(n.startswith("torch") for c in bench.plan_cases(
        bench.KERNEL_NAMES, "full", with_torch=False) for n in c.contenders)


def test_parse_kernels():
    assert bench.parse_kernels("linear, crossentropy,linear") == ["linear", "crossentropy"]
    with pytest.raises(ValueError, match="choose from crossentropy,linear"):
        bench.parse_kernels("softmax")


def test_public_and_c_names_of_a_kernel_choose_it():
    """A user types the name they know: the Python one, the C one, or the file's stem."""
    assert bench.parse_kernels("softmax_cross_entropy,ft_crossentropy,crossentropy") == [
        "crossentropy"]
    assert bench.parse_kernels("linear_forward,linear_cross_entropy,tanh,gelu,adamw_step") == [
        "linear", "linear_crossentropy", "elementwise", "adamw"]


def test_a_new_case_module_needs_nothing_else(monkeypatch):
    """A kernel's case module is all a kernel adds (here a stand-in in the registry), and any
    contender named torch... is a PyTorch peer: 'vs torch' is against the fastest of them."""
    import types

    from fasttrain.bench import _case, harness

    def cases(shapes, torch_names):
        def setup(names):
            return {n: (lambda: None) for n in names}
        return [bench.Case("newkernel", "fwd", f"{n}", ["c", "numpy", *(
            ["torch", "torch formula"] if torch_names else [])], setup, flops=n,
            extras=["bare"]) for (n,) in shapes]

    module = types.SimpleNamespace(SHAPES=[(1000,)], QUICK=[(1000,)], TINY=[(10,)], cases=cases)
    registry = {**_case.case_modules(), "newkernel": module}
    monkeypatch.setattr(_case, "case_modules", lambda: registry)
    monkeypatch.setattr(harness, "case_modules", lambda: registry)
    assert "newkernel" in _case.kernel_names()
    result = bench.run(["newkernel"], mode="tiny", progress=False, log=lambda s: None,
                       backends=["c", "numpy", "torch", "bare"])
    rows = {r["backend"]: r for r in result["results"]}
    assert list(rows) == ["c", "numpy", "torch", "torch formula", "bare"]
    assert rows["c"]["vs_torch_peer"] in ("torch", "torch formula")
    assert rows["c"]["vs_torch"] is not None and rows["bare"]["vs_numpy"] is not None


def test_shapes_rounds_and_memory_replace_the_old_scripts(tmp_path, capsys):
    """What benchmarks/bench_<name>.py did as scripts: chosen shapes, more rounds, extra
    contenders and memory, through `fasttrain bench --kernels <name>`."""
    path = tmp_path / "lce.json"
    assert main(["bench", "--tiny", "--kernels", "linear_cross_entropy", "--shapes", "24x8x40",
                 "--rounds", "1", "--memory", "--backends", "c,numpy", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    result = json.loads(path.read_text())
    assert result["rounds"] == 1 and result["kernels"] == ["linear_crossentropy"]
    assert [(r["shape"], r["backend"]) for r in result["results"]] == [
        ("24x8x40", "c"), ("24x8x40", "numpy"), ("24x8x40", "c-unfused")]
    assert all("extra_mb" in r and r["traced_mb"] is not None for r in result["results"])
    assert "extra MB" in out
    assert main(["bench", "--tiny", "--kernels", "linear", "--shapes", "8x8x8", "--rounds", "1",
                 "--backends", "c,sgemm"]) == 0
    assert "| sgemm" in capsys.readouterr().out
    assert main(["bench", "--kernels", "linear,adamw", "--shapes", "8x8x8"]) == 2
    assert "--shapes needs exactly one kernel" in capsys.readouterr().err
    assert main(["bench", "--kernels", "adamw", "--shapes", "7M"]) == 2
    assert "an adamw shape is a model" in capsys.readouterr().err


def test_a_self_timed_case_gives_its_own_figures():
    """A contender that times itself (a subprocess, as distributed's) is sampled once per
    round, and its own seconds are taken, not the clock's."""
    calls = []

    def setup(names):
        return {n: (lambda n=n: calls.append(n) or 0.25) for n in names}
    case = bench.Case("selftimed", "step", "x", ["1x1", "2x1"], setup, tokens=8,
                      self_timed=True)
    times = bench.run_case(case, ["1x1", "2x1"], rounds=3, block_s=1.0, pause_s=0.0)
    assert times == {"1x1": [0.25] * 3, "2x1": [0.25] * 3}
    assert calls == ["1x1", "2x1"] * 3  # interleaved, no warm-up call
    assert "distributed" in bench.parse_kernels("distributed")
    assert "distributed" not in bench.KERNEL_NAMES  # only when named: minutes of subprocesses


def test_gpt_step_flops_count_every_weight_once():
    """gpt_step's FLOPs: 6 per weight and token for the model's non-embedding parameters and
    the tied head (V x C), plus causal attention, from the model's own parameter count."""
    from fasttrain.models.gpt import GPT

    for L, H, C, T, B, V in (*gpt_step.SHAPES, *gpt_step.MORE, *gpt_step.TINY):
        model = GPT(vocab_size=V, block_size=T, n_layer=L, n_head=H, n_embd=C)
        non_embedding = model.num_params - V * C - T * C  # less wte and wpe
        assert gpt_step.flops(L, H, C, T, B, V) == (6 * (non_embedding + V * C) * B * T
                                                    + 12 * L * B * T * T * C // 2)


def test_gpt_step_shapes_read_as_the_table_writes_them():
    for shape in (*gpt_step.SHAPES, *gpt_step.MORE, *gpt_step.TINY):
        assert gpt_step.parse_shape(gpt_step.label(shape)) == shape
        assert gpt_step.parse_shape("x".join(map(str, shape))) == shape
    assert bench.parse_kernels("gpt") == ["gpt_step"]
    for bad in ("L4 H3 C256 T128 B16 V256", "4x4x256", "L4 H4 C256 T128 B16 X256", "0x1x1x1x1x1"):
        with pytest.raises(ValueError, match="a gpt_step shape is"):
            gpt_step.parse_shape(bad)


def test_gpt_step_memory_is_measured_per_contender():
    result = bench.run(["gpt_step"], mode="tiny", progress=False, log=lambda s: None,
                       backends=["c", "torch"], rounds=1, memory=True)
    rows = {r["backend"]: r for r in result["results"]}
    assert {"c", "torch", "torch compile"} <= set(rows) and result["failed"] == {}
    assert all(r["extra_mb"] is not None and r["traced_mb"] is not None for r in rows.values())


def test_profile_times_every_kernel_call_of_a_gpt_step():
    """--profile's rows: each kernel the step calls, as often as the GPT calls it (a kernel
    inside another counts once, as its caller), and 'other'; together the step."""
    import fasttrain.kernels as K
    import fasttrain.optim
    import fasttrain.train
    from fasttrain.bench import profile

    originals = {name: getattr(K, name) for name in K.KERNELS}
    (shape,) = gpt_step.TINY
    L = shape[0]
    result = profile.profile(shape, steps=2, gemm_n=128)
    rows = {r["kernel"]: r for r in result["rows"]}
    assert {k: r["calls"] for k, r in rows.items() if k != "other"} == {
        "embedding_forward": 1, "layernorm_forward": 2 * L + 1, "linear_forward": 4 * L,
        "attention_forward": L, "gelu_forward": L, "linear_cross_entropy": 1,
        "layernorm_backward": 2 * L + 1, "linear_backward": 4 * L, "gelu_backward": L,
        "attention_backward": L, "embedding_backward": 1, "sum_of_squares": 1,
        "adamw_step": 2}  # adamw: the decayed and the undecayed range of the arena
    assert result["rows"][-1]["kernel"] == "other" and rows["other"]["ms"] >= 0
    assert sum(r["ms"] for r in result["rows"]) == pytest.approx(result["step_s"] * 1e3)
    assert sum(r["share"] for r in result["rows"]) == pytest.approx(1.0)
    for name in profile.GEMM_KERNELS:
        assert rows[name]["gflops"] > 0
        assert rows[name]["of_gemm"] == pytest.approx(rows[name]["gflops"] / result["gemm_gflops"])
    assert rows["layernorm_forward"]["gflops"] is None
    # the functions are the originals again, where the model and the step look them up
    assert {name: getattr(K, name) for name in K.KERNELS} == originals
    assert fasttrain.train.sum_of_squares is originals["sum_of_squares"]
    assert fasttrain.optim.adamw_step is originals["adamw_step"]


def test_profile_command(tmp_path, capsys):
    path = tmp_path / "profile.json"
    assert main(["bench", "--profile", "--tiny", "--rounds", "1", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "GPT step L1 H2 C32 T16 B2 V64, backend c" in out
    assert "| linear_backward | 4 |" in out and "| other | - |" in out
    assert json.loads(path.read_text())["shape"] == "L1 H2 C32 T16 B2 V64"
    assert main(["bench", "--profile", "--tiny", "--shapes", "1x2x32x8x1x16", "--rounds", "1"]) == 0
    assert "GPT step L1 H2 C32 T8 B1 V16" in capsys.readouterr().out
    assert main(["bench", "--profile", "--shapes", "1x3x32x8x1x16"]) == 2
    assert "a gpt_step shape is" in capsys.readouterr().err
