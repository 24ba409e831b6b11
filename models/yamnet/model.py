"""The YAMNet network in TensorFlow 2, restored from ``yamnet.h5`` by layer name.

Raw TensorFlow ops inside one ``tf.function`` (as ``vggish.model``), walking the table
of ``models.yamnet.network``; not the published Keras 2 code, which does not run under
Keras 3. Each op is the one Keras 2 runs for the published layers: ``conv2d`` and
``depthwise_conv2d`` with "SAME" padding, batch norm as Keras 2's fused inference kernel
(``fused_batch_norm(is_training=False)`` with the moving statistics, beta, gamma = 1,
epsilon 1e-4), ReLU, a mean over the spatial axes, ``matmul + bias`` and a sigmoid.
With the same weights and the same batch of patches the outputs are bitwise those of the
published Keras model (measured on CPU); other batch compositions differ by float32
rounding only.

Importing this module does not import TensorFlow; building ``YAMNetModel`` does.
Shapes: ``N`` patches of [96 frames, 64 mel bands].
"""

from __future__ import annotations

import contextlib
from typing import Mapping

import numpy as np

from audiobeam import devices
from audiobeam.errors import InputError
from models.yamnet.network import CLASSIFIER, YAMNET_LAYERS, flops_per_patch, weight_shapes
from models.yamnet.params import DEFAULT_PARAMS, Params

__all__ = ["YAMNetModel", "check_patches"]

def check_patches(patches: np.ndarray, params: Params) -> np.ndarray:
  """Any float array [N, 96, 64] -> float32 C-contiguous; InputError for another shape."""
  patches = np.ascontiguousarray(patches, dtype=np.float32)
  expected = (params.patch_frames, params.patch_bands)
  if patches.ndim != 3 or patches.shape[1:] != expected:
    raise InputError(
        f"expected log-mel patches of shape [N, {expected[0]}, {expected[1]}], got "
        f"{patches.shape}; build them with models.yamnet.features (a single patch needs a "
        "leading batch axis: patches[None]).", error_type="bad_patch_shape")
  return patches


class YAMNetModel:
  """YAMNet as a TF2 function: patches float32 [N, 96, 64] ->
  ``{"embedding": float32 [N, 1024], "scores": float32 [N, 521]}``.

  Build with ``YAMNetModel.from_h5(path)`` or from the ``{key: array}`` dict of
  ``models.yamnet.weights.read_weights``. Calling it is thread-safe and works for any
  N >= 0. ``num_weights_loaded`` counts the arrays restored (110).
  """

  def __init__(self, weights: Mapping[str, np.ndarray], params: Params = DEFAULT_PARAMS,
               device: str | None = None, allow_tf32: bool = False):
    """``device``: a TF device string (``"/CPU:0"``, ``"/GPU:0"``) or None (TF's choice).
    ``allow_tf32``: TensorFlow enables TF32 on Ampere+ GPUs by default, which rounds
    conv/matmul inputs to 10-bit mantissas; it is switched off (process-wide) unless asked."""
    from models.yamnet.weights import check_weights  # Local: keeps h5py out of imports.

    check_weights({k: (tuple(np.shape(v)), np.asarray(v).dtype) for k, v in weights.items()},
                  params, source="weights passed to YAMNetModel")
    from audiobeam.quiet import import_tensorflow  # pylint: disable=import-outside-toplevel
    tf = import_tensorflow()  # Lazy: importing models.yamnet must not import TensorFlow.

    devices.enable_tensorflow_memory_growth()
    devices.set_tensorflow_tf32(allow_tf32)
    self.params = params
    self.device = device
    self._tf = tf
    self._variables: dict[str, object] = {}
    with tf.device(device) if device else contextlib.nullcontext():
      for key in weight_shapes(params):
        self._variables[key] = tf.Variable(np.asarray(weights[key], dtype=np.float32),
                                           trainable=False, name=key.replace("/", "_"))
    self.num_weights_loaded = len(self._variables)
    self._forward = tf.function(
        self._graph,
        input_signature=[tf.TensorSpec([None, params.patch_frames, params.patch_bands],
                                       tf.float32)],
        reduce_retracing=True)

  @classmethod
  def from_h5(cls, path: str, params: Params = DEFAULT_PARAMS, device: str | None = None,
              allow_tf32: bool = False) -> "YAMNetModel":
    """Restores all 110 weights of a ``yamnet.h5`` by layer name."""
    from models.yamnet.weights import read_weights

    return cls(read_weights(path, params), params, device, allow_tf32)

  @property
  def flops_per_patch(self) -> int:
    return flops_per_patch(self.params)

  def _batchnorm(self, net, name: str):
    v = self._variables
    tf = self._tf
    beta = v[f"{name}/beta"]
    y, _, _ = tf.compat.v1.nn.fused_batch_norm(
        net, tf.ones_like(beta), beta, mean=v[f"{name}/moving_mean"],
        variance=v[f"{name}/moving_variance"], epsilon=self.params.batchnorm_epsilon,
        is_training=False)
    return y

  def _graph(self, patches):
    tf, v = self._tf, self._variables
    net = patches[..., tf.newaxis]                                        # [N, 96, 64, 1]
    for layer in YAMNET_LAYERS:
      s = layer.stride
      if layer.kind == "conv":
        net = tf.nn.conv2d(net, v[f"{layer.name}/conv/kernel"], strides=s, padding="SAME")
        net = tf.nn.relu(self._batchnorm(net, f"{layer.name}/conv/bn"))
      else:
        net = tf.nn.depthwise_conv2d(net, v[f"{layer.name}/depthwise_conv/depthwise_kernel"],
                                     strides=[1, s, s, 1], padding="SAME")
        net = tf.nn.relu(self._batchnorm(net, f"{layer.name}/depthwise_conv/bn"))
        net = tf.nn.conv2d(net, v[f"{layer.name}/pointwise_conv/kernel"], strides=1,
                           padding="SAME")
        net = tf.nn.relu(self._batchnorm(net, f"{layer.name}/pointwise_conv/bn"))
    embedding = tf.reduce_mean(net, axis=[1, 2])                          # [N, 1024]
    logits = tf.nn.bias_add(tf.matmul(embedding, v[f"{CLASSIFIER}/kernel"]),
                            v[f"{CLASSIFIER}/bias"])                      # [N, 521]
    return embedding, tf.sigmoid(logits)

  def __call__(self, patches: np.ndarray) -> dict[str, np.ndarray]:
    """patches [N, 96, 64] (any float dtype; cast to float32) -> embedding, scores."""
    patches = check_patches(patches, self.params)
    if patches.shape[0] == 0:
      return {"embedding": np.zeros((0, self.params.embedding_size), np.float32),
              "scores": np.zeros((0, self.params.num_classes), np.float32)}
    with self._tf.device(self.device) if self.device else contextlib.nullcontext():
      embedding, scores = self._forward(self._tf.constant(patches))
    return {"embedding": embedding.numpy(), "scores": scores.numpy()}

