"""Test-only oracle: torchaudio's ``compliance/kaldi.py``, without installing torchaudio.

AST's features are ``torchaudio.compliance.kaldi.fbank``. torchaudio's PyPI wheel is a
CUDA build that fails to import next to the CPU torch of our venv (and then breaks
``from transformers import ASTFeatureExtractor``), so it is never installed. Its
``compliance/kaldi.py`` is pure torch: we download the wheel without installing it
(``pip download --no-deps --only-binary=:all: torchaudio==VERSION``), extract that one
file into ``<repo>/.cache/test-oracles/torchaudio-VERSION/kaldi.py`` (or
``$AUDIOBEAM_TEST_ORACLE_DIR``) and load it by path. torchaudio 2.11.1 is the newest
release (there is none for torch 2.13 yet); the file is unchanged in substance across
releases and needs only torch.

``make venv`` fetches it (``python tests/kaldi_oracle.py``); a test session fetches it on
first use if it is missing; tests skip (saying why) only when it cannot be obtained
(no network to PyPI and no cached copy).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import types
import zipfile
from pathlib import Path

__all__ = ["TORCHAUDIO_VERSION", "ORACLE_DIR_ENV", "oracle_path", "fetch", "load_kaldi",
           "kaldi_or_skip"]

TORCHAUDIO_VERSION = "2.11.1"
ORACLE_DIR_ENV = "AUDIOBEAM_TEST_ORACLE_DIR"
_MEMBER = "torchaudio/compliance/kaldi.py"
_REPO = Path(__file__).resolve().parents[1]
_PIP_TIMEOUT_SECONDS = 180


def oracle_path() -> Path:
  """Where the extracted kaldi.py lives (whether or not it is there yet)."""
  base = Path(os.environ.get(ORACLE_DIR_ENV) or _REPO / ".cache" / "test-oracles")
  return base / f"torchaudio-{TORCHAUDIO_VERSION}" / "kaldi.py"


def fetch(python: str = sys.executable) -> Path:
  """Downloads the torchaudio wheel (not installed) and extracts kaldi.py; returns its path.

  Raises RuntimeError with pip's message when the download fails.
  """
  target = oracle_path()
  if target.is_file():
    return target
  target.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
    command = [python, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               f"torchaudio=={TORCHAUDIO_VERSION}", "-d", tmp]
    try:
      result = subprocess.run(command, capture_output=True, text=True,
                              timeout=_PIP_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
      raise RuntimeError(f"`{' '.join(command)}` took over {_PIP_TIMEOUT_SECONDS} s") from None
    wheels = sorted(Path(tmp).glob("torchaudio-*.whl"))
    if result.returncode != 0 or not wheels:
      raise RuntimeError(f"`{' '.join(command)}` failed: {result.stderr.strip()[-500:]}")
    with zipfile.ZipFile(wheels[0]) as wheel:
      source = wheel.read(_MEMBER)
    staged = Path(tmp) / "kaldi.py"
    staged.write_bytes(source)
    os.replace(staged, target)
  return target


def load_kaldi(path: Path | None = None) -> types.ModuleType:
  """The oracle module (``fbank``, ``get_mel_banks``...) loaded by path.

  kaldi.py imports ``torchaudio`` at top level (only its MFCC uses it); a bare stand-in
  module is put in ``sys.modules`` while it loads and removed right after, so that
  transformers never sees a fake torchaudio.
  """
  path = Path(path or oracle_path())
  spec = importlib.util.spec_from_file_location("_kaldi_oracle", path)
  module = importlib.util.module_from_spec(spec)
  had_torchaudio = "torchaudio" in sys.modules
  if not had_torchaudio:
    sys.modules["torchaudio"] = types.ModuleType("torchaudio")
  try:
    spec.loader.exec_module(module)
  finally:
    if not had_torchaudio:
      del sys.modules["torchaudio"]
  return module


def kaldi_or_skip() -> types.ModuleType:
  """The oracle that set-up fetched (tests never download); ``pytest.skip`` with the reason
  when it is not there."""
  import pytest

  path = oracle_path()
  if not path.is_file():
    pytest.skip(f"torchaudio's kaldi.py oracle is not at {path}; run `python "
                "tests/kaldi_oracle.py` with access to PyPI (make venv does this)")
  return load_kaldi(path)


if __name__ == "__main__":
  print(fetch())
