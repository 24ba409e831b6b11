"""Decoding: exact PCM scaling, format coverage, streamed blocks, typed errors."""

from __future__ import annotations

import io
import os
import pathlib

import numpy as np
import pytest
import soundfile as sf

import audio_fixtures as fx
from audiobeam import audio
from audiobeam.errors import AudioContentError, DecodeError

_EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples" / "audio"

PCM_SCALE = {"PCM_16": ("int16", 2.0 ** 15), "PCM_24": ("int32", 2.0 ** 31),
             "PCM_32": ("int32", 2.0 ** 31)}


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32"])
@pytest.mark.parametrize("rate_hz,channels", [(8000, 1), (44100, 2), (48000, 6)])
def test_integer_pcm_is_scaled_exactly_like_the_reference(tmp_path, subtype, rate_hz, channels):
  path = tmp_path / f"x_{subtype}.wav"
  sf.write(path, fx.stereo_mix(rate_hz // 4, rate_hz, channels), rate_hz, subtype=subtype)
  samples, got_rate = audio.decode_audio(path)
  int_dtype, scale = PCM_SCALE[subtype]
  ints, _ = sf.read(path, dtype=int_dtype, always_2d=True)
  assert got_rate == rate_hz
  assert samples.dtype == np.float64 and samples.shape == (rate_hz // 4, channels)
  np.testing.assert_array_equal(samples, ints / scale)


def test_16_bit_pcm_is_exactly_int16_over_32768(tmp_path):
  pcm = (fx.chirp(4000, 16000) * 32767).astype(np.int16)
  pcm[:4] = [-32768, 32767, 0, -1]
  path = tmp_path / "x.wav"
  sf.write(path, pcm, 16000, subtype="PCM_16")
  samples, _ = audio.decode_audio(path)
  np.testing.assert_array_equal(samples[:, 0], pcm.astype(np.float64) / 32768.0)
  assert samples[0, 0] == -1.0


def test_8_bit_unsigned_pcm_is_centred(tmp_path):
  path = tmp_path / "u8.wav"
  sf.write(path, fx.sine(1000, 8000), 8000, subtype="PCM_U8")
  samples, _ = audio.decode_audio(path)
  np.testing.assert_allclose(samples[:, 0], fx.sine(1000, 8000), atol=1 / 128)
  assert np.all(np.abs(samples * 128 - np.round(samples * 128)) == 0)


@pytest.mark.parametrize("subtype,dtype", [("FLOAT", np.float32), ("DOUBLE", np.float64)])
def test_float_wav_is_read_as_stored(tmp_path, subtype, dtype):
  x = fx.stereo_mix(3000, 22050).astype(dtype)
  x[0, 0] = 1.5  # out of [-1, 1] on purpose: stored values are not clipped or rescaled
  path = tmp_path / f"{subtype}.wav"
  sf.write(path, x, 22050, subtype=subtype)
  samples, _ = audio.decode_audio(path)
  np.testing.assert_array_equal(samples, x.astype(np.float64))


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24"])
def test_flac_decodes_to_the_same_samples_as_wav(tmp_path, subtype):
  # Write the same integers to both (libsndfile's float->int on *writing* differs
  # between its WAV and FLAC encoders).
  x = (fx.stereo_mix(20000, 44100) * 2 ** 23).astype(np.int32) * 256
  sf.write(tmp_path / "a.wav", x, 44100, subtype=subtype)
  sf.write(tmp_path / "a.flac", x, 44100, subtype=subtype)
  wav, _ = audio.decode_audio(tmp_path / "a.wav")
  flac, _ = audio.decode_audio(tmp_path / "a.flac")
  np.testing.assert_array_equal(wav, flac)
  bits = 16 if subtype == "PCM_16" else 24
  np.testing.assert_array_equal(flac, (x >> (32 - bits)) / 2.0 ** (bits - 1))


def test_ffmpeg_fallback_gives_the_same_pcm_samples_as_libsndfile(tmp_path):
  pcm = (fx.stereo_mix(12000, 32000) * 32767).astype(np.int16)
  sf.write(tmp_path / "a.wav", pcm, 32000, subtype="PCM_16")
  fx.write_pyav_pcm(tmp_path / "a.mkv", pcm, 32000)  # libsndfile cannot read Matroska
  with audio.open_audio(tmp_path / "a.mkv") as stream:
    assert stream.info.decoder == "pyav"
    assert (stream.info.sample_rate_hz, stream.info.channels) == (32000, 2)
    via_ffmpeg = stream.read_all()
  via_sndfile, _ = audio.decode_audio(tmp_path / "a.wav")
  np.testing.assert_array_equal(via_ffmpeg, via_sndfile)


@pytest.mark.parametrize("ext,kwargs,rate_hz,channels", [
    ("ogg", dict(format="OGG", subtype="VORBIS"), 44100, 2),
    ("ogg", dict(format="OGG", subtype="VORBIS"), 22050, 1),
    ("opus", dict(format="OGG", subtype="OPUS"), 48000, 2),
    ("mp3", dict(format="MP3"), 44100, 2),
    ("mp3", dict(format="MP3"), 16000, 1),
])
def test_lossy_formats_decode_close_to_the_source(tmp_path, ext, kwargs, rate_hz, channels):
  x = 0.5 * np.stack([fx.sine(rate_hz, rate_hz, 440.0 * (c + 1)) for c in range(channels)], 1)
  path = tmp_path / f"a.{ext}"
  sf.write(path, x, rate_hz, **kwargs)
  samples, got_rate = audio.decode_audio(path)
  assert got_rate == rate_hz and samples.shape[1] == channels
  assert abs(samples.shape[0] - rate_hz) <= 0.05 * rate_hz
  _assert_same_tone(samples, x)


@pytest.mark.parametrize("rate_hz,channels", [(44100, 2), (16000, 1), (48000, 2)])
def test_m4a_aac_decodes_through_ffmpeg(tmp_path, rate_hz, channels):
  x = 0.5 * np.stack([fx.sine(rate_hz, rate_hz, 440.0 * (c + 1)) for c in range(channels)], 1)
  fx.write_m4a(tmp_path / "a.m4a", x, rate_hz)
  with audio.open_audio(tmp_path / "a.m4a") as stream:
    info = stream.info
    samples = stream.read_all()
  assert (info.decoder, info.codec) == ("pyav", "aac")
  assert (info.sample_rate_hz, info.channels) == (rate_hz, channels)
  assert rate_hz <= samples.shape[0] <= rate_hz + 3 * 1024  # AAC priming/padding frames
  _assert_same_tone(samples, x)


def _assert_same_tone(decoded, source):
  """Lossy codecs shift and smear; compare magnitude spectra of the middle second."""
  n = min(decoded.shape[0], source.shape[0]) // 2
  for c in range(source.shape[1]):
    a = np.abs(np.fft.rfft(decoded[n // 2:n // 2 + n, c] * np.hanning(n)))
    b = np.abs(np.fft.rfft(source[n // 2:n // 2 + n, c] * np.hanning(n)))
    assert np.argmax(a) == np.argmax(b)
    assert np.corrcoef(a, b)[0, 1] > 0.95


def test_blocks_are_streamed_with_the_requested_size(tmp_path):
  x = fx.stereo_mix(10007, 8000)
  sf.write(tmp_path / "a.wav", x, 8000, subtype="DOUBLE")
  with audio.open_audio(tmp_path / "a.wav") as stream:
    assert stream.info == audio.AudioInfo(8000, 2, 10007, "WAV", "DOUBLE", "soundfile")
    blocks = list(stream.blocks(1000))
    assert stream.frames_decoded == 10007
  assert [b.shape for b in blocks] == [(1000, 2)] * 10 + [(7, 2)]
  np.testing.assert_array_equal(np.concatenate(blocks), x)


def test_ffmpeg_blocks_are_regrouped_to_the_requested_size(tmp_path):
  fx.write_m4a(tmp_path / "a.m4a", fx.stereo_mix(20000, 16000), 16000)
  with audio.open_audio(tmp_path / "a.m4a") as stream:
    sizes = [b.shape[0] for b in stream.blocks(3000)]
  assert all(s == 3000 for s in sizes[:-1]) and 0 < sizes[-1] <= 3000


def test_file_objects_decode_like_paths_even_when_not_seekable(tmp_path):
  x = fx.stereo_mix(5000, 16000)
  sf.write(tmp_path / "a.flac", x, 16000)
  by_path, _ = audio.decode_audio(tmp_path / "a.flac")
  data = (tmp_path / "a.flac").read_bytes()
  by_fileobj, _ = audio.decode_audio(io.BytesIO(data))
  by_pipe, _ = audio.decode_audio(_NonSeekable(data))
  np.testing.assert_array_equal(by_fileobj, by_path)
  np.testing.assert_array_equal(by_pipe, by_path)


def test_m4a_from_a_non_seekable_file_object(tmp_path):
  fx.write_m4a(tmp_path / "a.m4a", fx.stereo_mix(16000, 16000), 16000)
  by_path, _ = audio.decode_audio(tmp_path / "a.m4a")
  by_pipe, _ = audio.decode_audio(_NonSeekable((tmp_path / "a.m4a").read_bytes()))
  np.testing.assert_array_equal(by_pipe, by_path)


class _NonSeekable(io.RawIOBase):
  """A pipe-like binary stream: read() only."""

  def __init__(self, data: bytes):
    self._inner = io.BytesIO(data)

  def readable(self):
    return True

  def seekable(self):
    return False

  def readinto(self, buffer):
    chunk = self._inner.read(len(buffer))
    buffer[:len(chunk)] = chunk
    return len(chunk)


def test_header_that_overstates_length_decodes_what_is_there(tmp_path):
  x = fx.sine(16000, 16000)
  sf.write(tmp_path / "full.wav", x, 16000, subtype="PCM_16")
  data = (tmp_path / "full.wav").read_bytes()
  (tmp_path / "cut.wav").write_bytes(data[:44 + 2 * 6000])  # header still says 16000
  with audio.open_audio(tmp_path / "cut.wav") as stream:
    samples = stream.read_all()
    assert stream.info.num_frames in (16000, 6000)
    assert stream.frames_decoded == 6000
  full, _ = audio.decode_audio(tmp_path / "full.wav")
  np.testing.assert_array_equal(samples, full[:6000])


@pytest.mark.parametrize("name,content,error_type", [
    ("empty.wav", b"", "empty_file"),
    ("text.wav", b"this is not audio, just text\n" * 40, "unsupported_format"),
    ("noise.mp3", bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)),
     "unsupported_format"),
    ("riff.wav", b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + b"\xff" * 16,
     "unsupported_format"),
])
def test_undecodable_inputs_raise_typed_decode_errors(tmp_path, name, content, error_type):
  path = tmp_path / name
  path.write_bytes(content)
  with pytest.raises(DecodeError) as info:
    audio.decode_audio(path)
  assert info.value.error_type == error_type
  assert name in str(info.value)


def test_an_image_is_not_audio(tmp_path):
  import av

  path = tmp_path / "picture.png"
  with av.open(str(path), "w", format="image2") as container:
    stream = container.add_stream("png", rate=1)
    stream.width, stream.height, stream.pix_fmt = 8, 8, "rgb24"
    frame = av.VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), format="rgb24")
    for packet in list(stream.encode(frame)) + list(stream.encode(None)):
      container.mux(packet)
  os.rename(path, tmp_path / "picture.wav")
  with pytest.raises(DecodeError) as info:
    audio.decode_audio(tmp_path / "picture.wav")
  assert info.value.error_type in ("no_audio_stream", "unsupported_format")


def test_missing_file_is_not_found(tmp_path):
  with pytest.raises(DecodeError) as info:
    audio.decode_audio(tmp_path / "nope.wav")
  assert info.value.error_type == "not_found"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file_is_permission_denied(tmp_path):
  path = tmp_path / "locked.wav"
  sf.write(path, np.zeros(100), 8000)
  path.chmod(0)
  try:
    with pytest.raises(DecodeError) as info:
      audio.decode_audio(path)
    assert info.value.error_type == "permission_denied"
  finally:
    path.chmod(0o600)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_rejected_with_their_position(tmp_path, bad):
  x = fx.sine(5000, 8000).astype(np.float32)
  x[4321] = bad
  sf.write(tmp_path / "bad.wav", x, 8000, subtype="FLOAT")
  with pytest.raises(AudioContentError, match="frame 4321") as info:
    audio.decode_audio(tmp_path / "bad.wav")
  assert info.value.error_type == "non_finite_samples"


def test_to_mono_is_the_channel_mean():
  x = fx.stereo_mix(100, 8000, channels=3)
  np.testing.assert_array_equal(audio.to_mono(x), x.mean(axis=1))
  np.testing.assert_array_equal(audio.to_mono(x[:, :1]), x[:, 0])
  np.testing.assert_array_equal(audio.to_mono(x[:, 0]), x[:, 0])
  with pytest.raises(AudioContentError):
    audio.to_mono(np.zeros((10, 0)))


@pytest.mark.parametrize("block_frames", [1152, 30000, 65536])
def test_mp3_decodes_the_same_in_blocks_as_whole(block_frames):
  """libsndfile 1.2.2 returns zeros after the first block boundary when an MP3 is read in
  blocks (0.60 max |diff| on this file); MP3 goes to FFmpeg, which streams correctly and
  equals libsndfile's whole-file read to float32 rounding."""
  import soundfile
  path = _EXAMPLES / "chirp_48k_stereo.mp3"
  whole, _ = soundfile.read(str(path))
  with audio.open_audio(str(path)) as stream:
    blocks = np.concatenate(list(stream.blocks(block_frames)))
    assert stream.info.decoder == "pyav"
  assert blocks.shape == whole.shape
  np.testing.assert_allclose(blocks, whole, atol=1e-5, rtol=0)
