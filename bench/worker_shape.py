"""``python -m bench.worker_shape``: how to shape a Dataflow GPU worker, measured on CPUs.

A Dataflow GPU worker is one VM with a few vCPUs and one GPU. The Python SDK can run
one process with N threads, or several processes; with several, Beam's RunInference
shares one model between them through ``MultiProcessShared`` (``large_model=True`` or
``model_copies=1``): the model lives in one process and every other process sends its
batches there through a proxy (pickled over a local socket). This tool measures the
pieces on this machine, CPU only, for ``--seconds`` each, over the synthetic bench
corpus (44.1 kHz stereo WAV):

  threads:T      one process, T threads running the streamed front end
                 (``vggish.stream.iter_patches``, as the pipeline does)
  processes:P    P processes, one thread each, front end only
  shared:P       P processes whose patches go, in batches, through Beam's own
                 ``MultiProcessShared(..., always_proxy=True)`` to ONE stand-in model
                 (``_EchoModel``: returns zeros, so only the IPC is measured; no real
                 model can run on a GPU here)
  ipc            the CPU cost of that proxy per patch, alone (client and server in one
                 process, so its CPU time is the whole cost)
  model          the CPU models' patches/s at batch 64 (TensorFlow and PyTorch)

and projects what one n1-standard-8 + T4 and one g2-standard-8 + L4 can sustain
(``project``; the GPU rates are FLOP-based estimates, stated with their sources). All
worker processes run OPENBLAS/OMP/MKL_NUM_THREADS=1 (``--blas_threads``): several
front ends per VM are the parallelism, and a threaded BLAS only burns cycles spinning.

  python -m bench.worker_shape --output shape.json [--seconds 20]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import uuid

import numpy as np

__all__ = ["GPU_ASSUMPTIONS", "MACHINES", "project", "main"]

_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_PATCH_AUDIO_SECONDS = 0.96     # One VGGish patch per 0.96 s of audio (hop).

GPU_ASSUMPTIONS = {
    # Peak FP32 (non-tensor-core) TFLOP/s from NVIDIA's datasheets: T4 8.1
    # (nvidia.com/en-us/data-center/tesla-t4), L4 30.3 (nvidia.com/en-us/data-center/l4).
    # With TF32 off, VGGish's 3x3 convolutions and 4096-wide dense layers run on the FP32
    # units; cuDNN/cuBLAS reach ~40-70 % of peak on such layers at batch >= 256 (the T4's
    # 70 W cap keeps it near the low end). Patches/s = TFLOP/s * efficiency / 1.73 GFLOP.
    "T4": {"fp32_tflops": 8.1, "efficiency": (0.4, 0.7)},
    "L4": {"fp32_tflops": 30.3, "efficiency": (0.4, 0.7)},
}
MACHINES = {
    "n1-standard-8 + T4": {"vcpus": 8, "gpu": "T4"},
    "g2-standard-8 + L4": {"vcpus": 8, "gpu": "L4"},
}


# --- work run in the measured processes and threads ---------------------------------------


class _EchoModel:
  """Stand-in for the GPU model behind MultiProcessShared: IPC cost only (returns zeros)."""

  def __call__(self, patches: np.ndarray) -> np.ndarray:
    return np.zeros((patches.shape[0], 128), np.float32)


def _front_end_file(path: str) -> tuple[np.ndarray, float]:
  from bench.gpu_check import front_end

  _, patches, audio_seconds, _ = front_end(path)
  return patches, audio_seconds


def _worker_loop(args: tuple) -> dict:
  """One process: front end over ``paths`` round-robin for ``seconds`` (after ``start_at``),
  optionally sending batches of ``batch_size`` through a shared model proxy."""
  paths, seconds, start_at, shared_tag, batch_size, offset = args
  model = None
  if shared_tag:
    from apache_beam.utils.multi_process_shared import MultiProcessShared

    model = MultiProcessShared(_EchoModel, tag=shared_tag, always_proxy=True).acquire()
  while time.time() < start_at:
    time.sleep(0.005)
  cpu0, t0 = time.process_time(), time.perf_counter()
  audio = 0.0
  patches_sent = calls = 0
  ipc_seconds = 0.0
  pending: list[np.ndarray] = []
  index = offset
  while time.perf_counter() - t0 < seconds:
    patches, audio_seconds = _front_end_file(paths[index % len(paths)])
    index += 1
    audio += audio_seconds
    if model is not None:
      pending.append(patches)
      queued = np.concatenate(pending)
      full = queued.shape[0] // batch_size * batch_size
      for i in range(0, full, batch_size):
        t = time.perf_counter()
        model(queued[i:i + batch_size])
        ipc_seconds += time.perf_counter() - t
        patches_sent += batch_size
        calls += 1
      pending = [queued[full:]]
  return {"audio_seconds": audio, "wall_seconds": time.perf_counter() - t0,
          "cpu_seconds": time.process_time() - cpu0, "patches_sent": patches_sent,
          "calls": calls, "ipc_wall_seconds": ipc_seconds, "pid": os.getpid()}


def _ipc_loop(args: tuple) -> dict:
  """One process sends the same batch through a MultiProcessShared proxy for ``seconds``.

  The proxy's server runs as a thread of this same process (Beam starts it in the first
  process that acquires), so this process's CPU time is the IPC's whole CPU cost.
  """
  seconds, batch_size = args
  from apache_beam.utils.multi_process_shared import MultiProcessShared

  tag = f"audiobeam-ipc-{uuid.uuid4().hex[:8]}"
  model = MultiProcessShared(_EchoModel, tag=tag, always_proxy=True).acquire()
  batch = np.random.default_rng(0).standard_normal((batch_size, 96, 64)).astype(np.float32)
  model(batch)
  calls, t0, cpu0 = 0, time.perf_counter(), time.process_time()
  while calls < 3 or time.perf_counter() - t0 < seconds:
    model(batch)
    calls += 1
  wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
  for suffix in (".address", ".lock"):
    try:
      os.remove(os.path.join(tempfile.gettempdir(), tag + suffix))
    except OSError:
      pass
  patches = calls * batch_size
  return {"batch_size": batch_size, "calls": calls, "patches": patches,
          "bytes_per_call": int(batch.nbytes), "wall_ms_per_patch": 1e3 * wall / patches,
          "cpu_ms_per_patch": 1e3 * cpu / patches,
          "megabytes_per_cpu_second": batch.nbytes * calls / cpu / 1e6 if cpu else None}


def _ipc(seconds: float, batch_size: int) -> dict:
  with concurrent.futures.ProcessPoolExecutor(
      1, mp_context=multiprocessing.get_context("spawn")) as pool:
    return pool.submit(_ipc_loop, (seconds, batch_size)).result()


def _warm(_):
  import apache_beam.utils.multi_process_shared  # noqa: F401
  import vggish.stream  # noqa: F401

  return os.getpid()


# --- shapes -------------------------------------------------------------------------------


def _threads(paths: list[str], threads: int, seconds: float) -> dict:
  results: list[float] = []
  lock = threading.Lock()
  t0 = time.perf_counter()
  cpu0 = time.process_time()

  def loop(offset: int):
    index, audio = offset, 0.0
    while time.perf_counter() - t0 < seconds:
      audio += _front_end_file(paths[index % len(paths)])[1]
      index += 1
    with lock:
      results.append(audio)

  workers = [threading.Thread(target=loop, args=(i * 7,)) for i in range(threads)]
  for w in workers:
    w.start()
  for w in workers:
    w.join()
  wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
  audio = sum(results)
  return {"shape": f"threads:{threads}", "processes": 1, "threads": threads,
          "audio_seconds": audio, "wall_seconds": wall, "cpu_seconds": cpu,
          "audio_seconds_per_second": audio / wall,
          "audio_seconds_per_cpu_second": audio / cpu if cpu else None}


def _processes(paths: list[str], processes: int, seconds: float, shared: bool,
               batch_size: int) -> dict:
  tag = f"audiobeam-shape-{uuid.uuid4().hex[:8]}" if shared else None
  with concurrent.futures.ProcessPoolExecutor(
      processes, mp_context=multiprocessing.get_context("spawn")) as pool:
    list(pool.map(_warm, range(processes)))
    start_at = time.time() + 1.0
    jobs = [(paths, seconds, start_at, tag, batch_size, i * 7) for i in range(processes)]
    t0 = time.perf_counter()
    results = list(pool.map(_worker_loop, jobs))
    wall = time.perf_counter() - t0 - 1.0
  audio = sum(r["audio_seconds"] for r in results)
  cpu = sum(r["cpu_seconds"] for r in results)
  patches = sum(r["patches_sent"] for r in results)
  out = {"shape": f"{'shared' if shared else 'processes'}:{processes}", "processes": processes,
         "threads": 1, "audio_seconds": audio, "wall_seconds": wall, "cpu_seconds": cpu,
         "audio_seconds_per_second": audio / wall,
         "audio_seconds_per_cpu_second": audio / cpu if cpu else None}
  if shared:
    out.update(batch_size=batch_size, patches_sent=patches,
               calls=sum(r["calls"] for r in results),
               ipc_wall_seconds=sum(r["ipc_wall_seconds"] for r in results),
               ipc_wall_ms_per_patch=(1e3 * sum(r["ipc_wall_seconds"] for r in results) / patches
                                      if patches else None))
  if tag:
    for suffix in (".address", ".lock"):
      try:
        os.remove(os.path.join(tempfile.gettempdir(), tag + suffix))
      except OSError:
        pass
  return out


def _models(batch_size: int, seconds: float) -> dict:
  from bench.gpu_check import portable_test_variables

  variables = portable_test_variables(0)
  patches = np.random.default_rng(0).standard_normal((batch_size, 96, 64)).astype(np.float32)
  out = {}
  for backend in ("tf", "torch"):
    try:
      if backend == "tf":
        from vggish.model import VGGishModel

        model = VGGishModel(variables)
      else:
        import torch

        from vggish.torch_model import VGGishTorchModel

        torch.set_num_threads(os.cpu_count() or 1)  # As TF's own pool; OMP_NUM_THREADS=1 here.
        model = VGGishTorchModel(variables, device="cpu")
      model(patches)
      calls, t0, cpu0 = 0, time.perf_counter(), time.process_time()
      while calls < 2 or time.perf_counter() - t0 < seconds:
        model(patches)
        calls += 1
      wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
      out[backend] = {"batch_size": batch_size, "calls": calls, "threads": os.cpu_count(),
                      "patches_per_second": calls * batch_size / wall,
                      "patches_per_cpu_second": calls * batch_size / cpu}
    except Exception as e:  # e.g. no TensorFlow here: say so.
      out[backend] = {"error": f"{type(e).__name__}: {e}"}
  return out


# --- projection ---------------------------------------------------------------------------


def project(front_end_audio_per_vcpu_second: float, ipc_cpu_seconds_per_patch: float,
            flops_per_patch: float = 1.727791104e9) -> dict:
  """Sustained audio-s/s of one VM = min(front end, GPU), for each machine in MACHINES.

  Front end: ``vcpus - 1`` vCPUs (one for the SDK harness, Beam, Parquet and the
  model's host side) at ``front_end_audio_per_vcpu_second``, minus the IPC CPU of the
  shared-model shape; GPU: ``GPU_ASSUMPTIONS`` low/high.
  """
  out = {}
  for name, machine in MACHINES.items():
    gpu = GPU_ASSUMPTIONS[machine["gpu"]]
    feeders = machine["vcpus"] - 1
    # Each audio second costs 1/rate CPU-s of front end + IPC for its 1/0.96 patches.
    cpu_per_audio_second = (1.0 / front_end_audio_per_vcpu_second
                            + ipc_cpu_seconds_per_patch / _PATCH_AUDIO_SECONDS)
    front_end = feeders / cpu_per_audio_second
    gpu_rates = [gpu["fp32_tflops"] * 1e12 * eff / flops_per_patch * _PATCH_AUDIO_SECONDS
                 for eff in gpu["efficiency"]]
    out[name] = {
        "front_end_audio_seconds_per_second": front_end,
        "gpu_audio_seconds_per_second_low_high": gpu_rates,
        "gpu_patches_per_second_low_high": [r / _PATCH_AUDIO_SECONDS for r in gpu_rates],
        "sustained_audio_seconds_per_second_low_high": [min(front_end, r) for r in gpu_rates],
        "bound": ["front end" if front_end < r else "GPU" for r in gpu_rates],
        "gpu_busy_fraction_low_high": [min(1.0, front_end / r) for r in gpu_rates],
        "vcpus_to_feed_the_gpu_low_high": [1 + r * cpu_per_audio_second for r in gpu_rates],
    }
  return out


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m bench.worker_shape", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--seconds", type=float, default=20.0, help="per shape")
  p.add_argument("--threads", default=None, help="thread counts (default 1,CPUS,2*CPUS)")
  p.add_argument("--processes", default=None, help="process counts (default 1,CPUS)")
  p.add_argument("--batch_size", type=int, default=64, help="shared-model batch")
  p.add_argument("--skip_models", action="store_true")
  p.add_argument("--blas_threads", type=int, default=1)
  p.add_argument("--cache_dir", default=None)
  p.add_argument("--output", required=True)
  args = p.parse_args(argv)
  if args.blas_threads and any(os.environ.get(k) != str(args.blas_threads) for k in _BLAS_ENV):
    env = dict(os.environ, **{k: str(args.blas_threads) for k in _BLAS_ENV})
    os.execve(sys.executable, [sys.executable, "-m", "bench.worker_shape"] + list(
        sys.argv[1:] if argv is None else argv), env)
  from bench.corpus import CorpusSpec, build_corpus

  cpus = os.cpu_count() or 1
  threads = [int(x) for x in (args.threads or f"1,{cpus},{2 * cpus}").split(",")]
  processes = [int(x) for x in (args.processes or f"1,{cpus}").split(",")]
  corpus = build_corpus(CorpusSpec(long_files=2, long_minutes=2.0, clips=20, clip_seconds=10.0),
                        args.cache_dir, log=lambda m: print(m, file=sys.stderr))
  paths = [f.path for f in corpus.files]
  for path in paths:  # Into the page cache.
    with open(path, "rb") as f:
      while f.read(1 << 22):
        pass
  report = {"cpus": cpus, "load_before": os.getloadavg(), "corpus": corpus.describe(),
            "blas_threads": args.blas_threads, "seconds": args.seconds, "shapes": []}

  def log(result):
    report["shapes"].append(result)
    print(f"{result['shape']:<12} {result['audio_seconds_per_second']:8.0f} audio-s/s "
          f"{result['audio_seconds_per_cpu_second'] or 0:8.0f} audio-s per CPU-s"
          + (f"  IPC {result['ipc_wall_ms_per_patch']:.3f} ms/patch"
             if result.get("ipc_wall_ms_per_patch") else ""), file=sys.stderr, flush=True)

  for t in threads:
    log(_threads(paths, t, args.seconds))
  for n in processes:
    log(_processes(paths, n, args.seconds, shared=False, batch_size=args.batch_size))
  for n in processes:
    log(_processes(paths, n, args.seconds, shared=True, batch_size=args.batch_size))
  report["ipc"] = _ipc(args.seconds / 2, args.batch_size)
  print(f"IPC through MultiProcessShared: {report['ipc']['cpu_ms_per_patch']:.3f} CPU-ms per "
        f"patch", file=sys.stderr, flush=True)
  if not args.skip_models:
    report["models"] = _models(args.batch_size, args.seconds / 2)
  report["load_after"] = os.getloadavg()

  # The projection: the processes' front-end rate per CPU-second (one front end per
  # core, as the recommended shape runs it) and the shared model's IPC CPU per patch.
  per_vcpu = max(r["audio_seconds_per_cpu_second"] or 0 for r in report["shapes"]
                 if r["shape"].startswith("processes:"))
  ipc_cpu_per_patch = report["ipc"]["cpu_ms_per_patch"] / 1e3
  report["ipc_cpu_seconds_per_patch"] = ipc_cpu_per_patch
  report["front_end_audio_seconds_per_cpu_second"] = per_vcpu
  report["gpu_assumptions"] = GPU_ASSUMPTIONS
  report["projection"] = project(per_vcpu, ipc_cpu_per_patch)
  with open(args.output, "w") as f:
    json.dump(report, f, indent=1)
  print(json.dumps({"projection": report["projection"], "models": report.get("models")},
                   indent=1))
  return 0


if __name__ == "__main__":
  import importlib

  sys.exit(importlib.import_module("bench.worker_shape").main())
