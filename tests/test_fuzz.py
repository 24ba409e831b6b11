"""Property/fuzz tests of the decoder + front end: nothing escapes but an InputError.

The pipeline's decode step is ``audiobeam.audio.open_audio`` + ``vggish.stream.iter_patches``;
whatever a user's bytes are, that step must either yield finite float32 [k, 96, 64]
patches or raise an ``InputError`` subclass (which becomes one ``errors/`` row). Any
other exception, a non-finite patch, or a hang is a bug.

Inputs: arbitrary bytes; bytes behind a structurally valid WAV or FLAC header whose
fields (format, channels, rate, bit depth, sizes) are themselves fuzzed; and arbitrary
waveforms (NaN/inf/huge/subnormal values, 0..50000 samples, 1..400000 Hz, 1..3
channels) written as 64-bit float WAV.

Repeatable in CI: ``derandomize=True`` (examples derive from the test's source, not
from a random seed), fixed ``max_examples``, no example database. Hangs: every example
runs under a per-example deadline, a hard SIGALRM watchdog and an address-space cap
(so a memory bomb fails the test instead of OOM-killing the machine). The whole file takes
well under a minute on one core.
"""

from __future__ import annotations

import contextlib
import io
import resource
import signal
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from audiobeam import audio
from vggish import stream
from audiobeam.errors import InputError
from vggish.params import DEFAULT_PARAMS

_WATCHDOG_SECONDS = 20
# Extra address space one example may map on top of what the process already has: a
# memory bomb fails the example with MemoryError instead of OOM-killing the machine.
_EXAMPLE_MEMORY_BYTES = 3 << 30
_FUZZ_SETTINGS = dict(
    derandomize=True,
    database=None,
    deadline=20_000,  # ms per example: generous for a shared 2-core machine
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
    # No shrinking: a hanging example would be re-run (20 s each) dozens of times; the
    # failing example is reported as generated.
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
)


class Hang(Exception):
  """An example ran past the watchdog: the decoder or front end hangs on it."""


def _address_space_bytes() -> int:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[0]) * resource.getpagesize()


@contextlib.contextmanager
def _watchdog(seconds: int):
  """SIGALRM after ``seconds`` (-> Hang) and an address-space cap (-> MemoryError)."""
  def on_alarm(signum, frame):
    raise Hang(f"decode + front end still running after {seconds} s")

  previous = signal.signal(signal.SIGALRM, on_alarm)
  soft, hard = resource.getrlimit(resource.RLIMIT_AS)
  cap = _address_space_bytes() + _EXAMPLE_MEMORY_BYTES
  if hard != resource.RLIM_INFINITY:
    cap = min(cap, hard)
  resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
  signal.alarm(seconds)
  try:
    yield
  finally:
    signal.alarm(0)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    signal.signal(signal.SIGALRM, previous)


def decode_and_frame(data: bytes, short_clips: str = "reference") -> int:
  """Runs the pipeline's decode step on ``data``; returns the number of patches.

  Raises only InputError (the contract); asserts every patch is finite float32 [96, 64].
  """
  with _watchdog(_WATCHDOG_SECONDS):
    count = 0
    with audio.open_audio(io.BytesIO(data)) as audio_stream:
      for block in stream.iter_patches(audio_stream, DEFAULT_PARAMS, "kaiser_best",
                                       short_clips=short_clips):
        patches = np.asarray(block.patches)
        assert patches.dtype == np.float32
        assert patches.shape[1:] == (96, 64)
        assert np.isfinite(patches).all()
        count += len(patches)
    return count


def _outcome(data: bytes, short_clips: str = "reference"):
  """('patches', n) or ('input_error', error_type). Anything else propagates (a bug)."""
  try:
    return "patches", decode_and_frame(data, short_clips)
  except InputError as error:
    assert isinstance(error.error_type, str) and error.error_type
    assert str(error)  # a message a user can act on
    return "input_error", error.error_type


# --- writers for structured inputs --------------------------------------------------------


def _wav(format_tag: int, channels: int, rate_hz: int, bits: int, body: bytes, *,
         block_align: int | None = None, data_size: int | None = None,
         riff_size: int | None = None) -> bytes:
  """A RIFF/WAVE file with a 16-byte fmt chunk whose fields are taken as given."""
  if block_align is None:
    block_align = (channels * bits // 8) & 0xFFFF
  data_size = len(body) if data_size is None else data_size
  riff_size = 36 + len(body) if riff_size is None else riff_size
  fmt = struct.pack("<HHIIHH", format_tag & 0xFFFF, channels & 0xFFFF, rate_hz & 0xFFFFFFFF,
                    (rate_hz * block_align) & 0xFFFFFFFF, block_align & 0xFFFF, bits & 0xFFFF)
  return (b"RIFF" + struct.pack("<I", riff_size & 0xFFFFFFFF) + b"WAVE"
          + b"fmt " + struct.pack("<I", 16) + fmt
          + b"data" + struct.pack("<I", data_size & 0xFFFFFFFF) + body)


def _float64_wav(samples: np.ndarray, rate_hz: int) -> bytes:
  """samples float64 [n, channels] -> IEEE-float (format 3) 64-bit WAV bytes, as stored."""
  channels = samples.shape[1]
  return _wav(3, channels, rate_hz, 64, samples.astype("<f8").tobytes())


def _flac(min_block: int, max_block: int, rate_hz: int, channels: int, bits: int,
          total_samples: int, body: bytes) -> bytes:
  """'fLaC' + one (last) STREAMINFO block with the given fields, then ``body``."""
  packed = ((rate_hz & 0xFFFFF) << 44) | (((channels - 1) & 0x7) << 41) \
      | (((bits - 1) & 0x1F) << 36) | (total_samples & 0xFFFFFFFFF)
  streaminfo = (struct.pack(">HH", min_block & 0xFFFF, max_block & 0xFFFF)
                + b"\x00\x00\x10" + b"\x00\x40\x00"  # min/max frame size (24-bit each)
                + packed.to_bytes(8, "big") + b"\x00" * 16)  # + MD5 (unset)
  return b"fLaC" + bytes([0x80]) + len(streaminfo).to_bytes(3, "big") + streaminfo + body


# --- properties ------------------------------------------------------------------------------


@settings(max_examples=120, **_FUZZ_SETTINGS)
@given(data=st.binary(min_size=0, max_size=4096))
def test_arbitrary_bytes_yield_patches_or_an_input_error(data):
  kind, _ = _outcome(data)
  if len(data) == 0:
    assert kind == "input_error"


_RATES = st.one_of(st.sampled_from([0, 1, 8000, 16000, 44100, 48000, 192000, 400000, 2**31,
                                    2**32 - 1]),
                   st.integers(0, 2**32 - 1))


@settings(max_examples=120, **_FUZZ_SETTINGS)
@given(format_tag=st.sampled_from([0, 1, 2, 3, 6, 7, 0x11, 0x55, 0xFFFE, 0xFFFF]),
       channels=st.one_of(st.sampled_from([0, 1, 2, 6, 255, 256, 65535]), st.integers(0, 65535)),
       rate_hz=_RATES,
       bits=st.sampled_from([0, 1, 4, 8, 12, 16, 20, 24, 32, 48, 64, 65535]),
       block_align=st.one_of(st.none(), st.integers(0, 65535)),
       data_size=st.one_of(st.none(), st.sampled_from([0, 1, 2**31, 2**32 - 1]),
                           st.integers(0, 2**32 - 1)),
       body=st.binary(min_size=0, max_size=4096))
def test_wav_header_with_fuzzed_fields_yields_patches_or_an_input_error(
    format_tag, channels, rate_hz, bits, block_align, data_size, body):
  _outcome(_wav(format_tag, channels, rate_hz, bits, body, block_align=block_align,
                data_size=data_size))


@settings(max_examples=80, **_FUZZ_SETTINGS)
@given(min_block=st.sampled_from([0, 1, 16, 4096, 65535]),
       max_block=st.sampled_from([0, 1, 16, 4096, 65535]),
       rate_hz=st.sampled_from([0, 1, 8000, 16000, 44100, 655350, 2**20 - 1]),
       channels=st.integers(1, 8), bits=st.integers(1, 32),
       total_samples=st.sampled_from([0, 1, 15600, 2**36 - 1]),
       body=st.binary(min_size=0, max_size=4096))
def test_flac_header_with_fuzzed_streaminfo_yields_patches_or_an_input_error(
    min_block, max_block, rate_hz, channels, bits, total_samples, body):
  _outcome(_flac(min_block, max_block, rate_hz, channels, bits, total_samples, body))


_SPECIAL_VALUES = [np.nan, np.inf, -np.inf, 1e308, -1e308, 1e30, 5e-324, -0.0, 1.0, -1.0]


@st.composite
def waveforms(draw):
  """(samples float64 [n, channels], rate_hz): seeded noise at a drawn scale, with a few
  drawn special values (NaN, inf, huge, subnormal) at drawn positions."""
  n = draw(st.one_of(st.sampled_from([0, 1, 15599, 15600, 50000]), st.integers(0, 50000)))
  channels = draw(st.integers(1, 3))
  rate_hz = draw(st.one_of(st.sampled_from([1, 7, 8000, 16000, 44100, 48000, 400000]),
                           st.integers(1, 400000)))
  scale = draw(st.sampled_from([0.0, 1e-300, 1e-3, 0.5, 1.0, 1e3, 1e30, 1e300]))
  seed = draw(st.integers(0, 2**32 - 1))
  samples = np.random.default_rng(seed).standard_normal((n, channels)) * scale
  if n:
    for _ in range(draw(st.integers(0, 3))):
      position = draw(st.integers(0, n - 1))
      samples[position, draw(st.integers(0, channels - 1))] = draw(st.sampled_from(_SPECIAL_VALUES))
  return samples, rate_hz


@settings(max_examples=60, **_FUZZ_SETTINGS)
@given(wave=waveforms(), short_clips=st.sampled_from(["reference", "pad"]))
def test_arbitrary_waveforms_yield_patches_or_an_input_error(wave, short_clips):
  samples, rate_hz = wave
  kind, value = _outcome(_float64_wav(samples, rate_hz), short_clips)
  if not np.isfinite(samples).all():
    # A header rate outside audiobeam.audio's accepted range is refused before any sample
    # is read, so it wins over NaN/inf in the data.
    in_range = audio.MIN_SAMPLE_RATE_HZ <= rate_hz <= audio.MAX_SAMPLE_RATE_HZ
    assert (kind, value) == ("input_error",
                             "non_finite_samples" if in_range else "invalid_sample_rate")
  elif kind == "input_error":
    # A finite waveform is only refused for being too short (reference policy), for a
    # rate the front end does not support, or for values so large (~1e308) that the
    # spectrum overflows; never for ordinary values.
    assert value in ("too_short", "invalid_sample_rate", "no_samples",
                     "non_finite_features"), value
    if value == "non_finite_features":
      assert np.abs(samples).max() > 1e100
    if value == "too_short":
      assert short_clips == "reference"
    if value == "invalid_sample_rate":
      assert not audio.MIN_SAMPLE_RATE_HZ <= rate_hz <= audio.MAX_SAMPLE_RATE_HZ
    if value == "no_samples":
      assert len(samples) == 0


@pytest.mark.parametrize("rate_hz, codec_tag, body_bytes", [
    (1, 1, 2 * 50000),          # 50k samples at 1 Hz: 800 M samples at 16 kHz (a CPU bomb)
    (57_841_235, 6, 19),        # A-law, absurd rate: the resampler plan once took > 6 GB
])
def test_tiny_file_with_an_absurd_header_rate_is_refused_quickly(rate_hz, codec_tag, body_bytes):
  """Regressions found by the fuzzers: a few bytes must not buy minutes of CPU or GBs."""
  bits = {1: 16, 6: 8}[codec_tag]
  data = _wav(codec_tag, 1, rate_hz, bits, bytes(body_bytes), data_size=2**32 - 1)
  assert _outcome(data) == ("input_error", "invalid_sample_rate")


def test_fuzz_helper_counts_patches_of_a_valid_file():
  """The harness itself can fail: a valid 2 s file gives exactly 2 patches."""
  samples = 0.1 * np.sin(np.arange(32000) / 10.0)[:, None]
  assert decode_and_frame(_float64_wav(samples, 16000)) == 2
  with pytest.raises(InputError):
    decode_and_frame(b"")
