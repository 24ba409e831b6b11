"""Long files: the streamed, chunked pipeline equals the whole-file computation.

A 2-minute 44.1 kHz stereo file spans several decoder blocks (``audiobeam.audio``
reads 2**20 frames at a time, ~24 s here), so the streaming resampler and the patch
assembler cross block boundaries many times. The pipeline's ``frames/`` must equal
``frame_patches(log_mel_spectrogram(resample(to_mono(decode_audio(f)))))`` fed to the
same model: same frames, raw embeddings within 1e-4.

The 3-hour peak-memory measurement (tests/measure_memory.py) takes minutes and ~2 GB
of disk, so it runs only with ``AUDIOBEAM_MEASURE_MEMORY=1``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

import hostile_corpus
import robust_fixtures

_SECONDS = 120
_RATE_HZ = 44100


@pytest.fixture(scope="module")
def long_file_run(test_weights, tmp_path_factory):
  root = tmp_path_factory.mktemp("long")
  path = root / "two_minutes_44k_stereo.wav"
  samples = hostile_corpus.tone(_SECONDS * _RATE_HZ, _RATE_HZ, channels=2, seed=3)
  samples *= np.linspace(0.2, 1.0, len(samples))[:, None]  # not stationary: blocks differ
  sf.write(str(path), samples, _RATE_HZ, subtype="PCM_16")
  out = root / "out"
  run = robust_fixtures.run_embed(
      ["--input", str(path), "--output", str(out), "--checkpoint", test_weights.checkpoint,
       "--pca_params", test_weights.pca_params, "--format", "parquet"], home=root / "home")
  assert run.returncode == 0, run.stderr[-3000:]
  return path, robust_fixtures.read_outputs(out)


def test_long_file_spans_several_decoder_blocks():
  from audiobeam import audio
  assert _SECONDS * _RATE_HZ > 4 * audio.DEFAULT_BLOCK_FRAMES


def test_chunked_pipeline_frames_equal_the_whole_file_computation(long_file_run,
                                                                  test_vggish_model):
  from audiobeam import audio, resample
  from vggish import features
  from vggish.params import DEFAULT_PARAMS as params

  path, outputs = long_file_run
  samples, rate_hz = audio.decode_audio(str(path))
  signal = resample.resample(audio.to_mono(samples), rate_hz, params.sample_rate_hz,
                             "kaiser_best")
  patches = features.frame_patches(features.log_mel_spectrogram(signal, params), params)
  expected_raw = test_vggish_model(patches.astype(np.float32))

  frames = sorted(outputs.rows("frames"), key=lambda r: r["frame_index"])
  assert len(frames) == len(patches) == params.num_patches(len(signal))
  assert [f["frame_index"] for f in frames] == list(range(len(patches)))
  np.testing.assert_allclose([f["start_seconds"] for f in frames],
                             np.arange(len(patches)) * params.patch_hop_seconds, atol=1e-9)
  raw = np.array([f["raw_embedding"] for f in frames], dtype=np.float32)
  assert float(np.max(np.abs(raw - expected_raw))) <= 1e-4
  (clip,) = outputs.rows("clips")
  assert clip["num_frames"] == len(patches)
  assert clip["duration_seconds"] == pytest.approx(_SECONDS)
  assert (clip["sample_rate"], clip["channels"]) == (_RATE_HZ, 2)


@pytest.mark.skipif(os.environ.get("AUDIOBEAM_MEASURE_MEMORY") != "1",
                    reason="minutes of CPU and ~2 GB of disk; set AUDIOBEAM_MEASURE_MEMORY=1")
def test_three_hour_48khz_stereo_file_peak_memory_is_under_2_gb(tmp_path):
  import measure_memory
  assert measure_memory.main(["--hours", "3", "--rate", "48000", "--channels", "2",
                              "--limit_mb", "2048", "--keep", str(tmp_path)]) == 0
