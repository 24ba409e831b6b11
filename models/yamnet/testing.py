"""TEST WEIGHTS ONLY: a deterministic random ``yamnet.h5`` and a synthetic class map.

These machines (and CI) have no internet, so tests cannot use Google's real
``yamnet.h5``. ``write_test_weights`` writes a stand-in in exactly the published layout
(a Keras 2 HDF5 weights file: root attributes ``layer_names``, ``backend``,
``keras_version``; one group per layer with a ``weight_names`` attribute; the 110 float32
datasets ``layer1/conv/layer1/conv/kernel:0`` ... ``logits/logits/bias:0``), which the
published code loads with ``yamnet_frames_model(params).load_weights(path)`` under
Keras 2, and ``yamnet_class_map.csv`` with 521 made-up classes (``/t/test_0000``,
"Test class 0", ...; some names quoted with commas, as in the real file).

The outputs of this model are NOT embeddings or AudioSet scores: they mean nothing.
Nothing in the product calls this module implicitly; a user has to point
``--yamnet_weights`` at its output on purpose.

How the weights are made (seeded numpy Generator: same seed, same bytes):
- He-normal convolution kernels (std = sqrt(2 / fan_in)); depthwise kernels get an
  extra 1 on their centre tap; batch norm beta ~ N(0, 0.1);
- batch norm statistics calibrated on fixed synthetic signals (silence, noise, tones,
  chirps, clicks, ...), layer by layer, as training leaves them: moving_mean near each
  channel's mean (so activations stay of order 1 through the 14 layers, like the real
  model's), moving_variance near the layer's median variance times U(0.7, 1.3). Both
  choices keep the network well conditioned: two float32 implementations differ by
  ~1e-6 relative, as they should in a port check;
- the classifier is calibrated on the same signals: its kernel is random, scaled so that
  the logits' spread across those signals is about 1.5, and its bias centres them on
  per-class offsets around -1.5, so scores vary with the input and are neither all ~0
  nor all ~1. Derived values are rounded, so that float differences between machines
  cannot change the file.

CLI: ``python -m models.yamnet.testing DIR [--seed N]``.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys

import numpy as np

from audiobeam.testing import calibration_signals
from models.yamnet import features
from models.yamnet.network import CLASSIFIER, YAMNET_LAYERS, keras_layers
from models.yamnet.params import DEFAULT_PARAMS, Params
from models.yamnet.weights import CLASS_MAP_FILENAME, CLASS_MAP_HEADER, WEIGHTS_FILENAME

__all__ = [
    "WEIGHTS_FILENAME",
    "CLASS_MAP_FILENAME",
    "make_test_weights",
    "calibration_patches",
    "write_weights_h5",
    "class_map_csv",
    "write_test_weights",
    "main",
]

_KERAS_VERSION = b"2.2.4-tf"  # A Keras 2 version: Keras 2 loaders treat a file without one as Keras 1.
_TARGET_LOGIT_STD = 1.5
_MEAN_LOGIT = -1.5


def make_test_weights(seed: int = 0, params: Params = DEFAULT_PARAMS) -> dict[str, np.ndarray]:
  """Random float32 weights for every key of ``network.weight_shapes`` (classifier uncalibrated)."""
  rng = np.random.default_rng(seed)
  out: dict[str, np.ndarray] = {}
  for layer, weights in keras_layers(params).items():
    for weight, shape in weights:
      if weight == "kernel":
        fan_in = int(np.prod(shape[:-1]))
        value = rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))
      elif weight == "depthwise_kernel":
        # Centre tap 1 plus He-normal noise: a zero-mean random 3x3 kernel largely cancels
        # a smooth input, and batch norm then amplifies float rounding layer after layer.
        value = rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / 9.0))
        value[shape[0] // 2, shape[1] // 2] += np.float32(1.0)
      elif weight == "moving_variance":
        value = rng.uniform(0.5, 1.5, shape).astype(np.float32)
      else:  # beta, moving_mean, bias
        value = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.1)
      out[f"{layer}/{weight}"] = value
  return out


def calibration_patches(params: Params = DEFAULT_PARAMS) -> np.ndarray:
  """Log-mel patches float32 [16, 96, 64] of fixed synthetic signals (one patch each)."""
  signals = calibration_signals(params.patch_span_samples, params.sample_rate_hz)
  return np.stack([features.waveform_to_patches(s, params)[1][0] for s in signals])


def _calibrate_batchnorm(weights: dict[str, np.ndarray], patches: np.ndarray, seed: int,
                         params: Params) -> None:
  """Sets every moving_mean/moving_variance (in place) near the statistics of its input
  on ``patches``, as training would, so that activations stay of order 1 through the
  14 layers (random statistics let them grow layer after layer)."""
  import tensorflow as tf

  rng = np.random.default_rng([seed, 2])
  net = tf.constant(patches)[..., tf.newaxis]                                    # [M, 96, 64, 1]
  for layer in YAMNET_LAYERS:
    steps = ([("conv", "kernel", layer.stride)] if layer.kind == "conv" else
             [("depthwise_conv", "depthwise_kernel", layer.stride), ("pointwise_conv", "kernel", 1)])
    for part, kernel, stride in steps:
      prefix = f"{layer.name}/{part}"
      weight = tf.constant(weights[f"{prefix}/{kernel}"])
      if kernel == "depthwise_kernel":
        net = tf.nn.depthwise_conv2d(net, weight, [1, stride, stride, 1], padding="SAME")
      else:
        net = tf.nn.conv2d(net, weight, stride, padding="SAME")
      mean, variance = (m.numpy().astype(np.float64) for m in tf.nn.moments(net, axes=[0, 1, 2]))
      # Centre each channel, but scale the whole layer by one variance (the median):
      # normalising each channel by its own variance boosts the channels whose kernel
      # cancels its smooth input, and with them float rounding, ~1.3x per layer. Measured
      # trade-off: per-channel statistics make two float32 implementations differ 3x more
      # (2.6e-5 vs 7e-6 on scores) for 3x more variety of scores across signals.
      mean = mean + 0.1 * np.sqrt(variance) * rng.standard_normal(mean.shape)
      variance = np.median(variance) * rng.uniform(0.7, 1.3, variance.shape)
      # Rounded to 3 significant digits: float noise between machines cannot change the file.
      weights[f"{prefix}/bn/moving_mean"] = np.array(
          [float(f"{m:.3g}") for m in mean], np.float32)
      weights[f"{prefix}/bn/moving_variance"] = np.array(
          [float(f"{v:.3g}") for v in np.maximum(variance, 1e-3)], np.float32)
      net = tf.nn.relu(tf.nn.batch_normalization(
          net, weights[f"{prefix}/bn/moving_mean"], weights[f"{prefix}/bn/moving_variance"],
          weights[f"{prefix}/bn/beta"], None, params.batchnorm_epsilon))


def _calibrate(weights: dict[str, np.ndarray], seed: int, params: Params) -> None:
  """Calibrates batch norm, then sets the classifier (in place) so that scores spread
  over (0, 1) on calibration data."""
  from models.yamnet.model import YAMNetModel

  patches = calibration_patches(params)                                          # [16, 96, 64]
  _calibrate_batchnorm(weights, patches, seed, params)
  embedding = YAMNetModel(weights, params)(patches)["embedding"]
  embedding = embedding.astype(np.float64)                                       # [16, 1024]
  means = np.round(embedding.mean(axis=0), 4)                                    # [1024]
  rng = np.random.default_rng([seed, 1])
  kernel = rng.standard_normal((params.embedding_size, params.num_classes))      # [1024, 521]
  spread = float(np.sqrt(np.mean(((embedding - means) @ kernel) ** 2)))
  kernel = kernel * float(f"{_TARGET_LOGIT_STD / spread:.3g}")
  kernel = kernel.astype(np.float32)
  offsets = _MEAN_LOGIT + rng.standard_normal(params.num_classes)                # [521]
  bias = offsets - means @ kernel.astype(np.float64)
  weights[f"{CLASSIFIER}/kernel"] = kernel
  weights[f"{CLASSIFIER}/bias"] = np.round(bias, 4).astype(np.float32)


def _layer_order(params: Params) -> list[str]:
  """Layer names as the published model lists them (weightless ReLU layers included)."""
  names = []
  for layer in YAMNET_LAYERS:
    if layer.kind == "conv":
      names += [f"{layer.name}/conv", f"{layer.name}/conv/bn", f"{layer.name}/relu"]
    else:
      for part in ("depthwise_conv", "pointwise_conv"):
        names += [f"{layer.name}/{part}", f"{layer.name}/{part}/bn", f"{layer.name}/{part}/relu"]
  names.append(CLASSIFIER)
  return names


def write_weights_h5(weights: dict[str, np.ndarray], path: str,
                     params: Params = DEFAULT_PARAMS) -> str:
  """Writes ``weights`` (key -> array) as a Keras 2 HDF5 weights file; returns ``path``.

  The layout of ``model.save_weights``: ``layer_names`` lists the layers in network
  order; a layer's group holds ``weight_names`` (``<layer>/<weight>:0``, Keras order)
  and a dataset under each name. Keys absent from ``weights`` are not written (tests use
  that to make broken files).
  """
  import h5py

  shapes = keras_layers(params)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with h5py.File(path, "x") as f:  # "x": never overwrite a file (it may be real weights).
    names = _layer_order(params)
    f.attrs["layer_names"] = np.array([n.encode("utf-8") for n in names])
    f.attrs["backend"] = b"tensorflow"
    f.attrs["keras_version"] = _KERAS_VERSION
    for layer in sorted(names):
      group = f.create_group(layer)
      stored = [(w, weights[f"{layer}/{w}"]) for w, _ in shapes.get(layer, ())
                if f"{layer}/{w}" in weights]
      group.attrs["weight_names"] = np.array([f"{layer}/{w}:0".encode("utf-8") for w, _ in stored],
                                             dtype=bytes)
      for weight, value in stored:
        value = np.asarray(value)
        group.create_dataset(f"{layer}/{weight}:0", data=value, dtype=value.dtype,
                             track_times=False)
  return path


def class_map_csv(num_classes: int = DEFAULT_PARAMS.num_classes) -> str:
  """A synthetic class map (CSV text) in the published format; every 50th name is quoted."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow(CLASS_MAP_HEADER)
  for i in range(num_classes):
    name = f"Test class {i}, with a comma" if i % 50 == 0 else f"Test class {i}"
    writer.writerow([i, f"/t/test_{i:04d}", name])
  return out.getvalue()


def write_test_weights(directory: str, seed: int = 0,
                       params: Params = DEFAULT_PARAMS) -> tuple[str, str]:
  """Writes TEST ``yamnet.h5`` and ``yamnet_class_map.csv`` into ``directory``; returns
  (weights path, class map path). Same seed, same bytes. Refuses (FileExistsError) to
  replace existing files: the folder might hold the real weights."""
  os.makedirs(directory, exist_ok=True)
  existing = [n for n in (WEIGHTS_FILENAME, CLASS_MAP_FILENAME)
              if os.path.exists(os.path.join(directory, n))]
  if existing:
    raise FileExistsError(f"{directory!r} already holds {', '.join(existing)}; test weights are "
                          "written only into a folder without them (delete them or pick another).")
  weights = make_test_weights(seed, params)
  _calibrate(weights, seed, params)
  weights_path = write_weights_h5(weights, os.path.join(directory, WEIGHTS_FILENAME), params)
  class_map_path = os.path.join(directory, CLASS_MAP_FILENAME)
  with open(class_map_path, "x", encoding="utf-8", newline="") as f:
    f.write(class_map_csv(params.num_classes))
  return weights_path, class_map_path


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m models.yamnet.testing",
      description="Write a deterministic RANDOM-weight yamnet.h5 and a synthetic class map "
                  "for tests (not real embeddings or scores).")
  parser.add_argument("directory", help="output directory (created if missing)")
  parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
  args = parser.parse_args(argv)
  weights, class_map = write_test_weights(args.directory, args.seed)
  print(f"TEST weights (random, seed {args.seed}) written:\n  --yamnet_weights {weights}\n"
        f"  --yamnet_class_map {class_map}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
