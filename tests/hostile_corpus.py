"""A generated corpus of hostile audio inputs, each with its documented expected outcome.

Users feed audiobeam millions of files they did not make. This module writes, into a
directory, one small file per kind of trouble we have seen or can imagine (empty,
truncated, garbage with a valid header, not audio at all, NaN samples, too short,
unusual sample formats / channel counts / rates, lying headers, unreadable, odd names)
and states for each what the pipeline must do with it: embed it (with how many
frames), or write one ``errors/`` row with a given ``stage`` and ``error_type``.

Nothing is downloaded: every file is synthesised here from a seeded signal, so the
corpus is the same on every machine.

Use from tests::

    corpus = hostile_corpus.write_corpus(tmp_dir)
    argv = ["--output", out] + [a for p in corpus.input_patterns for a in ("--input", p)]

or from a shell (writes the files, prints the expected-outcome table as markdown)::

    python tests/hostile_corpus.py /tmp/hostile

The expected-outcome table (``expected_table_markdown()``) is what the README shows;
``tests/test_hostile_inputs.py`` runs the real pipeline over the corpus and asserts
every row of it.
"""

from __future__ import annotations

import dataclasses
import io
import os
import struct
import sys
import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

__all__ = [
    "Expected",
    "HostileCase",
    "Corpus",
    "CASES",
    "EMBEDDED",
    "ERROR",
    "write_corpus",
    "expected_table_markdown",
    "tone",
    "wav_pcm16_bytes",
]

EMBEDDED = "embedded"
ERROR = "error"

_SEED = 20240501


@dataclasses.dataclass(frozen=True)
class Expected:
  """What the pipeline must produce for one input.

  outcome: ``EMBEDDED`` (one ``clips/`` row with ``num_frames`` frames) or ``ERROR``
  (one ``errors/`` row with ``stage`` and ``error_type``).
  """

  outcome: str
  num_frames: int | None = None
  stage: str | None = None
  error_type: str | None = None

  def describe(self) -> str:
    if self.outcome == EMBEDDED:
      return f"embedded, {self.num_frames} frame{'s' if self.num_frames != 1 else ''}"
    return f"errors row: stage `{self.stage}`, error_type `{self.error_type}`"


def _embedded(num_frames: int) -> Expected:
  return Expected(EMBEDDED, num_frames=num_frames)


def _error(stage: str, error_type: str) -> Expected:
  return Expected(ERROR, stage=stage, error_type=error_type)


@dataclasses.dataclass(frozen=True)
class HostileCase:
  """One hostile input.

  name: stable id (also the test id). filename: the name written in the corpus dir.
  make(path): writes the file (or directory / link) at ``path``.
  expected: outcome under ``--short_clips reference`` (the default).
  expected_pad: outcome under ``--short_clips pad`` when it differs.
  explicit_input: True when the case is only reached by naming it in its own
    ``--input`` (Beam's glob matching lists regular files only, so a directory named
    ``*.wav`` is never matched by a glob).
  needs_non_root: True when the trouble only exists for a process without
    root's CAP_DAC_OVERRIDE (chmod 000 does not stop root from reading).
  inject_inference_fault: True for a valid file whose model calls the run makes fail
    through the pipeline's TEST-ONLY hook (environment variable
    ``AUDIOBEAM_TEST_ONLY_INFERENCE_FAULT_URIS``); ``Corpus.fault_uris`` lists them.
  """

  name: str
  filename: str
  description: str
  make: Callable[[Path], None]
  expected: Expected
  expected_pad: Expected | None = None
  explicit_input: bool = False
  needs_non_root: bool = False
  inject_inference_fault: bool = False

  def expected_for(self, short_clips: str) -> Expected:
    if short_clips == "pad" and self.expected_pad is not None:
      return self.expected_pad
    return self.expected


# --- signals and raw writers -------------------------------------------------------


def tone(num_frames: int, sample_rate_hz: int, channels: int = 1, seed: int = _SEED) -> np.ndarray:
  """A deterministic test signal: a tone per channel plus a little noise.

  Returns float64 [num_frames, channels] in [-0.5, 0.5], different per channel so
  channel mixing matters.
  """
  rng = np.random.default_rng(seed)
  t_seconds = np.arange(num_frames, dtype=np.float64) / sample_rate_hz
  columns = []
  for c in range(channels):
    freq_hz = min(220.0 * (c + 1) * 1.5, 0.4 * sample_rate_hz)
    columns.append(0.3 * np.sin(2 * np.pi * freq_hz * t_seconds)
                   + 0.05 * rng.standard_normal(num_frames))
  return np.clip(np.stack(columns, axis=1), -0.5, 0.5)


def wav_pcm16_bytes(samples: np.ndarray, sample_rate_hz: int, *, riff_size: int | None = None,
                    data_size: int | None = None) -> bytes:
  """A canonical 44-byte-header 16-bit PCM WAV, with optionally lying size fields.

  samples: float [n, channels] in [-1, 1]. ``riff_size`` / ``data_size`` override the
  RIFF and data chunk sizes written in the header (the payload is unchanged).
  """
  samples = np.atleast_2d(samples.T).T
  channels = samples.shape[1]
  pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2").tobytes()
  block_align = 2 * channels
  true_data_size = len(pcm)
  data_size = true_data_size if data_size is None else data_size
  riff_size = 36 + data_size if riff_size is None else riff_size
  header = b"RIFF" + struct.pack("<I", riff_size & 0xFFFFFFFF) + b"WAVE"
  header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate_hz,
                                  sample_rate_hz * block_align, block_align, 16)
  header += b"data" + struct.pack("<I", data_size & 0xFFFFFFFF)
  return header + pcm


def _png_bytes(width: int = 8, height: int = 8) -> bytes:
  """A valid tiny RGB PNG image."""

  def chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))

  raw = b"".join(b"\x00" + bytes(bytearray(
      v for x in range(width) for v in (x * 30 % 256, y * 30 % 256, 128)))
                 for y in range(height))
  ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
          + chunk(b"IEND", b""))


def _write_bytes(data: bytes) -> Callable[[Path], None]:
  def make(path: Path) -> None:
    path.write_bytes(data)
  return make


def _write_sf(num_frames: int, sample_rate_hz: int, channels: int = 1, subtype: str = "PCM_16",
              fmt: str = "WAV", mutate: Callable[[np.ndarray], np.ndarray] | None = None
              ) -> Callable[[Path], None]:
  def make(path: Path) -> None:
    x = tone(num_frames, sample_rate_hz, channels)
    if mutate is not None:
      x = mutate(x)
    sf.write(str(path), x, sample_rate_hz, subtype=subtype, format=fmt)
  return make


def _sf_bytes(num_frames: int, sample_rate_hz: int, fmt: str, subtype: str) -> bytes:
  buf = io.BytesIO()
  sf.write(buf, tone(num_frames, sample_rate_hz), sample_rate_hz, format=fmt, subtype=subtype)
  return buf.getvalue()


def _with_nan(x: np.ndarray) -> np.ndarray:
  x = x.copy()
  x[len(x) // 2, 0] = np.nan
  return x


def _with_inf(x: np.ndarray) -> np.ndarray:
  x = x.copy()
  x[len(x) // 3, 0] = np.inf
  x[len(x) // 2, 0] = -np.inf
  return x


def _huge(x: np.ndarray) -> np.ndarray:
  return x * 1e30


def _garbage_after_header(header_bytes: int, total_bytes: int, *, fmt: str,
                          subtype: str, sample_rate_hz: int = 16000) -> Callable[[Path], None]:
  """A real file's first ``header_bytes`` followed by seeded random bytes."""

  def make(path: Path) -> None:
    real = _sf_bytes(total_bytes, sample_rate_hz, fmt, subtype)
    rng = np.random.default_rng(_SEED + 7)
    garbage = rng.integers(0, 256, size=total_bytes - header_bytes, dtype=np.uint8).tobytes()
    path.write_bytes(real[:header_bytes] + garbage)
  return make


def _truncated(fraction: float, num_frames: int, sample_rate_hz: int = 16000
               ) -> Callable[[Path], None]:
  def make(path: Path) -> None:
    data = wav_pcm16_bytes(tone(num_frames, sample_rate_hz), sample_rate_hz)
    path.write_bytes(data[:int(len(data) * fraction)])
  return make


def _lying_header(declared_frames: int, actual_frames: int, sample_rate_hz: int = 16000
                  ) -> Callable[[Path], None]:
  def make(path: Path) -> None:
    path.write_bytes(wav_pcm16_bytes(tone(actual_frames, sample_rate_hz), sample_rate_hz,
                                     data_size=2 * declared_frames))
  return make


def _chmod_000(path: Path) -> None:
  _write_sf(32000, 16000)(path)
  os.chmod(path, 0)


def _dangling_symlink(path: Path) -> None:
  os.symlink(path.parent / "target-that-does-not-exist.wav", path)


def _directory(path: Path) -> None:
  path.mkdir()
  _write_sf(32000, 16000)(path / "inside.wav")


def _fifo(path: Path) -> None:
  os.mkfifo(path)


def _dev_zero_symlink(path: Path) -> None:
  os.symlink("/dev/zero", path)


def _chained_ogg(seconds_per_link: int, sample_rate_hz: int = 16000) -> Callable[[Path], None]:
  """Two real Ogg Vorbis files (libsndfile-encoded, different seeds) concatenated."""

  def make(path: Path) -> None:
    links = []
    for seed in (_SEED, _SEED + 1):
      buffer = io.BytesIO()
      sf.write(buffer, tone(seconds_per_link * sample_rate_hz, sample_rate_hz, seed=seed),
               sample_rate_hz, format="OGG", subtype="VORBIS")
      links.append(buffer.getvalue())
    path.write_bytes(b"".join(links))
  return make


_TEXT = ("This is not audio. It is a text file someone renamed.\n" * 20).encode()

# 2 s at 16 kHz = 32000 samples -> 1 + (32000 - 15600) // 15360 = 2 frames.
_TWO_SECONDS = 2

CASES: tuple[HostileCase, ...] = (
    # --- not audio at all --------------------------------------------------------
    HostileCase("empty_file", "empty.wav", "0-byte file",
                _write_bytes(b""), _error("decode", "empty_file")),
    HostileCase("truncated_header", "truncated_header.wav",
                "the first 20 bytes of a WAV header, nothing else",
                _truncated(20 / 64044, 32000), _error("decode", "unsupported_format")),
    HostileCase("text_as_wav", "text.wav", "a text file renamed .wav",
                _write_bytes(_TEXT), _error("decode", "unsupported_format")),
    HostileCase("text_as_mp3", "text.mp3", "a text file renamed .mp3",
                _write_bytes(_TEXT), _error("decode", "unsupported_format")),
    HostileCase("png_as_wav", "image.wav", "a PNG image renamed .wav",
                _write_bytes(_png_bytes()), _error("decode", "no_audio_stream")),
    HostileCase("png_as_mp3", "image.mp3", "a PNG image renamed .mp3",
                _write_bytes(_png_bytes()), _error("decode", "no_audio_stream")),
    # --- valid header, bad body --------------------------------------------------
    HostileCase("truncated_data", "truncated_data.wav",
                "valid 16-bit WAV header claiming 3 s, body cut after ~1.5 s",
                _truncated(0.5, 48000), _embedded(1)),
    HostileCase("garbage_pcm16_body", "garbage_body.wav",
                "valid 16-bit WAV header, body of random bytes (any bytes are valid PCM: "
                "decodes as noise)",
                _garbage_after_header(44, 32000 * 2 + 44, fmt="WAV", subtype="PCM_16"),
                _embedded(2)),
    HostileCase("garbage_flac_body", "garbage_body.flac",
                "valid FLAC STREAMINFO header, frames replaced by random bytes",
                _garbage_after_header(42, 32000, fmt="FLAC", subtype="PCM_16"),
                _error("decode", "unsupported_format")),
    HostileCase("header_claims_more", "header_claims_more.wav",
                "WAV whose data-chunk size claims 4 s; 2 s of samples follow",
                _lying_header(64000, 32000), _embedded(2)),
    HostileCase("header_claims_less", "header_claims_less.wav",
                "WAV whose data-chunk size claims 1 s; 3 s of samples follow "
                "(the reader trusts the chunk size)",
                _lying_header(16000, 48000), _embedded(1)),
    HostileCase("header_claims_zero", "header_claims_zero.wav",
                "WAV whose RIFF and data sizes are 0 (a streaming writer that never "
                "finalised); 2 s of samples follow (the reader trusts the chunk size: no samples)",
                _lying_header(0, 32000), _error("decode", "no_samples")),
    # --- unusable samples --------------------------------------------------------
    HostileCase("nan_samples", "nan.wav", "32-bit float WAV with a NaN sample",
                _write_sf(32000, 16000, subtype="FLOAT", mutate=_with_nan),
                _error("decode", "non_finite_samples")),
    HostileCase("inf_samples", "inf.wav", "32-bit float WAV with +inf and -inf samples",
                _write_sf(32000, 16000, subtype="FLOAT", mutate=_with_inf),
                _error("decode", "non_finite_samples")),
    HostileCase("huge_float_samples", "huge.wav",
                "32-bit float WAV, finite samples around 1e29 (far outside [-1, 1])",
                _write_sf(32000, 16000, subtype="FLOAT", mutate=_huge), _embedded(2)),
    HostileCase("digital_silence", "silence.wav", "2 s of exact zeros",
                _write_sf(32000, 16000, mutate=np.zeros_like), _embedded(2)),
    # --- length edges ------------------------------------------------------------
    HostileCase("clip_1ms", "clip_1ms.wav", "1 ms (16 samples at 16 kHz)",
                _write_sf(16, 16000), _error("frontend", "too_short"),
                expected_pad=_embedded(1)),
    HostileCase("exactly_one_patch", "exact_0.975s.wav",
                "exactly 0.975 s: 15600 samples at 16 kHz", _write_sf(15600, 16000),
                _embedded(1)),
    HostileCase("one_sample_short", "one_sample_short.wav",
                "15599 samples at 16 kHz, one short of a patch", _write_sf(15599, 16000),
                _error("frontend", "too_short"), expected_pad=_embedded(1)),
    # --- sample formats, channels, rates -----------------------------------------
    HostileCase("pcm_u8", "pcm_u8.wav", "8-bit unsigned PCM WAV",
                _write_sf(32000, 16000, subtype="PCM_U8"), _embedded(2)),
    HostileCase("pcm_24", "pcm_24.wav", "24-bit PCM WAV",
                _write_sf(32000, 16000, subtype="PCM_24"), _embedded(2)),
    HostileCase("float32", "float32.wav", "32-bit float WAV",
                _write_sf(32000, 16000, subtype="FLOAT"), _embedded(2)),
    HostileCase("float64", "float64.wav", "64-bit float WAV",
                _write_sf(32000, 16000, subtype="DOUBLE"), _embedded(2)),
    HostileCase("six_channels", "6ch.wav", "6-channel 16-bit WAV",
                _write_sf(32000, 16000, channels=6), _embedded(2)),
    HostileCase("eight_channels", "8ch.wav", "8-channel 16-bit WAV",
                _write_sf(32000, 16000, channels=8), _embedded(2)),
    HostileCase("rate_8khz", "8khz.wav", "8 kHz WAV, 2 s", _write_sf(16000, 8000),
                _embedded(2)),
    HostileCase("rate_192khz", "192khz.wav", "192 kHz stereo 24-bit WAV, 2 s",
                _write_sf(384000, 192000, channels=2, subtype="PCM_24"), _embedded(2)),
    # --- unreadable --------------------------------------------------------------
    HostileCase("unreadable_chmod_000", "unreadable.wav",
                "valid WAV with mode 000 (only unreadable to a non-root process)",
                _chmod_000, _error("decode", "permission_denied"), needs_non_root=True),
    HostileCase("directory_named_wav", "directory.wav",
                "a directory named like a WAV, passed as its own --input",
                _directory, _error("match", "not_a_regular_file"), explicit_input=True),
    HostileCase("dangling_symlink", "dangling.wav",
                "a symlink to a missing file, matched by the glob and also passed as its own "
                "--input (one errors row)",
                _dangling_symlink, _error("match", "not_found"), explicit_input=True),
    HostileCase("fifo_named_wav", "fifo.wav",
                "a FIFO (named pipe) named like a WAV, matched by the glob (opening it would "
                "block the worker forever)",
                _fifo, _error("match", "not_a_regular_file")),
    HostileCase("dev_zero_symlink", "zero.wav",
                "a symlink to /dev/zero named like a WAV (an endless character device)",
                _dev_zero_symlink, _error("match", "not_a_regular_file")),
    # --- containers ---------------------------------------------------------------
    HostileCase("chained_ogg", "chained.ogg",
                "two Ogg Vorbis files of 2 s concatenated (a chained Ogg): both links decode",
                _chained_ogg(2), _embedded(4)),
    # --- faults ------------------------------------------------------------------
    HostileCase("injected_inference_fault", "inference_fault.wav",
                "valid 2 s WAV whose model call is made to fail (TEST-ONLY fault hook); "
                "its batch neighbours must still embed",
                _write_sf(32000, 16000), _error("inference", "inference_failed"),
                inject_inference_fault=True),
    # --- names -------------------------------------------------------------------
    HostileCase("non_ascii_and_spaces", "h\u00e9llo w\u00f6rld \u97f3\u58f0 e\u0301.wav",
                "non-ASCII (precomposed and combining accents, CJK) and spaces in the name",
                _write_sf(32000, 16000), _embedded(2)),
    HostileCase("shell_metacharacters", "it's \"quoted\"; $(rm -rf) [1] #.wav",
                "quotes, ;, $(), brackets and # in the name",
                _write_sf(32000, 16000), _embedded(2)),
)
"""Every hostile case, in table order."""


@dataclasses.dataclass(frozen=True)
class Corpus:
  """A corpus written to disk.

  paths: case name -> the path written. input_patterns: the ``--input`` values that
  match every case, deliberately overlapping (``*`` and ``exact*.wav`` both match the
  exact-one-patch file) so duplicate matches are exercised. skipped: names of cases not
  written (``needs_non_root`` cases when ``include_non_root_cases`` is False).
  """

  directory: Path
  cases: tuple[HostileCase, ...]
  paths: dict[str, Path]
  input_patterns: tuple[str, ...]
  skipped: tuple[str, ...]

  def uri(self, name: str) -> str:
    return str(self.paths[name])

  @property
  def fault_uris(self) -> list[str]:
    """URIs to pass to the TEST-ONLY inference fault hook."""
    return [self.uri(c.name) for c in self.cases if c.inject_inference_fault]


def write_corpus(directory: str | os.PathLike, *, include_non_root_cases: bool = True
                 ) -> Corpus:
  """Writes every case of ``CASES`` into ``directory`` (created; must be empty or new)."""
  directory = Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  paths: dict[str, Path] = {}
  skipped = []
  for case in CASES:
    if case.needs_non_root and not include_non_root_cases:
      skipped.append(case.name)
      continue
    path = directory / case.filename
    case.make(path)
    paths[case.name] = path
  patterns = [str(directory / "*"), str(directory / "exact*.wav")]
  patterns += [str(paths[c.name]) for c in CASES if c.explicit_input and c.name in paths]
  written = tuple(c for c in CASES if c.name in paths)
  return Corpus(directory, written, paths, tuple(patterns), tuple(skipped))


def expected_table_markdown(cases: tuple[HostileCase, ...] = CASES) -> str:
  """The expected-outcome table (markdown) for the README."""
  lines = ["| input | expected (`--short_clips reference`) | under `--short_clips pad` |",
           "|---|---|---|"]
  for case in cases:
    pad = case.expected_pad.describe() if case.expected_pad else "same"
    lines.append(f"| {case.description} | {case.expected.describe()} | {pad} |")
  return "\n".join(lines)


if __name__ == "__main__":
  if len(sys.argv) != 2:
    sys.exit("usage: python tests/hostile_corpus.py OUTPUT_DIR")
  corpus = write_corpus(sys.argv[1])
  print(f"wrote {len(corpus.paths)} files to {corpus.directory}")
  print("inputs:", " ".join(f"--input '{p}'" for p in corpus.input_patterns))
  print()
  print(expected_table_markdown())
