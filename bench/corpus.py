"""A deterministic synthetic audio corpus for the benchmark, cached on disk.

The default corpus follows issue 5: ``long_files`` files of ``long_minutes`` minutes plus
``clips`` clips of ``clip_seconds`` seconds, all 16-bit PCM WAV at 44.1 kHz stereo (the
common case the reference chain is slow on: 44100 -> 16000 Hz resampling). The signal
is a mix of drifting harmonic tones, band-limited noise bursts and a slow amplitude
envelope, so embeddings vary along a file. The same spec always gives the same bytes;
a corpus is written once per spec into ``<cache_dir>/corpus-<hash>/`` and reused
(``manifest.json`` is written last, so a half-written corpus is never reused).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["CorpusSpec", "CorpusFile", "Corpus", "build_corpus", "default_cache_dir"]

_FORMAT_VERSION = 1  # Bump when the synthesis changes so old caches are not reused.
_BLOCK_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class CorpusSpec:
  """What to synthesize. Durations in seconds/minutes, rates in Hz."""

  long_files: int = 10
  long_minutes: float = 10.0
  clips: int = 200
  clip_seconds: float = 10.0
  sample_rate_hz: int = 44100
  channels: int = 2
  seed: int = 0

  @property
  def key(self) -> str:
    text = json.dumps({"v": _FORMAT_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]

  @property
  def total_seconds(self) -> float:
    return self.long_files * self.long_minutes * 60.0 + self.clips * self.clip_seconds


@dataclasses.dataclass(frozen=True)
class CorpusFile:
  path: str
  duration_seconds: float
  sample_rate_hz: int
  channels: int


@dataclasses.dataclass(frozen=True)
class Corpus:
  spec: CorpusSpec
  directory: str
  files: tuple[CorpusFile, ...]

  @property
  def total_seconds(self) -> float:
    return sum(f.duration_seconds for f in self.files)

  @property
  def glob(self) -> str:
    """One input pattern that matches every file of the corpus (and nothing else)."""
    return os.path.join(self.directory, "*.wav")

  def describe(self) -> str:
    s = self.spec
    return (f"{s.long_files} x {s.long_minutes:g} min + {s.clips} x {s.clip_seconds:g} s, "
            f"{s.sample_rate_hz / 1000:g} kHz {s.channels} ch 16-bit WAV "
            f"({self.total_seconds / 60:.1f} min of audio)")


def default_cache_dir() -> str:
  """``$AUDIOBEAM_BENCH_DIR`` or ``<tmp>/audiobeam-bench``."""
  return os.environ.get("AUDIOBEAM_BENCH_DIR") or os.path.join(tempfile.gettempdir(),
                                                              "audiobeam-bench")


def _synthesize(num_frames: int, sample_rate_hz: int, channels: int,
                rng: np.random.Generator):
  """Yields int16 blocks [k, channels] that together hold ``num_frames`` frames."""
  block = int(_BLOCK_SECONDS * sample_rate_hz)
  # Per-file character: a few partials with slowly drifting pitch, noise level, tempo.
  base_hz = rng.uniform(110.0, 440.0)
  partials = rng.uniform(0.2, 1.0, size=5) / np.arange(1, 6)
  drift_hz = rng.uniform(0.02, 0.2)
  tempo_hz = rng.uniform(0.5, 4.0)
  noise_level = rng.uniform(0.02, 0.2)
  pan = rng.uniform(0.3, 1.0, size=channels)
  phase = np.zeros(5)
  for start in range(0, num_frames, block):
    k = min(block, num_frames - start)
    t = (start + np.arange(k)) / sample_rate_hz                                   # [k] s
    pitch_hz = base_hz * (1.0 + 0.3 * np.sin(2 * np.pi * drift_hz * t))            # [k]
    cycles = np.cumsum(pitch_hz) / sample_rate_hz                                   # [k]
    tone = np.zeros(k)
    for h in range(5):
      tone += partials[h] * np.sin(2 * np.pi * (h + 1) * cycles + phase[h])
    phase += 2 * np.pi * np.arange(1, 6) * cycles[-1]
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * tempo_hz * t) ** 2                  # [k]
    noise = rng.standard_normal((k, channels))
    # Noise bursts: a random on/off pattern per 250 ms.
    gate = np.repeat(rng.random(k // int(0.25 * sample_rate_hz) + 1) < 0.4,
                     int(0.25 * sample_rate_hz))[:k]
    mix = (0.25 * (tone * envelope)[:, None] * pan
           + noise_level * noise * (0.3 + gate[:, None]))
    yield np.clip(np.round(mix * 32767.0), -32768, 32767).astype(np.int16)


def _write_wav(path: Path, num_frames: int, spec: CorpusSpec, seed: int) -> None:
  import soundfile as sf

  rng = np.random.default_rng([spec.seed, seed])
  with sf.SoundFile(str(path), "w", samplerate=spec.sample_rate_hz, channels=spec.channels,
                    subtype="PCM_16", format="WAV") as out:
    for block in _synthesize(num_frames, spec.sample_rate_hz, spec.channels, rng):
      out.write(block)


def _write_entry(job: tuple[str, int, CorpusSpec, int]) -> None:
  path, num_frames, spec, seed = job
  _write_wav(Path(path), num_frames, spec, seed)


def build_corpus(spec: CorpusSpec, cache_dir: str | None = None, log=print,
                 map_fn=map) -> Corpus:
  """Writes (or reuses) the corpus for ``spec`` under ``cache_dir``; returns its files.

  ``map_fn(function, jobs)`` writes the files (e.g. a process pool's ``map`` to write
  them in parallel); each file depends only on the spec and its index.
  """
  root = Path(cache_dir or default_cache_dir())
  directory = root / f"corpus-{spec.key}"
  manifest_path = directory / "manifest.json"
  if manifest_path.exists():
    manifest = json.loads(manifest_path.read_text())
    files = tuple(CorpusFile(**f) for f in manifest["files"])
    if all(os.path.exists(f.path) for f in files):
      return Corpus(spec, str(directory), files)
  if directory.exists():
    shutil.rmtree(directory)
  directory.mkdir(parents=True)
  log(f"[bench] writing corpus to {directory} ...")
  entries = []
  for i in range(spec.long_files):
    entries.append((f"long_{i:03d}.wav", spec.long_minutes * 60.0))
  for i in range(spec.clips):
    entries.append((f"clip_{i:04d}.wav", spec.clip_seconds))
  files, jobs = [], []
  for index, (name, seconds) in enumerate(entries):
    num_frames = int(round(seconds * spec.sample_rate_hz))
    path = directory / name
    jobs.append((str(path), num_frames, spec, index))
    files.append(CorpusFile(str(path), num_frames / spec.sample_rate_hz, spec.sample_rate_hz,
                            spec.channels))
  for _ in map_fn(_write_entry, jobs):
    pass
  tmp = manifest_path.with_suffix(".tmp")
  tmp.write_text(json.dumps({"spec": dataclasses.asdict(spec),
                             "files": [dataclasses.asdict(f) for f in files]}, indent=1))
  os.replace(tmp, manifest_path)
  return Corpus(spec, str(directory), tuple(files))
