"""TEST WEIGHTS ONLY: a deterministic random VGGish checkpoint and PCA file.

These machines (and CI) have no internet, so tests cannot use Google's real
``vggish_model.ckpt``. ``write_test_weights`` writes a stand-in in *exactly* the
published format: a TF1 V1 single-file checkpoint named ``vggish_model.ckpt`` with
the 18 float32 variables ``vggish/conv1/weights`` ... ``vggish/fc2/biases`` (or the
V2 layout on request), and ``vggish_pca_params.npz`` with ``pca_eigen_vectors``
[128, 128] and ``pca_means`` [128, 1], as Google ships them.

The outputs of this model are NOT embeddings: they mean nothing. Nothing in the
product calls this module implicitly; a user has to point ``--checkpoint`` at its
output on purpose.

How the weights are made (seeded numpy Generator, so the same seed gives the same
files on every run):
- He-normal weights (std = sqrt(2 / fan_in)) and small random biases, so activations
  neither vanish nor explode through the ReLU stack;
- ``fc2`` is rescaled so raw outputs have an RMS of about 0.5, like the real model;
- the PCA means are the mean raw output over a fixed set of synthetic calibration
  signals (silence, noise, tones, chirps, pulses), and the eigen vectors are a
  random orthonormal basis scaled so the centred outputs spread over most of the
  [-2, 2] quantisation range (so uint8 values use the whole 0..255 range).

CLI: ``python -m vggish.testing DIR [--format V1|V2] [--seed N]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import zipfile

import numpy as np

from audiobeam.testing import calibration_signals
from vggish import features
from vggish.network import VGGISH_LAYERS, variable_shapes
from vggish.params import DEFAULT_PARAMS, Params

__all__ = [
    "CHECKPOINT_FILENAME",
    "PCA_FILENAME",
    "make_test_variables",
    "calibration_patches",
    "calibrate",
    "scale_fc2",
    "write_checkpoint",
    "write_test_weights",
    "main",
]

CHECKPOINT_FILENAME = "vggish_model.ckpt"
PCA_FILENAME = "vggish_pca_params.npz"
_TARGET_RAW_RMS = 0.5
_TARGET_PCA_STD = 0.9  # Of each PCA output on calibration data, in a [-2, 2] range.


def make_test_variables(seed: int = 0, params: Params = DEFAULT_PARAMS) -> dict[str, np.ndarray]:
  """He-initialised float32 variables for every name of ``variable_shapes(params)``."""
  rng = np.random.default_rng(seed)
  out: dict[str, np.ndarray] = {}
  for name, shape in variable_shapes(params).items():
    if name.endswith("/weights"):
      fan_in = int(np.prod(shape[:-1]))
      value = rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))
    else:
      value = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.05)
    out[name] = value
  return out


def calibration_patches(params: Params = DEFAULT_PARAMS) -> np.ndarray:
  """Log-mel patches float32 [16, 96, 64] of fixed synthetic signals (one patch each)."""
  signals = calibration_signals(params.patch_span_samples, params.sample_rate_hz)
  patches = [features.frame_patches(features.log_mel_spectrogram(s, params), params)[0]
             for s in signals]
  return np.stack(patches).astype(np.float32)


def scale_fc2(variables: dict[str, np.ndarray], scale: float) -> None:
  """Multiplies the embedding layer's (``fc2``) weights and biases by float32 ``scale``, in place."""
  fc2 = VGGISH_LAYERS[-1]
  for name in (fc2.weights_name, fc2.biases_name):
    variables[name] = variables[name] * np.float32(scale)


def calibrate(variables: dict[str, np.ndarray], seed: int, params: Params = DEFAULT_PARAMS
              ) -> tuple[np.ndarray, np.ndarray, float]:
  """Rescales fc2 in place (``scale_fc2``); returns (eigen_vectors [128, 128], means
  [128, 1]) float64 and the scale applied. Runs the TensorFlow model."""
  from vggish.model import VGGishModel

  raw = VGGishModel(variables, params)(calibration_patches(params)).astype(np.float64)
  # Round derived scales so tiny float differences between machines cannot change them.
  scale = float(f"{_TARGET_RAW_RMS / np.sqrt(np.mean(raw ** 2)):.3g}")
  scale_fc2(variables, scale)
  raw = raw * scale
  means = np.round(raw.mean(axis=0), 4)
  spread = float(f"{np.sqrt(np.mean((raw - means) ** 2)):.3g}")
  rng = np.random.default_rng([seed, 1])
  q, r = np.linalg.qr(rng.standard_normal((params.embedding_size, params.embedding_size)))
  q = q * np.sign(np.diag(r))  # A uniformly random orthonormal basis.
  eigen_vectors = q * (_TARGET_PCA_STD / spread)
  return eigen_vectors, means.reshape(-1, 1), scale


def write_checkpoint(variables: dict[str, np.ndarray], path: str,
                     checkpoint_format: str = "V1") -> str:
  """Writes ``variables`` as a TF1 checkpoint with a tf.compat.v1 Saver; returns its path.

  V1 writes the single file ``path`` (as Google published); V2 writes ``path.index``
  and ``path.data-00000-of-00001``. No ``checkpoint`` state file or meta graph.
  """
  import tensorflow as tf

  version = {"V1": tf.compat.v1.train.SaverDef.V1, "V2": tf.compat.v1.train.SaverDef.V2}
  if checkpoint_format not in version:
    raise ValueError(f"checkpoint_format must be 'V1' or 'V2', got {checkpoint_format!r}")
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  graph = tf.Graph()
  with graph.as_default():
    feeds = {name: tf.compat.v1.placeholder(tf.float32, np.shape(value))
             for name, value in variables.items()}
    tf_vars = {name: tf.compat.v1.Variable(feeds[name], name=name, trainable=False)
               for name in variables}
    saver = tf.compat.v1.train.Saver(var_list=tf_vars, write_version=version[checkpoint_format])
    with tf.compat.v1.Session(graph=graph) as session:
      session.run([v.initializer for v in tf_vars.values()],
                  feed_dict={feeds[name]: np.asarray(value, np.float32)
                             for name, value in variables.items()})
      saver.save(session, os.path.abspath(path), write_meta_graph=False, write_state=False)
  return path


def _write_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
  """Like np.savez, but byte-identical across runs (fixed zip timestamps)."""
  with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
    for key, value in arrays.items():
      info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
      with archive.open(info, "w", force_zip64=True) as f:
        np.lib.format.write_array(f, np.asarray(value), allow_pickle=False)


def write_test_weights(directory: str, seed: int = 0, checkpoint_format: str = "V1",
                       params: Params = DEFAULT_PARAMS) -> tuple[str, str]:
  """Writes TEST weights into ``directory``; returns (checkpoint_path, pca_params_path).

  ``checkpoint_path`` is ``DIR/vggish_model.ckpt`` (for V2 that is the prefix of
  ``.index``/``.data-*``); ``pca_params_path`` is ``DIR/vggish_pca_params.npz``.
  Same seed, same files.
  """
  os.makedirs(directory, exist_ok=True)
  variables = make_test_variables(seed, params)
  eigen_vectors, means, _ = calibrate(variables, seed, params)
  checkpoint_path = write_checkpoint(variables, os.path.join(directory, CHECKPOINT_FILENAME),
                                     checkpoint_format)
  pca_path = os.path.join(directory, PCA_FILENAME)
  _write_npz(pca_path, {params.pca_eigen_vectors_key: eigen_vectors,
                        params.pca_means_key: means})
  return checkpoint_path, pca_path


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m vggish.testing",
      description="Write a deterministic RANDOM-weight VGGish checkpoint and PCA file for "
                  "tests (not real embeddings).")
  parser.add_argument("directory", help="output directory (created if missing)")
  parser.add_argument("--format", dest="checkpoint_format", choices=("V1", "V2"), default="V1",
                      help="TF1 checkpoint layout (default V1, the published single file)")
  parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
  args = parser.parse_args(argv)
  checkpoint, pca = write_test_weights(args.directory, args.seed, args.checkpoint_format)
  print(f"TEST weights (random, seed {args.seed}) written:\n  --checkpoint {checkpoint}\n"
        f"  --pca_params {pca}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
