"""Decoding audio files into float64 samples, streamed in bounded memory.

Sources are a local path, a URI (``gs://``, ``s3://``, ``file://``, ... opened by
``audiobeam.inputs.open_input``: regular files only, bounded retries) or a binary file
object. A non-seekable file object is first spooled to a temporary file.

Decoders, tried in order (``decoder="auto"``; ``"soundfile"`` / ``"pyav"`` force one):

1. libsndfile via ``soundfile`` (WAV, FLAC, OGG/Vorbis, Opus, MP3, AIFF, ...). Integer
   PCM is read as left-justified int16 (up to 16 bits) or int32 and scaled by 2**-15 or
   2**-31, which is exact and is the reference's scaling: 16-bit PCM ``x / 32768``,
   24-bit ``x / 2**23``, 8-bit ``(x - 128) / 128``. (libsndfile's own float64
   conversion is not used for integer data: it is 2x slower, and went through float32
   for FLAC in older libsndfile.) Float and double data are read as stored; lossy
   codecs (Vorbis, Opus, MP3) as libsndfile decodes them to float64. A whole local file
   is read by libsndfile through its descriptor; other sources through Python calls.
2. FFmpeg via PyAV for everything else (M4A/AAC, video containers, ...). Integer sample
   formats get the same scaling as above; the first audio stream is used.

**Chained Ogg** (several complete Ogg streams concatenated, as internet radio dumps
and ``cat a.ogg b.ogg`` make): libsndfile would decode only the first link and FFmpeg
mis-decodes link boundaries, so the Ogg pages are scanned first and each link is decoded
as the file it was; the samples of all links follow each other in one stream
(``AudioInfo.chained_links`` says how many). Links that differ in sample rate or
channel count are ``format_changes_mid_stream``. Both decoders give every link.

**Memory.** ``AudioStream.blocks`` never holds more than ``max_block_bytes`` (default
``DEFAULT_BLOCK_BYTES``, 64 MiB) of decoded float64 samples in one block, however many
channels a file has: the block length is ``block_frames_for(info, max_block_bytes)``
when that is shorter than the ``block_frames`` asked for. Integer PCM goes through a
fixed 1 MiB scratch buffer straight into the float64 block (no full-size integer
copy). ``decode_audio`` writes into one array sized from the header when the header is
plausible for the file's size.

Multi-channel audio is mixed to mono by ``to_mono`` (mean over channels), as the
reference does. A file whose header claims more frames than it holds is decoded as far
as its data goes (``AudioStream.frames_decoded`` tells how far); the header's count is
only reported in ``AudioInfo.num_frames``.

Errors carry a stable ``error_type`` (the ``errors/`` column):

================== ========================== ==========================================
class              error_type                 when
================== ========================== ==========================================
DecodeError        not_found                  no such file / object, dangling symlink
DecodeError        permission_denied          file or object not readable
DecodeError        not_a_regular_file         FIFO, device, socket or directory
DecodeError        storage_unavailable        remote storage did not answer in budget
                                              (also ``changed_during_read``,
                                              ``storage_error``: ``audiobeam.inputs``)
DecodeError        empty_file                 0 bytes
DecodeError        unsupported_format         neither libsndfile nor FFmpeg recognises it
DecodeError        no_audio_stream            a container (image, video) without audio
DecodeError        corrupt_audio              the decoder failed part-way through the data
DecodeError        format_changes_mid_stream  rate/channels change (chained Ogg links,
                                              FFmpeg streams)
DecodeError        invalid_sample_rate        header rate outside 1000 Hz .. 3.072 MHz
AudioContentError  no_channels                header says 0 channels
AudioContentError  non_finite_samples         NaN or +-inf samples (float WAV), with position
================== ========================== ==========================================

A read error of the underlying file object (for example ``storage_unavailable`` from a
remote object, or an ``OSError``) is raised as itself, never taken for the end of the
file: libsndfile reads through callbacks that cannot raise, so the error is kept and
re-raised after the call.

``vggish.stream`` adds ``no_samples`` (nothing decoded), ``non_finite_features``
(finite but absurd samples, e.g. 1e300 in a float WAV, overflow the spectrum) and
``too_short``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import shutil
import stat
import tempfile
from typing import BinaryIO, Iterator, Union

import numpy as np

from audiobeam.errors import AudiobeamError, AudioContentError, DecodeError, InputError

__all__ = [
    "AudioInfo",
    "AudioStream",
    "open_audio",
    "decode_audio",
    "to_mono",
    "block_frames_for",
    "DECODERS",
    "DEFAULT_BLOCK_FRAMES",
    "DEFAULT_BLOCK_BYTES",
    "MIN_SAMPLE_RATE_HZ",
    "MAX_SAMPLE_RATE_HZ",
    "check_sample_rate",
]

Source = Union[str, os.PathLike, BinaryIO]

DECODERS = ("auto", "soundfile", "pyav")

DEFAULT_BLOCK_FRAMES = 1 << 20
"""Frames per block when none is given (about 22 s at 48 kHz; 16 MB for stereo)."""

DEFAULT_BLOCK_BYTES = 64 << 20
"""Most decoded float64 bytes one block may hold (``frames * channels * 8``)."""

_BYTES_PER_SAMPLE = 8              # float64 output
_SCRATCH_BYTES = 1 << 20           # integer PCM scratch buffer
_SPOOL_CHUNK_BYTES = 1 << 22
_OGG_SCAN_CHUNK_BYTES = 1 << 20
# decode_audio trusts a header's frame count for one up-front allocation only while the
# decoded size stays within this factor of the file's size (plus a fixed allowance): a
# tiny file that claims hours gets no huge allocation (FLAC of silence compresses ~100x,
# so such files fall back to growing block by block, which is slower but as exact).
_TRUSTED_EXPANSION = 64
_TRUSTED_ALLOWANCE_BYTES = 256 << 20

# Sample rates accepted from a file header. Real audio lies well inside (8 kHz telephone
# to 768 kHz DXD); outside it a header is corrupt, and resampling it to 16 kHz would be
# absurd (1 Hz -> 16000 outputs per input sample) or beyond the filter table's resolution.
MIN_SAMPLE_RATE_HZ = 1000
MAX_SAMPLE_RATE_HZ = 3_072_000

# libsndfile subtypes holding integer PCM (WAV/AIFF/FLAC/ALAC/...; "PCM_16", "ALAC_24").
_INTEGER_SUBTYPE_PREFIXES = ("PCM_", "ALAC_")

# Integer subtypes of at most 16 bits: read as int16 (see _SoundfileLink).
_SIXTEEN_BIT_SUBTYPES = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "ALAC_16"})

# FFmpeg codec names whose Ogg granule position counts samples (Opus' includes pre-skip).
_OGG_GRANULE_IS_LENGTH = frozenset({"vorbis", "flac"})

# PyAV sample formats (packed name; planar adds "p") -> divisor to reach [-1, 1).
_INT_SCALE = {"s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


@dataclasses.dataclass(frozen=True)
class AudioInfo:
  """What the container says about an audio file.

  ``num_frames`` is the header's frame count (``None`` when the container does not
  state it reliably, e.g. compressed streams read by FFmpeg); the decoded count is
  ``AudioStream.frames_decoded``. ``container``/``codec`` are the decoder's names
  (e.g. ``"WAV"``/``"PCM_16"`` from libsndfile, ``"mov,mp4,m4a,3gp,3g2,mj2"``/``"aac"``
  from FFmpeg); ``decoder`` is ``"soundfile"`` or ``"pyav"``. ``chained_links`` is the
  number of concatenated Ogg streams (1 for every other file).
  """

  sample_rate_hz: int
  channels: int
  num_frames: int | None
  container: str
  codec: str
  decoder: str = "soundfile"
  chained_links: int = 1

  @property
  def duration_seconds(self) -> float | None:
    """Header duration (``num_frames / sample_rate_hz``), ``None`` if unknown."""
    if self.num_frames is None:
      return None
    return self.num_frames / self.sample_rate_hz


def block_frames_for(info: AudioInfo, budget_bytes: int = DEFAULT_BLOCK_BYTES, *,
                     max_seconds: float | None = None) -> int:
  """Frames per decoded block so that one float64 block holds at most ``budget_bytes``.

  ``frames * info.channels * 8 <= budget_bytes`` (at least 1 frame), and at most
  ``max_seconds * info.sample_rate_hz`` frames when ``max_seconds`` is given. E.g. the
  default 64 MiB: 4.2 M frames (87 s at 48 kHz) for stereo, 32768 frames (0.68 s at
  48 kHz) for 256 channels. A caller that loops ``for block in stream.blocks(...)``
  still holds its previous block while the next is decoded, so decoding + ``to_mono``
  peaks at about ``2 * budget_bytes`` plus 1 MiB of scratch, for any file (measured:
  160 MB ru_maxrss for a 256-channel WAV with 60 s blocks asked for, of which ~31 MB is
  the interpreter with numpy and soundfile; 499 MB before this bound).
  """
  if budget_bytes < 1:
    raise ValueError(f"budget_bytes must be >= 1, got {budget_bytes}.")
  frames = max(1, int(budget_bytes) // (_BYTES_PER_SAMPLE * max(1, int(info.channels))))
  if max_seconds is not None:
    if not max_seconds > 0:
      raise ValueError(f"max_seconds must be > 0, got {max_seconds!r}.")
    frames = min(frames, max(1, int(round(max_seconds * info.sample_rate_hz))))
  return frames


def _name_of(source) -> str:
  if isinstance(source, (str, os.PathLike)):
    return os.fspath(source)
  return str(getattr(source, "name", "<file object>"))


def _check_finite(block: np.ndarray, start_frame: int, name: str) -> None:
  if not np.isfinite(block).all():
    bad = int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0]) + start_frame
    raise AudioContentError(
        f"{name}: sample frame {bad} is NaN or infinite; expected finite samples. "
        "Repair or drop the file (float WAVs can store NaN/inf).",
        error_type="non_finite_samples")


# --------------------------------------------------------------------------------------
# File windows: error-keeping views of the source for the decoders.


class _Source:
  """The seekable source file shared by the windows of one open_audio()."""

  def __init__(self, fileobj):
    self.fileobj = fileobj
    self.origin = fileobj.tell()
    self.position = self.origin   # where fileobj is now, to skip needless seeks
    self.descriptor_used = False  # libsndfile read the OS descriptor behind fileobj's buffer
    self._size: int | None = None

  def regular_fd(self) -> int | None:
    """The OS file descriptor when the source is a whole regular local file, else None."""
    if self.origin != 0:
      return None
    try:
      fd = self.fileobj.fileno()
      return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
      return None

  def forget_buffer(self) -> None:
    """Drop what a buffered file object read ahead, once the descriptor was used directly
    (its offset moved under the buffer); otherwise the buffer is right and is kept (for a
    remote object, dropping it would download its bytes again)."""
    if not self.descriptor_used:
      return
    self.fileobj.seek(0, io.SEEK_END)  # a SEEK_END always reaches the raw file
    self.fileobj.seek(self.origin)
    self.position = self.origin

  def size_bytes(self) -> int | None:
    """Bytes from the origin to the end, measured once: a ``SEEK_END`` drops a buffered
    file object's read-ahead, so it is taken before the first read and then remembered."""
    if self._size is None:
      try:
        end = self.fileobj.seek(0, io.SEEK_END)
      except (OSError, ValueError, AttributeError):
        return None
      self.position = end
      self._size = end - self.origin
    return self._size


class _Window(io.RawIOBase):
  """Bytes ``[start, stop)`` of the source (``stop=None``: to its end), as a raw file.

  Exceptions of the source's read/seek are kept in ``error`` and the read returns 0:
  libsndfile calls ``readinto`` from a C callback where an exception would only be
  printed and taken for end-of-file, so every decoder call is followed by
  ``raise_error()``, which raises the kept exception.
  """

  def __init__(self, source: _Source, start: int = 0, stop: int | None = None, name: str = ""):
    super().__init__()
    self._source = source
    self._start = start
    self._stop = stop
    self._position = 0
    self.name = name
    self.error: BaseException | None = None

  @property
  def source(self) -> _Source:
    return self._source

  @property
  def whole(self) -> bool:
    """True when the window is the whole source."""
    return self._start == 0 and self._stop is None

  def readable(self) -> bool:
    return True

  def seekable(self) -> bool:
    return True

  def tell(self) -> int:
    return self._position

  def _length(self) -> int:
    if self._stop is None:
      size = self._source.size_bytes()
      if size is None:
        raise OSError("the source's size is unknown")
      self._stop = size
    return self._stop - self._start

  def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
    try:
      if whence == io.SEEK_SET:
        position = offset
      elif whence == io.SEEK_CUR:
        position = self._position + offset
      elif whence == io.SEEK_END:
        position = self._length() + offset
      else:
        raise ValueError(f"invalid whence {whence}")
    except Exception as e:  # pylint: disable=broad-except  # kept, see raise_error()
      self.error = self.error or e
      return self._position
    self._position = max(0, position)
    return self._position

  def readinto(self, buffer) -> int:
    try:
      count = len(buffer)
      if self._stop is not None:
        count = max(0, min(count, self._stop - self._start - self._position))
      if count == 0:
        return 0
      absolute = self._source.origin + self._start + self._position
      if self._source.position != absolute:
        self._source.fileobj.seek(absolute)
      view = memoryview(buffer).cast("B")[:count]
      got = self._source.fileobj.readinto(view) if hasattr(self._source.fileobj, "readinto") \
          else _read_into(self._source.fileobj, view)
      got = got or 0
      self._source.position = absolute + got
      self._position += got
      return got
    except Exception as e:  # pylint: disable=broad-except  # kept, see raise_error()
      self.error = self.error or e
      self._source.position = -1  # unknown: seek before the next read
      return 0

  def raise_error(self) -> None:
    """Re-raise what the source raised during the last decoder call, if anything."""
    if self.error is not None:
      error, self.error = self.error, None
      raise error


def _read_into(fileobj, view: memoryview) -> int:
  data = fileobj.read(len(view))
  view[:len(data)] = data
  return len(data)


# --------------------------------------------------------------------------------------
# Chained Ogg: find where each link (a complete logical stream group) starts.


@dataclasses.dataclass(frozen=True)
class _OggLink:
  """One link of an Ogg file: where it starts, and the last granule position of its
  first logical stream (the stream's length in samples for Vorbis and FLAC)."""

  offset: int
  final_granule: int | None


def _ogg_links(source: _Source) -> list[_OggLink]:
  """The links of an Ogg file, in order (one for an ordinary file).

  Reads page headers sequentially (one pass over the file in 1 MiB reads). A new link
  starts at a beginning-of-stream page that follows a page that is not one. Stops at the
  first bytes that are not an Ogg page (the decoder reports those as it always has).
  """
  fileobj = source.fileobj
  fileobj.seek(source.origin)
  source.position = -1
  buffer = bytearray()
  buffer_start = 0      # offset of buffer[0]
  links: list[list] = []  # [offset, serial of the first stream, last granule]
  offset = 0
  previous_bos = False

  def covered(end: int) -> bool:
    nonlocal buffer_start
    if offset > buffer_start:  # drop what lies before the current page
      drop = min(offset - buffer_start, len(buffer))
      del buffer[:drop]
      buffer_start += drop
    while buffer_start + len(buffer) < end:
      chunk = fileobj.read(_OGG_SCAN_CHUNK_BYTES)
      if not chunk:
        return False
      if buffer_start + len(buffer) < offset:  # skipping a body larger than the buffer
        skip = min(offset - buffer_start - len(buffer), len(chunk))
        buffer_start += len(buffer) + skip
        buffer[:] = chunk[skip:]
      else:
        buffer.extend(chunk)
    return True

  while covered(offset + 27):
    at = offset - buffer_start
    if buffer[at:at + 4] != b"OggS" or buffer[at + 4] != 0:
      break
    segments = buffer[at + 26]
    if not covered(offset + 27 + segments):
      break
    at = offset - buffer_start
    body = sum(buffer[at + 27:at + 27 + segments])
    bos = bool(buffer[at + 5] & 0x02)
    granule = int.from_bytes(buffer[at + 6:at + 14], "little", signed=True)
    serial = bytes(buffer[at + 14:at + 18])
    if bos and not previous_bos:
      links.append([offset, serial, None])
    if links and serial == links[-1][1] and granule >= 0:
      links[-1][2] = granule
    previous_bos = bos
    offset += 27 + segments + body
  fileobj.seek(source.origin)
  source.position = source.origin
  return [_OggLink(o, g) for o, _, g in links] or [_OggLink(0, None)]


# --------------------------------------------------------------------------------------
# One decoder over one window: ``info`` and ``read_into(out)``.


class _SoundfileLink:
  """libsndfile decoding one window."""

  def __init__(self, sf, info: AudioInfo, window: _Window, name: str):
    self.info = info
    self.name = name
    self._sf = sf
    self._window = window
    self.integer_pcm = str(info.codec).startswith(_INTEGER_SUBTYPE_PREFIXES)
    # libsndfile left-justifies integer PCM into the integer type asked for, so
    # int16 * 2**-15 (for up to 16 bits) and int32 * 2**-31 are exact scalings, the
    # reference's (16-bit: x / 32768; 8-bit unsigned: (x - 128) / 128). Reading 16-bit
    # data as int16 and widening with numpy is ~2x faster than libsndfile's own float64
    # conversion (which, for FLAC, also went through float32 in older libsndfile).
    narrow = str(info.codec) in _SIXTEEN_BIT_SUBTYPES
    self._int_dtype = np.int16 if narrow else np.int32
    self._int_scale = 2.0 ** -15 if narrow else 2.0 ** -31
    self._scratch: np.ndarray | None = None

  def read_into(self, out: np.ndarray) -> int:
    """Fill ``out`` (float64 [k, channels], C-contiguous) from the start; frames written."""
    import soundfile

    try:
      if not self.integer_pcm:
        got = self._sf.read(dtype="float64", always_2d=True, out=out).shape[0]
      else:
        got = self._read_integer_pcm(out)
    except (soundfile.LibsndfileError, RuntimeError) as e:
      self._window.raise_error()
      raise DecodeError(f"{self.name}: corrupt audio data after frame {self._sf.tell()} ({e}).",
                        error_type="corrupt_audio") from e
    self._window.raise_error()
    return got

  def _read_integer_pcm(self, out: np.ndarray) -> int:
    """Integer PCM through a small scratch buffer, widened and scaled in ``out``."""
    channels = out.shape[1]
    if self._scratch is None:
      itemsize = np.dtype(self._int_dtype).itemsize
      self._scratch = np.empty((max(1, _SCRATCH_BYTES // (itemsize * channels)), channels),
                               self._int_dtype)
    dtype = "int16" if self._int_dtype is np.int16 else "int32"
    written = 0
    while written < out.shape[0]:
      want = min(self._scratch.shape[0], out.shape[0] - written)
      ints = self._sf.read(want, dtype=dtype, always_2d=True, out=self._scratch[:want])
      if ints.shape[0] == 0:
        break
      target = out[written:written + ints.shape[0]]
      np.copyto(target, ints)   # exact widening to float64, then an exact power-of-2
      target *= self._int_scale  # scaling (2x faster than one mixed-type multiply)
      written += ints.shape[0]
      if ints.shape[0] < want:
        break
    return written


class _PyavLink:
  """FFmpeg decoding one window (the first audio stream)."""

  def __init__(self, container, stream, info: AudioInfo, window: _Window, name: str,
               max_frames: int | None = None):
    import av

    self.info = info
    self.name = name
    self.integer_pcm = False
    self._window = window
    self._left = max_frames        # frames still to hand out (None: until the end)
    self._pending: np.ndarray | None = None   # decoded frames not yet handed out
    self._frames = self._decode(container, stream, av)

  def _decode(self, container, stream, av) -> Iterator[np.ndarray]:
    info, name = self.info, self.name
    try:
      for frame in container.decode(stream):
        if frame.sample_rate != info.sample_rate_hz or frame.layout.nb_channels != info.channels:
          raise DecodeError(
              f"{name}: sample rate or channel count changes mid-stream "
              f"({info.sample_rate_hz} Hz x {info.channels} -> {frame.sample_rate} Hz x "
              f"{frame.layout.nb_channels}); re-encode the file with a fixed format.",
              error_type="format_changes_mid_stream")
        yield _frame_samples(frame, info.channels)
    except av.FFmpegError as e:
      self._window.raise_error()
      raise DecodeError(f"{name}: corrupt audio data ({type(e).__name__}: {e}).",
                        error_type="corrupt_audio") from e

  def read_into(self, out: np.ndarray) -> int:
    if self._left is not None:
      out = out[:self._left]
    written = 0
    while written < out.shape[0]:
      if self._pending is None or self._pending.shape[0] == 0:
        self._pending = next(self._frames, None)
        self._window.raise_error()
        if self._pending is None:
          break
        continue
      take = min(self._pending.shape[0], out.shape[0] - written)
      out[written:written + take] = self._pending[:take]
      self._pending = self._pending[take:]
      written += take
    if self._left is not None:
      self._left -= written
    return written


def _frame_samples(frame, channels: int) -> np.ndarray:
  """One decoded PyAV frame -> float64 [k, channels] with reference scaling."""
  fmt = frame.format.name
  data = frame.to_ndarray()
  if frame.format.is_planar:
    data = data.T                           # [channels, k] -> [k, channels]
    base = fmt[:-1]
  else:
    data = data.reshape(-1, channels)       # [1, k * channels] interleaved
    base = fmt
  if base in ("flt", "dbl"):
    return data.astype(np.float64)
  if base == "u8":
    return (data.astype(np.float64) - 128.0) / 128.0
  if base in _INT_SCALE:
    return data.astype(np.float64) / _INT_SCALE[base]
  raise DecodeError(f"unsupported PyAV sample format {fmt!r}.", error_type="unsupported_format")


def _open_soundfile(window: _Window, name: str, stack: contextlib.ExitStack):
  import soundfile

  # A whole local file is read by libsndfile itself (no Python call per 8 KB read).
  fd = window.source.regular_fd() if window.whole else None
  try:
    if fd is not None:
      os.lseek(fd, 0, os.SEEK_SET)
      window.source.position = -1
      window.source.descriptor_used = True
      sf = soundfile.SoundFile(fd, mode="r", closefd=False)
    else:
      sf = soundfile.SoundFile(window, mode="r")
  except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError):
    window.source.forget_buffer()  # libsndfile moved the descriptor's offset
    window.raise_error()
    window.seek(0)
    return None
  window.raise_error()
  stack.callback(sf.close)
  frames = sf.frames if 0 < sf.frames < (1 << 62) else None
  info = AudioInfo(sample_rate_hz=int(sf.samplerate), channels=int(sf.channels),
                   num_frames=frames, container=str(sf.format), codec=str(sf.subtype),
                   decoder="soundfile")
  return _SoundfileLink(sf, info, window, name)


def _open_pyav(window: _Window, name: str, stack: contextlib.ExitStack,
               ogg_final_granule: int | None = None):
  import av

  try:
    container = av.open(window, mode="r")
  except (av.FFmpegError, ValueError, OSError, UnicodeDecodeError) as e:
    window.raise_error()
    raise DecodeError(
        f"{name}: not a recognised audio format ({type(e).__name__}: {e}). Supported: what "
        "libsndfile reads (wav, flac, ogg, opus, mp3, aiff, ...) and what FFmpeg reads "
        "(m4a/aac, video containers, ...).", error_type="unsupported_format") from e
  window.raise_error()
  stack.callback(container.close)
  if not container.streams.audio:
    raise DecodeError(f"{name}: the {container.format.name} container has no audio stream.",
                      error_type="no_audio_stream")
  stream = container.streams.audio[0]
  ctx = stream.codec_context
  channels = int(ctx.layout.nb_channels) if ctx.layout is not None else int(ctx.channels)
  info = AudioInfo(sample_rate_hz=int(ctx.sample_rate or 0), channels=channels,
                   num_frames=None, container=str(container.format.name),
                   codec=str(ctx.name), decoder="pyav")
  # FFmpeg does not always trim the encoder's padding at the end of an Ogg Vorbis stream
  # (measured: 316 extra samples on a 2 s file written by libsndfile); the last page's
  # granule position is the stream's length in samples for Vorbis and FLAC, and libsndfile
  # stops there, so the decoders agree.
  trim = ogg_final_granule if info.codec in _OGG_GRANULE_IS_LENGTH else None
  return _PyavLink(container, stream, info, window, name, max_frames=trim)


# libsndfile 1.2.2 (soundfile 0.14.0) decodes MP3 wrongly when it is read in blocks:
# from the first block boundary on, stretches of samples come back as zeros (measured on
# examples/audio/chirp_48k_stereo.mp3: max |diff| 0.60 against one whole read, for every
# block size tried). FFmpeg's decoder equals libsndfile's whole read to 7.6e-6 and streams
# correctly, so in "auto" mode MP3 goes to FFmpeg.
_FFMPEG_FORMATS = frozenset({"MP3"})


def _open_link(window: _Window, name: str, decoder: str, stack: contextlib.ExitStack,
               ogg_final_granule: int | None = None):
  if decoder in ("auto", "soundfile"):
    with contextlib.ExitStack() as probe:
      link = _open_soundfile(window, name, probe)
      if link is not None and (decoder == "soundfile"
                               or link.info.container not in _FFMPEG_FORMATS):
        stack.push(probe.pop_all())
        return link
    if link is not None:  # auto, a format libsndfile streams wrongly: start over in FFmpeg
      window.source.forget_buffer()
      window.seek(0)
    if decoder == "soundfile":
      raise DecodeError(f"{name}: libsndfile does not recognise this file; use "
                        "decoder='auto' or 'pyav' to try FFmpeg.", error_type="unsupported_format")
  return _open_pyav(window, name, stack, ogg_final_granule)


# --------------------------------------------------------------------------------------


class AudioStream:
  """An open audio file: ``.info`` and ``.blocks(block_frames)``.

  Use through ``open_audio`` as a context manager. ``blocks`` yields float64
  ``[k, channels]`` arrays in order, all but the last exactly
  ``min(block_frames, block_frames_for(info, max_block_bytes))`` frames; only one
  block is held at a time. By default every block of float data is checked for NaN/inf
  (``AudioContentError('non_finite_samples')``; integer PCM is finite by
  construction). ``frames_decoded`` counts the frames yielded so far.
  """

  def __init__(self, info: AudioInfo, name: str, closer: contextlib.ExitStack,
               links: list, size_bytes: int | None = None):
    self.info = info
    self.name = name
    self.size_bytes = size_bytes
    self.frames_decoded = 0
    self._closer = closer
    self._links = list(links)
    self._integer_pcm = all(link.integer_pcm for link in self._links)
    self._started = False

  def _start(self, what: str) -> None:
    if self._started:
      raise RuntimeError(f"{self.name}: {what} can be called only once per open_audio().")
    self._started = True

  def _fill(self, out: np.ndarray) -> int:
    """Fill ``out`` from the current link onwards; frames written (< len only at the end)."""
    written = 0
    try:
      while written < out.shape[0] and self._links:
        got = self._links[0].read_into(out[written:])
        written += got
        if written < out.shape[0]:
          self._links.pop(0)
    except (AudiobeamError, MemoryError, OSError):  # OSError: the source's own read error
      raise
    except Exception as e:  # libsndfile/FFmpeg bindings raise many types on bad data.
      raise DecodeError(f"{self.name}: decoding failed ({type(e).__name__}: {e}).",
                        error_type="corrupt_audio") from e
    return written

  def _accept(self, block: np.ndarray, check_finite: bool) -> None:
    if check_finite and not self._integer_pcm:
      _check_finite(block, self.frames_decoded, self.name)
    self.frames_decoded += block.shape[0]

  def blocks(self, block_frames: int = DEFAULT_BLOCK_FRAMES, *, check_finite: bool = True,
             max_block_bytes: int = DEFAULT_BLOCK_BYTES) -> Iterator[np.ndarray]:
    """Yield float64 [k, channels] blocks (see the class doc for k). One pass only."""
    if block_frames < 1:
      raise ValueError(f"block_frames must be >= 1, got {block_frames}.")
    self._start("blocks()")
    frames = min(int(block_frames), block_frames_for(self.info, max_block_bytes))
    while True:
      out = np.empty((frames, self.info.channels), dtype=np.float64)
      got = self._fill(out)
      if got == 0:
        return
      block = out if got == frames else out[:got]
      self._accept(block, check_finite)
      yield block
      if got < frames:
        return

  def read_all(self) -> np.ndarray:
    """The whole file as float64 [n, channels] (not bounded in memory)."""
    self._start("read_all()")
    channels = self.info.channels
    expected = self.info.num_frames if self._trust_header() else None
    parts = []
    if expected:
      out = np.empty((expected, channels), dtype=np.float64)
      got = self._fill(out)
      self._accept(out[:got], True)
      if got < expected:  # the header overstated the length
        return out[:got].copy()
      parts.append(out)
    step = block_frames_for(self.info, DEFAULT_BLOCK_BYTES)
    while True:  # no (trusted) frame count, or more data than the header said
      out = np.empty((step, channels), dtype=np.float64)
      got = self._fill(out)
      if got == 0:
        break
      self._accept(out[:got], True)
      parts.append(out[:got])
      if got < step:
        break
    if not parts:
      return np.zeros((0, channels), dtype=np.float64)
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)

  def _trust_header(self) -> bool:
    frames = self.info.num_frames
    if not frames:
      return False
    limit = _TRUSTED_ALLOWANCE_BYTES + _TRUSTED_EXPANSION * (self.size_bytes or 0)
    return frames * self.info.channels * _BYTES_PER_SAMPLE <= limit

  def close(self) -> None:
    self._closer.close()

  def __enter__(self) -> "AudioStream":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


# --------------------------------------------------------------------------------------
# Opening sources.


def _as_decode_error(error: InputError) -> DecodeError:
  if isinstance(error, DecodeError):
    return error
  return DecodeError(str(error), error_type=error.error_type)


def _open_binary(source, stack: contextlib.ExitStack):
  """(seekable file object, display name). Paths/URIs via ``audiobeam.inputs.open_input``."""
  from audiobeam import inputs  # pylint: disable=import-outside-toplevel

  name = _name_of(source)
  if isinstance(source, (str, os.PathLike)):
    try:
      fileobj = stack.enter_context(inputs.open_input(os.fspath(source)))
    except InputError as e:
      raise _as_decode_error(e) from e
    return _ensure_seekable(fileobj, stack, name), name
  return _ensure_seekable(source, stack, name), name


def _ensure_seekable(fileobj, stack: contextlib.ExitStack, name: str):
  seekable = False
  try:
    seekable = bool(fileobj.seekable())
  except (AttributeError, OSError, ValueError):
    seekable = False
  try:
    if seekable:
      # Emptiness from the size, not a read: a read fills a buffered file object's
      # read-ahead, which open_audio's size measurement (a SEEK_END) would then drop.
      start = fileobj.tell()
      try:
        head = fileobj.seek(0, io.SEEK_END) > start
      except (OSError, ValueError):
        head = fileobj.read(1)
      fileobj.seek(start)
    else:
      spool = stack.enter_context(tempfile.TemporaryFile(prefix="audiobeam-"))
      shutil.copyfileobj(fileobj, spool, _SPOOL_CHUNK_BYTES)
      spool.seek(0)
      fileobj = spool
      head = fileobj.read(1)
      fileobj.seek(0)
  except InputError as e:
    raise _as_decode_error(e) from e
  if not head:
    raise DecodeError(f"{name}: file is empty (0 bytes); expected audio data.",
                      error_type="empty_file")
  return fileobj


def check_sample_rate(sample_rate_hz, name: str = "audio") -> int:
  """The rate as an int, or ``DecodeError('invalid_sample_rate')`` outside the sane range."""
  if not MIN_SAMPLE_RATE_HZ <= sample_rate_hz <= MAX_SAMPLE_RATE_HZ:
    raise DecodeError(
        f"{name}: sample rate {sample_rate_hz} Hz; expected {MIN_SAMPLE_RATE_HZ} to "
        f"{MAX_SAMPLE_RATE_HZ} Hz (a corrupt header, or not audio).",
        error_type="invalid_sample_rate")
  return int(sample_rate_hz)


def _check_header(info: AudioInfo, name: str) -> None:
  check_sample_rate(info.sample_rate_hz, name)
  if info.channels <= 0:
    raise AudioContentError(f"{name}: {info.channels} audio channels; expected at least 1.",
                            error_type="no_channels")


def _open_links(source: _Source, name: str, decoder: str, stack: contextlib.ExitStack):
  """(AudioInfo of the whole file, [link decoders])."""
  head = source.fileobj.read(4)
  source.fileobj.seek(source.origin)
  ogg = _ogg_links(source) if head == b"OggS" else [_OggLink(0, None)]
  stops = [link.offset for link in ogg[1:]] + [None]
  links = []
  for index, (part, stop) in enumerate(zip(ogg, stops)):
    label = name if len(ogg) == 1 else f"{name} (chained Ogg link {index + 1} of {len(ogg)})"
    window = _Window(source, part.offset, stop, name=name)
    link = _open_link(window, label, decoder, stack, part.final_granule)
    _check_header(link.info, label)
    if links and (link.info.sample_rate_hz, link.info.channels) != (
        links[0].info.sample_rate_hz, links[0].info.channels):
      first = links[0].info
      raise DecodeError(
          f"{label}: a chained Ogg file whose links differ in format ({first.sample_rate_hz} "
          f"Hz x {first.channels} channels, then {link.info.sample_rate_hz} Hz x "
          f"{link.info.channels}); expected one sample rate and channel count. Split it "
          "into one file per link, or re-encode it as one stream.",
          error_type="format_changes_mid_stream")
    links.append(link)
  info = links[0].info
  if len(links) > 1:
    counts = [link.info.num_frames for link in links]
    info = dataclasses.replace(
        info, num_frames=sum(counts) if all(counts) else None, chained_links=len(links))
  return info, links


def open_audio(source: Source, *, decoder: str = "auto") -> AudioStream:
  """Open an audio file for streamed decoding. Use as ``with open_audio(src) as s:``.

  ``source``: local path, ``file://`` / ``gs://`` / ``s3://`` URI (via
  ``audiobeam.inputs.open_input``), or a binary file object. ``decoder``: ``"auto"``
  (libsndfile, then FFmpeg), ``"soundfile"`` or ``"pyav"`` (only that one). Raises
  ``DecodeError`` / ``AudioContentError`` (see the module docstring for ``error_type``
  values) and ``audiobeam.inputs.StorageDownError``.
  """
  if decoder not in DECODERS:
    raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}.")
  stack = contextlib.ExitStack()
  try:
    fileobj, name = _open_binary(source, stack)
    shared = _Source(fileobj)
    size_bytes = shared.size_bytes()
    fileobj.seek(shared.origin)
    shared.position = shared.origin
    info, links = _open_links(shared, name, decoder, stack)
    return AudioStream(info, name, stack, links, size_bytes)
  except (AudiobeamError, MemoryError, OSError):  # OSError: the source's own read error
    stack.close()
    raise
  except Exception as e:  # Decoder bindings raise many types on hostile bytes.
    stack.close()
    raise DecodeError(f"{_name_of(source)}: could not open as audio ({type(e).__name__}: {e}).",
                      error_type="unsupported_format") from e
  except BaseException:
    stack.close()
    raise


def decode_audio(source: Source, *, decoder: str = "auto") -> tuple[np.ndarray, int]:
  """Decode a whole file: (samples float64 [n, channels], sample_rate_hz).

  Holds the whole signal in memory; use ``open_audio(...).blocks()`` for long files.
  Samples are bit-identical to the concatenated ``blocks()``.
  """
  with open_audio(source, decoder=decoder) as stream:
    return stream.read_all(), stream.info.sample_rate_hz


def to_mono(samples: np.ndarray) -> np.ndarray:
  """Mix [n, channels] (or [n]) to mono [n] float64 by the mean over channels.

  Float64 input is not copied (only the [n] result is allocated), so mixing a block of
  many channels adds ``n * 8`` bytes, not another block.
  """
  samples = np.asarray(samples, dtype=np.float64)
  if samples.ndim == 1:
    return samples
  if samples.ndim != 2:
    raise ValueError(f"expected samples of shape [n] or [n, channels], got {samples.shape}.")
  if samples.shape[1] == 0:
    raise AudioContentError("audio has 0 channels; expected at least 1.", error_type="no_channels")
  if samples.shape[1] == 1:
    return samples[:, 0].copy()
  if samples.shape[1] == 2:
    # Bit-identical to ``mean(axis=1)`` (one addition, then an exact halving), ~6x
    # faster: numpy's reduction over a length-2 axis costs more than the arithmetic.
    mono = samples[:, 0] + samples[:, 1]
    mono *= 0.5
    return mono
  return samples.mean(axis=1)
