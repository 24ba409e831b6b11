"""Shared YAMNet test fixtures and independent float64 references.

``yamnet_assets`` writes the deterministic TEST weights (``models.yamnet.testing``, seed
0: a random-weight ``yamnet.h5`` in the published Keras 2 layout and a synthetic class
map) once per session; they are not Google's weights.

``reference_log_mel`` and ``reference_network`` are written here from the published
description of YAMNet (tensorflow/models research/audioset/yamnet), in float64 numpy,
sharing no code with ``models.yamnet`` (not even its padding rule or layer table): they
are the independent checks of our front end and of our networks.
"""

from __future__ import annotations

import atexit
import collections
import functools
import shutil
import tempfile

import numpy as np
import pytest

AssetPaths = collections.namedtuple("AssetPaths", ["weights", "class_map"])

SAMPLE_RATE_HZ = 16000


@functools.lru_cache(maxsize=1)
def _written_assets() -> AssetPaths:
  # Cached at module level (not a conftest fixture), so that the test modules importing
  # these fixtures share one copy per session.
  from models.yamnet.testing import write_test_weights

  directory = tempfile.mkdtemp(prefix="yamnet_test_weights_")
  atexit.register(shutil.rmtree, directory, True)
  return AssetPaths(*write_test_weights(directory, seed=0))


@functools.lru_cache(maxsize=1)
def _tf_model():
  from models.yamnet.model import YAMNetModel

  return YAMNetModel.from_h5(_written_assets().weights)


@pytest.fixture(scope="session")
def yamnet_assets() -> AssetPaths:
  """AssetPaths(weights=".../yamnet.h5", class_map=".../yamnet_class_map.csv"), seed 0."""
  return _written_assets()


@pytest.fixture(scope="session")
def yamnet_weights(yamnet_assets) -> dict:
  """The 110 test weights as read by ``read_weights``."""
  from models.yamnet.weights import read_weights

  return read_weights(yamnet_assets.weights)


@pytest.fixture(scope="session")
def yamnet_tf_model():
  """A ``YAMNetModel`` on the test weights (shared; thread-safe)."""
  return _tf_model()


# --- the front end, from the description -------------------------------------------------

def _hertz_to_mel(hz):
  return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def reference_mel_matrix() -> np.ndarray:
  """[257, 64] float64: 64 HTK-mel triangles 125-7500 Hz over 257 bins 0..8000 Hz; the
  DC bin gets no weight (tf.signal.linear_to_mel_weight_matrix's definition)."""
  bins_mel = _hertz_to_mel(np.linspace(0.0, 8000.0, 257)[1:])[:, None]        # [256, 1]
  edges = np.linspace(_hertz_to_mel(125.0), _hertz_to_mel(7500.0), 66)
  lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
  weights = np.maximum(0.0, np.minimum((bins_mel - lower) / (center - lower),
                                       (upper - bins_mel) / (upper - center)))
  return np.vstack([np.zeros((1, 64)), weights])


def reference_log_mel(waveform: np.ndarray) -> np.ndarray:
  """Mono 16 kHz [n] -> float64 log-mel [F, 64] of the end-padded waveform.

  Padding: to at least 0.975 s, then up to a whole number of 0.48 s hops beyond it
  (written with a while loop, unlike the package's closed form). The waveform is first
  rounded to float32, as the reference's input is float32.
  """
  x = np.asarray(waveform, dtype=np.float32).astype(np.float64)
  length = 15600
  while length < x.shape[0]:
    length += 7680
  padded = np.zeros(length)
  padded[:x.shape[0]] = x
  frames = 1 + (length - 400) // 160
  index = np.arange(400)[None, :] + 160 * np.arange(frames)[:, None]             # [F, 400]
  window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(400) / 400)                # periodic Hann
  magnitude = np.abs(np.fft.rfft(padded[index] * window, n=512))                 # [F, 257]
  return np.log(magnitude @ reference_mel_matrix() + 0.001)                      # [F, 64]


def reference_patches(waveform: np.ndarray) -> np.ndarray:
  """[n] -> float64 [N, 96, 64]: patches of 96 frames every 48 frames."""
  log_mel = reference_log_mel(waveform)
  starts = range(0, log_mel.shape[0] - 96 + 1, 48)
  return np.stack([log_mel[s:s + 96] for s in starts])


# --- the network, from the description ---------------------------------------------------

_WIDTHS = (32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024)
_STRIDES = (2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)


def _pad_same(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
  """TensorFlow SAME padding of [N, H, W, C] for a square kernel: output ceil(size/stride),
  the odd padding row/column after."""
  pads = []
  for size in x.shape[1:3]:
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    pads.append((total // 2, total - total // 2))
  return np.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])


def _windows(x: np.ndarray, kernel: int, stride: int):
  """Yields (dy, dx, [N, H', W', C]) of a SAME-padded input for every kernel tap."""
  out_h, out_w = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
  padded = _pad_same(x, kernel, stride)
  for dy in range(kernel):
    for dx in range(kernel):
      yield dy, dx, padded[:, dy:dy + stride * (out_h - 1) + 1:stride,
                           dx:dx + stride * (out_w - 1) + 1:stride, :]


def _conv(x, kernel, stride):            # kernel [k, k, in, out]
  return sum(np.einsum("nhwc,co->nhwo", window, kernel[dy, dx])
             for dy, dx, window in _windows(x, kernel.shape[0], stride))


def _depthwise(x, kernel, stride):       # kernel [k, k, C, 1]
  return sum(window * kernel[dy, dx, :, 0] for dy, dx, window in _windows(x, kernel.shape[0], stride))


def _bn_relu(x, w, prefix):
  y = ((x - w[f"{prefix}/bn/moving_mean"]) / np.sqrt(w[f"{prefix}/bn/moving_variance"] + 1e-4)
       + w[f"{prefix}/bn/beta"])
  return np.maximum(y, 0.0)


def reference_network(patches: np.ndarray, weights: dict) -> tuple[np.ndarray, np.ndarray]:
  """float64 YAMNet: [N, 96, 64] -> (embedding [N, 1024], scores [N, 521])."""
  w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()}
  x = np.asarray(patches, dtype=np.float64)[..., None]                           # [N, 96, 64, 1]
  for i, (width, stride) in enumerate(zip(_WIDTHS, _STRIDES), start=1):
    if i == 1:
      x = _bn_relu(_conv(x, w["layer1/conv/kernel"], stride), w, "layer1/conv")
    else:
      x = _bn_relu(_depthwise(x, w[f"layer{i}/depthwise_conv/depthwise_kernel"], stride), w,
                   f"layer{i}/depthwise_conv")
      x = _bn_relu(_conv(x, w[f"layer{i}/pointwise_conv/kernel"], 1), w, f"layer{i}/pointwise_conv")
    assert x.shape[-1] == width
  embedding = x.mean(axis=(1, 2))                                                # [N, 1024]
  logits = embedding @ w["logits/kernel"] + w["logits/bias"]
  return embedding, 1.0 / (1.0 + np.exp(-logits))
