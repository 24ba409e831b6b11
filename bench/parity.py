"""Parity of our pipeline's ``frames/`` Parquet output against the baseline's arrays.

The numerical contract (issue 2): raw embeddings max |diff| <= 1e-4 and >= 99.9% of
uint8 values identical, frame for frame (matched on ``uri`` + ``frame_index``); every
baseline frame must be present in our output and nothing extra.
"""

from __future__ import annotations

import dataclasses
import glob
import os

import numpy as np

__all__ = ["RAW_TOLERANCE", "UINT8_MIN_IDENTICAL", "Parity", "read_frames", "compare"]

RAW_TOLERANCE = 1e-4
UINT8_MIN_IDENTICAL = 0.999


@dataclasses.dataclass
class Parity:
  files: int
  frames: int
  missing_frames: int        # In the baseline, not in ours.
  extra_frames: int          # In ours, not in the baseline.
  raw_max_abs_diff: float
  uint8_identical_fraction: float
  uint8_max_abs_diff: int

  @property
  def ok(self) -> bool:
    return (self.missing_frames == 0 and self.extra_frames == 0 and self.frames > 0
            and self.raw_max_abs_diff <= RAW_TOLERANCE
            and self.uint8_identical_fraction >= UINT8_MIN_IDENTICAL)

  def as_dict(self) -> dict:
    return {**dataclasses.asdict(self), "ok": self.ok, "raw_tolerance": RAW_TOLERANCE,
            "uint8_min_identical": UINT8_MIN_IDENTICAL}


def _key(uri: str) -> str:
  """Local paths as absolute normalized paths; other URIs as they are."""
  if "://" in uri and not uri.startswith("file://"):
    return uri
  return os.path.normpath(os.path.abspath(uri.removeprefix("file://")))


def read_frames(output_dir: str) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """``<output_dir>/vggish/frames/*.parquet`` -> {uri: (frame_index [N], raw f32 [N,128],
  u8 [N,128])}, sorted by frame_index."""
  import pyarrow.parquet as pq

  paths = sorted(p for p in glob.glob(os.path.join(output_dir, "vggish", "frames", "**", "*"),
                                      recursive=True)
                 if os.path.isfile(p) and not os.path.basename(p).startswith((".", "_")))
  if not paths:
    return {}
  columns = ["uri", "frame_index", "raw_embedding", "audio_embedding"]
  tables = [pq.read_table(p, columns=columns) for p in paths]
  uris = np.concatenate([t.column("uri").to_numpy(zero_copy_only=False) for t in tables])
  index = np.concatenate([t.column("frame_index").to_numpy() for t in tables])

  def matrix(name, dtype):
    parts = []
    for t in tables:
      flat = t.column(name).combine_chunks().flatten().to_numpy(zero_copy_only=False)
      parts.append(np.asarray(flat, dtype=dtype).reshape(-1, 128))
    return np.concatenate(parts)

  raw, quantized = matrix("raw_embedding", np.float32), matrix("audio_embedding", np.uint8)
  out = {}
  order = np.lexsort((index, uris))
  uris, index, raw, quantized = uris[order], index[order], raw[order], quantized[order]
  boundaries = np.flatnonzero(uris[1:] != uris[:-1]) + 1
  for lo, hi in zip(np.concatenate([[0], boundaries]), np.concatenate([boundaries, [len(uris)]])):
    if hi > lo:
      out[_key(str(uris[lo]))] = (index[lo:hi], raw[lo:hi], quantized[lo:hi])
  return out


def compare(baseline: dict[str, tuple[np.ndarray, np.ndarray]],
            ours: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Parity:
  """baseline {path: (raw [N,128], u8 [N,128])} vs ``read_frames`` output."""
  missing = extra = frames = 0
  max_raw = 0.0
  max_u8 = 0
  identical = total = 0
  baseline = {_key(k): v for k, v in baseline.items()}
  for uri, (raw_a, u8_a) in baseline.items():
    frame_index, raw_b, u8_b = ours.get(uri, (np.zeros(0, np.int64), None, None))
    expected = np.arange(raw_a.shape[0])
    common = np.intersect1d(expected, frame_index)
    missing += expected.size - common.size
    extra += frame_index.size - common.size
    if common.size == 0:
      continue
    pos = np.searchsorted(frame_index, common)
    a, b = raw_a[common].astype(np.float64), raw_b[pos].astype(np.float64)
    max_raw = max(max_raw, float(np.max(np.abs(a - b))))
    qa, qb = u8_a[common].astype(np.int16), u8_b[pos].astype(np.int16)
    max_u8 = max(max_u8, int(np.max(np.abs(qa - qb))))
    identical += int(np.count_nonzero(qa == qb))
    total += qa.size
    frames += common.size
  for uri, (frame_index, _, _) in ours.items():
    if uri not in baseline:
      extra += frame_index.size
  return Parity(files=len(baseline), frames=frames, missing_frames=missing, extra_frames=extra,
                raw_max_abs_diff=max_raw,
                uint8_identical_fraction=identical / total if total else 0.0,
                uint8_max_abs_diff=max_u8)
