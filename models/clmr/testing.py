"""TEST WEIGHTS ONLY: deterministic random CLMR checkpoints in the published layouts.

These machines (and CI) have no internet, so tests cannot use CLMR's published
``clmr_checkpoint_10000.pt``. This module writes stand-ins in the same layouts:

- ``clmr_checkpoint_test.pt``: a torch state dict of CLMR's SimCLR model, as the
  published ``.pt``: the SampleCNN encoder under ``encoder.sequential.<i>.<j>.*`` (conv
  weight/bias, batch-norm weight/bias/running_mean/running_var/num_batches_tracked) and
  the projection head ``projector.0.weight`` [512, 512], ``projector.2.weight`` [64, 512];
- ``clmr_checkpoint_test.ckpt``: a PyTorch Lightning checkpoint as CLMR's training writes
  it: ``{"epoch", "global_step", "pytorch-lightning_version", "state_dict",
  "hyper_parameters", "optimizer_states", "lr_schedulers"}`` whose ``state_dict`` holds
  the encoder twice (``encoder.*`` and ``model.encoder.*``, as the LightningModule
  registers it twice) and ``model.projector.*``.

The outputs of this model are NOT embeddings: they mean nothing. Nothing in the product
calls this module implicitly; a user has to point ``--clmr_checkpoint`` at its output.

How the weights are made (seeded numpy Generator; same seed, same tensors): He-normal
convolutions (std sqrt(2 / fan_in)), small biases, batch-norm scales 1 + N(0, 0.1) and
shifts N(0, 0.1); each batch norm's running mean and variance are then set to the
statistics of its input over fixed synthetic calibration windows (tones, noise, a chirp),
rounded to 4 significant digits, so activations keep a sensible scale through
all eleven blocks, as in a trained network.

CLI: ``python -m models.clmr.testing DIR [--seed N]``. Needs torch (to write torch files).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

import numpy as np

from models.clmr.network import CONV, NORM, SAMPLECNN_BLOCKS, parameter_shapes
from models.clmr.params import DEFAULT_PARAMS

__all__ = ["PT_FILENAME", "CKPT_FILENAME", "PROJECTION_DIM", "calibration_windows",
           "make_encoder_state", "write_test_checkpoints", "main"]

PT_FILENAME = "clmr_checkpoint_test.pt"
CKPT_FILENAME = "clmr_checkpoint_test.ckpt"
PROJECTION_DIM = 64
"""CLMR's ``projection_dim`` (config/config.yaml)."""


def calibration_windows() -> np.ndarray:
  """Fixed synthetic windows float32 [3, 59049] at 22050 Hz: tones, noise, a chirp."""
  n, rate = DEFAULT_PARAMS.window_samples, DEFAULT_PARAMS.sample_rate_hz
  t = np.arange(n) / rate
  rng = np.random.default_rng(12345)
  signals = [
      0.5 * np.sin(2 * np.pi * 220.0 * t) + 0.2 * np.sin(2 * np.pi * 1760.0 * t),
      0.1 * rng.standard_normal(n),
      0.5 * np.sin(2 * np.pi * (100.0 * t + 1500.0 * t ** 2)),
  ]
  return np.stack(signals).astype(np.float32)


def _round4(x: np.ndarray) -> np.ndarray:
  """4 significant digits, so tiny float differences between machines change nothing."""
  return np.array([float(f"{v:.4g}") for v in np.asarray(x, dtype=np.float64)])


def make_encoder_state(seed: int = 0) -> dict[str, np.ndarray]:
  """Encoder parameters (``sequential.*`` names, float32; num_batches_tracked int64)."""
  import torch

  from models.clmr.network import build_encoder

  rng = np.random.default_rng(seed)
  state: dict[str, np.ndarray] = {}
  for name, shape in parameter_shapes().items():
    kind = name.rsplit(".", 1)[1]
    if kind == "num_batches_tracked":
      state[name] = np.array(10000, dtype=np.int64)
    elif name.endswith(f".{CONV}.weight"):
      fan_in = shape[1] * shape[2]
      state[name] = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    elif name.endswith(f".{CONV}.bias"):
      state[name] = 0.01 * rng.standard_normal(shape)
    elif kind == "weight":
      state[name] = 1.0 + 0.1 * rng.standard_normal(shape)
    elif kind == "bias":
      state[name] = 0.1 * rng.standard_normal(shape)
    elif kind == "running_mean":
      state[name] = np.zeros(shape)
    else:  # running_var
      state[name] = np.ones(shape)
  # Calibrate each batch norm on the statistics of its input, block by block.
  encoder = build_encoder().eval()
  encoder.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.int64 if v.ndim == 0
                                                          else np.float32))
                           for k, v in state.items()})
  x = torch.from_numpy(calibration_windows()).unsqueeze(1)
  with torch.no_grad():
    for i, block in enumerate(encoder.sequential):
      conv_out = block[CONV](x).double()                               # [B, C, L]
      mean = _round4(conv_out.mean(dim=(0, 2)).numpy())
      var = _round4(conv_out.var(dim=(0, 2), unbiased=False).numpy() + 1e-3)
      state[f"sequential.{i}.{NORM}.running_mean"] = mean
      state[f"sequential.{i}.{NORM}.running_var"] = var
      block[NORM].running_mean.copy_(torch.from_numpy(mean))
      block[NORM].running_var.copy_(torch.from_numpy(var))
      x = block(x)
  return {k: (v if v.dtype == np.int64 else np.asarray(v, dtype=np.float32))
          for k, v in state.items()}


def _projector(seed: int) -> dict[str, np.ndarray]:
  rng = np.random.default_rng([seed, 7])
  size = SAMPLECNN_BLOCKS[-1].out_channels
  return {"0.weight": (rng.standard_normal((size, size)) / np.sqrt(size)).astype(np.float32),
          "2.weight": (rng.standard_normal((PROJECTION_DIM, size)) / np.sqrt(size)
                       ).astype(np.float32)}


def write_test_checkpoints(directory: str, seed: int = 0) -> tuple[str, str]:
  """Writes both TEST checkpoints into ``directory`` -> (.pt path, .ckpt path)."""
  import torch

  os.makedirs(directory, exist_ok=True)
  encoder = {k: torch.from_numpy(np.array(v)) for k, v in make_encoder_state(seed).items()}
  projector = {k: torch.from_numpy(v) for k, v in _projector(seed).items()}
  simclr = collections.OrderedDict([(f"encoder.{k}", v) for k, v in encoder.items()]
                                   + [(f"projector.{k}", v) for k, v in projector.items()])
  pt_path = os.path.join(directory, PT_FILENAME)
  torch.save(simclr, pt_path)
  lightning_state = collections.OrderedDict(
      [(f"encoder.{k}", v) for k, v in encoder.items()]
      + [(f"model.encoder.{k}", v) for k, v in encoder.items()]
      + [(f"model.projector.{k}", v) for k, v in projector.items()])
  checkpoint = {
      "epoch": 10000,
      "global_step": 10000,
      "pytorch-lightning_version": "1.4.9",
      "state_dict": lightning_state,
      "hyper_parameters": {"batch_size": 96, "projection_dim": PROJECTION_DIM,
                           "audio_length": DEFAULT_PARAMS.window_samples,
                           "sample_rate": DEFAULT_PARAMS.sample_rate_hz,
                           "dataset": "magnatagatune", "supervised": 0},
      "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.0003, "params": [0, 1]}]}],
      "lr_schedulers": [],
  }
  ckpt_path = os.path.join(directory, CKPT_FILENAME)
  torch.save(checkpoint, ckpt_path)
  return pt_path, ckpt_path


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m models.clmr.testing",
      description="Write deterministic RANDOM-weight CLMR checkpoints for tests (not real "
                  "embeddings).")
  parser.add_argument("directory", help="output directory (created if missing)")
  parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
  args = parser.parse_args(argv)
  pt_path, ckpt_path = write_test_checkpoints(args.directory, args.seed)
  print(f"TEST CLMR checkpoints (random, seed {args.seed}) written:\n"
        f"  --clmr_checkpoint {pt_path}   (state dict, as clmr_checkpoint_10000.pt)\n"
        f"  --clmr_checkpoint {ckpt_path}   (Lightning checkpoint)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
