"""``python -m bench.gpu_check``: one unattended check of the PyTorch backend on a GPU machine.

Made for a borrowed GPU machine that has PyTorch but no TensorFlow and no Beam, with
minutes of time and only what travels with the repository (``bench/gpu_check.sh``
installs the few carried wheels first). In one run it:

1. builds deterministic TEST weights from a seed with numpy alone
   (``portable_test_variables``: PCG64 raw bits -> He-uniform float32, exact IEEE
   arithmetic, so every machine makes the same bits) and checks their sha256 against
   the one carried in ``bench/gpu_reference.npz`` (a real-size checkpoint, 288 MB, is
   too big to carry);
2. writes the synthetic bench corpus (``bench.corpus``, in parallel) and checks each
   file's sha256 against the reference;
3. runs every example clip (``examples/audio/*``; formats libsndfile cannot read need
   PyAV and are skipped, with the reason, when ``av`` is missing) and the corpus through
   the library path: the numpy front end (``audiobeam.audio`` + ``audiobeam.resample`` +
   ``vggish.features`` via ``vggish.stream.iter_patches``) in a process pool on the
   CPUs, the model (``vggish.torch_model.VGGishTorchModel``, TF32 off) on the device,
   patches packed across files into batches;
4. compares raw embeddings with the reference computed on a CPU by the TensorFlow model
   (``--write_reference``), and uint8 after PCA: the contract is raw max |diff| <= 1e-4
   and >= 99.9 % of uint8 values equal, same patch count per file;
5. measures model patches/s per batch size, the front end's audio-s per CPU-second
   (one worker alone, all worker processes at once, the same number of threads in one
   process), end-to-end audio-s/s with every core feeding one model (worker processes
   sending patches to this process; and threads of this process, the single-SDK-process
   Dataflow shape), peak GPU memory, and for comparison TF32 on and cuDNN autotuning.

Writes ONE JSON (``--output``, default ``$OUT/gpu_check.json`` or
``bench/results/gpu-check-<time>.json``) and exits 1, with a banner on stderr, if
parity or a weights/corpus check fails (2 for a usage or environment error).

  python -m bench.gpu_check --device cuda                  # the GPU machine, ~3 min
  python -m bench.gpu_check --device cpu --corpus tiny     # a CPU smoke run
  python -m bench.gpu_check --write_reference              # here, with TensorFlow
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime
import hashlib
import json
import multiprocessing
import os
import platform
import queue
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np

from audiobeam.assets import sha256_of_files
from bench.__main__ import _cpu_model
from bench.corpus import CorpusSpec, build_corpus, default_cache_dir
from bench.parity import RAW_TOLERANCE, UINT8_MIN_IDENTICAL  # the numerical contract (DESIGN.md)

__all__ = [
    "CORPORA",
    "REFERENCE_PATH",
    "portable_test_variables",
    "variables_sha256",
    "front_end",
    "main",
]

_REPO_ROOT = Path(__file__).resolve().parent.parent
REFERENCE_PATH = _REPO_ROOT / "bench" / "gpu_reference.npz"
EXAMPLES_DIR = _REPO_ROOT / "examples" / "audio"

CORPORA = {
    # 26.7 min of 44.1 kHz stereo WAV (282 MB): long files and clips, as a real corpus.
    "full": CorpusSpec(long_files=4, long_minutes=5.0, clips=40, clip_seconds=10.0, seed=11),
    # 10 s: the CPU smoke run (tests/test_gpu_check.py).
    "tiny": CorpusSpec(long_files=1, long_minutes=0.1, clips=2, clip_seconds=2.0, seed=11),
}
WEIGHTS_SEED = 0
SHORT_CLIPS = "pad"           # Every example gives at least one patch (one is 0.5 s).
_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_NUMPY_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# --- weights ----------------------------------------------------------------------------


def portable_test_variables(seed: int = WEIGHTS_SEED) -> dict[str, np.ndarray]:
  """TEST weights (not embeddings) that every machine and numpy version makes bit for bit.

  For each variable of ``vggish.network.variable_shapes()`` in order: 24 random bits
  per value from ``np.random.PCG64(seed).random_raw`` (a stream numpy keeps stable),
  mapped exactly to u in [-1, 1), times float32(sqrt(6 / fan_in)) for weights
  (He-uniform) or float32(0.05 * sqrt(3)) for biases. One IEEE rounding per value.
  """
  from vggish.network import variable_shapes

  bits = np.random.PCG64(seed)
  out = {}
  for name, shape in variable_shapes().items():
    raw = bits.random_raw(int(np.prod(shape))) >> np.uint64(40)                 # 24 bits
    unit = raw.astype(np.float32) * np.float32(2.0 ** -23) - np.float32(1.0)   # exact
    if name.endswith("/weights"):
      scale = np.float32(np.sqrt(6.0 / int(np.prod(shape[:-1]))))
    else:
      scale = np.float32(0.05 * np.sqrt(3.0))
    out[name] = (unit * scale).reshape(shape)
  return out


def variables_sha256(variables: dict[str, np.ndarray]) -> str:
  """sha256 over name, shape and little-endian float32 bytes of every variable, in order."""
  digest = hashlib.sha256()
  for name, value in variables.items():
    value = np.ascontiguousarray(value, dtype="<f4")
    digest.update(f"{name}:{list(value.shape)}:".encode())
    digest.update(value.tobytes())
  return digest.hexdigest()


# --- the front end, in worker processes ---------------------------------------------------


def _init_worker() -> None:
  import signal

  signal.signal(signal.SIGINT, signal.SIG_IGN)


def front_end(path: str) -> tuple[str, np.ndarray, float, float]:
  """One file through the library's streamed front end (what the pipeline runs).

  Returns (path, patches float32 [N, 96, 64], audio seconds, CPU seconds of this process).
  Sets the process's allocator as the pipeline's workers do (once per process).
  """
  from audiobeam.allocator import reuse_freed_memory
  from audiobeam.audio import open_audio
  from vggish.params import DEFAULT_PARAMS
  from vggish.stream import iter_patches

  reuse_freed_memory()
  cpu0 = time.process_time()
  with open_audio(path) as stream:
    patches = iter_patches(stream, DEFAULT_PARAMS, "kaiser_best", short_clips=SHORT_CLIPS)
    blocks = [block.patches for block in patches]
    audio_seconds = patches.stats.duration_seconds
  out = (np.concatenate(blocks) if blocks else
         np.zeros((0, DEFAULT_PARAMS.patch_frames, DEFAULT_PARAMS.patch_bands), np.float32))
  return path, out, audio_seconds, time.process_time() - cpu0


def _front_end_pool(workers: int):
  """Spawned processes (safe next to CUDA) running one BLAS thread each."""
  saved = {k: os.environ.get(k) for k in _BLAS_ENV}
  os.environ.update({k: "1" for k in _BLAS_ENV})  # Inherited by the spawned workers.
  try:
    pool = concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker)
    list(pool.map(_noop, range(workers)))  # Start them all now, not inside a timing.
  finally:
    for k, v in saved.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v
  return pool


def _noop(_):
  import audiobeam.audio  # noqa: F401  (warm the imports)
  import vggish.stream  # noqa: F401

  return os.getpid()


def _needs_pyav(path: str) -> bool:
  """Files ``audiobeam.audio`` decodes with FFmpeg: what libsndfile cannot read, and the
  formats it streams wrongly (MP3: ``audiobeam.audio._FFMPEG_FORMATS``)."""
  import soundfile

  from audiobeam.audio import _FFMPEG_FORMATS  # pylint: disable=import-outside-toplevel
  try:
    return soundfile.info(path).format in _FFMPEG_FORMATS
  except Exception:  # libsndfile cannot read it: the decoder falls back to PyAV.
    return True


def _have_module(name: str) -> bool:
  import importlib

  try:
    importlib.import_module(name)
    return True
  except Exception:  # Missing, or installed but broken: either way not usable.
    return False


# --- helpers ------------------------------------------------------------------------------


def _log(msg: str) -> None:
  print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _example_paths() -> list[str]:
  return sorted(str(p) for p in EXAMPLES_DIR.iterdir() if p.is_file())


def _key(group: str, path: str) -> str:
  return f"raw/{group}/{os.path.basename(path)}"


def _pack_and_run(model, patches_per_file: dict[str, np.ndarray], batch_size: int
                  ) -> dict[str, np.ndarray]:
  """Patches of all files packed into full batches (as the pipeline does), split back."""
  names = list(patches_per_file)
  counts = [patches_per_file[n].shape[0] for n in names]
  allp = np.concatenate([patches_per_file[n] for n in names])
  raw = np.concatenate([model(allp[i:i + batch_size]) for i in range(0, allp.shape[0], batch_size)]
                       or [np.zeros((0, 128), np.float32)])
  out, start = {}, 0
  for name, count in zip(names, counts):
    out[name] = raw[start:start + count]
    start += count
  return out


def _compare(raw: np.ndarray, reference: np.ndarray, pca) -> dict:
  from vggish.postprocess import postprocess

  if raw.shape != reference.shape:
    return {"ok": False, "patches": int(raw.shape[0]), "reference_patches": int(reference.shape[0]),
            "problem": f"shape {list(raw.shape)} vs reference {list(reference.shape)}"}
  if raw.size == 0:
    return {"ok": False, "patches": 0, "problem": "no patches"}
  diff = float(np.max(np.abs(raw.astype(np.float64) - reference)))
  q, q_ref = postprocess(raw, pca), postprocess(reference, pca)
  identical = float(np.mean(q == q_ref))
  return {"ok": bool(diff <= RAW_TOLERANCE and identical >= UINT8_MIN_IDENTICAL),
          "patches": int(raw.shape[0]), "raw_max_abs_diff": diff,
          "uint8_identical_fraction": identical,
          "uint8_max_abs_diff": int(np.max(np.abs(q.astype(int) - q_ref.astype(int))))}


def _summarize(per_file: dict[str, dict]) -> dict:
  compared = [r for r in per_file.values() if "raw_max_abs_diff" in r]
  patches = sum(r["patches"] for r in compared)
  return {
      "ok": bool(per_file) and all(r["ok"] for r in per_file.values()),
      "files": len(per_file),
      "patches": patches,
      "raw_max_abs_diff": max((r["raw_max_abs_diff"] for r in compared), default=None),
      "uint8_identical_fraction": (sum(r["uint8_identical_fraction"] * r["patches"]
                                       for r in compared) / patches) if patches else None,
      "failed_files": sorted(os.path.basename(k) for k, r in per_file.items() if not r["ok"]),
  }


# --- measurements -------------------------------------------------------------------------


def _measure_model(model, batch_size: int, min_seconds: float, min_calls: int = 2) -> dict:
  """Patches/s of ``model(numpy)`` (the call contract, with host<->device copies)."""
  rng = np.random.default_rng(batch_size)
  patches = (rng.standard_normal((batch_size, 96, 64), dtype=np.float32) * 2.0 - 3.0)
  import torch

  cuda = model.device.type == "cuda"
  model(patches)  # Warm-up: kernels, allocator.
  if cuda:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
  calls, t0 = 0, time.perf_counter()
  while calls < min_calls or time.perf_counter() - t0 < min_seconds:
    model(patches)
    calls += 1
  seconds = time.perf_counter() - t0
  result = {"batch_size": batch_size, "calls": calls, "seconds": seconds,
            "patches_per_second": calls * batch_size / seconds,
            "gflops_per_second": calls * batch_size * model.flops_per_patch / seconds / 1e9}
  if cuda:
    result["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated())
    # The network alone, input already on the device (no copies): the GPU's own rate.
    with torch.inference_mode():
      on_device = torch.from_numpy(patches).to(model.device)
      model.forward(on_device)
      torch.cuda.synchronize()
      n, t0 = 0, time.perf_counter()
      while n < min_calls or time.perf_counter() - t0 < min_seconds / 2:
        model.forward(on_device)
        n += 1
      torch.cuda.synchronize()
      result["device_resident_patches_per_second"] = n * batch_size / (time.perf_counter() - t0)
  return result


def _stream_pool(pool, paths: list[str], seconds: float, consume, in_flight: int):
  """Feeds ``paths`` round-robin to ``pool`` for ``seconds``; ``consume`` each result.

  Returns (audio seconds, worker CPU seconds, files, wall seconds) of what completed.
  """
  audio = cpu = 0.0
  files = 0
  pending: set = set()
  t0 = time.perf_counter()
  index = 0
  while True:
    while len(pending) < in_flight and time.perf_counter() - t0 < seconds:
      pending.add(pool.submit(front_end, paths[index % len(paths)]))
      index += 1
    if not pending:
      break
    done, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
    for future in done:
      _, patches, audio_seconds, cpu_seconds = future.result()
      consume(patches)
      audio += audio_seconds
      cpu += cpu_seconds
      files += 1
  return audio, cpu, files, time.perf_counter() - t0


def _end_to_end(model, pool, paths: list[str], workers: int, batch_size: int,
                seconds: float, shape: str) -> dict:
  """Every worker feeding one model: front end in ``pool`` (processes, or threads of this
  process), model in a thread of this process."""
  batches: queue.Queue = queue.Queue(maxsize=4)
  busy = {"seconds": 0.0, "patches": 0, "calls": 0}

  def run_model():
    while True:
      batch = batches.get()
      if batch is None:
        return
      t = time.perf_counter()
      model(batch)
      busy["seconds"] += time.perf_counter() - t
      busy["patches"] += batch.shape[0]
      busy["calls"] += 1

  thread = threading.Thread(target=run_model, daemon=True)
  thread.start()
  pending: list[np.ndarray] = []
  count = [0]

  def consume(patches):
    pending.append(patches)
    count[0] += patches.shape[0]
    if count[0] >= batch_size:
      joined = np.concatenate(pending)
      full = joined.shape[0] // batch_size * batch_size
      for i in range(0, full, batch_size):
        batches.put(joined[i:i + batch_size])
      pending[:] = [joined[full:]]
      count[0] = joined.shape[0] - full

  t0, parent_cpu0 = time.perf_counter(), time.process_time()
  audio, cpu, files, _ = _stream_pool(pool, paths, seconds, consume, in_flight=2 * workers)
  if count[0]:
    batches.put(np.concatenate(pending))
  batches.put(None)
  thread.join()
  wall = time.perf_counter() - t0
  parent_cpu = time.process_time() - parent_cpu0
  if shape == "threads":  # Workers are threads here: their CPU is this process's.
    cpu = parent_cpu
  return {"shape": shape, "workers": workers, "batch_size": batch_size, "files": files,
          # This process: receiving patches from the workers, packing batches, the model's
          # host side. Near 1 core means the feeding itself is the bottleneck.
          "parent_cpu_seconds": parent_cpu, "parent_busy_cores": parent_cpu / wall,
          "audio_seconds": audio, "wall_seconds": wall,
          "audio_seconds_per_second": audio / wall,
          "patches": busy["patches"], "model_calls": busy["calls"],
          "patches_per_second": busy["patches"] / wall,
          "model_busy_fraction": busy["seconds"] / wall,
          "front_end_cpu_seconds": cpu,
          "front_end_audio_seconds_per_cpu_second": audio / cpu if cpu else None}


# --- the run ------------------------------------------------------------------------------


def _versions() -> dict:
  out = {"python": platform.python_version(), "numpy": np.__version__}
  for name in ("torch", "soundfile", "soxr", "resampy", "av"):
    try:
      module = __import__(name)
      out[name] = getattr(module, "__version__", "?")
      if name == "soundfile":
        out["libsndfile"] = module.__libsndfile_version__
    except Exception as e:  # Missing or broken: record why, the run decides what it needs.
      out[name] = f"unavailable ({type(e).__name__})"
  return out


def _device_info(torch, device) -> dict:
  info = {"device": str(device), "torch_cuda": torch.version.cuda}
  if device.type == "cuda":
    props = torch.cuda.get_device_properties(device)
    info.update(name=torch.cuda.get_device_name(device), capability=[props.major, props.minor],
                memory_total_bytes=int(props.total_memory),
                cudnn=torch.backends.cudnn.version())
  else:
    info["name"] = _cpu_model()
  return info


def run_check(args, report: dict) -> list[str]:
  """Fills ``report``; returns the list of failures (empty when all is well)."""
  import torch

  from vggish.postprocess import PCAParams
  from vggish.testing import scale_fc2
  from audiobeam.devices import set_torch_tf32, torch_tf32_state
  from vggish.torch_model import VGGishTorchModel

  failures: list[str] = []
  timings = report["timings"]
  t = time.perf_counter()
  with np.load(args.reference, allow_pickle=False) as data:
    ref = {k: data[k] for k in data.files}
  meta = json.loads(str(ref["meta_json"]))
  report["reference"] = {"path": str(args.reference), "made_with": meta["made_with"]}
  timings["load_reference"] = time.perf_counter() - t

  # 1. Weights from the seed, checked against the reference's sha256.
  t = time.perf_counter()
  variables = portable_test_variables(int(ref["weights_seed"]))
  scale_fc2(variables, float(ref["fc2_scale"]))
  sha = variables_sha256(variables)
  report["weights"] = {"kind": "portable TEST weights (bench.gpu_check.portable_test_variables)",
                       "seed": int(ref["weights_seed"]), "fc2_scale": float(ref["fc2_scale"]),
                       "sha256": sha, "expected_sha256": str(ref["weights_sha256"]),
                       "ok": sha == str(ref["weights_sha256"])}
  if not report["weights"]["ok"]:
    failures.append("weights: sha256 of the generated variables differs from the reference")
  pca = PCAParams(ref["pca_eigen_vectors"], ref["pca_means"])
  device = "cuda" if args.device == "cuda" else "cpu"
  model = VGGishTorchModel(variables, device=device)
  del variables
  report["device"] = _device_info(torch, model.device)
  report["tf32"] = model.tf32_state
  timings["weights_and_model"] = time.perf_counter() - t
  _log(f"model on {report['device']['name']} ({model.device}); weights ok={report['weights']['ok']}")

  # 2. Workers and corpus.
  t = time.perf_counter()
  workers = args.workers or len(os.sched_getaffinity(0)) or 1
  pool = _front_end_pool(workers)
  timings["start_workers"] = time.perf_counter() - t
  try:
    t = time.perf_counter()
    spec = CORPORA[args.corpus]
    corpus = build_corpus(spec, args.cache_dir, log=_log, map_fn=pool.map)
    corpus_paths = [f.path for f in corpus.files]
    expected_sha = json.loads(str(ref[f"corpus_sha256/{args.corpus}"]))
    corpus_sha = {os.path.basename(p): sha256_of_files([p]) for p in corpus_paths}
    report["corpus"] = {"name": args.corpus, "description": corpus.describe(),
                        "files": len(corpus_paths), "audio_seconds": corpus.total_seconds,
                        "sha256_ok": corpus_sha == expected_sha}
    if corpus_sha != expected_sha:
      bad = sorted(k for k in expected_sha if corpus_sha.get(k) != expected_sha[k])
      failures.append(f"corpus: {len(bad)} generated files differ from the reference's "
                      f"(numpy {np.__version__} synthesises other samples?): {bad[:5]}")
    timings["corpus"] = time.perf_counter() - t

    # 3-4. Parity: examples and corpus through the pool, model on the device.
    t = time.perf_counter()
    have_av = _have_module("av")
    examples, skipped = [], {}
    for path in _example_paths():
      if not have_av and _needs_pyav(path):
        skipped[os.path.basename(path)] = "needs PyAV (FFmpeg) to decode; 'av' is not installed"
      else:
        examples.append(path)
    groups = {"examples": examples, f"corpus/{args.corpus}": corpus_paths}
    parity: dict = {"skipped": skipped, "raw_tolerance": RAW_TOLERANCE,
                    "uint8_min_identical": UINT8_MIN_IDENTICAL}
    patches_by_group = {}
    for group, paths in groups.items():
      results = {p: patches for p, patches, _, _ in pool.map(front_end, paths)}
      patches_by_group[group] = results
      raw = _pack_and_run(model, results, args.parity_batch_size)
      per_file = {}
      for path, value in raw.items():
        key = _key(group, path)
        if key not in ref:
          per_file[path] = {"ok": False, "problem": f"no reference for {key}"}
        else:
          per_file[path] = _compare(value, ref[key], pca)
      parity[group] = {"summary": _summarize(per_file),
                       "files": {os.path.basename(k): v for k, v in per_file.items()}}
      if not parity[group]["summary"]["ok"]:
        failures.append(f"parity {group}: {parity[group]['summary']}")
    missing = sorted(k[len("raw/examples/"):] for k in ref if k.startswith("raw/examples/")
                     and k[len("raw/examples/"):] not in {os.path.basename(p) for p in examples}
                     and k[len("raw/examples/"):] not in skipped)
    if missing:
      failures.append(f"parity examples: reference files not run: {missing}")
    all_files = {**parity["examples"]["files"], **parity[f"corpus/{args.corpus}"]["files"]}
    parity["overall"] = _summarize(all_files)
    report["parity"] = parity
    timings["parity"] = time.perf_counter() - t
    _log(f"parity: {parity['overall']}")

    # 5a. Model patches/s per batch size.
    t = time.perf_counter()
    report["model"] = {"flops_per_patch": model.flops_per_patch, "batch_sizes": {}}
    for batch_size in args.batch_sizes:
      result = _measure_model(model, batch_size, args.model_seconds)
      report["model"]["batch_sizes"][str(batch_size)] = result
      _log(f"model batch {batch_size}: {result['patches_per_second']:.0f} patches/s")
    timings["model"] = time.perf_counter() - t

    # 5b. Front end alone: one worker, then all workers at once.
    t = time.perf_counter()
    solo = _front_end_pool(1)
    try:
      audio, cpu, files, wall = _stream_pool(solo, corpus_paths, args.front_end_seconds,
                                             lambda _: None, in_flight=1)
    finally:
      solo.shutdown()
    one = {"workers": 1, "files": files, "audio_seconds": audio, "wall_seconds": wall,
           "audio_seconds_per_cpu_second": audio / cpu if cpu else None}
    audio, cpu, files, wall = _stream_pool(pool, corpus_paths, args.front_end_seconds,
                                           lambda _: None, in_flight=2 * workers)
    every = {"workers": workers, "files": files, "audio_seconds": audio, "wall_seconds": wall,
             "audio_seconds_per_second": audio / wall,
             "audio_seconds_per_second_per_worker": audio / wall / workers,
             "audio_seconds_per_cpu_second": audio / cpu if cpu else None}
    # The same with threads of ONE process (the single-SDK-process worker shape): how far
    # the front end scales under the GIL. Its CPU is this process's.
    cpu0 = time.process_time()
    with concurrent.futures.ThreadPoolExecutor(workers) as threads:
      audio, _, files, wall = _stream_pool(threads, corpus_paths, args.front_end_seconds,
                                           lambda _: None, in_flight=2 * workers)
    cpu = time.process_time() - cpu0
    threaded = {"threads": workers, "files": files, "audio_seconds": audio,
                "wall_seconds": wall, "audio_seconds_per_second": audio / wall,
                "busy_cores": cpu / wall,
                "audio_seconds_per_cpu_second": audio / cpu if cpu else None}
    report["front_end"] = {"path": "vggish.stream.iter_patches (kaiser_best), BLAS 1 thread "
                                   "per worker", "one_worker": one, "all_workers": every,
                           "one_process_threads": threaded}
    timings["front_end"] = time.perf_counter() - t
    _log(f"front end: {one['audio_seconds_per_cpu_second']:.0f} audio-s per CPU-s alone; "
         f"{every['audio_seconds_per_second']:.0f} audio-s/s with {workers} workers")

    # 5c. End to end: every core feeding one model.
    t = time.perf_counter()
    if model.device.type == "cuda":
      torch.cuda.reset_peak_memory_stats()
    e2e = _end_to_end(model, pool, corpus_paths, workers, args.e2e_batch_size, args.e2e_seconds,
                      "processes")
    if model.device.type == "cuda":
      e2e["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated())
    report["end_to_end"] = e2e
    with concurrent.futures.ThreadPoolExecutor(workers) as threads:
      report["end_to_end_threads"] = _end_to_end(model, threads, corpus_paths, workers,
                                                 args.e2e_batch_size, args.e2e_seconds, "threads")
    timings["end_to_end"] = time.perf_counter() - t
    for r in (e2e, report["end_to_end_threads"]):
      _log(f"end to end ({r['shape']}): {r['audio_seconds_per_second']:.0f} audio-s/s, model "
           f"busy {100 * r['model_busy_fraction']:.0f}%")
  finally:
    pool.shutdown(cancel_futures=True)

  # 5d. For comparison only: TF32 on, cuDNN autotuning (process-wide switches, restored).
  if model.device.type == "cuda" and args.compare_settings:
    t = time.perf_counter()
    examples_patches = patches_by_group["examples"]
    reference = np.concatenate([ref[_key("examples", p)] for p in examples_patches])
    compare = {}
    try:
      set_torch_tf32(True)
      raw = np.concatenate(list(_pack_and_run(model, examples_patches, 256).values()))
      compare["tf32_on"] = {
          "raw_max_abs_diff": float(np.max(np.abs(raw.astype(np.float64) - reference))),
          **_measure_model(model, args.e2e_batch_size, args.model_seconds)}
    finally:
      set_torch_tf32(False)
    try:
      torch.backends.cudnn.benchmark = True
      raw = np.concatenate(list(_pack_and_run(model, examples_patches, 256).values()))
      compare["cudnn_benchmark"] = {
          "raw_max_abs_diff": float(np.max(np.abs(raw.astype(np.float64) - reference))),
          **_measure_model(model, args.e2e_batch_size, args.model_seconds)}
    finally:
      torch.backends.cudnn.benchmark = False
    report["compare_settings"] = compare
    report["tf32_after"] = torch_tf32_state()
    timings["compare_settings"] = time.perf_counter() - t
  if model.device.type == "cuda":
    report["peak_gpu_memory_bytes"] = int(torch.cuda.max_memory_allocated())
  report["summary"] = _summary(report)
  return failures


def _summary(report: dict) -> dict:
  """The headline numbers, in one place at the top of the JSON."""
  overall = report["parity"]["overall"]
  fe = report["front_end"]
  return {
      "device": report["device"]["name"],
      "tf32_off": not (report["tf32"]["cuda.matmul.allow_tf32"]
                       or report["tf32"]["cudnn.allow_tf32"]),
      "parity_ok": overall["ok"],
      "raw_max_abs_diff": overall["raw_max_abs_diff"],
      "uint8_identical_percent": (100 * overall["uint8_identical_fraction"]
                                  if overall["uint8_identical_fraction"] is not None else None),
      "parity_skipped": report["parity"]["skipped"],
      "model_patches_per_second": {b: r["patches_per_second"]
                                   for b, r in report["model"]["batch_sizes"].items()},
      "end_to_end_audio_seconds_per_second": report["end_to_end"]["audio_seconds_per_second"],
      "end_to_end_model_busy_fraction": report["end_to_end"]["model_busy_fraction"],
      "end_to_end_one_process_threads_audio_seconds_per_second":
          report["end_to_end_threads"]["audio_seconds_per_second"],
      "front_end_one_process_threads_audio_seconds_per_second":
          fe["one_process_threads"]["audio_seconds_per_second"],
      "front_end_audio_seconds_per_cpu_second_one_worker":
          fe["one_worker"]["audio_seconds_per_cpu_second"],
      "front_end_audio_seconds_per_second_per_worker_all_busy":
          fe["all_workers"]["audio_seconds_per_second_per_worker"],
      "peak_gpu_memory_bytes": report.get("peak_gpu_memory_bytes"),
  }


def write_reference(args) -> int:
  """Here, with TensorFlow: weights, PCA, corpora and the TF model's raw outputs -> npz."""
  from vggish.model import VGGishModel
  from vggish.testing import _write_npz, calibrate

  variables = portable_test_variables(WEIGHTS_SEED)
  eigen_vectors, means, scale = calibrate(variables, WEIGHTS_SEED)
  model = VGGishModel(variables)
  arrays: dict[str, np.ndarray] = {
      "weights_seed": np.array(WEIGHTS_SEED), "fc2_scale": np.array(scale),
      "weights_sha256": np.array(variables_sha256(variables)),
      "pca_eigen_vectors": eigen_vectors, "pca_means": means}
  groups = {"examples": _example_paths()}
  for name, spec in CORPORA.items():
    corpus = build_corpus(spec, args.cache_dir, log=_log)
    groups[f"corpus/{name}"] = [f.path for f in corpus.files]
    arrays[f"corpus_sha256/{name}"] = np.array(json.dumps(
        {os.path.basename(f.path): sha256_of_files([f.path]) for f in corpus.files}, sort_keys=True))
  for group, paths in groups.items():
    for path in paths:
      _, patches, _, _ = front_end(path)
      arrays[_key(group, path)] = model(patches)
      _log(f"reference {_key(group, path)}: {patches.shape[0]} patches")
  import tensorflow as tf

  arrays["meta_json"] = np.array(json.dumps({
      "made_with": {"command": "python -m bench.gpu_check --write_reference",
                    "model": "vggish.model.VGGishModel (TensorFlow, CPU)",
                    "tensorflow": tf.__version__, **_versions(), "cpu": _cpu_model(),
                    "date": datetime.date.today().isoformat()},
      "corpora": {k: dataclasses.asdict(v) for k, v in CORPORA.items()},
      "short_clips": SHORT_CLIPS, "resampler": "kaiser_best"}, sort_keys=True))
  _write_npz(str(args.reference), arrays)
  _log(f"wrote {args.reference} ({os.path.getsize(args.reference) / 1e6:.2f} MB)")
  return 0


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
  p.add_argument("--corpus", choices=sorted(CORPORA), default="full")
  p.add_argument("--workers", type=int, default=0, help="front-end processes (default: all CPUs)")
  p.add_argument("--batch_sizes", default=None,
                 help="model batch sizes to time (default 64,256,1024,4096 on cuda, 4 on cpu)")
  p.add_argument("--parity_batch_size", type=int, default=256)
  p.add_argument("--e2e_batch_size", type=int, default=None,
                 help="batch of the end-to-end run (default 1024 on cuda, 4 on cpu)")
  p.add_argument("--model_seconds", type=float, default=None,
                 help="seconds per batch size (default 4 on cuda, 0 = 2 calls on cpu)")
  p.add_argument("--front_end_seconds", type=float, default=None,
                 help="seconds of each front-end-only run (default 12 on cuda, 0.5 on cpu)")
  p.add_argument("--e2e_seconds", type=float, default=None,
                 help="seconds of feeding in each end-to-end run (default 30 on cuda, 0.5 on cpu)")
  p.add_argument("--no_compare_settings", dest="compare_settings", action="store_false",
                 help="skip the TF32-on / cuDNN-autotune comparison (cuda only)")
  p.add_argument("--reference", type=Path, default=REFERENCE_PATH)
  p.add_argument("--cache_dir", default=None,
                 help=f"where the corpus is written (default {default_cache_dir()})")
  p.add_argument("--output", default=None, help="the JSON report")
  p.add_argument("--write_reference", action="store_true",
                 help="(re)make --reference here with the TensorFlow model, then exit")
  args = p.parse_args(argv)
  cuda = args.device == "cuda"
  if args.batch_sizes is None:
    args.batch_sizes = "64,256,1024,4096" if cuda else "4"
  args.batch_sizes = [int(x) for x in str(args.batch_sizes).split(",") if x.strip()]
  defaults = {"e2e_batch_size": (1024, 4), "model_seconds": (4.0, 0.0),
              "front_end_seconds": (12.0, 0.5), "e2e_seconds": (30.0, 0.5)}
  for name, (on_cuda, on_cpu) in defaults.items():
    if getattr(args, name) is None:
      setattr(args, name, on_cuda if cuda else on_cpu)
  if args.output is None:
    out_dir = os.environ.get("OUT") or str(_REPO_ROOT / "bench" / "results")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    args.output = os.path.join(out_dir, "gpu_check.json" if os.environ.get("OUT")
                               else f"gpu-check-{stamp}.json")
  return args


def main(argv=None) -> int:
  args = parse_args(argv)
  if args.write_reference:
    return write_reference(args)
  if argv is None and any(os.environ.get(k) != "1" for k in _NUMPY_BLAS_ENV):
    # numpy's BLAS in this process (the threads shape runs the front end here) gets one
    # thread, like the workers'. OMP is left alone: torch's CPU threads use it.
    env = dict(os.environ, **{k: "1" for k in _NUMPY_BLAS_ENV})
    os.execve(sys.executable, [sys.executable, "-m", "bench.gpu_check"] + sys.argv[1:], env)
  t0 = time.perf_counter()
  report: dict = {"ok": False, "command": [sys.executable, "-m", "bench.gpu_check"] + list(
      sys.argv[1:] if argv is None else argv), "machine": {
          "cpus": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
          "cpu_model": _cpu_model(), "platform": platform.platform(),
          "load_before": list(os.getloadavg())},
      "versions": _versions(), "timings": {},
      "started": datetime.datetime.now().isoformat(timespec="seconds")}
  status = 1
  try:
    if args.device == "cuda":
      import torch

      if not torch.cuda.is_available():
        raise RuntimeError(f"--device cuda, but torch {torch.__version__} sees no CUDA GPU")
    failures = run_check(args, report)
    report["failures"] = failures
    report["ok"] = not failures
    status = 0 if not failures else 1
  except Exception as e:  # Everything goes into the JSON, then the exit status says it.
    report["failures"] = report.get("failures", []) + [f"error: {type(e).__name__}: {e}"]
    report["traceback"] = traceback.format_exc()
    status = 2 if isinstance(e, (RuntimeError, FileNotFoundError, ImportError)) else 1
  report["total_seconds"] = time.perf_counter() - t0
  os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
  with open(args.output, "w") as f:
    json.dump(report, f, indent=1, default=str)
  print(json.dumps({k: report.get(k) for k in ("ok", "failures", "total_seconds")}, default=str))
  if status:
    banner = "=" * 72
    print(f"{banner}\nGPU CHECK FAILED (exit {status}):\n  " + "\n  ".join(report["failures"])
          + f"\nreport: {args.output}\n{banner}", file=sys.stderr)
  else:
    _log(f"OK; report {args.output}")
  return status


if __name__ == "__main__":
  # Run as bench.gpu_check, not __main__, so the worker processes unpickle its functions
  # by an importable name.
  import importlib

  sys.exit(importlib.import_module("bench.gpu_check").main())
