"""Per-stage profile of *our* chain: the pipeline's streamed front end, per stage and format.

The pipeline's stages overlap across Beam workers, so their wall times do not add up
to the end-to-end time. To say where our time goes, this runs the library in one
process and times each stage, in CPU seconds of this process (= core-seconds: "audio-s
per CPU-s" is audio seconds per second of one core) and wall seconds:

**Streamed** (what the pipeline runs): ``vggish.stream.iter_patches`` over
``audiobeam.audio.open_audio``, instrumented in place (its own calls are wrapped with
timers for the duration of the profile; nothing is re-implemented):

  decode    ``AudioStream.blocks`` (libsndfile or PyAV, integer scaling, NaN check)
  mono      ``to_mono`` of each block
  resample  ``StreamingResampler.process`` / ``flush`` to 16 kHz (``--resampler``)
  log_mel   ``vggish.features.log_mel_spectrogram`` of each group of patches
  other     the rest of ``iter_patches`` (buffering, framing into patches, float32 cast,
            finite check), i.e. total minus the stages above

**Whole file** (the library API a user calls on one file): ``decode_audio``,
``to_mono``, ``resample``, ``log_mel_spectrogram`` + ``frame_patches``; and, with
weights, ``model`` (``VGGishModel`` or ``--backend torch``) on full batches packed
across files and ``postprocess`` (PCA + uint8).

Modes:

  # the bench's profile (python -m bench runs this): whole-file stages + model, and
  # the streamed stages, over the files of a manifest
  python -m bench.profile --manifest files.json --checkpoint CKPT --pca_params NPZ \\
      --batch_size 64 --output profile.json
  # the front end per format: a 10-min 44.1 kHz stereo WAV streamed at parity, then its
  # first --format_seconds as WAV, FLAC, MP3, Ogg Vorbis and M4A (AAC), streamed and
  # whole-file; --one_blas_thread runs with OPENBLAS/OMP/MKL_NUM_THREADS=1
  python -m bench.profile --formats --output formats.json [--one_blas_thread]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time

import numpy as np

__all__ = ["STAGES", "STREAMED_STAGES", "FORMATS", "profile_stages", "profile_streamed",
           "profile_whole_file", "make_format_files", "profile_formats", "main"]

STAGES = ("decode", "resample", "log_mel", "model", "postprocess")
STREAMED_STAGES = ("decode", "mono", "resample", "log_mel", "other")
FORMATS = ("wav", "flac", "mp3", "ogg", "m4a")
_BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class _Clock:
  """Wall and CPU (this process, all threads) seconds per stage."""

  def __init__(self, stages):
    self.wall = dict.fromkeys(stages, 0.0)
    self.cpu = dict.fromkeys(stages, 0.0)

  @contextlib.contextmanager
  def time(self, stage: str):
    w, c = time.perf_counter(), time.process_time()
    try:
      yield
    finally:
      self.wall[stage] += time.perf_counter() - w
      self.cpu[stage] += time.process_time() - c

  def report(self, audio_seconds: float) -> dict:
    return {s: {"wall_seconds": self.wall[s], "cpu_seconds": self.cpu[s],
                "audio_seconds_per_cpu_second": (audio_seconds / self.cpu[s]
                                                 if self.cpu[s] > 0 else None)}
            for s in self.wall}


def _timed_generator(clock: _Clock, stage: str, generator):
  iterator = iter(generator)
  while True:
    with clock.time(stage):
      item = next(iterator, None)
    if item is None:
      return
    yield item


@contextlib.contextmanager
def _instrumented(clock: _Clock):
  """Wraps the streamed path's own calls (the driver ``audiobeam.stream``'s names and
  VGGish's log-mel) with ``clock`` timers."""
  from audiobeam import stream as stream_module
  from vggish import features

  saved = {name: getattr(stream_module, name) for name in ("to_mono", "StreamingResampler")}
  saved_log_mel = features.log_mel_spectrogram
  base = saved["StreamingResampler"]

  class TimedResampler(base):
    def process(self, block):
      with clock.time("resample"):
        return super().process(block)

    def flush(self):
      with clock.time("resample"):
        return super().flush()

  def to_mono(samples):
    with clock.time("mono"):
      return saved["to_mono"](samples)

  def log_mel_spectrogram(signal, params):
    with clock.time("log_mel"):
      return saved_log_mel(signal, params)

  stream_module.to_mono = to_mono
  stream_module.StreamingResampler = TimedResampler
  features.log_mel_spectrogram = log_mel_spectrogram
  try:
    yield
  finally:
    for name, value in saved.items():
      setattr(stream_module, name, value)
    features.log_mel_spectrogram = saved_log_mel


def profile_streamed(path: str, params=None, resampler: str = "kaiser_best",
                     block_seconds: float | None = None, instrument: bool = True) -> dict:
  """One file through ``iter_patches``: seconds per streamed stage (see the docstring).

  ``block_seconds``: decoded block length; default the pipeline's
  (``audiobeam.stream.BLOCK_SECONDS``)."""
  from audiobeam.audio import open_audio
  from audiobeam.stream import BLOCK_SECONDS
  from vggish.params import DEFAULT_PARAMS
  from vggish.stream import iter_patches

  params = params or DEFAULT_PARAMS
  clock = _Clock(STREAMED_STAGES)
  patches = 0
  w, c = time.perf_counter(), time.process_time()
  with open_audio(path) as stream, (_instrumented(clock) if instrument
                                    else contextlib.nullcontext()):
    info = stream.info
    if instrument:
      blocks = stream.blocks
      stream.blocks = lambda *a, **k: _timed_generator(clock, "decode", blocks(*a, **k))
    patch_stream = iter_patches(stream, params, resampler,
                                block_seconds=BLOCK_SECONDS if block_seconds is None
                                else block_seconds)
    for block in patch_stream:
      patches += block.patches.shape[0]
    audio_seconds = patch_stream.stats.duration_seconds
  wall, cpu = time.perf_counter() - w, time.process_time() - c
  result = {"path": path, "container": info.container, "codec": info.codec,
            "decoder": info.decoder, "sample_rate_hz": info.sample_rate_hz,
            "channels": info.channels, "audio_seconds": audio_seconds, "patches": patches,
            "wall_seconds": wall, "cpu_seconds": cpu,
            "audio_seconds_per_cpu_second": audio_seconds / cpu if cpu > 0 else None,
            "audio_seconds_per_wall_second": audio_seconds / wall if wall > 0 else None}
  if instrument:
    named = [s for s in STREAMED_STAGES if s != "other"]
    clock.wall["other"] = max(0.0, wall - sum(clock.wall[s] for s in named))
    clock.cpu["other"] = max(0.0, cpu - sum(clock.cpu[s] for s in named))
    result["stages"] = clock.report(audio_seconds)
  return result


def profile_whole_file(path: str, params=None, resampler: str = "kaiser_best") -> dict:
  """One file through the whole-file library API: seconds per stage."""
  from audiobeam.audio import decode_audio, to_mono
  from audiobeam.resample import resample
  from vggish import features
  from vggish.params import DEFAULT_PARAMS

  params = params or DEFAULT_PARAMS
  clock = _Clock(("decode", "mono", "resample", "log_mel"))
  with clock.time("decode"):
    samples, rate_hz = decode_audio(path)
  with clock.time("mono"):
    mono = to_mono(samples)
  with clock.time("resample"):
    signal = resample(mono, rate_hz, params.sample_rate_hz, resampler)
  with clock.time("log_mel"):
    log_mel = features.log_mel_spectrogram(signal, params)
    patches = np.ascontiguousarray(features.frame_patches(log_mel, params), np.float32)
  audio_seconds = samples.shape[0] / rate_hz
  cpu = sum(clock.cpu.values())
  return {"audio_seconds": audio_seconds, "patches": int(patches.shape[0]),
          "cpu_seconds": cpu, "wall_seconds": sum(clock.wall.values()),
          "audio_seconds_per_cpu_second": audio_seconds / cpu if cpu > 0 else None,
          "stages": clock.report(audio_seconds)}


def make_format_files(source_wav: str, seconds: float, directory: str) -> dict[str, str]:
  """The first ``seconds`` of ``source_wav`` as WAV (PCM 16), FLAC, MP3, Ogg Vorbis and
  M4A (AAC, needs PyAV); written once into ``directory``. Returns {format: path}."""
  import soundfile as sf

  os.makedirs(directory, exist_ok=True)
  with sf.SoundFile(source_wav) as f:
    rate_hz = f.samplerate
    pcm = f.read(int(round(seconds * rate_hz)), dtype="int16", always_2d=True)
  stem = os.path.join(directory, f"{os.path.splitext(os.path.basename(source_wav))[0]}-{seconds:g}s")
  kinds = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"),
           "mp3": ("MP3", "MPEG_LAYER_III"), "ogg": ("OGG", "VORBIS")}
  out = {}
  for fmt in FORMATS:
    path = f"{stem}.{fmt}"
    out[fmt] = path
    if os.path.exists(path):
      continue
    partial = f"{stem}.partial.{fmt}"
    if fmt in kinds:
      data = pcm if fmt in ("wav", "flac") else pcm / 32768.0
      with sf.SoundFile(partial, "w", samplerate=rate_hz, channels=pcm.shape[1],
                        format=kinds[fmt][0], subtype=kinds[fmt][1]) as out_file:
        # In blocks: libsndfile 1.2.2 crashes writing ~2 min of Ogg Vorbis in one call.
        for start in range(0, data.shape[0], 1 << 16):
          out_file.write(data[start:start + (1 << 16)])
    else:
      _write_m4a(partial, pcm / 32768.0, rate_hz)
    os.replace(partial, path)
  return out


def _write_m4a(path: str, samples: np.ndarray, rate_hz: int) -> None:
  import av

  layout = {1: "mono", 2: "stereo"}[samples.shape[1]]
  with av.open(path, "w", format="mp4") as container:
    stream = container.add_stream("aac", rate=rate_hz, layout=layout)
    data = np.ascontiguousarray(samples.T.astype(np.float32))
    for start in range(0, data.shape[1], 4096):
      frame = av.AudioFrame.from_ndarray(data[:, start:start + 4096], format="fltp",
                                         layout=layout)
      frame.sample_rate = rate_hz
      for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode(None):
      container.mux(packet)


def profile_formats(paths: dict[str, str], resampler: str = "kaiser_best",
                    repeats: int = 2) -> dict:
  """Per format: streamed stages (instrumented), streamed uninstrumented, whole file.

  Each measurement is repeated ``repeats`` times and the fastest (least disturbed by
  other load) is kept.
  """
  def fastest(run):
    return min((run() for _ in range(repeats)), key=lambda r: r["cpu_seconds"])

  out = {}
  for fmt, path in paths.items():
    try:
      out[fmt] = {
          "streamed": fastest(lambda: profile_streamed(path, resampler=resampler)),
          "streamed_uninstrumented": fastest(
              lambda: profile_streamed(path, resampler=resampler, instrument=False)),
          "whole_file": fastest(lambda: profile_whole_file(path, resampler=resampler)),
      }
    except Exception as e:  # e.g. PyAV missing for M4A: say so, profile the rest.
      out[fmt] = {"error": f"{type(e).__name__}: {e}"}
  return out


def _rate(x) -> str:
  return "-" if not x else f"{x:,.0f}"


def format_table(formats: dict) -> str:
  """Markdown: audio-s per CPU-second (one core) per streamed stage and format."""
  lines = ["| format | decode | mono | resample | log-mel | other | streamed total "
           "(uninstrumented) | whole-file API total |", "|---|" + "---:|" * 7]
  for fmt, r in formats.items():
    if "error" in r:
      lines.append(f"| {fmt} | {r['error']} |" + " |" * 6)
      continue
    s = r["streamed"]["stages"]
    lines.append(
        f"| {fmt} ({r['streamed']['codec']}) | " + " | ".join(
            _rate(s[k]["audio_seconds_per_cpu_second"]) for k in STREAMED_STAGES)
        + f" | {_rate(r['streamed']['audio_seconds_per_cpu_second'])} "
          f"({_rate(r['streamed_uninstrumented']['audio_seconds_per_cpu_second'])}) | "
          f"{_rate(r['whole_file']['audio_seconds_per_cpu_second'])} |")
  return "\n".join(lines)


def profile_stages(paths: list[str], checkpoint_path: str, pca_params_path: str,
                   batch_size: int, resampler: str = "kaiser_best", backend: str = "tf") -> dict:
  """Runs the whole-file stages and the model over ``paths``; adds the streamed stages."""
  from audiobeam.audio import decode_audio, to_mono
  from audiobeam.resample import resample
  from vggish import features
  from vggish.params import DEFAULT_PARAMS
  from vggish.postprocess import PCAParams, postprocess

  params = DEFAULT_PARAMS
  t0 = time.perf_counter()
  if backend == "torch":
    from vggish.torch_model import VGGishTorchModel

    model = VGGishTorchModel.from_checkpoint(checkpoint_path, params, device="cpu")
  else:
    from vggish.model import VGGishModel

    model = VGGishModel.from_checkpoint(checkpoint_path, params)
  pca = PCAParams.load(pca_params_path, params)
  model(np.zeros((batch_size, params.patch_frames, params.patch_bands), np.float32))  # trace
  setup_seconds = time.perf_counter() - t0
  clock = _Clock(STAGES)
  stage, stage_cpu = clock.wall, clock.cpu
  audio_seconds = 0.0
  pending: list[np.ndarray] = []
  calls = full_calls = patches = 0

  def timed(name, fn, *args):
    with clock.time(name):
      return fn(*args)

  def run_model(block: np.ndarray) -> None:
    nonlocal calls, full_calls, patches
    raw = timed("model", model, block)
    timed("postprocess", postprocess, raw, pca, params)
    calls += 1
    full_calls += int(block.shape[0] == batch_size)
    patches += block.shape[0]

  for path in paths:
    samples, sr = timed("decode", decode_audio, path)
    mono = timed("decode", to_mono, samples)
    audio_seconds += mono.shape[0] / sr
    signal = timed("resample", resample, mono, sr, params.sample_rate_hz, resampler)
    patches_f32 = timed("log_mel", lambda s: np.ascontiguousarray(
        features.frame_patches(features.log_mel_spectrogram(s, params), params), np.float32),
        signal)
    pending.append(patches_f32)
    queued = np.concatenate(pending) if len(pending) > 1 else pending[0]
    full = (queued.shape[0] // batch_size) * batch_size
    for lo in range(0, full, batch_size):
      run_model(queued[lo:lo + batch_size])
    pending = [queued[full:]] if full < queued.shape[0] else []
  if pending and pending[0].shape[0]:
    run_model(pending[0])
  streamed = [profile_streamed(path, params, resampler) for path in paths]
  streamed_stages = {s: {k: sum(r["stages"][s][k] for r in streamed)
                         for k in ("wall_seconds", "cpu_seconds")} for s in STREAMED_STAGES}
  flops = model.flops_per_patch
  return {
      "stage_seconds": stage,
      "stage_cpu_seconds": stage_cpu,
      "setup_seconds": setup_seconds,
      "frontend_streamed_seconds": sum(r["wall_seconds"] for r in streamed),
      "frontend_streamed_cpu_seconds": sum(r["cpu_seconds"] for r in streamed),
      "streamed_stage_seconds": streamed_stages,
      "audio_seconds": audio_seconds,
      "patches": patches,
      "model_calls": calls,
      "full_batch_calls": full_calls,
      "batch_size": batch_size,
      "backend": backend,
      "resampler": resampler,
      "flops_per_patch": flops,
      "model_gflops_per_second": (flops * patches / stage["model"] / 1e9
                                  if stage["model"] > 0 else None),
  }


def _long_wav(cache_dir: str | None) -> str:
  from bench.corpus import CorpusSpec, build_corpus

  spec = CorpusSpec(long_files=1, long_minutes=10.0, clips=0)
  return build_corpus(spec, cache_dir, log=lambda m: print(m, file=sys.stderr)).files[0].path


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--manifest", help="JSON list of audio file paths (bench profile).")
  parser.add_argument("--checkpoint")
  parser.add_argument("--pca_params")
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--backend", choices=("tf", "torch"), default="tf")
  parser.add_argument("--resampler", default="kaiser_best")
  parser.add_argument("--formats", action="store_true",
                      help="profile the streamed front end per format (no model).")
  parser.add_argument("--source", help="--formats: the long WAV (default: the bench corpus's "
                                       "10-min 44.1 kHz stereo file, written once)")
  parser.add_argument("--format_seconds", type=float, default=120.0)
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--cache_dir", default=None)
  parser.add_argument("--one_blas_thread", action="store_true",
                      help="re-run this process with OPENBLAS/OMP/MKL_NUM_THREADS=1")
  parser.add_argument("--output", required=True, help="JSON file for the results.")
  args = parser.parse_args(argv)
  if args.one_blas_thread and any(os.environ.get(k) != "1" for k in _BLAS_ENV):
    env = dict(os.environ, **{k: "1" for k in _BLAS_ENV})
    os.execve(sys.executable, [sys.executable, "-m", "bench.profile"] + list(
        sys.argv[1:] if argv is None else argv), env)
  blas = {k: os.environ.get(k) for k in _BLAS_ENV}
  # Profile what the pipeline's workers run: their allocator keeps freed memory.
  from audiobeam.allocator import reuse_freed_memory

  allocator_tuned = reuse_freed_memory()
  if args.formats:
    from bench.corpus import default_cache_dir

    source = args.source or _long_wav(args.cache_dir)
    directory = os.path.join(args.cache_dir or default_cache_dir(), "formats")
    paths = make_format_files(source, args.format_seconds, directory)
    long_file = min((profile_streamed(source, resampler=args.resampler)
                     for _ in range(args.repeats)), key=lambda r: r["cpu_seconds"])
    result = {"blas_env": blas, "cpus": os.cpu_count(), "load_before": os.getloadavg(),
              "allocator_reuses_freed_memory": allocator_tuned,
              "long_wav_streamed": long_file,
              "formats": profile_formats(paths, args.resampler, args.repeats),
              "format_seconds": args.format_seconds}
    result["load_after"] = os.getloadavg()
    table = format_table(result["formats"])
    result["table_markdown"] = table
    print(f"10-min 44.1 kHz stereo WAV, streamed: "
          f"{_rate(long_file['audio_seconds_per_cpu_second'])} audio-s per CPU-s; stages: "
          + ", ".join(f"{k} {_rate(v['audio_seconds_per_cpu_second'])}"
                      for k, v in long_file["stages"].items()))
    print(table)
  else:
    if not (args.manifest and args.checkpoint and args.pca_params):
      parser.error("pass --manifest, --checkpoint and --pca_params (or --formats).")
    with open(args.manifest) as f:
      paths = json.load(f)
    result = profile_stages(paths, args.checkpoint, args.pca_params, args.batch_size,
                            args.resampler, args.backend)
    result["blas_env"] = blas
    result["allocator_reuses_freed_memory"] = allocator_tuned
  with open(args.output, "w") as f:
    json.dump(result, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
