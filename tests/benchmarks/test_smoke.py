"""The benchmark scripts run end to end on tiny shapes (no timing assertions)."""

import gzip
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _python(*args):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, *args], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  return out.stdout


def _run(module, *args):
  return _python("-m", module, *args)


def test_norms_benchmark(tmp_path):
  path = tmp_path / "norms.json"
  stdout = _run("benchmarks.norms", "--norms=batch,rms,frn", "--shapes=8x4x4x32",
                "--dtypes=float32", "--modes=fwd+bwd,vjp", "--repeats=1", f"--json={path}")
  rows = json.loads(path.read_text())["rows"]
  assert sorted((r["norm"], r["train"], r["mode"], r["api"]) for r in rows) == sorted(
      (norm, train, mode, api) for mode in ("fwd+bwd", "vjp") for api in ("linen", "nnx")
      for norm, train in (("batch", True), ("batch", False), ("rms", True),
                          ("frn (vs flax BatchNorm)", True)))
  assert all(r["normzoo_ms"] > 0 and r["flax_ms"] > 0 for r in rows)
  assert "normzoo/flax" in stdout


def test_train_step_benchmark(tmp_path):
  path = tmp_path / "step.json"
  _run("benchmarks.train_step", "--models=mnist_cnn_small", "--norms=batch", "--batch_size=8",
       "--rounds=1", "--steps=1", f"--json={path}")
  result = json.loads(path.read_text())
  (row,) = result["rows"]
  assert row["normzoo_images_per_s"] > 0 and row["flax_images_per_s"] > 0
  assert row["ceiling"] == row["none_images_per_s"] / row["flax_images_per_s"]
  assert result["machine"]["host_allocator"] in ("tuned", "default")


def test_profile_step_benchmark():
  stdout = _run("benchmarks.profile_step", "--model=mnist_cnn_small", "--norm=batch",
                "--batch_size=8", "--rounds=2", "--steps=2", "--top=3")
  rows = [l.split("|")[1:-1] for l in stdout.splitlines() if l.startswith("| ")][1:]
  assert [r[0].strip() for r in rows] == ["normzoo", "flax.linen", "no norm"]
  for r in rows:
    conv, other, total = (float(v) for v in r[1:4])
    # The model's convolution and dense layers are found in the trace.
    assert conv > 0 and other > 0 and abs(conv + other - total) < 0.11


def test_profile_step_classifies_ops_by_what_they_compute():
  import jax
  import jax.numpy as jnp

  from benchmarks import profile_step

  def f(x, w):
    y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jnp.sum(jnp.tanh(y) * 3.0, axis=(1, 2)), jnp.max(x)

  x, w = jnp.ones((2, 8, 8, 3)), jnp.ones((3, 3, 3, 4))
  kinds = profile_step._op_kinds(jax.jit(f).lower(x, w).compile().as_text())  # pylint: disable=protected-access
  assert "conv/dot" in kinds.values() and "other" in kinds.values()


def test_benchmarks_name_the_flag_of_a_bad_value():
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  cases = [
      ("benchmarks.train_step", ["--models=mnist_cnn,resnet99", "--rounds=1"], "--models"),
      ("benchmarks.train_step", ["--models=mnist_cnn_small", "--norms=batch,bacth"], "--norms"),
      ("benchmarks.profile_step", ["--model=resnet99"], "--model"),
      ("benchmarks.profile_step", ["--norm=frn"], "--norm"),
      ("benchmarks.norms", ["--modes=fwd,bwd"], "--modes"),
      ("benchmarks.norms", ["--norms=batch,bacth"], "--norms"),
      ("benchmarks.norms", ["--shapes=8x4xq"], "--shapes"),
      ("benchmarks.pallas_tune", ["--interpret", "--shapes=0x8"], "--shapes"),
      ("benchmarks.pallas_tune", ["--interpret", "--forward_blocks=1024,big"], "--forward_blocks"),
      ("benchmarks.bandwidth", ["--size_mib=0"], "--size_mib=0"),
      ("benchmarks.variants", ["--experiments=rms_guard,rms_gaurd"], "--experiments"),
      ("benchmarks.variants", ["--shapes=8x"], "--shapes"),
      ("benchmarks.variants", ["--modes=vjp,bwd"], "--modes"),
      ("benchmarks.variants", ["--dtypes=float32,f16"], "--dtypes"),
      ("benchmarks.norms", ["--dtypes=bf16"], "--dtypes")]
  # Started together: each spends seconds importing JAX before it fails.
  procs = [(module, args, flag, subprocess.Popen(
      [sys.executable, "-m", module, *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)) for module, args, flag in cases]
  for module, args, flag, proc in procs:
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode != 0, (module, args)
    assert flag + ":" in stderr and "Traceback" not in stderr, stderr[-2000:]


def test_norms_benchmark_peak_column_and_pallas_skip_on_cpu(tmp_path):
  path = tmp_path / "norms.json"
  stdout = _run("benchmarks.norms", "--norms=layer,layer_pallas", "--shapes=4x8x16",
                "--dtypes=float32", "--modes=fwd", "--repeats=1", "--calls_per_sample=2",
                "--peak_gbps=100", "--notorch", "--apis=linen", f"--json={path}")
  assert "skipping layer_pallas: the Pallas kernels need a GPU" in stdout
  (row,) = json.loads(path.read_text())["rows"]
  assert row["norm"] == "layer" and "% of peak" in stdout
  assert abs(row["pct_peak"] - row["normzoo_gbps"]) < 1e-9  # 100 * GB/s / 100 GB/s


_PALLAS_CASES = """
import functools, json
from benchmarks import norms
from normzoo.norms import pallas_rows
for name in ("pallas_layer_norm", "pallas_rms_norm"):
  setattr(pallas_rows, name, functools.partial(getattr(pallas_rows, name), interpret=True))
rows = [norms.run_case(n, (4, 8, 16), "float32", "vjp", True, 1, False, calls=2)
        for n in ("layer_pallas", "rms_pallas")]
rows.append(norms.run_case("layer_pallas", (2, 4, 4, 16), "float32", "fwd", True, 1, False))
rows.append(norms.run_case("rms_pallas", (4, 8, 16), "float32", "vjp", True, 1, False, calls=2,
                           api="nnx"))
print(json.dumps(rows))
"""


def test_norms_benchmark_times_the_pallas_modules():
  # What the benchmark runs on a GPU, here through the Pallas interpreter
  # (in a subprocess: benchmarks.norms and train_step define the same flags).
  *rows, conv_layout, nnx_row = json.loads(_python("-c", _PALLAS_CASES).splitlines()[-1])
  assert [r["norm"] for r in rows] == ["layer_pallas", "rms_pallas"]
  assert nnx_row["api"] == "nnx" and nnx_row["normzoo_ms"] > 0
  assert all(r["normzoo_ms"] > 0 and r["flax_ms"] > 0 for r in rows)
  assert conv_layout is None  # layer norm over (H, W, C): not the kernel's layout


def test_bandwidth_benchmark(tmp_path):
  path = tmp_path / "bw.json"
  stdout = _run("benchmarks.bandwidth", "--size_mib=1", "--repeats=2", "--notorch", f"--json={path}")
  rows = json.loads(path.read_text())["rows"]
  assert [(r["op"], r["dtype"]) for r in rows] == [
      (op, dtype) for dtype in ("float32", "bfloat16") for op in ("jax 2*x", "jax sum(x)")]
  assert all(r["gbps"] > 0 and "pct_peak" not in r for r in rows)  # no datasheet figure for a CPU
  assert "| jax 2*x | float32 | 1 |" in stdout


def test_pallas_tune_in_the_interpreter(tmp_path):
  path = tmp_path / "tune.json"
  stdout = _run("benchmarks.pallas_tune", "--interpret", "--norm=rms", "--shapes=40x96",
                "--dtypes=bfloat16", "--forward_blocks=128,4096", "--max_warps=1,8",
                "--backward_blocks=128", "--span_rows=2", "--repeats=1", f"--json={path}")
  rows = json.loads(path.read_text())["rows"]
  forward = [r for r in rows if r["kernel"] == "forward"]
  backward = [r for r in rows if r["kernel"] == "backward"]
  # The default comes first; launches that come out the same are timed once
  # (96 features pad to 128; a block holds a power of two of rows: 4096
  # elements take 32, and one row of 128 elements gets one warp either way).
  assert forward[0]["vs_default"] == 1.0
  assert [r["variant"] for r in forward] == ["32 rows x 128, 8 warps (default)",
                                             "1 rows x 128, 1 warps", "32 rows x 128, 1 warps"]
  assert len(backward) == 2 and backward[0]["variant"].endswith("(default)")
  assert "Fastest per kernel" in stdout


def test_pallas_tune_refuses_to_run_without_a_gpu_unless_interpreted():
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-m", "benchmarks.pallas_tune", "--shapes=8x16"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode != 0 and "--interpret:" in out.stderr and "Traceback" not in out.stderr


def test_norms_benchmark_time_budget_and_keep_going(tmp_path):
  path = tmp_path / "norms.json"
  # One value per channel: training-mode batch norm refuses it (a batch of
  # one), which --keep_going records before going on to the other cases.
  stdout = _run("benchmarks.norms", "--norms=batch,layer", "--shapes=1x1x1x32",
                "--dtypes=float32", "--modes=fwd", "--repeats=1", "--notorch", "--keep_going",
                "--apis=linen", f"--json={path}")
  result = json.loads(path.read_text())
  assert [f["case"] for f in result["failures"]] == [
      "batch linen 1x1x1x32 float32 fwd train=True"]
  assert result["failures"][0]["error"].startswith("ValueError: batch_norm in training mode")
  assert [(r["norm"], r["train"]) for r in result["rows"]] == [("batch", False), ("layer", True)]
  assert "1 cases failed" in stdout
  stdout = _run("benchmarks.norms", "--norms=batch,layer,group", "--shapes=8x4x4x48",
                "--dtypes=float32", "--modes=fwd,vjp", "--repeats=1", "--notorch",
                "--time_budget_s=0.001", "--apis=linen", f"--json={path}")
  result = json.loads(path.read_text())
  # Six cases (batch: 2 modes x train/eval, layer: 2 modes), group norm's
  # not among them (48 channels, 32 groups). The first may start within the
  # millisecond; none after it.
  assert len(result["rows"]) <= 1 and len(result["rows"]) + result["not_run"] == 6
  assert f"--time_budget_s=0.001 reached: {result['not_run']} cases not run" in stdout


def test_variants_benchmark_times_each_program_once(tmp_path):
  path, hlo = tmp_path / "variants.json", tmp_path / "hlo.txt.gz"
  stdout = _run("benchmarks.variants", "--experiments=rms_guard,batch_barriers",
                "--shapes=4x8x8x32", "--dtypes=float32", "--modes=fwd,vjp,fwd+bwd", "--repeats=1",
                f"--json={path}", f"--hlo={hlo}")
  rows = json.loads(path.read_text())["rows"]
  assert {(r["experiment"], r["norm"], r["mode"]) for r in rows} == (
      {("rms_guard", "rms", m) for m in ("fwd", "vjp", "fwd+bwd")}
      | {("batch_barriers", n, m) for n in ("batch", "group", "instance")
         for m in ("fwd", "vjp", "fwd+bwd")})
  # Experiments take turns, so a --time_budget_s cut leaves each its first cases.
  assert [r["experiment"] for r in rows[:4]] == ["rms_guard", "batch_barriers"] * 2
  by_mode = {(r["experiment"], r["norm"], r["mode"]): r for r in rows}
  # The forward has no backward barrier: those variants are the same program,
  # reported as such; the guard changes the forward, the barrier the vjp.
  assert by_mode["rms_guard", "rms", "fwd"]["same_program"] == {
      "cond_nobarrier": "cond_barrier", "select_nobarrier": "select_barrier"}
  assert by_mode["rms_guard", "rms", "vjp"]["same_program"] == {}
  assert by_mode["batch_barriers", "batch", "vjp"]["same_program"] == {}
  assert by_mode["batch_barriers", "batch", "fwd"]["same_program"] == {"no_barriers": "barriers"}
  assert all(r["flax_ms"] > 0 and r["select_barrier_ms" if r["experiment"] == "rms_guard"
                                     else "no_barriers_ms"] > 0 for r in rows)
  text = gzip.open(hlo, "rt").read()
  assert text.count("==== rms_guard rms 4x8x8x32 float32 vjp ") == 5  # flax and 4 variants
  assert "= select_barrier" in stdout


def test_variants_benchmark_records_cases_cut_by_the_time_budget(tmp_path):
  path = tmp_path / "variants.json"
  stdout = _run("benchmarks.variants", "--experiments=rms_guard", "--shapes=4x8x8x32",
                "--dtypes=float32", "--modes=fwd,vjp", "--repeats=1", "--time_budget_s=1e-9",
                f"--json={path}", f"--hlo={tmp_path / 'sub' / 'hlo.txt.gz'}")
  result = json.loads(path.read_text())
  # The budget is spent before the first case starts: nothing runs, and the
  # JSON says so even though no case finished to write it.
  assert result["rows"] == [] and result["not_run"] == 2
  assert "--time_budget_s=1e-09 reached: 2 case(s) not run" in stdout
