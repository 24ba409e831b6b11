"""Where and how the torch models (AST, CLMR) run: device choice and float32 precision.

Shared by the torch-only model packages so that ``--device`` and ``--allow_tf32`` mean
the same for each of them:

* ``resolve_device("auto")`` is ``"cuda"`` when torch sees a CUDA GPU, else ``"cpu"``;
  ``"gpu"`` insists on one (``ConfigError`` when there is none); ``"cpu"`` is the CPU.
* ``set_float32_precision(allow_tf32)``: TF32 changes float32 results on Ampere and
  newer GPUs (matmuls ~1e-3 relative), so it is off unless asked for. torch's own
  defaults are *not* IEEE everywhere: cuDNN convolutions default to TF32, which would
  silently break CLMR's numerical contract on a GPU. Both matmuls and convolutions are
  set explicitly.

torch is imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

from audiobeam.bundle import DEVICES
from audiobeam.errors import ConfigError

__all__ = ["resolve_device", "set_float32_precision"]


def resolve_device(device: str) -> str:
  """``"auto"`` / ``"cpu"`` / ``"gpu"`` -> a torch device string (``"cuda"`` or ``"cpu"``)."""
  if device not in DEVICES:
    raise ConfigError(f"expected --device to be one of {', '.join(DEVICES)}, found {device!r}")
  if device == "cpu":
    return "cpu"
  import torch  # Lazy: importing a model package must not import torch.

  if torch.cuda.is_available():
    return "cuda"
  if device == "gpu":
    raise ConfigError("expected a CUDA GPU for --device gpu, found none visible to torch "
                      f"(torch {torch.__version__}, CUDA build: {torch.version.cuda}); use "
                      "--device auto or --device cpu, or run on a GPU worker.")
  return "cpu"


def set_float32_precision(allow_tf32: bool) -> None:
  """IEEE float32 for CUDA matmuls and cuDNN convolutions, or TF32 when ``allow_tf32``.

  Process-wide (torch has no per-model switch); a no-op for CPU results.
  """
  import torch

  precision = "tf32" if allow_tf32 else "ieee"
  torch.backends.cuda.matmul.fp32_precision = precision
  torch.backends.cudnn.conv.fp32_precision = precision
