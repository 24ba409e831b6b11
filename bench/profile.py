"""Per-stage profile of *our* chain, run with the library functions in one process.

The pipeline's stages overlap across Beam workers, so their wall times do not add up
to the end-to-end time. To say where our time goes, this runs the same library
functions the pipeline uses, one stage after the other, in one process:

  decode    audiobeam.audio.decode_audio + to_mono (soundfile fallback if not importable)
  resample  audiobeam.resample.resample(..., method) to 16 kHz
  log_mel   vggish.features.log_mel_spectrogram + frame_patches, cast to float32
  model     vggish.model.VGGishModel on full batches of ``batch_size`` patches
            packed across files (as the pipeline packs them)
  postprocess vggish.postprocess.postprocess (PCA + uint8)

and, separately, the front end as the pipeline runs it: ``vggish.stream.iter_patches``
(decode + mono + resample + log-mel in bounded blocks) over the same files
(``frontend_streamed_seconds``).

  python -m bench.profile --manifest files.json --checkpoint CKPT --pca_params NPZ \\
      --batch_size 64 --output profile.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

__all__ = ["STAGES", "profile_stages", "main"]

STAGES = ("decode", "resample", "log_mel", "model", "postprocess")


def _decode_mono(path: str) -> tuple[np.ndarray, int]:
  try:
    from audiobeam import audio
  except ImportError:  # The audio module is not there yet: same maths via soundfile.
    import soundfile as sf

    data, sr = sf.read(path, dtype="int16")
    data = data / 32768.0
    return (data.mean(axis=1) if data.ndim > 1 else data), sr
  samples, sr = audio.decode_audio(path)
  return audio.to_mono(samples), sr


def _time_streamed_front_end(paths: list[str], params, resampler: str) -> float | None:
  """Seconds for ``vggish.stream.iter_patches`` over ``paths`` (None if not importable)."""
  try:
    from audiobeam.audio import open_audio
    from vggish.stream import iter_patches
  except ImportError:
    return None
  t = time.perf_counter()
  for path in paths:
    with open_audio(path) as stream:
      for _ in iter_patches(stream, params, resampler):
        pass
  return time.perf_counter() - t


def profile_stages(paths: list[str], checkpoint_path: str, pca_params_path: str,
                   batch_size: int, resampler: str = "kaiser_best") -> dict:
  """Runs the stages over ``paths``; returns seconds per stage and counts."""
  from vggish import features
  from vggish.model import VGGishModel
  from vggish.postprocess import PCAParams, postprocess
  from vggish.params import DEFAULT_PARAMS
  from audiobeam.resample import resample

  params = DEFAULT_PARAMS
  t0 = time.perf_counter()
  model = VGGishModel.from_checkpoint(checkpoint_path, params)
  pca = PCAParams.load(pca_params_path, params)
  model(np.zeros((batch_size, params.patch_frames, params.patch_bands), np.float32))  # trace
  setup_seconds = time.perf_counter() - t0
  stage = dict.fromkeys(STAGES, 0.0)
  audio_seconds = 0.0
  pending: list[np.ndarray] = []
  calls = full_calls = patches = 0

  def run_model(block: np.ndarray) -> None:
    nonlocal calls, full_calls, patches
    t = time.perf_counter()
    raw = model(block)
    t1 = time.perf_counter()
    postprocess(raw, pca, params)
    stage["model"] += t1 - t
    stage["postprocess"] += time.perf_counter() - t1
    calls += 1
    full_calls += int(block.shape[0] == batch_size)
    patches += block.shape[0]

  for path in paths:
    t = time.perf_counter()
    mono, sr = _decode_mono(path)
    audio_seconds += mono.shape[0] / sr
    t1 = time.perf_counter()
    signal = resample(mono, sr, params.sample_rate_hz, resampler)
    t2 = time.perf_counter()
    log_mel = features.log_mel_spectrogram(signal, params)
    patches_f32 = np.ascontiguousarray(features.frame_patches(log_mel, params), np.float32)
    t3 = time.perf_counter()
    stage["decode"] += t1 - t
    stage["resample"] += t2 - t1
    stage["log_mel"] += t3 - t2
    pending.append(patches_f32)
    queued = np.concatenate(pending) if len(pending) > 1 else pending[0]
    full = (queued.shape[0] // batch_size) * batch_size
    for lo in range(0, full, batch_size):
      run_model(queued[lo:lo + batch_size])
    pending = [queued[full:]] if full < queued.shape[0] else []
  if pending and pending[0].shape[0]:
    run_model(pending[0])
  streamed_seconds = _time_streamed_front_end(paths, params, resampler)
  flops = model.flops_per_patch
  return {
      "stage_seconds": stage,
      "setup_seconds": setup_seconds,
      "frontend_streamed_seconds": streamed_seconds,
      "audio_seconds": audio_seconds,
      "patches": patches,
      "model_calls": calls,
      "full_batch_calls": full_calls,
      "batch_size": batch_size,
      "resampler": resampler,
      "flops_per_patch": flops,
      "model_gflops_per_second": (flops * patches / stage["model"] / 1e9
                                  if stage["model"] > 0 else None),
  }


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--manifest", required=True, help="JSON list of audio file paths.")
  parser.add_argument("--checkpoint", required=True)
  parser.add_argument("--pca_params", required=True)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--resampler", default="kaiser_best")
  parser.add_argument("--output", required=True, help="JSON file for the results.")
  args = parser.parse_args(argv)
  with open(args.manifest) as f:
    paths = json.load(f)
  result = profile_stages(paths, args.checkpoint, args.pca_params, args.batch_size,
                          args.resampler)
  with open(args.output, "w") as f:
    json.dump(result, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
