"""audiobeam.audio on hostile and heavy inputs: chained Ogg, many channels, read errors,
non-regular files, and the whole-file decode path's exactness.

Real files written with libsndfile / PyAV and read back; the memory bound is the peak
resident set (``VmHWM``) of a child process that decodes and mixes a 256-channel WAV.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

import audio_fixtures as fx
from audiobeam import audio
from audiobeam.errors import DecodeError, InputError

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE_OGG = REPO_ROOT / "examples" / "audio" / "noise_pink_22k_mono.ogg"  # 3 s, 22.05 kHz


# --- whole-file decode: fast path, same samples ------------------------------------------------


@pytest.mark.parametrize("fmt,subtype", [
    ("WAV", "PCM_U8"), ("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "PCM_32"),
    ("WAV", "FLOAT"), ("WAV", "DOUBLE"), ("AIFF", "PCM_S8"), ("AIFF", "PCM_16"),
    ("FLAC", "PCM_16"), ("FLAC", "PCM_24"), ("FLAC", "PCM_S8"),
])
def test_decode_audio_is_bit_identical_to_blocks_and_to_the_int32_reference(tmp_path, fmt, subtype):
  """``decode_audio`` (one preallocated array, int16 scratch for <=16-bit) gives the same
  bits as the streamed blocks and as libsndfile's int32 read scaled by 2**-31."""
  rng = np.random.default_rng(3)
  # > 1 MiB of int16 scratch per channel pair, so the scratch loop runs several times.
  x = np.clip(rng.standard_normal((300_007, 3)) * 0.3, -1, 1)
  x[:3, 0] = [-1.0, 0.999, 0.0]
  path = tmp_path / f"a.{fmt.lower()}"
  sf.write(path, x, 44100, format=fmt, subtype=subtype)
  whole, rate = audio.decode_audio(path)
  with audio.open_audio(path) as stream:
    blocks = list(stream.blocks(65_537))
  assert rate == 44100 and whole.dtype == np.float64 and whole.shape == (300_007, 3)
  np.testing.assert_array_equal(np.concatenate(blocks), whole)
  if subtype.startswith("PCM"):
    ints, _ = sf.read(path, dtype="int32", always_2d=True)
    np.testing.assert_array_equal(whole, ints / 2147483648.0)
  else:
    stored, _ = sf.read(path, dtype="float64", always_2d=True)
    np.testing.assert_array_equal(whole, stored)


def test_decode_audio_of_a_file_object_equals_the_path(tmp_path):
  x = fx.stereo_mix(50_000, 16000)
  sf.write(tmp_path / "a.wav", x, 16000, subtype="PCM_24")
  by_path, _ = audio.decode_audio(tmp_path / "a.wav")
  by_object, _ = audio.decode_audio(io.BytesIO((tmp_path / "a.wav").read_bytes()))
  np.testing.assert_array_equal(by_object, by_path)


def test_decoder_must_be_one_of_the_known_names(tmp_path):
  with pytest.raises(ValueError, match="decoder must be one of"):
    audio.open_audio(EXAMPLE_OGG, decoder="ffmpeg")


# --- chained Ogg ------------------------------------------------------------------------------


def _second_link(tmp_path: pathlib.Path, rate_hz: int = 22050, channels: int = 1,
                 seconds: float = 2.0) -> pathlib.Path:
  """A real Ogg Vorbis file written by libsndfile (a tone, different from the example)."""
  t = np.arange(int(rate_hz * seconds)) / rate_hz
  x = np.stack([0.4 * np.sin(2 * np.pi * 660.0 * (c + 1) * t) for c in range(channels)], 1)
  path = tmp_path / f"tone_{rate_hz}_{channels}.ogg"
  sf.write(path, x, rate_hz, format="OGG", subtype="VORBIS")
  return path


def _chain(tmp_path: pathlib.Path, *parts: pathlib.Path) -> pathlib.Path:
  path = tmp_path / "chained.ogg"
  path.write_bytes(b"".join(p.read_bytes() for p in parts))
  return path


@pytest.mark.parametrize("decoder", ["soundfile", "pyav"])
def test_chained_ogg_decodes_every_link_in_order(tmp_path, decoder):
  """Two real Ogg Vorbis files concatenated. Before: libsndfile returned only the first
  link (3 s of 5 s, silently) and FFmpeg mis-decoded the boundary. Now each decoder gives
  exactly its own decoding of link 1 followed by its decoding of link 2."""
  first, second = EXAMPLE_OGG, _second_link(tmp_path)
  chained = _chain(tmp_path, first, second)
  one, _ = audio.decode_audio(first, decoder=decoder)
  two, _ = audio.decode_audio(second, decoder=decoder)
  with audio.open_audio(chained, decoder=decoder) as stream:
    info = stream.info
    samples = stream.read_all()
  assert info.chained_links == 2 and info.decoder == decoder
  assert (info.sample_rate_hz, info.channels) == (22050, 1)
  assert samples.shape == (one.shape[0] + two.shape[0], 1) == (66150 + 44100, 1)
  np.testing.assert_array_equal(samples, np.concatenate([one, two]))
  if decoder == "soundfile":
    assert info.num_frames == 66150 + 44100


def test_chained_ogg_streams_across_the_link_boundary(tmp_path):
  chained = _chain(tmp_path, EXAMPLE_OGG, _second_link(tmp_path))
  whole, _ = audio.decode_audio(chained)
  with audio.open_audio(chained) as stream:
    blocks = list(stream.blocks(10_000))  # 66150 is not a multiple: a block spans the links
  assert [b.shape[0] for b in blocks[:-1]] == [10_000] * (len(blocks) - 1)
  np.testing.assert_array_equal(np.concatenate(blocks), whole)


def test_libsndfile_and_ffmpeg_agree_on_a_chained_ogg(tmp_path):
  chained = _chain(tmp_path, EXAMPLE_OGG, _second_link(tmp_path))
  by_sndfile, _ = audio.decode_audio(chained, decoder="soundfile")
  by_ffmpeg, _ = audio.decode_audio(chained, decoder="pyav")
  assert by_sndfile.shape == by_ffmpeg.shape
  # libvorbis and FFmpeg's Vorbis decoder are two float implementations of one codec.
  assert np.abs(by_sndfile - by_ffmpeg).max() < 1e-4


@pytest.mark.parametrize("decoder", ["soundfile", "pyav"])
def test_chained_ogg_whose_links_change_format_is_a_clear_error(tmp_path, decoder):
  chained = _chain(tmp_path, EXAMPLE_OGG, _second_link(tmp_path, rate_hz=44100, channels=2))
  with pytest.raises(DecodeError, match=r"22050 Hz x 1 channels, then 44100 Hz x 2") as info:
    audio.decode_audio(chained, decoder=decoder)
  assert info.value.error_type == "format_changes_mid_stream"


def test_an_ordinary_ogg_is_one_link(tmp_path):
  with audio.open_audio(EXAMPLE_OGG) as stream:
    assert stream.info.chained_links == 1 and stream.info.num_frames == 66150


# --- read errors are errors, not the end of the file -------------------------------------------


class _FailingAfter(io.RawIOBase):
  """A seekable in-memory file whose reads past ``limit`` bytes raise ``error``."""

  def __init__(self, data: bytes, limit: int, error: BaseException):
    self._inner = io.BytesIO(data)
    self._limit = limit
    self._error = error

  def readable(self):
    return True

  def seekable(self):
    return True

  def seek(self, offset, whence=io.SEEK_SET):
    return self._inner.seek(offset, whence)

  def tell(self):
    return self._inner.tell()

  def readinto(self, buffer):
    if self._inner.tell() + len(buffer) > self._limit:
      raise self._error
    chunk = self._inner.read(len(buffer))
    memoryview(buffer)[:len(chunk)] = chunk
    return len(chunk)


@pytest.mark.parametrize("error", [
    OSError(5, "Input/output error"),
    InputError("gs://b/a.wav: could not read bytes (ConnectionError)",
               error_type="storage_unavailable"),
])
@pytest.mark.parametrize("ext", ["wav", "flac", "ogg"])
def test_a_read_error_mid_file_is_raised_not_taken_for_the_end(tmp_path, error, ext):
  """libsndfile reads through a C callback that cannot raise: before, such an error was
  printed and the file silently decoded as truncated. Now the error itself comes out."""
  path = tmp_path / f"a.{ext}"
  sf.write(path, fx.stereo_mix(200_000, 22050), 22050,
           format={"wav": "WAV", "flac": "FLAC", "ogg": "OGG"}[ext],
           subtype={"wav": "PCM_16", "flac": "PCM_16", "ogg": "VORBIS"}[ext])
  data = path.read_bytes()
  with pytest.raises(type(error)) as info:
    audio.decode_audio(_FailingAfter(data, len(data) // 2, error))
  assert info.value is error or str(error) in str(info.value)


# --- non-regular files ------------------------------------------------------------------------


def test_open_audio_refuses_a_fifo_at_once_instead_of_blocking(tmp_path):
  """In a child with a timeout, so a regression fails instead of hanging the test run."""
  fifo = tmp_path / "x.wav"
  os.mkfifo(fifo)
  code = textwrap.dedent(f"""
      from audiobeam import audio
      try:
        audio.open_audio({str(fifo)!r})
      except Exception as e:
        print(type(e).__name__, getattr(e, "error_type", None))
      """)
  done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                        text=True, timeout=60)
  assert done.stdout.split() == ["DecodeError", "not_a_regular_file"], done.stderr[-2000:]


def test_dev_zero_behind_a_symlink_is_not_a_regular_file(tmp_path):
  link = tmp_path / "zero.wav"
  os.symlink("/dev/zero", link)
  with pytest.raises(DecodeError) as info:
    audio.open_audio(link)
  assert info.value.error_type == "not_a_regular_file"
  assert "character device" in str(info.value)


def test_a_directory_is_not_a_regular_file(tmp_path):
  (tmp_path / "d.wav").mkdir()
  with pytest.raises(DecodeError) as info:
    audio.open_audio(tmp_path / "d.wav")
  assert info.value.error_type == "not_a_regular_file"


# --- memory with many channels ----------------------------------------------------------------


def test_block_frames_for_bounds_the_block_by_channels():
  def info(channels, rate_hz=48000):
    return audio.AudioInfo(rate_hz, channels, None, "WAV", "PCM_16")
  budget = audio.DEFAULT_BLOCK_BYTES
  assert audio.block_frames_for(info(2)) == budget // 16
  assert audio.block_frames_for(info(256)) == budget // (256 * 8) == 32768
  assert audio.block_frames_for(info(2), max_seconds=60.0) == 60 * 48000
  assert audio.block_frames_for(info(256), max_seconds=60.0) == 32768
  assert audio.block_frames_for(info(65535), budget_bytes=1) == 1
  for channels in (1, 2, 6, 64, 256, 1024):
    frames = audio.block_frames_for(info(channels), 8 << 20)
    assert frames * channels * 8 <= 8 << 20 < (frames + 1) * channels * 8


def test_blocks_are_capped_by_max_block_bytes(tmp_path):
  x = fx.stereo_mix(10_000, 8000, channels=16)
  sf.write(tmp_path / "a.wav", x, 8000, subtype="PCM_16")
  with audio.open_audio(tmp_path / "a.wav") as stream:
    sizes = [b.shape[0] for b in stream.blocks(1_000_000, max_block_bytes=16 * 8 * 3000)]
  assert sizes == [3000, 3000, 3000, 1000]


def test_to_mono_of_many_channels_allocates_only_the_mono_result():
  block = np.random.default_rng(0).standard_normal((50_000, 64))
  tracemalloc.start()
  try:
    mono = audio.to_mono(block)
    _, peak = tracemalloc.get_traced_memory()
  finally:
    tracemalloc.stop()
  np.testing.assert_array_equal(mono, block.mean(axis=1))
  assert peak < 2 * 50_000 * 8, f"to_mono allocated {peak} bytes for a {block.nbytes}-byte block"


_MANY_CHANNELS = 256
_MANY_RATE_HZ = 16000
_MANY_SECONDS = 10
# Budget: the child's interpreter + numpy + soundfile (~40-60 MB measured) + one 64 MiB
# block + its mono mix + scratch. Before the fix, the caller's 60 s block held the whole
# file: 10 s x 16 kHz x 256 ch x (8 B float64 + 4 B int32) = 491 MB, peak ~560 MB.
_PEAK_LIMIT_MB = 200


def test_decoding_and_mixing_256_channels_stays_within_a_fixed_memory_bound(tmp_path):
  path = tmp_path / "many.wav"
  frames = _MANY_SECONDS * _MANY_RATE_HZ
  with sf.SoundFile(path, "w", _MANY_RATE_HZ, _MANY_CHANNELS, subtype="PCM_16") as f:
    rng = np.random.default_rng(0)
    for _ in range(_MANY_SECONDS):
      f.write((rng.standard_normal((_MANY_RATE_HZ, _MANY_CHANNELS)) * 3000).astype(np.int16))
  code = textwrap.dedent(f"""
      import json, resource
      import numpy as np
      from audiobeam import audio
      total = 0.0
      n = 0
      with audio.open_audio({str(path)!r}) as stream:
        # 60 s blocks asked for (more than the pipeline's 4 s): the byte budget caps them.
        for block in stream.blocks(60 * stream.info.sample_rate_hz):
          mono = audio.to_mono(block)
          total += float(mono.sum())
          n += mono.shape[0]
      # VmHWM: this process image's own peak RSS. (ru_maxrss would also count the pytest
      # parent's RSS at fork: Linux keeps the pre-exec peak in the rusage maximum.)
      hwm_kb = next(int(line.split()[1]) for line in open("/proc/self/status")
                    if line.startswith("VmHWM:"))
      print(json.dumps({{"frames": n, "peak_mb": hwm_kb / 1024,
                        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
      """)
  done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                        text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
  assert done.returncode == 0, done.stderr[-3000:]
  result = json.loads(done.stdout.strip().splitlines()[-1])
  assert result["frames"] == frames
  assert result["peak_mb"] < _PEAK_LIMIT_MB, result
