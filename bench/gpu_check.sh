#!/usr/bin/env bash
# One unattended GPU check (bench/gpu_check.py) on a borrowed GPU machine; see bench/README.md.
#
#   bash bench/gpu_check.sh [extra gpu_check flags]      # from the repository root or anywhere
#
# The machine has Python, PyTorch (CUDA), numpy, but not necessarily soundfile, soxr,
# resampy (its kaiser_best filter table), cffi or PyAV: whatever of them does not import
# is unpacked from the wheels carried in .whl/ into a private folder on PYTHONPATH
# (nothing is installed into the machine's Python). Writes $OUT/gpu_check.json,
# $OUT/gpu_check.log and $OUT/nvidia-smi.txt; the exit status is gpu_check's.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
OUT="${OUT:-$PWD/bench/results}"
mkdir -p "$OUT"
DEPS="${TMPDIR:-/tmp}/audiobeam-gpu-deps"
mkdir -p "$DEPS"
export PYTHONPATH="$PWD:$DEPS${PYTHONPATH:+:$PYTHONPATH}"
export OUT

# module to try importing : wheel name prefix in .whl/ (resampy is only located, not
# imported: importing it would import numba, which the front end does not need).
for pair in cffi:cffi pycparser:pycparser soundfile:soundfile soxr:soxr resampy:resampy av:av; do
  module="${pair%%:*}"; wheel_prefix="${pair##*:}"
  if [ "$module" = resampy ]; then
    check="import importlib.util, sys; sys.exit(importlib.util.find_spec('resampy') is None)"
  else
    check="import $module"
  fi
  if "$PY" -c "$check" >/dev/null 2>&1; then
    echo "gpu_check.sh: $module: importable already"
    continue
  fi
  wheel="$(ls .whl/"$wheel_prefix"-*.whl 2>/dev/null | head -n 1)"
  if [ -z "$wheel" ]; then
    echo "gpu_check.sh: $module: not importable and no .whl/$wheel_prefix-*.whl carried" >&2
    continue
  fi
  "$PY" -m zipfile -e "$wheel" "$DEPS" && echo "gpu_check.sh: $module: unpacked $wheel"
done

nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || echo "gpu_check.sh: nvidia-smi failed" >&2
"$PY" -m bench.gpu_check --device cuda --output "$OUT/gpu_check.json" "$@" 2>&1 \
  | tee "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
