"""Sample-rate conversion to the VGGish rate: resampy's kaiser_best, exactly and fast.

Google's reference front end resamples with ``resampy.resample(x, sr, 16000)``, i.e.
resampy's default ``kaiser_best`` filter (a Kaiser-windowed sinc, 50 zero crossings,
2**13 table entries per crossing). Three methods are offered (``RESAMPLERS``):

``"kaiser_best"`` (default)
  Our own polyphase evaluation of resampy 0.4.3's ``resample`` arithmetic with the
  same filter table (read from resampy's packaged ``kaiser_best.npz``). For output
  sample ``t`` resampy computes, in float64, ``T = t * (1 / (sr_out / sr_in))``,
  ``n = int(T)``, ``frac = scale * (T - n)`` and, per wing, a table ``offset`` and a
  linear-interpolation factor ``eta``; tap ``i`` weighs ``win[offset + i * step] +
  eta * delta[offset + i * step]``. For a rational ratio ``P/Q`` (reduced) the
  offsets repeat with period ``P`` outputs / ``Q`` inputs, so the taps of each phase
  are fixed: we lay ``B`` periods side by side as one "row" and evaluate every row as
  dense matrix products of strided input views with per-phase tap matrices (taps at
  the phase's nominal ``eta``, plus one ``delta`` column), then correct each sample by
  the difference between the ``eta`` resampy computes for it and the nominal one
  (float time drifts with ``t``; uncorrected, outputs 3 hours in would be off by
  ~2e-8). The correction is that small, so its product is taken in float32, which costs
  about half of the float64 one: measured against resampy, max |diff| 1.3e-15 on a
  minute of music (the same with a float64 correction) and 2.2e-15 / 3.8e-15 one / three
  hours into a signal (1.1e-15 / 1.2e-15 with float64). Samples whose float time lands on
  a different table offset than their phase's are recomputed one by one with their own
  taps. Result: equal to ``resampy.resample`` up to rounding (~1e-15), including both
  edges (input outside the signal counts as zero) and the output length
  ``int(n * sr_out / sr_in)``.

``"resampy"``
  Calls resampy itself (numba). Slow; the reference.

``"soxr_hq"``
  libsoxr's HQ preset via ``python-soxr`` (what ``librosa.resample(...,
  res_type="soxr_hq")``, librosa's default, calls). Much faster, but a different
  filter: not equal to the reference (see the README for the measured distance).

Output length (``LENGTH_RULES``): by default (``length_rule="resampy"``) every method
returns resampy's ``int(n * sr_out / sr_in)`` samples. ``length_rule="librosa"`` gives
what ``librosa.resample(y, orig_sr=sr_in, target_sr=sr_out, res_type=...)`` returns:
the method's own samples cut or zero-padded (librosa's ``fix_length``) to
``ceil(n * (sr_out / sr_in))``; with "soxr_hq" that is librosa's ``soxr_hq`` output
bit for bit (CLAP's reference loading resamples so).

``StreamingResampler`` converts a signal block by block in bounded memory; the
concatenated output equals ``resample`` of the whole signal (to rounding for
"kaiser_best", bit for bit for "resampy" and for "soxr_hq": libsoxr's stream API gives
the samples of its one-shot call whatever the block sizes, measured on 12 rate pairs
with block sizes from 1 to 200k samples).

The filter and resampling scheme are resampy's (ISC licence, Brian McFee et al.); the
code here is written for this project.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import math
import os

import numpy as np

from audiobeam.errors import ConfigError

__all__ = [
    "RESAMPLERS",
    "DEFAULT_RESAMPLER",
    "resample",
    "resampled_length",
    "LENGTH_RULES",
    "StreamingResampler",
]

RESAMPLERS = ("kaiser_best", "resampy", "soxr_hq")
DEFAULT_RESAMPLER = "kaiser_best"
LENGTH_RULES = ("resampy", "librosa")

# Outputs evaluated per inner step. Each step makes a dozen per-sample arrays (float
# times, offsets, corrections). At 2**16 samples (512 KB each) they are reused from the
# heap and stay near the caches; at 2**18 (2 MB each) resampling 60 s of 44.1 kHz took
# user 0.08-0.10 s + system 0.04-0.07 s (~19,000 page faults) against user 0.06-0.07 s
# + system 0-0.01 s (~1,600) at 2**16 (one BLAS thread, 3 paired runs).
_OUTPUTS_PER_STEP = 1 << 16
# Output columns per tap matrix: wider groups waste flops on zero taps, narrower ones
# make more, smaller matrix products.
_COLUMNS_PER_GROUP = 32
# Rate pairs whose polyphase row would exceed this many outputs (e.g. 44099 Hz -> 16 kHz,
# 16000 phases) are evaluated with resampy's own kernel instead: same values, slower...
_MAX_ROW_OUTPUTS = 8192
# ... and so are rate pairs whose tap matrices would take more memory than this.
_MAX_PLAN_BYTES = 32 << 20
# Extra input samples kept on each side of a row window, for samples whose float time
# falls one input sample away from their phase's nominal position.
_MARGIN_SAMPLES = 2


def _check_method(method: str) -> None:
  if method not in RESAMPLERS:
    raise ConfigError(
        f"unknown resampler {method!r}; expected one of {', '.join(RESAMPLERS)} "
        f"({DEFAULT_RESAMPLER!r} reproduces the reference exactly).")


def _check_rates(sr_in_hz, sr_out_hz) -> tuple[int, int]:
  rates = []
  for name, rate in (("sr_in_hz", sr_in_hz), ("sr_out_hz", sr_out_hz)):
    if isinstance(rate, (bool, np.bool_)) or not float(rate).is_integer() or rate <= 0:
      raise ConfigError(f"{name} must be a positive whole number of Hz, got {rate!r}.")
    rates.append(int(rate))
  _, precision = _kaiser_best_table()
  if rates[1] * precision < rates[0]:
    raise ConfigError(
        f"cannot downsample {rates[0]} Hz to {rates[1]} Hz: the ratio is below 1/{precision}, "
        "finer than the kaiser_best filter table resolves.")
  return rates[0], rates[1]


def _check_length_rule(length_rule: str) -> None:
  if length_rule not in LENGTH_RULES:
    raise ConfigError(f"unknown length_rule {length_rule!r}; expected one of "
                      f"{', '.join(LENGTH_RULES)}.")


def resampled_length(num_samples: int, sr_in_hz: int, sr_out_hz: int,
                     length_rule: str = "resampy") -> int:
  """Output length for ``num_samples`` input samples.

  "resampy" (every method's default): ``int(n * float(sr_out) / float(sr_in))``,
  resampy's exact float expression (it may differ by one from the exact rational floor
  for some lengths), so that every method returns the same length. "librosa":
  ``int(ceil(n * (float(sr_out) / sr_in)))``, librosa's expression.
  """
  _check_length_rule(length_rule)
  if sr_in_hz == sr_out_hz:
    return int(num_samples)
  if length_rule == "librosa":
    return int(np.ceil(num_samples * (float(sr_out_hz) / sr_in_hz)))
  return int(num_samples * float(sr_out_hz) / float(sr_in_hz))


# --------------------------------------------------------------------------------------
# The kaiser_best filter table.


def _resampy_data_path(filename: str) -> str:
  """Path of a file in resampy's package data, found without importing resampy (numba)."""
  spec = importlib.util.find_spec("resampy")
  if spec is None or not spec.submodule_search_locations:
    raise ConfigError(
        "resampler 'kaiser_best' reads its filter table from the resampy package, which "
        "is not installed; install it with `pip install resampy==0.4.3`.")
  return os.path.join(list(spec.submodule_search_locations)[0], "data", filename)


@functools.lru_cache(maxsize=1)
def _kaiser_best_table() -> tuple[np.ndarray, int]:
  """resampy's kaiser_best right half-window [409601] float64 and its precision (8192)."""
  with np.load(_resampy_data_path("kaiser_best.npz"), allow_pickle=False) as data:
    window = np.asarray(data["half_window"], dtype=np.float64)
    precision = int(data["precision"])
  window.setflags(write=False)
  return window, precision


# --------------------------------------------------------------------------------------
# Per-sample time arithmetic, as resampy's numba loop does it.


@dataclasses.dataclass(frozen=True)
class _Timing:
  """resampy's per-output-sample quantities, vectorised over absolute output indices."""

  time_increment: float
  scale: float
  num_table: int

  def of(self, t_out: np.ndarray):
    """For int64 output indices [k]: n, left offset/eta, right offset/eta (each [k])."""
    # resampy's expressions, in the same order, computed in place (these arrays are
    # per output sample: fewer temporaries is measurably faster).
    time_register = t_out.astype(np.float64)
    time_register *= self.time_increment
    n = time_register.astype(np.int64)                 # int(): truncation, T >= 0
    frac = np.subtract(time_register, n, out=time_register)
    frac *= self.scale                                 # scale * (T - n)
    eta_left = frac * self.num_table                   # index_frac, left wing
    offset_left = eta_left.astype(np.int64)
    eta_left -= offset_left
    eta_right = np.subtract(self.scale, frac, out=frac)
    eta_right *= self.num_table                        # index_frac, right wing
    offset_right = eta_right.astype(np.int64)
    eta_right -= offset_right
    return n, offset_left, eta_left, offset_right, eta_right


def _resampy_setup(sr_in_hz: int, sr_out_hz: int):
  """The filter, deltas and timing exactly as ``resampy.resample`` prepares them."""
  window, precision = _kaiser_best_table()
  sample_ratio = float(sr_out_hz) / sr_in_hz
  if sample_ratio < 1:
    window = sample_ratio * window
  delta = np.diff(window, append=window[-1])
  scale = min(1.0, sample_ratio)
  timing = _Timing(time_increment=1.0 / sample_ratio, scale=scale, num_table=precision)
  index_step = int(scale * precision)
  return window, delta, timing, index_step


def _take(x: np.ndarray, x_start: int, num_in: int | None, lo: int, hi: int) -> np.ndarray:
  """Input samples [lo, hi) (absolute indices) from ``x`` holding [x_start, x_start+len).

  Samples before 0 or at/after ``num_in`` (the final input length, when known) are
  zeros, as resampy treats them. Returns a view when no padding is needed.
  """
  x_end = x_start + x.shape[0]
  real_lo = max(lo, 0)
  real_hi = hi if num_in is None else min(hi, num_in)
  if real_lo < x_start or (real_hi > x_end and real_hi > real_lo):
    raise RuntimeError(  # An internal bookkeeping bug, never a user error.
        f"resampler needs input samples [{real_lo}, {real_hi}) but holds "
        f"[{x_start}, {x_end}).")
  if real_lo == lo and real_hi == hi:
    return x[lo - x_start:hi - x_start]
  out = np.zeros(hi - lo, dtype=np.float64)
  if real_hi > real_lo:
    out[real_lo - lo:real_hi - lo] = x[real_lo - x_start:real_hi - x_start]
  return out


# --------------------------------------------------------------------------------------
# kaiser_best: polyphase evaluation.


class _KaiserBest:
  """Polyphase plan for one rate pair. See the module docstring for the scheme."""

  def __init__(self, sr_in_hz: int, sr_out_hz: int):
    self.window, self.delta, self.timing, self.step = _resampy_setup(sr_in_hz, sr_out_hz)
    self.num_window = self.window.shape[0]
    g = math.gcd(sr_in_hz, sr_out_hz)
    p, q = sr_out_hz // g, sr_in_hz // g           # p outputs per q inputs
    self.max_wing = self.num_window // self.step + 1
    # Periods per row: make a row at least as long as one column group's window so
    # that every row view is a BLAS-friendly strided matrix (row stride >= width).
    need = 2 * self.max_wing + 2 * _MARGIN_SAMPLES + _COLUMNS_PER_GROUP * q / p
    self.periods = max(1, int(math.ceil(need / q)))
    self.row_outputs = p * self.periods
    self.row_inputs = q * self.periods
    # Nominal per-column quantities, from the (exact) float time of t < row_outputs.
    cols = np.arange(self.row_outputs, dtype=np.int64)
    (self.col_n, self.col_offset_left, self.col_eta_left, self.col_offset_right,
     self.col_eta_right) = self.timing.of(cols)
    self.groups = []
    for c0 in range(0, self.row_outputs, _COLUMNS_PER_GROUP):
      self.groups.append(self._group(c0, min(c0 + _COLUMNS_PER_GROUP, self.row_outputs)))
    self.lo = min(g[2] for g in self.groups) - _MARGIN_SAMPLES
    self.hi = max(g[2] + g[3].shape[0] for g in self.groups) + _MARGIN_SAMPLES

  def _taps(self, offset_left: int, offset_right: int):
    """Left and right tap indices into the table for one pair of offsets."""
    left = offset_left + self.step * np.arange((self.num_window - offset_left) // self.step)
    right = offset_right + self.step * np.arange((self.num_window - offset_right) // self.step)
    return left, right

  def _group(self, c0: int, c1: int):
    """(c0, c1, start, taps [width, count] float64, corrections [width, count] float32).

    Column ``k`` of ``taps`` holds the taps at the column's nominal ``eta`` (``win + eta
    * delta`` for both wings); column ``k`` of ``corrections`` holds ``delta_left -
    delta_right``, which times the sample's deviation from the nominal ``eta`` gives
    resampy's per-sample weights. (The two wings' ``eta`` deviations are equal and
    opposite up to one rounding of ``scale * num_table``, ~1e-12, so one correction
    column serves both.)
    """
    spans = []
    for s in range(c0, c1):
      left, right = self._taps(int(self.col_offset_left[s]), int(self.col_offset_right[s]))
      n = int(self.col_n[s])
      spans.append((n - left.shape[0] + 1, n + right.shape[0] + 1, left, right, n, s))
    start = min(sp[0] for sp in spans)
    stop = max(sp[1] for sp in spans)
    count = c1 - c0
    weights = np.zeros((stop - start, 2 * count), dtype=np.float64)
    for k, (_, _, left, right, n, s) in enumerate(spans):
      rows_left = n - np.arange(left.shape[0]) - start
      rows_right = n + 1 + np.arange(right.shape[0]) - start
      weights[rows_left, k] = self.window[left] + self.col_eta_left[s] * self.delta[left]
      weights[rows_right, k] = self.window[right] + self.col_eta_right[s] * self.delta[right]
      weights[rows_left, count + k] = self.delta[left]
      weights[rows_right, count + k] = -self.delta[right]
    return (c0, c1, start, np.ascontiguousarray(weights[:, :count]),
            np.ascontiguousarray(weights[:, count:], dtype=np.float32))

  # --- evaluation -----------------------------------------------------------------
  def input_needed(self, t0: int, t1: int) -> tuple[int, int]:
    """Absolute input range [lo, hi) needed for outputs [t0, t1)."""
    r0, r1 = t0 // self.row_outputs, -(-t1 // self.row_outputs)
    return r0 * self.row_inputs + self.lo, (r1 - 1) * self.row_inputs + self.hi

  def outputs_ready(self, num_in: int) -> int:
    """Outputs [0, t) computable from the first ``num_in`` inputs (signal not ended)."""
    rows = (num_in - self.hi) // self.row_inputs + 1
    return max(rows, 0) * self.row_outputs

  def evaluate(self, x: np.ndarray, x_start: int, num_in: int | None, t0: int,
               t1: int) -> np.ndarray:
    """Outputs [t0, t1) from inputs ``x`` (absolute start ``x_start``) -> [t1 - t0]."""
    out = np.empty(t1 - t0, dtype=np.float64)
    rows_per_step = max(1, _OUTPUTS_PER_STEP // self.row_outputs)
    r_first, r_last = t0 // self.row_outputs, -(-t1 // self.row_outputs)
    for r0 in range(r_first, r_last, rows_per_step):
      r1 = min(r0 + rows_per_step, r_last)
      lo, hi = r0 * self.row_inputs + self.lo, (r1 - 1) * self.row_inputs + self.hi
      seg = _take(x, x_start, num_in, lo, hi)
      a, b = max(t0, r0 * self.row_outputs), min(t1, r1 * self.row_outputs)
      if (a, b) == (r0 * self.row_outputs, r1 * self.row_outputs):  # Whole rows: in place.
        self._rows(seg, lo, r0, r1, out=out[a - t0:b - t0])
      else:
        y = self._rows(seg, lo, r0, r1)
        out[a - t0:b - t0] = y[a - r0 * self.row_outputs:b - r0 * self.row_outputs]
    return out

  def _rows(self, seg: np.ndarray, seg_start: int, r0: int, r1: int,
            out: np.ndarray | None = None) -> np.ndarray:
    """Whole rows [r0, r1) from ``seg`` (absolute start ``seg_start``) -> [rows * P*B],
    written into ``out`` (contiguous float64 [rows * P*B]) when given."""
    num_rows = r1 - r0
    seg = np.ascontiguousarray(seg, dtype=np.float64)
    item = seg.strides[0]
    t = np.arange(r0 * self.row_outputs, r1 * self.row_outputs, dtype=np.int64)
    n, off_l, eta_l, off_r, eta_r = self.timing.of(t)
    shift = eta_l.reshape(num_rows, self.row_outputs) - self.col_eta_left   # [rows, P*B]
    shape = (num_rows, self.row_outputs)
    y = np.empty(shape, dtype=np.float64) if out is None else out.reshape(shape)
    # Exact float times (integer or dyadic ratios: 48k, 32k, 8k, ...) need no correction.
    # Finite samples beyond float32's range (hostile float files) keep a float64 one.
    with np.errstate(over="ignore"):
      low = seg.astype(np.float32) if shift.any() else None
    if low is not None and not np.isfinite(low).all():
      low = seg
    correction = None if low is None else np.empty(y.shape, dtype=low.dtype)
    for c0, c1, start, taps, corrections in self.groups:
      first = r0 * self.row_inputs + start - seg_start
      view = np.lib.stride_tricks.as_strided(
          seg[first:], shape=(num_rows, taps.shape[0]),
          strides=(self.row_inputs * item, item), writeable=False)
      np.matmul(view, taps, out=y[:, c0:c1])                     # [rows, count]
      if low is not None:
        low_view = np.lib.stride_tricks.as_strided(
            low[first:], shape=(num_rows, taps.shape[0]),
            strides=(self.row_inputs * low.itemsize, low.itemsize), writeable=False)
        np.matmul(low_view, corrections.astype(low.dtype, copy=False),
                  out=correction[:, c0:c1])
    if correction is not None:
      shift *= correction
      y += shift
    # Samples whose float time does not land on their column's nominal taps.
    nominal_n = (np.arange(r0, r1, dtype=np.int64)[:, None] * self.row_inputs
                 + self.col_n[None, :])
    odd = n.reshape(y.shape) != nominal_n
    odd |= off_l.reshape(y.shape) != self.col_offset_left
    odd |= off_r.reshape(y.shape) != self.col_offset_right
    y, odd = y.reshape(-1), odd.reshape(-1)
    if odd.any():
      idx = np.flatnonzero(odd)
      y[idx] = self._direct(seg, seg_start, n[idx], off_l[idx], eta_l[idx], off_r[idx],
                            eta_r[idx])
    return y

  def _direct(self, seg, seg_start, n, off_l, eta_l, off_r, eta_r) -> np.ndarray:
    """Samples evaluated each with its own taps (gathered windows), grouped by offsets."""
    out = np.empty(n.shape[0], dtype=np.float64)
    keys = np.stack([off_l, off_r], axis=1)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    for k, (o_l, o_r) in enumerate(unique):
      sel = np.flatnonzero(inverse == k)
      left, right = self._taps(int(o_l), int(o_r))
      rel = np.concatenate([-np.arange(left.shape[0])[::-1], 1 + np.arange(right.shape[0])])
      taps = np.concatenate([left[::-1], right])
      base = self.window[taps]
      d_l = np.where(rel <= 0, self.delta[taps], 0.0)
      d_r = np.where(rel > 0, self.delta[taps], 0.0)
      positions = n[sel, None] + rel[None, :] - seg_start
      if positions.min() < 0 or positions.max() >= seg.shape[0]:
        raise RuntimeError("resampler window outside its input segment (internal bug).")
      windows = seg[positions]
      out[sel] = windows @ base + eta_l[sel] * (windows @ d_l) + eta_r[sel] * (windows @ d_r)
    return out


def _kaiser_plan_size(sr_in_hz: int, sr_out_hz: int) -> tuple[int, float]:
  """(outputs per polyphase row, approx. tap-matrix bytes), mirroring _KaiserBest."""
  g = math.gcd(sr_in_hz, sr_out_hz)
  p, q = sr_out_hz // g, sr_in_hz // g
  window, precision = _kaiser_best_table()
  step = int(min(1.0, float(sr_out_hz) / sr_in_hz) * precision)
  wings = 2 * (window.shape[0] // step + 1) + 2 * _MARGIN_SAMPLES
  row_outputs = p * max(1, int(math.ceil((wings + _COLUMNS_PER_GROUP * q / p) / q)))
  width = wings + (_COLUMNS_PER_GROUP - 1) * q / p
  groups = math.ceil(row_outputs / _COLUMNS_PER_GROUP)
  return row_outputs, groups * width * _COLUMNS_PER_GROUP * (8.0 + 4.0)


def _kaiser_row_outputs(sr_in_hz: int, sr_out_hz: int) -> int:
  return _kaiser_plan_size(sr_in_hz, sr_out_hz)[0]


@functools.lru_cache(maxsize=8)
def _kaiser_plan(sr_in_hz: int, sr_out_hz: int):
  """The polyphase plan, or resampy's own kernel for rate pairs whose plan would be big
  (many phases, or a very long filter when downsampling a lot): same values, slower."""
  row_outputs, nbytes = _kaiser_plan_size(sr_in_hz, sr_out_hz)
  if row_outputs > _MAX_ROW_OUTPUTS or nbytes > _MAX_PLAN_BYTES:
    return _Resampy(sr_in_hz, sr_out_hz)
  return _KaiserBest(sr_in_hz, sr_out_hz)


# --------------------------------------------------------------------------------------
# resampy itself, evaluated on segments with absolute output times.


class _Resampy:
  """Calls resampy's own numba kernel on input segments.

  Output times are computed from absolute output indices exactly as resampy does,
  then shifted by the segment's integer start: ``fl(t * inc) - a`` is exact, so every
  sample sees the same ``n``, offsets and ``eta`` as in a whole-signal call, and a
  segment holding at least one filter half-width of context on each side (or the true
  edge) gives bit-identical outputs. Uses resampy 0.4.3's ``interpn.resample_f_s``.
  """

  def __init__(self, sr_in_hz: int, sr_out_hz: int):
    self.sr_in_hz, self.sr_out_hz = sr_in_hz, sr_out_hz
    self.window, self.delta, self.timing, self.step = _resampy_setup(sr_in_hz, sr_out_hz)
    self.context = self.window.shape[0] // self.step + 1 + _MARGIN_SAMPLES

  def input_needed(self, t0: int, t1: int) -> tuple[int, int]:
    first = int(np.float64(t0) * self.timing.time_increment)
    last = int(np.float64(t1 - 1) * self.timing.time_increment)
    return first - self.context, last + self.context + 1

  def outputs_ready(self, num_in: int) -> int:
    usable = num_in - self.context - 2
    if usable <= 0:
      return 0
    return max(0, int(usable / self.timing.time_increment) - 1)

  def evaluate(self, x, x_start, num_in, t0, t1) -> np.ndarray:
    from resampy import interpn  # numba compiles on first use; only this method needs it.

    lo, hi = self.input_needed(t0, t1)
    lo = max(lo, 0)
    if num_in is not None:
      hi = min(hi, num_in)
    seg = np.ascontiguousarray(x[lo - x_start:hi - x_start], dtype=np.float64)
    if seg.shape[0] != hi - lo:
      raise RuntimeError("resampler segment out of range (internal bug).")
    t_rel = np.arange(t0, t1, dtype=np.int64).astype(np.float64) * self.timing.time_increment - lo
    y = np.zeros(t1 - t0, dtype=np.float64)
    interpn.resample_f_s(seg, t_rel, self.window, self.delta, self.timing.num_table,
                         self.timing.scale, y)
    return y


# --------------------------------------------------------------------------------------
# Public API.


def _as_signal(x) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 1:
    raise ValueError(f"expected a mono signal of shape [n], got shape {x.shape}; "
                     "mix channels to mono first (audiobeam.audio.to_mono).")
  return x.astype(np.float64, copy=False)


def resample(x: np.ndarray, sr_in_hz: int, sr_out_hz: int,
             method: str = DEFAULT_RESAMPLER, *, length_rule: str = "resampy") -> np.ndarray:
  """Resample a mono signal [n] float64 -> [resampled_length(n, ..., length_rule)] float64.

  ``sr_in_hz == sr_out_hz`` returns a copy. A signal too short for one output sample
  gives an empty array (resampy itself raises there). Input must be finite.
  """
  _check_method(method)
  _check_length_rule(length_rule)
  sr_in_hz, sr_out_hz = _check_rates(sr_in_hz, sr_out_hz)
  x = _as_signal(x)
  if sr_in_hz == sr_out_hz:
    return x.copy()
  m = resampled_length(x.shape[0], sr_in_hz, sr_out_hz)
  total = resampled_length(x.shape[0], sr_in_hz, sr_out_hz, length_rule)
  if total < 1:
    return np.zeros(0, dtype=np.float64)
  if method == "soxr_hq":
    import soxr

    return _fit_length(soxr.resample(x, sr_in_hz, sr_out_hz, "HQ"), total)
  if m < 1:
    return np.zeros(total, dtype=np.float64)
  if method == "kaiser_best":
    y = _kaiser_plan(sr_in_hz, sr_out_hz).evaluate(x, 0, x.shape[0], 0, m)
  else:
    import resampy

    y = resampy.resample(x, sr_in_hz, sr_out_hz, filter="kaiser_best")
  return _fit_length(y, total) if total != m else y


def _fit_length(y: np.ndarray, m: int) -> np.ndarray:
  y = np.asarray(y, dtype=np.float64)
  if y.shape[0] >= m:
    return y[:m]
  return np.concatenate([y, np.zeros(m - y.shape[0])])


class StreamingResampler:
  """Resample a mono signal delivered in blocks, in bounded memory.

  ``process(block [k] float64) -> [j] float64`` returns the outputs that are already
  determined; ``flush() -> [j]`` ends the signal and returns the rest. The
  concatenation of all returned arrays has length ``resampled_length(n, sr_in, sr_out,
  length_rule)`` and equals ``resample(whole, sr_in, sr_out, method,
  length_rule=length_rule)``: to rounding (~1e-15) for "kaiser_best", bit for bit for
  "resampy" and "soxr_hq". Memory held: one block plus about one filter half-width of
  input.
  """

  def __init__(self, sr_in_hz: int, sr_out_hz: int, method: str = DEFAULT_RESAMPLER, *,
               length_rule: str = "resampy"):
    _check_method(method)
    _check_length_rule(length_rule)
    self.sr_in_hz, self.sr_out_hz = _check_rates(sr_in_hz, sr_out_hz)
    self.method = method
    self.length_rule = length_rule
    self.num_in = 0          # input samples received
    self.num_out = 0         # output samples returned
    self._flushed = False
    self._buffer = np.zeros(0, dtype=np.float64)
    self._buffer_start = 0   # absolute index of _buffer[0]
    self._backend = None
    self._soxr = None
    if self.sr_in_hz == self.sr_out_hz:
      pass
    elif method == "kaiser_best":
      self._backend = _kaiser_plan(self.sr_in_hz, self.sr_out_hz)
    elif method == "resampy":
      self._backend = _Resampy(self.sr_in_hz, self.sr_out_hz)
    else:
      import soxr

      self._soxr = soxr.ResampleStream(self.sr_in_hz, self.sr_out_hz, 1, dtype="float64",
                                       quality="HQ")

  def process(self, block: np.ndarray) -> np.ndarray:
    """Feed input samples [k]; returns the newly determined outputs [j]."""
    if self._flushed:
      raise RuntimeError("StreamingResampler.process() called after flush().")
    block = _as_signal(block)
    self.num_in += block.shape[0]
    if self.sr_in_hz == self.sr_out_hz:
      return self._emit(block.copy())
    if self._soxr is not None:
      return self._emit_soxr(self._soxr.resample_chunk(block, last=False))
    self._buffer = np.concatenate([self._buffer, block]) if self._buffer.size else block.copy()
    ready = min(self._backend.outputs_ready(self.num_in),
                resampled_length(self.num_in, self.sr_in_hz, self.sr_out_hz))
    return self._compute(ready, num_in=None)

  def flush(self) -> np.ndarray:
    """End of signal: returns the remaining outputs [j]."""
    if self._flushed:
      return np.zeros(0, dtype=np.float64)
    self._flushed = True
    total = resampled_length(self.num_in, self.sr_in_hz, self.sr_out_hz, self.length_rule)
    if self.sr_in_hz == self.sr_out_hz:
      return np.zeros(0, dtype=np.float64)
    if self._soxr is not None:
      return self._emit_soxr(self._soxr.resample_chunk(np.zeros(0), last=True), total=total)
    rest = self._compute(resampled_length(self.num_in, self.sr_in_hz, self.sr_out_hz),
                         num_in=self.num_in)
    if self.num_out < total:  # librosa's fix_length pads the method's output with zeros.
      rest = np.concatenate([rest, self._emit(np.zeros(total - self.num_out))])
    return rest

  def _compute(self, t_end: int, num_in: int | None) -> np.ndarray:
    t0 = self.num_out
    if t_end <= t0:
      return np.zeros(0, dtype=np.float64)
    y = self._backend.evaluate(self._buffer, self._buffer_start, num_in, t0, t_end)
    keep_from = max(self._backend.input_needed(t_end, t_end + 1)[0], self._buffer_start)
    if keep_from > self._buffer_start:
      self._buffer = self._buffer[keep_from - self._buffer_start:].copy()
      self._buffer_start = keep_from
    return self._emit(y)

  def _emit(self, y: np.ndarray) -> np.ndarray:
    self.num_out += y.shape[0]
    return y

  def _emit_soxr(self, y: np.ndarray, total: int | None = None) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if total is None:
      # Never return more than the final length can be (known lower bound so far).
      return self._emit(y)
    return self._emit(_fit_length(y, max(total - self.num_out, 0)))
