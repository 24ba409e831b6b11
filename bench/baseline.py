"""The baseline: the straightforward reference-style VGGish chain, one file at a time.

This is what a user of Google's published code (tensorflow/models,
research/audioset/vggish: vggish_input + mel_features + vggish_slim +
vggish_postprocess) runs, written here from that description so the benchmark has no
dependency on our own front end or model:

  per file: soundfile read int16 / 32768 -> mean to mono -> resampy.resample
  (kaiser_best) to 16 kHz -> float64 numpy log-mel (periodic Hann 400 / hop 160, |rfft|
  512, 64 HTK mel bands 125-7500 Hz without DC, log(mel + 0.01)) -> 96x64 patches ->
  TF1 graph + Session restoring the checkpoint by variable name, one ``sess.run`` per
  file (batch = that file's patches) -> PCA, clip +-2, uint8.

No overlap between stages, no batching across files. Each stage is timed with
``time.perf_counter``. Run as a whole process (start-up included) by ``bench``:

  python -m bench.baseline --manifest files.json --checkpoint CKPT --pca_params NPZ \\
      --output baseline.npz
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

import numpy as np

__all__ = ["STAGES", "BaselineResult", "run_baseline", "reference_log_mel_examples",
           "flops_per_patch", "main"]

STAGES = ("decode", "resample", "log_mel", "model", "postprocess")

# The published VGGish constants (vggish_params.py); the baseline carries its own copy
# on purpose so that it stays a fixed yardstick.
_SAMPLE_RATE_HZ = 16000
_WINDOW_SECONDS = 0.025
_HOP_SECONDS = 0.010
_NUM_BANDS = 64
_MEL_MIN_HZ = 125.0
_MEL_MAX_HZ = 7500.0
_LOG_OFFSET = 0.01
_EXAMPLE_WINDOW_SECONDS = 0.96
_EXAMPLE_HOP_SECONDS = 0.96
_QUANTIZE_MIN = -2.0
_QUANTIZE_MAX = 2.0
_EMBEDDING_SIZE = 128

# (scope, kind, output channels/units); pools are 2x2 stride 2 SAME.
_LAYERS = (
    ("conv1", "conv", 64), ("pool1", "pool", None),
    ("conv2", "conv", 128), ("pool2", "pool", None),
    ("conv3/conv3_1", "conv", 256), ("conv3/conv3_2", "conv", 256), ("pool3", "pool", None),
    ("conv4/conv4_1", "conv", 512), ("conv4/conv4_2", "conv", 512), ("pool4", "pool", None),
    ("fc1/fc1_1", "fc", 4096), ("fc1/fc1_2", "fc", 4096), ("fc2", "fc_linear", _EMBEDDING_SIZE),
)


def flops_per_patch() -> int:
  """Multiply-adds x 2 of one [96, 64] patch through the network: ~1.73e9."""
  h, w, c = 96, 64, 1
  flops = 0
  for _, kind, units in _LAYERS:
    if kind == "conv":
      flops += 2 * h * w * 9 * c * units
      c = units
    elif kind == "pool":
      h, w = (h + 1) // 2, (w + 1) // 2
    else:
      flops += 2 * h * w * c * units
      h, w, c = 1, 1, units
  return flops


# --- front end, in the style of mel_features.py / vggish_input.py ------------------------
def _frame(data, window_length, hop_length):
  num_samples = data.shape[0]
  num_frames = 1 + int(np.floor((num_samples - window_length) / hop_length))
  shape = (num_frames, window_length) + data.shape[1:]
  strides = (data.strides[0] * hop_length,) + data.strides
  return np.lib.stride_tricks.as_strided(data, shape=shape, strides=strides)


def _periodic_hann(window_length):
  return 0.5 - (0.5 * np.cos(2 * np.pi / window_length * np.arange(window_length)))


def _hertz_to_mel(frequencies_hertz):
  return 1127.0 * np.log(1.0 + (frequencies_hertz / 700.0))


def _spectrogram_to_mel_matrix(num_mel_bins, num_spectrogram_bins, audio_sample_rate,
                               lower_edge_hertz, upper_edge_hertz):
  nyquist_hertz = audio_sample_rate / 2.0
  spectrogram_bins_hertz = np.linspace(0.0, nyquist_hertz, num_spectrogram_bins)
  spectrogram_bins_mel = _hertz_to_mel(spectrogram_bins_hertz)
  band_edges_mel = np.linspace(_hertz_to_mel(lower_edge_hertz), _hertz_to_mel(upper_edge_hertz),
                               num_mel_bins + 2)
  mel_weights_matrix = np.empty((num_spectrogram_bins, num_mel_bins))
  for i in range(num_mel_bins):
    lower_edge_mel, center_mel, upper_edge_mel = band_edges_mel[i:i + 3]
    lower_slope = (spectrogram_bins_mel - lower_edge_mel) / (center_mel - lower_edge_mel)
    upper_slope = (upper_edge_mel - spectrogram_bins_mel) / (upper_edge_mel - center_mel)
    mel_weights_matrix[:, i] = np.maximum(0.0, np.minimum(lower_slope, upper_slope))
  mel_weights_matrix[0, :] = 0.0
  return mel_weights_matrix


def _log_mel_spectrogram(data, audio_sample_rate):
  window_length_samples = int(round(audio_sample_rate * _WINDOW_SECONDS))
  hop_length_samples = int(round(audio_sample_rate * _HOP_SECONDS))
  fft_length = 2 ** int(np.ceil(np.log(window_length_samples) / np.log(2.0)))
  frames = _frame(data, window_length_samples, hop_length_samples)
  window = _periodic_hann(window_length_samples)
  spectrogram = np.abs(np.fft.rfft(frames * window, int(fft_length)))
  mel_spectrogram = np.dot(spectrogram, _spectrogram_to_mel_matrix(
      _NUM_BANDS, spectrogram.shape[1], audio_sample_rate, _MEL_MIN_HZ, _MEL_MAX_HZ))
  return np.log(mel_spectrogram + _LOG_OFFSET)


def reference_log_mel_examples(samples_16k: np.ndarray) -> np.ndarray:
  """Mono 16 kHz float64 [n] -> log-mel examples float64 [N, 96, 64] (vggish_input style)."""
  log_mel = _log_mel_spectrogram(samples_16k, _SAMPLE_RATE_HZ)
  features_sample_rate = 1.0 / _HOP_SECONDS
  window_length = int(round(_EXAMPLE_WINDOW_SECONDS * features_sample_rate))
  hop_length = int(round(_EXAMPLE_HOP_SECONDS * features_sample_rate))
  if log_mel.shape[0] < window_length:
    return np.zeros((0, window_length, _NUM_BANDS))
  return _frame(log_mel, window_length, hop_length)


# --- model: a TF1 graph + Session, in the style of vggish_slim.py ------------------------
class _Tf1Vggish:
  """The VGGish graph built with tf.compat.v1 ops and restored by variable name."""

  def __init__(self, checkpoint_path: str):
    import tensorflow as tf

    v1 = tf.compat.v1
    self._graph = tf.Graph()
    with self._graph.as_default():
      self.features = v1.placeholder(tf.float32, shape=(None, 96, 64), name="input_features")
      net = tf.reshape(self.features, [-1, 96, 64, 1])
      with v1.variable_scope("vggish"):
        for scope, kind, units in _LAYERS:
          if kind == "pool":
            net = tf.nn.max_pool2d(net, ksize=2, strides=2, padding="SAME")
            continue
          if kind != "conv" and net.shape.rank != 2:
            net = tf.reshape(net, [-1, int(np.prod(net.shape[1:]))])
          with v1.variable_scope(scope):
            if kind == "conv":
              weights = v1.get_variable("weights", (3, 3, int(net.shape[-1]), units))
              biases = v1.get_variable("biases", (units,))
              net = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(net, weights, 1, "SAME"), biases))
            else:
              weights = v1.get_variable("weights", (int(net.shape[-1]), units))
              biases = v1.get_variable("biases", (units,))
              net = tf.nn.bias_add(tf.matmul(net, weights), biases)
              if kind == "fc":
                net = tf.nn.relu(net)
      self.embedding = tf.identity(net, name="embedding")
      saver = v1.train.Saver(v1.global_variables())
      self._session = v1.Session(graph=self._graph)
      saver.restore(self._session, checkpoint_path)

  def __call__(self, examples: np.ndarray) -> np.ndarray:
    return self._session.run(self.embedding, feed_dict={self.features: examples})


class _Postprocessor:
  """PCA + quantization in the style of vggish_postprocess.py."""

  def __init__(self, pca_params_path: str):
    params = np.load(pca_params_path, allow_pickle=False)
    self._pca_matrix = params["pca_eigen_vectors"]
    self._pca_means = params["pca_means"].reshape(-1, 1)

  def __call__(self, embeddings_batch: np.ndarray) -> np.ndarray:
    pca_applied = np.dot(self._pca_matrix, (embeddings_batch.T - self._pca_means)).T
    clipped = np.clip(pca_applied, _QUANTIZE_MIN, _QUANTIZE_MAX)
    quantized = ((clipped - _QUANTIZE_MIN) * (255.0 / (_QUANTIZE_MAX - _QUANTIZE_MIN)))
    return quantized.astype(np.uint8)


@dataclasses.dataclass
class BaselineResult:
  """Per-file outputs (in input order) and summed per-stage seconds."""

  paths: list[str]
  raw: list[np.ndarray]          # float32 [N_i, 128] per file
  quantized: list[np.ndarray]    # uint8 [N_i, 128] per file
  stage_seconds: dict[str, float]
  setup_seconds: float           # graph build + restore + warm-ups (imports not included)
  audio_seconds: float
  patches: int
  model_calls: int


def run_baseline(paths: list[str], checkpoint_path: str, pca_params_path: str) -> BaselineResult:
  """Runs the reference-style chain over ``paths`` one file at a time."""
  import resampy
  import soundfile as sf

  t0 = time.perf_counter()
  model = _Tf1Vggish(checkpoint_path)
  postprocess = _Postprocessor(pca_params_path)
  # Warm-ups, so that one-off costs (resampy's numba compilation, TF's first-run graph
  # optimisation) count as setup, not as the first file's stage time.
  resampy.resample(np.zeros(4410), 44100, _SAMPLE_RATE_HZ)
  model(np.zeros((1, 96, 64), np.float32))
  setup_seconds = time.perf_counter() - t0
  stage = dict.fromkeys(STAGES, 0.0)
  raws, quantized_all = [], []
  audio_seconds, patches, calls = 0.0, 0, 0
  for path in paths:
    mark = time.perf_counter()

    def lap(name: str) -> None:
      nonlocal mark
      now = time.perf_counter()
      stage[name] += now - mark
      mark = now

    wav_data, sr = sf.read(path, dtype="int16")
    data = wav_data / 32768.0
    if data.ndim > 1:
      data = np.mean(data, axis=1)
    audio_seconds += data.shape[0] / sr
    lap("decode")
    if sr != _SAMPLE_RATE_HZ:
      data = resampy.resample(data, sr, _SAMPLE_RATE_HZ)
    lap("resample")
    examples = reference_log_mel_examples(data)
    lap("log_mel")
    raw = model(examples)
    calls += 1
    patches += raw.shape[0]
    lap("model")
    quantized = postprocess(raw)
    lap("postprocess")
    raws.append(np.asarray(raw, dtype=np.float32))
    quantized_all.append(quantized)
  return BaselineResult(list(paths), raws, quantized_all, stage, setup_seconds, audio_seconds,
                        patches, calls)


def save_result(result: BaselineResult, path: str) -> None:
  """Writes outputs + timings to one .npz (raw/quantized concatenated, counts per file)."""
  counts = np.array([r.shape[0] for r in result.raw], dtype=np.int64)
  raw = np.concatenate(result.raw) if result.raw else np.zeros((0, 128), np.float32)
  quantized = (np.concatenate(result.quantized) if result.quantized
               else np.zeros((0, 128), np.uint8))
  timings = {"stage_seconds": result.stage_seconds, "setup_seconds": result.setup_seconds,
             "audio_seconds": result.audio_seconds, "patches": result.patches,
             "model_calls": result.model_calls}
  np.savez(path, paths=np.array(result.paths), counts=counts, raw=raw, quantized=quantized,
           timings=np.array(json.dumps(timings)))


def load_result(path: str) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict]:
  """Reads ``save_result`` output -> ({path: (raw [N,128], uint8 [N,128])}, timings)."""
  with np.load(path, allow_pickle=False) as data:
    offsets = np.concatenate([[0], np.cumsum(data["counts"])])
    raw, quantized = data["raw"], data["quantized"]
    outputs = {str(p): (raw[offsets[i]:offsets[i + 1]], quantized[offsets[i]:offsets[i + 1]])
               for i, p in enumerate(data["paths"])}
    return outputs, json.loads(str(data["timings"]))


def main(argv: list[str] | None = None) -> int:
  start = time.perf_counter()
  parser = argparse.ArgumentParser(prog="python -m bench.baseline", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--manifest", required=True, help="JSON list of audio file paths.")
  parser.add_argument("--checkpoint", required=True)
  parser.add_argument("--pca_params", required=True)
  parser.add_argument("--output", required=True, help=".npz with outputs and timings.")
  args = parser.parse_args(argv)
  with open(args.manifest) as f:
    paths = json.load(f)
  result = run_baseline(paths, args.checkpoint, args.pca_params)
  save_result(result, args.output)
  print(f"baseline: {len(paths)} files, {result.audio_seconds:.1f} audio-s, "
        f"{result.patches} patches in {time.perf_counter() - start:.1f} s (after imports)",
        file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
