"""Fixtures for the pipeline tests: a small real corpus and helpers to read outputs back.

The corpus is written into a tmp dir: real files in wav/flac/ogg/mp3 (soundfile) at
several rates and channel counts, an m4a (AAC, decoded by PyAV) copied from the
shipped examples, a corrupt file, a clip shorter than one frame, and a nested file for
``**`` globs. Expected frame counts come from the library API on the same files.
"""

from __future__ import annotations

import glob
import json
import os
import pathlib
import shutil

import numpy as np

__all__ = [
    "GOOD_FILES",
    "CORRUPT_FILE",
    "SHORT_FILE",
    "NESTED_FILE",
    "write_corpus",
    "read_parquet_dir",
    "read_tfrecords",
    "read_run_json",
]

_REPO = pathlib.Path(__file__).resolve().parents[1]
_M4A_EXAMPLE = _REPO / "examples" / "audio" / "tones_44k_stereo.m4a"

# name -> (sample_rate_hz, channels, duration_seconds, soundfile format/subtype or None)
_SPECS = {
    "tone_16k_mono.wav": (16000, 1, 3.1, ("WAV", "PCM_16")),
    "music_44k_stereo.flac": (44100, 2, 2.2, ("FLAC", "PCM_16")),
    "noise_22k_mono.ogg": (22050, 1, 2.0, ("OGG", "VORBIS")),
    "chirp_48k_stereo.mp3": (48000, 2, 2.0, ("MP3", "MPEG_LAYER_III")),
}
GOOD_FILES = tuple(_SPECS) + ("tones_44k_stereo.m4a", "sub/dir/nested_8k_mono.wav")
CORRUPT_FILE = "corrupt.wav"
SHORT_FILE = "short_16k_mono.wav"
NESTED_FILE = "sub/dir/nested_8k_mono.wav"


def _signal(sample_rate_hz: int, channels: int, duration_seconds: float, seed: int) -> np.ndarray:
  """Tones + a chirp + a little noise, float64 [n, channels] in [-0.5, 0.5]."""
  rng = np.random.default_rng(seed)
  t = np.arange(int(round(sample_rate_hz * duration_seconds))) / sample_rate_hz
  columns = []
  for c in range(channels):
    f0 = 220.0 * (1 + c) * (1 + seed % 5)
    x = 0.2 * np.sin(2 * np.pi * f0 * t) + 0.1 * np.sin(2 * np.pi * (300 + 900 * t) * t)
    x += 0.05 * rng.standard_normal(t.shape) * (0.5 + 0.5 * np.sin(2 * np.pi * 1.5 * t))
    columns.append(x)
  return np.clip(np.stack(columns, axis=1), -0.5, 0.5)


def write_corpus(directory: str | os.PathLike) -> pathlib.Path:
  """Writes the corpus under ``directory``; returns it."""
  import soundfile as sf

  root = pathlib.Path(directory)
  root.mkdir(parents=True, exist_ok=True)
  for seed, (name, (rate, channels, seconds, (fmt, subtype))) in enumerate(_SPECS.items()):
    sf.write(root / name, _signal(rate, channels, seconds, seed), rate, format=fmt, subtype=subtype)
  shutil.copyfile(_M4A_EXAMPLE, root / "tones_44k_stereo.m4a")
  (root / NESTED_FILE).parent.mkdir(parents=True, exist_ok=True)
  sf.write(root / NESTED_FILE, _signal(8000, 1, 1.5, 7), 8000, subtype="PCM_16")
  sf.write(root / SHORT_FILE, _signal(16000, 1, 0.5, 8), 16000, subtype="PCM_16")
  (root / CORRUPT_FILE).write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4)
  return root


def read_parquet_dir(path: str | os.PathLike):
  """All part files of one output subdir as one pyarrow Table (and the first file's schema)."""
  import pyarrow as pa
  import pyarrow.parquet as pq

  files = sorted(glob.glob(os.path.join(str(path), "part-*.parquet")))
  assert files, f"no part files in {path}"
  tables = [pq.read_table(f) for f in files]
  return pa.concat_tables(tables), pq.read_schema(files[0])


def read_tfrecords(path: str | os.PathLike) -> list[bytes]:
  import tensorflow as tf

  files = sorted(glob.glob(os.path.join(str(path), "part-*.tfrecord")))
  return [r.numpy() for r in tf.data.TFRecordDataset(files)]


def read_run_json(output: str | os.PathLike) -> dict:
  with open(os.path.join(str(output), "run.json")) as f:
    return json.load(f)
