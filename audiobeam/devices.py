"""Where models run and in which float32 precision: the one home for ``--device`` and
``--allow_tf32`` (every model package calls these; none decides on its own).

* ``torch_device(device)``: ``"auto"`` is ``"cuda"`` when torch sees a CUDA GPU, else
  ``"cpu"``; ``"gpu"``/``"cuda"``/``"cuda:N"`` insist on one (``ConfigError`` when there is
  none, or not that many); ``"cpu"`` is the CPU.
* ``set_torch_tf32(allow_tf32)`` / ``torch_tf32_state()``: TF32 changes float32 results
  on Ampere and newer GPUs (matmuls ~1e-3 relative), so it is off unless asked for.
  torch's own defaults are *not* IEEE everywhere: cuDNN convolutions default to TF32,
  which would silently break a model's numerical contract on a GPU. Both matmuls and
  convolutions are set explicitly, through the legacy switches and, where this torch has
  them, the ``fp32_precision`` ones.
* ``set_tensorflow_tf32(allow_tf32)``: TensorFlow's switch (on by default on Ampere+).
* ``tensorflow_device(device)``: ``--device`` for TensorFlow models (a ``tf.device`` name);
  ``enable_tensorflow_memory_growth()``: TensorFlow takes the GPU memory it needs, not all.

All switches are process-wide (neither framework has a per-model one). torch and
TensorFlow are imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import logging
import threading

from audiobeam.bundle import DEVICES, check_choice
from audiobeam.errors import ConfigError

__all__ = ["torch_device", "set_torch_tf32", "torch_tf32_state", "set_tensorflow_tf32",
           "tensorflow_device", "enable_tensorflow_memory_growth"]

_LOGGER = logging.getLogger(__name__)


def torch_device(device: str) -> str:
  """``auto``/``cpu``/``gpu`` (``--device``) or ``cuda``/``cuda:N`` -> a torch device string."""
  if device == "cpu":
    return "cpu"
  if device != "cuda" and not device.startswith("cuda:"):
    check_choice("--device", device, DEVICES)
  import torch  # Lazy: importing a model package must not import torch.

  available = torch.cuda.is_available()
  if device == "auto":
    return "cuda" if available else "cpu"
  if not available:
    raise ConfigError(f"expected a CUDA GPU for --device {device}, found none visible to torch "
                      f"(torch {torch.__version__}, CUDA build: {torch.version.cuda}); use "
                      "--device auto or --device cpu, or run on a GPU worker.")
  if device.startswith("cuda:"):
    index = int(device.split(":", 1)[1])
    if index >= torch.cuda.device_count():
      raise ConfigError(f"expected CUDA device {index}, found only "
                        f"{torch.cuda.device_count()} CUDA device(s)")
    return device
  return "cuda"


def set_torch_tf32(allow_tf32: bool) -> dict[str, object]:
  """Sets PyTorch's process-wide TF32 switches; returns ``torch_tf32_state()``.

  ``False`` (the contract): float32 convolutions and matmuls on GPU in full float32.
  """
  import torch

  torch.backends.cuda.matmul.allow_tf32 = bool(allow_tf32)
  torch.backends.cudnn.allow_tf32 = bool(allow_tf32)
  torch.set_float32_matmul_precision("high" if allow_tf32 else "highest")
  precision = "tf32" if allow_tf32 else "ieee"
  for backend in (getattr(torch.backends.cuda, "matmul", None),
                  getattr(getattr(torch.backends, "cudnn", None), "conv", None)):
    if backend is not None and hasattr(backend, "fp32_precision"):  # torch >= 2.9
      backend.fp32_precision = precision
  return torch_tf32_state()


def torch_tf32_state() -> dict[str, object]:
  """The TF32 switches now in force, for reports: name -> value."""
  import torch

  state: dict[str, object] = {
      "cuda.matmul.allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
      "cudnn.allow_tf32": bool(torch.backends.cudnn.allow_tf32),
      "float32_matmul_precision": torch.get_float32_matmul_precision(),
  }
  matmul = getattr(torch.backends.cuda, "matmul", None)
  conv = getattr(getattr(torch.backends, "cudnn", None), "conv", None)
  if matmul is not None and hasattr(matmul, "fp32_precision"):
    state["cuda.matmul.fp32_precision"] = matmul.fp32_precision
  if conv is not None and hasattr(conv, "fp32_precision"):
    state["cudnn.conv.fp32_precision"] = conv.fp32_precision
  return state


def set_tensorflow_tf32(allow_tf32: bool) -> bool:
  """Sets TensorFlow's process-wide TF32 switch; returns the state now in force.

  ``False`` (the contract): float32 matmuls/convolutions on GPU run in full float32.
  """
  from audiobeam.quiet import import_tensorflow  # pylint: disable=import-outside-toplevel
  tf = import_tensorflow()
  tf.config.experimental.enable_tensor_float_32_execution(bool(allow_tf32))
  return bool(tf.config.experimental.tensor_float_32_execution_enabled())


def tensorflow_device(device: str = "auto") -> str | None:
  """``--device`` for TensorFlow models: ``auto`` -> None (TensorFlow places ops, on a GPU
  when one is visible); ``cpu`` -> ``/CPU:0``; ``gpu`` -> ``/GPU:0`` (ConfigError if
  TensorFlow sees none); anything else (``/GPU:1``) as given. Use as ``tf.device(...)``."""
  if device == "auto":
    return None
  if device == "cpu":
    return "/CPU:0"
  if device == "gpu":
    from audiobeam.quiet import import_tensorflow  # pylint: disable=import-outside-toplevel
    if not import_tensorflow().config.list_physical_devices("GPU"):
      raise ConfigError("expected a GPU for --device gpu, found none visible to TensorFlow; "
                        "use --device cpu or auto.")
    return "/GPU:0"
  return device


_GPU_SETUP_LOCK = threading.Lock()
_GPU_SETUP_DONE = False


def enable_tensorflow_memory_growth() -> None:
  """Lets TensorFlow grow GPU memory on demand (so several workers and models share a
  GPU), once per process."""
  global _GPU_SETUP_DONE
  with _GPU_SETUP_LOCK:
    if _GPU_SETUP_DONE:
      return
    from audiobeam.quiet import import_tensorflow, native_stderr_silenced  # pylint: disable=import-outside-toplevel
    tf = import_tensorflow()
    with native_stderr_silenced():  # the first device listing probes CUDA (cuInit notices)
      gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
      try:
        tf.config.experimental.set_memory_growth(gpu, True)
      except RuntimeError:
        pass  # The runtime is already initialised; its setting stands.
    _GPU_SETUP_DONE = True
