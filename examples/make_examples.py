"""Generate the example clips in ``examples/audio/`` and ``examples/MANIFEST.json``.

Every signal is analytic and seeded (numpy only), so the samples are the same on every
machine. The clips cover the kinds of input a user brings: speech-like, music-like,
noise, a sweep, pure tones, a telephone-rate recording and a clip too short for one
VGGish patch, in WAV (16-bit and float), FLAC, Ogg Vorbis, MP3 and AAC/M4A at
8-48 kHz, mono and stereo.

Usage (from the repository root; ``make examples`` runs the first form)::

  .venv/bin/python examples/make_examples.py            # rewrite examples/{audio/,MANIFEST.json}
  .venv/bin/python examples/make_examples.py --out DIR  # write DIR/audio/ and DIR/MANIFEST.json

Byte-for-byte reproducibility with the pinned encoders (soundfile 0.14.0 bundling
libsndfile 1.2.2 for WAV/FLAC/Ogg/MP3, PyAV 18.1.0 bundling FFmpeg 8 for M4A):

* WAV, FLAC: exact (16-bit PCM quantised here, float32 as given). libsndfile stamps the
  write time into a float WAV's PEAK chunk; this script zeroes that field.
* Ogg Vorbis: exact. libvorbis is deterministic; libsndfile picks a random Ogg stream
  serial number from the clock, so this script rewrites every page to serial
  ``_OGG_SERIAL`` and recomputes the page CRCs (a valid Ogg stream, same packets).
* MP3 (LAME via libsndfile): exact.
* M4A (FFmpeg's native AAC encoder, muxed with the ``bitexact`` flags so no encoder
  version string or timestamps are written): exact. The MP4 records the true length
  (132300 samples); FFmpeg 8's decoder returns 133120 (the last AAC frame's padding is
  not trimmed), which is what ``num_samples_decoded`` in the manifest says.

``MANIFEST.json`` (kept next to ``audio/``, not in it, so ``examples/audio/*`` matches
only audio) records, per file, what a test or a user needs: content, container,
codec, rate, channels, intended and decoded length, sha256, whether the bytes are
reproducible, and the expected pipeline outcome with default settings (VGGish frames,
or the ``too_short`` error row).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import pathlib
import struct
import sys
from typing import Callable

import numpy as np

__all__ = [
    "ExampleSpec",
    "EXAMPLES",
    "MANIFEST_NAME",
    "AUDIO_DIR_NAME",
    "decode",
    "synthesize",
    "write_examples",
    "main",
]

MANIFEST_NAME = "MANIFEST.json"
AUDIO_DIR_NAME = "audio"
_OGG_SERIAL = 0x41554442  # "AUDB"
_VGGISH_RATE_HZ = 16000

# Peak level every clip is normalised to (-6 dBFS leaves lossy codecs headroom).
_PEAK = 0.5


@dataclasses.dataclass(frozen=True)
class ExampleSpec:
  """One example clip.

  ``synth(sample_rate_hz, num_samples, rng) -> float64 [num_samples, channels]``.
  """

  file: str
  content: str
  description: str
  container: str  # soundfile format name, or "M4A" (written with PyAV)
  codec: str  # soundfile subtype, or "AAC"
  sample_rate_hz: int
  channels: int
  duration_seconds: float
  seed: int
  synth: Callable[[int, int, np.random.Generator], np.ndarray]

  @property
  def num_samples(self) -> int:
    return int(round(self.duration_seconds * self.sample_rate_hz))

  @property
  def reader(self) -> str:
    return "pyav" if self.container == "M4A" else "soundfile"

  @property
  def lossy(self) -> bool:
    return self.codec in ("VORBIS", "MPEG_LAYER_III", "AAC")


# --- signal building blocks ----------------------------------------------------------


def _fade(num_samples: int, sample_rate_hz: int, fade_seconds: float = 0.01) -> np.ndarray:
  """Raised-cosine fade in/out gain, float64 [num_samples]."""
  gain = np.ones(num_samples)
  n = min(int(fade_seconds * sample_rate_hz), num_samples // 2)
  if n > 0:
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(n) / n)
    gain[:n] = ramp
    gain[num_samples - n:] = ramp[::-1]
  return gain


def _normalize(x: np.ndarray, peak: float = _PEAK) -> np.ndarray:
  """Scale float64 [n, ch] so max |x| == peak."""
  top = np.max(np.abs(x))
  return x * (peak / top) if top > 0 else x


def _smooth(x: np.ndarray, width_samples: int) -> np.ndarray:
  """Moving average with edge padding, same length, float64 [n]."""
  if width_samples <= 1:
    return x
  kernel = np.ones(width_samples) / width_samples
  padded = np.pad(x, (width_samples // 2, width_samples - 1 - width_samples // 2), mode="edge")
  return np.convolve(padded, kernel, mode="valid")


# Formant frequencies (Hz) of five vowels (Peterson & Barney style averages).
_VOWELS_HZ = {
    "a": (730.0, 1090.0, 2440.0),
    "e": (530.0, 1840.0, 2480.0),
    "i": (270.0, 2290.0, 3010.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (300.0, 870.0, 2240.0),
}


def _speech_like(sample_rate_hz: int, num_samples: int, rng: np.random.Generator, *,
                 f0_hz: float, band_hz: tuple[float, float]) -> np.ndarray:
  """Formant-filtered glottal pulse train with a syllable envelope, float64 [n, 1].

  The pulse train is written as its harmonic series (k * f0(t), amplitude 1/k), each
  harmonic weighted by the magnitude response of three vowel formant resonators, so
  the result is what filtering a pulse train through the vocal tract gives, computed
  in closed form. Syllables of 0.15-0.3 s form words of 1-4 syllables separated by
  pauses; each syllable onset has a short noise burst (a consonant).
  """
  t = np.arange(num_samples) / sample_rate_hz
  env = np.zeros(num_samples)
  formants = np.zeros((num_samples, 3))
  consonant = np.zeros(num_samples)
  vowel_names = sorted(_VOWELS_HZ)
  pos = int(0.05 * sample_rate_hz)
  formants[:pos] = _VOWELS_HZ["a"]
  while pos < num_samples:
    for _ in range(int(rng.integers(1, 5))):  # one word
      length = int(rng.uniform(0.15, 0.30) * sample_rate_hz)
      end = min(pos + length, num_samples)
      shape = np.sin(np.pi * np.arange(end - pos) / max(length, 1)) ** 0.6
      env[pos:end] = shape * rng.uniform(0.6, 1.0)
      formants[pos:end] = _VOWELS_HZ[vowel_names[int(rng.integers(len(vowel_names)))]]
      burst = min(int(0.03 * sample_rate_hz), end - pos)
      consonant[pos:pos + burst] = rng.uniform(0.05, 0.2) * np.hanning(burst + 2)[1:-1]
      pos = end
      if pos >= num_samples:
        break
    pause = int(rng.uniform(0.08, 0.25) * sample_rate_hz)
    formants[pos:pos + pause] = formants[pos - 1]
    pos += pause
  smooth = int(0.03 * sample_rate_hz)
  formants = np.stack([_smooth(formants[:, j], smooth) for j in range(3)], axis=1)
  bandwidths_hz = 50.0 + 0.06 * formants

  # Intonation: slow declination + vibrato-like drift + smoothed jitter.
  jitter = _smooth(rng.standard_normal(num_samples), int(0.05 * sample_rate_hz))
  f0 = f0_hz * (1.1 - 0.15 * t / t[-1]) * (1.0 + 0.05 * np.sin(2 * np.pi * 0.9 * t)
                                            + 0.02 * jitter / np.std(jitter))
  phase = 2 * np.pi * np.cumsum(f0) / sample_rate_hz
  lo_hz, hi_hz = band_hz
  voiced = np.zeros(num_samples)
  for k in range(1, int(hi_hz / (0.8 * f0_hz)) + 1):
    freq = k * f0
    gain = 1.0 / k
    for j in range(3):
      fj, bj = formants[:, j], bandwidths_hz[:, j]
      gain = gain * fj**2 / np.sqrt((fj**2 - freq**2) ** 2 + (bj * freq) ** 2)
    gain = np.where((freq >= lo_hz) & (freq <= hi_hz) & (freq < 0.45 * sample_rate_hz), gain, 0.0)
    voiced += gain * np.sin(k * phase)
  voiced /= np.max(np.abs(voiced))
  noise = np.diff(rng.standard_normal(num_samples + 1))  # high-tilted noise
  x = env * voiced + consonant * noise
  return _normalize((x * _fade(num_samples, sample_rate_hz))[:, None])


def _speech_16k(sample_rate_hz, num_samples, rng):
  return _speech_like(sample_rate_hz, num_samples, rng, f0_hz=120.0, band_hz=(60.0, 7600.0))


def _speech_telephone(sample_rate_hz, num_samples, rng):
  return _speech_like(sample_rate_hz, num_samples, rng, f0_hz=210.0, band_hz=(300.0, 3400.0))


def _note(freq_hz: float, t: np.ndarray, sample_rate_hz: int, rng: np.random.Generator,
          decay_seconds: float) -> np.ndarray:
  """A plucked/struck note: harmonics 1..12 at 1/k^1.3, attack then exponential decay."""
  x = np.zeros_like(t)
  for k in range(1, 13):
    if k * freq_hz >= 0.45 * sample_rate_hz:
      break
    x += k**-1.3 * np.sin(2 * np.pi * k * freq_hz * t + rng.uniform(0, 2 * np.pi)) * np.exp(
        -t * k**0.5 / decay_seconds)
  attack = np.minimum(t / 0.008, 1.0)
  return x * attack * _fade(t.size, sample_rate_hz, 0.02)


def _midi_hz(note: int) -> float:
  return 440.0 * 2.0 ** ((note - 69) / 12.0)


def _music_like(sample_rate_hz, num_samples, rng):
  """Chords (C, Am, F, G) with bass and an eighth-note melody, panned, float64 [n, 2]."""
  out = np.zeros((num_samples, 2))
  chords = [(60, 64, 67), (57, 60, 64), (53, 57, 60), (55, 59, 62)]
  chord_samples = num_samples // len(chords)

  def add(start, length, midi, level, pan, decay_seconds):
    length = min(length, num_samples - start)
    t = np.arange(length) / sample_rate_hz
    x = level * _note(_midi_hz(midi), t, sample_rate_hz, rng, decay_seconds)
    angle = (pan + 1.0) * np.pi / 4  # equal-power pan, pan in [-1, 1]
    out[start:start + length, 0] += np.cos(angle) * x
    out[start:start + length, 1] += np.sin(angle) * x

  eighth = chord_samples // 4
  for i, chord in enumerate(chords):
    start = i * chord_samples
    add(start, chord_samples, chord[0] - 12, 0.9, 0.0, 0.9)  # bass
    for j, midi in enumerate(chord):
      add(start, chord_samples, midi, 0.5, -0.6 + 0.6 * j, 0.7)
    for j in range(4):  # melody on chord tones, an octave up
      midi = chord[int(rng.integers(len(chord)))] + 12
      add(start + j * eighth, eighth, midi, 0.45, 0.3, 0.25)
  return _normalize(out)


def _pink_noise(sample_rate_hz, num_samples, rng):
  """Gaussian noise shaped to a 1/f power spectrum (FFT method), float64 [n, 1]."""
  spectrum = np.fft.rfft(rng.standard_normal(num_samples))
  freqs = np.fft.rfftfreq(num_samples, 1.0 / sample_rate_hz)
  scale = np.zeros_like(freqs)
  scale[1:] = 1.0 / np.sqrt(np.maximum(freqs[1:], 20.0))
  x = np.fft.irfft(spectrum * scale, n=num_samples)
  return _normalize((x * _fade(num_samples, sample_rate_hz))[:, None])


def _white_noise(sample_rate_hz, num_samples, rng):
  """Gaussian white noise at -20 dBFS RMS, float64 [n, 1] (peak stays under 1)."""
  x = 0.1 * rng.standard_normal(num_samples)
  return np.clip(x * _fade(num_samples, sample_rate_hz), -0.99, 0.99)[:, None]


def _chirp(sample_rate_hz, num_samples, rng):
  """Exponential sweeps 50 Hz -> 16 kHz (left) and 16 kHz -> 50 Hz (right), [n, 2]."""
  del rng  # fully analytic
  duration = num_samples / sample_rate_hz
  t = np.arange(num_samples) / sample_rate_hz
  f_lo, f_hi = 50.0, 16000.0
  rate = np.log(f_hi / f_lo) / duration
  up = 2 * np.pi * f_lo * (np.exp(rate * t) - 1.0) / rate
  down = 2 * np.pi * f_hi * (1.0 - np.exp(-rate * t)) / rate
  gain = _fade(num_samples, sample_rate_hz)
  return _normalize(np.stack([np.sin(up) * gain, np.sin(down) * gain], axis=1))


def _tones(sample_rate_hz, num_samples, rng):
  """Six 0.4 s sine beeps (A4 ... A6) with 0.1 s gaps, alternately panned, [n, 2]."""
  del rng
  out = np.zeros((num_samples, 2))
  beep, step = int(0.4 * sample_rate_hz), int(0.5 * sample_rate_hz)
  t = np.arange(beep) / sample_rate_hz
  for i, freq_hz in enumerate([440.0, 554.37, 659.26, 880.0, 1000.0, 1760.0]):
    start = i * step
    if start + beep > num_samples:
      break
    x = np.sin(2 * np.pi * freq_hz * t) * _fade(beep, sample_rate_hz, 0.005)
    left, right = (1.0, 0.3) if i % 2 == 0 else (0.3, 1.0)
    out[start:start + beep, 0] += left * x
    out[start:start + beep, 1] += right * x
  return _normalize(out)


def _short(sample_rate_hz, num_samples, rng):
  return _speech_like(sample_rate_hz, num_samples, rng, f0_hz=150.0, band_hz=(60.0, 7600.0))


EXAMPLES: tuple[ExampleSpec, ...] = (
    ExampleSpec("speech_16k_mono.wav", "speech-like",
                "male-pitch vowels through 3 formants, syllables and pauses",
                "WAV", "PCM_16", 16000, 1, 4.0, 1, _speech_16k),
    ExampleSpec("speech_8k_mono.wav", "speech-like (telephone band)",
                "female-pitch voice band-limited to 300-3400 Hz",
                "WAV", "PCM_16", 8000, 1, 3.0, 2, _speech_telephone),
    ExampleSpec("music_44k_stereo.flac", "music-like",
                "C-Am-F-G chords, bass and melody, harmonic notes with decays, panned",
                "FLAC", "PCM_16", 44100, 2, 5.0, 3, _music_like),
    ExampleSpec("noise_pink_22k_mono.ogg", "pink noise",
                "1/f Gaussian noise", "OGG", "VORBIS", 22050, 1, 3.0, 4, _pink_noise),
    ExampleSpec("noise_white_32k_mono.wav", "white noise",
                "Gaussian noise at -20 dBFS RMS, 32-bit float samples",
                "WAV", "FLOAT", 32000, 1, 2.0, 5, _white_noise),
    ExampleSpec("chirp_48k_stereo.mp3", "chirp",
                "exponential sweep 50 Hz-16 kHz up (left) and down (right)",
                "MP3", "MPEG_LAYER_III", 48000, 2, 6.0, 6, _chirp),
    ExampleSpec("tones_44k_stereo.m4a", "tones",
                "six sine beeps 440-1760 Hz, alternately panned",
                "M4A", "AAC", 44100, 2, 3.0, 7, _tones),
    ExampleSpec("short_16k_mono.wav", "speech-like, too short",
                "0.5 s, under one VGGish patch (0.975 s)",
                "WAV", "PCM_16", 16000, 1, 0.5, 8, _short),
)


def synthesize(spec: ExampleSpec) -> np.ndarray:
  """The clip's samples, float64 [num_samples, channels] in [-1, 1]."""
  x = spec.synth(spec.sample_rate_hz, spec.num_samples, np.random.default_rng(spec.seed))
  if x.shape != (spec.num_samples, spec.channels) or not np.all(np.isfinite(x)):
    raise RuntimeError(f"{spec.file}: synth gave shape {x.shape}, expected "
                       f"({spec.num_samples}, {spec.channels}) finite samples")
  return x


# --- writers ---------------------------------------------------------------------------


def _ogg_crc_table() -> list[int]:
  table = []
  for i in range(256):
    crc = i << 24
    for _ in range(8):
      crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
    table.append(crc & 0xFFFFFFFF)
  return table


_OGG_CRC_TABLE = _ogg_crc_table()


def _ogg_crc(page: bytes) -> int:
  """Ogg page CRC-32 (polynomial 0x04c11db7, not reflected, init 0, no final xor)."""
  crc = 0
  for byte in page:
    crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC_TABLE[(crc >> 24) ^ byte]
  return crc


def _set_ogg_serial(path: pathlib.Path, serial: int) -> None:
  """Rewrite every Ogg page's stream serial number and CRC in place."""
  data = bytearray(path.read_bytes())
  pos = 0
  while pos < len(data):
    if data[pos:pos + 4] != b"OggS":
      raise RuntimeError(f"{path}: no Ogg page at byte {pos}")
    num_segments = data[pos + 26]
    body = sum(data[pos + 27:pos + 27 + num_segments])
    end = pos + 27 + num_segments + body
    struct.pack_into("<I", data, pos + 14, serial)
    struct.pack_into("<I", data, pos + 22, 0)
    struct.pack_into("<I", data, pos + 22, _ogg_crc(bytes(data[pos:end])))
    pos = end
  path.write_bytes(bytes(data))


def _zero_wav_peak_timestamp(path: pathlib.Path) -> None:
  """Zero the write time libsndfile stores in a float WAV's PEAK chunk (in place)."""
  data = bytearray(path.read_bytes())
  pos = 12  # after "RIFF" <size> "WAVE"
  while pos + 8 <= len(data):
    chunk_id = bytes(data[pos:pos + 4])
    (size,) = struct.unpack_from("<I", data, pos + 4)
    if chunk_id == b"PEAK":  # version u32, timestamp u32, then per-channel peaks
      struct.pack_into("<I", data, pos + 12, 0)
      path.write_bytes(bytes(data))
      return
    pos += 8 + size + (size & 1)
  raise RuntimeError(f"{path}: float WAV without the PEAK chunk libsndfile writes")


def _write_m4a(path: pathlib.Path, x: np.ndarray, sample_rate_hz: int) -> None:
  """AAC-LC in an MP4 container with PyAV, bit-exact muxing (no version/time tags)."""
  import av  # pylint: disable=import-outside-toplevel

  layout = {1: "mono", 2: "stereo"}[x.shape[1]]
  with av.open(str(path), "w", format="ipod",
               options={"fflags": "+bitexact"}) as container:
    stream = container.add_stream("aac", rate=sample_rate_hz, layout=layout)
    stream.bit_rate = 96000
    stream.codec_context.flags |= av.codec.context.Flags.bitexact
    planar = np.ascontiguousarray(x.T.astype(np.float32))
    frame_size = 1024
    for start in range(0, planar.shape[1], frame_size):
      frame = av.AudioFrame.from_ndarray(planar[:, start:start + frame_size], format="fltp",
                                         layout=layout)
      frame.sample_rate = sample_rate_hz
      frame.pts = start
      for packet in stream.encode(frame):
        container.mux(packet)
    for packet in stream.encode(None):
      container.mux(packet)


def _write(spec: ExampleSpec, x: np.ndarray, path: pathlib.Path) -> None:
  import soundfile  # pylint: disable=import-outside-toplevel

  if spec.container == "M4A":
    _write_m4a(path, x, spec.sample_rate_hz)
    return
  if spec.codec == "PCM_16":  # quantise ourselves so the stored integers are explicit
    data = np.round(x * 32767.0).astype(np.int16)
  elif spec.codec == "FLOAT":
    data = x.astype(np.float32)
  else:
    data = x
  soundfile.write(str(path), data, spec.sample_rate_hz, format=spec.container,
                  subtype=spec.codec)
  if spec.container == "OGG":
    _set_ogg_serial(path, _OGG_SERIAL)
  if spec.container == "WAV" and spec.codec == "FLOAT":
    _zero_wav_peak_timestamp(path)


def decode(path: pathlib.Path, reader: str) -> tuple[np.ndarray, int]:
  """Decode with soundfile or PyAV: (float32 [n, channels], sample_rate_hz)."""
  if reader == "soundfile":
    import soundfile  # pylint: disable=import-outside-toplevel

    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    return data, int(rate)
  import av  # pylint: disable=import-outside-toplevel

  with av.open(str(path)) as container:
    stream = container.streams.audio[0]
    rate = stream.codec_context.sample_rate
    blocks = [frame.to_ndarray() for frame in container.decode(stream)]
  planar = np.concatenate(blocks, axis=1).astype(np.float32)  # fltp: [channels, n]
  return np.ascontiguousarray(planar.T), int(rate)


def _expected_outcome(num_frames_source: int, sample_rate_hz: int) -> dict:
  try:
    from vggish.params import DEFAULT_PARAMS  # pylint: disable=import-outside-toplevel
  except ImportError:  # run with a python that does not have the project installed
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    from vggish.params import DEFAULT_PARAMS  # pylint: disable=import-outside-toplevel

  samples_16k = int(num_frames_source * _VGGISH_RATE_HZ / sample_rate_hz)
  num_patches = DEFAULT_PARAMS.num_patches(samples_16k)
  if num_patches == 0:
    return {"table": "errors", "error_type": "too_short", "num_frames": 0,
            "num_frames_short_clips_pad": 1}
  return {"table": "clips", "num_frames": num_patches}


def write_examples(out_dir: pathlib.Path) -> dict:
  """Write every clip into ``out_dir/audio/`` and ``out_dir/MANIFEST.json``.

  Returns the manifest (a dict, as written).
  """
  audio_dir = out_dir / AUDIO_DIR_NAME
  audio_dir.mkdir(parents=True, exist_ok=True)
  entries = []
  for spec in EXAMPLES:
    path = audio_dir / spec.file
    _write(spec, synthesize(spec), path)
    decoded, rate = decode(path, spec.reader)
    raw = path.read_bytes()
    entries.append({
        "file": spec.file,
        "content": spec.content,
        "description": spec.description,
        "container": spec.container,
        "codec": spec.codec,
        "reader": spec.reader,
        "sample_rate_hz": spec.sample_rate_hz,
        "channels": spec.channels,
        "duration_seconds": spec.duration_seconds,
        "num_samples_written": spec.num_samples,
        "num_samples_decoded": int(decoded.shape[0]),
        "decoded_sample_rate_hz": rate,
        "lossy": spec.lossy,
        "seed": spec.seed,
        "bytes": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
        "decoded_sha256": hashlib.sha256(np.ascontiguousarray(decoded).tobytes()).hexdigest(),
        "expected": _expected_outcome(int(decoded.shape[0]), rate),
    })
  manifest = {
      "generator": "examples/make_examples.py",
      "command": ".venv/bin/python examples/make_examples.py  (or: make examples)",
      "audio_dir": AUDIO_DIR_NAME,
      "note": ("expected.num_frames is for the default front end (0.96 s hop, "
               "--short_clips reference); decoded_sha256 hashes float32 samples as decoded "
               "by `reader` with the pinned soundfile/PyAV."),
      "files": entries,
  }
  (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
  return manifest


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", type=pathlib.Path,
                      default=pathlib.Path(__file__).resolve().parent,
                      help="folder to write audio/ and MANIFEST.json into (default: examples/, "
                           "next to this script)")
  args = parser.parse_args(argv)
  manifest = write_examples(args.out)
  total = 0
  for entry in manifest["files"]:
    total += entry["bytes"]
    outcome = entry["expected"]
    print(f"{entry['file']:28s} {entry['codec']:15s} {entry['sample_rate_hz']:6d} Hz "
          f"{entry['channels']} ch {entry['num_samples_decoded'] / entry['decoded_sample_rate_hz']:6.3f} s "
          f"{entry['bytes'] / 1024:7.1f} KiB  -> {outcome['table']}"
          f" ({outcome.get('error_type', str(outcome['num_frames']) + ' frames')})")
  print(f"{'total':28s} {total / 1024:.1f} KiB in {args.out / AUDIO_DIR_NAME}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
