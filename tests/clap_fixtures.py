"""Shared CLAP test fixtures: TEST checkpoints (random weights, written once per session
by ``models.clap.testing``), loaded runners and reference objects from transformers.

Import the fixtures into a test module (``from clap_fixtures import ...``); the folders
and models are cached per process, so several modules share one copy.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile

import numpy as np
import pytest

import audio_fixtures as fx

__all__ = [
    "checkpoint_dir",
    "unfused_checkpoint",
    "fused_checkpoint",
    "runner_for",
    "reference_for",
    "reference_embedding",
    "clap_signal",
]


@functools.lru_cache(maxsize=None)
def checkpoint_dir(fused: bool, seed: int = 0) -> str:
  """A TEST CLAP checkpoint folder (unfused or fused), written once per process and
  removed when it exits."""
  from models.clap.testing import write_test_checkpoint

  directory = tempfile.mkdtemp(prefix=f"clap-test-{'fused' if fused else 'unfused'}-{seed}-")
  atexit.register(shutil.rmtree, directory, ignore_errors=True)
  return write_test_checkpoint(directory, seed=seed, fused=fused)


@pytest.fixture(scope="session")
def unfused_checkpoint() -> str:
  return checkpoint_dir(False)


@pytest.fixture(scope="session")
def fused_checkpoint() -> str:
  return checkpoint_dir(True)


@functools.lru_cache(maxsize=None)
def runner_for(path: str):
  """``models.clap.loading.load_clap(path, "cpu")``, once per process."""
  from models.clap.loading import load_clap

  return load_clap(path, "cpu")


@functools.lru_cache(maxsize=None)
def reference_for(path: str):
  """(ClapModel, ClapFeatureExtractor, RobertaTokenizer) loaded by transformers itself."""
  from transformers import ClapFeatureExtractor, ClapModel, RobertaTokenizer

  model = ClapModel.from_pretrained(path, local_files_only=True, use_safetensors=True).eval()
  extractor = ClapFeatureExtractor.from_pretrained(path, local_files_only=True)
  tokenizer = RobertaTokenizer.from_pretrained(path, local_files_only=True)
  return model, extractor, tokenizer


def reference_embedding(path: str, clip: np.ndarray) -> np.ndarray:
  """The reference: ``ClapFeatureExtractor`` + ``ClapModel.get_audio_features`` on one
  clip (<= 10 s) alone, numpy's global random state pinned -> float32 [512]."""
  import torch

  model, extractor, _ = reference_for(path)
  np.random.seed(0)
  inputs = extractor(clip, sampling_rate=48000, return_tensors="pt")
  with torch.inference_mode():
    return model.get_audio_features(**inputs).pooler_output[0].numpy()


def clap_signal(num_samples: int, rate_hz: int = 48000, seed: int = 0) -> np.ndarray:
  """Music-like tones, a chirp and noise whose mix changes over time: float64 [n]."""
  t = np.arange(num_samples) / rate_hz
  envelope = 0.5 * (1 + np.sin(2 * np.pi * 0.07 * t + seed))
  return (0.3 * fx.music_like(num_samples, rate_hz) * envelope
          + 0.2 * fx.chirp(num_samples, rate_hz, 80.0, 9000.0) * (1 - envelope)
          + fx.noise(num_samples, seed=seed, amplitude=0.03))
