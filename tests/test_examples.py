"""The bundled example clips (examples/audio/) decode as their manifest says.

The clips and ``examples/MANIFEST.json`` are written by ``examples/make_examples.py``
(``make examples``); these tests read the committed files, and regenerate them in a
temporary folder to check the script still reproduces them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import pathlib
import sys

import numpy as np
import pytest

__all__: list[str] = []

_REPO = pathlib.Path(__file__).resolve().parents[1]
_EXAMPLES = _REPO / "examples"
_AUDIO = _EXAMPLES / "audio"
_MANIFEST_PATH = _EXAMPLES / "MANIFEST.json"
_MANIFEST = json.loads(_MANIFEST_PATH.read_text())
_ENTRIES = {entry["file"]: entry for entry in _MANIFEST["files"]}
_MAX_FOLDER_BYTES = 1_500_000
# Lossy decoders may add codec padding (AAC: up to one 1024-sample frame).
_LOSSY_DURATION_TOLERANCE_SECONDS = 0.05


def _load_generator():
  """examples/make_examples.py as a module (it is a script, not a package)."""
  name = "audiobeam_examples_make_examples"
  if name not in sys.modules:
    spec = importlib.util.spec_from_file_location(name, _EXAMPLES / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolves the module by name
    spec.loader.exec_module(module)
  return sys.modules[name]


@pytest.fixture(scope="module")
def generator():
  return _load_generator()


@pytest.fixture(scope="module")
def regenerated(generator, tmp_path_factory):
  """The examples written afresh by the script: (examples folder, manifest)."""
  out_dir = tmp_path_factory.mktemp("examples")
  return out_dir, generator.write_examples(out_dir)


def test_manifest_lists_exactly_the_files_in_the_audio_folder():
  # `make demo` embeds examples/audio/*: anything else there would be an error row.
  assert _MANIFEST["audio_dir"] == _AUDIO.name
  assert sorted(p.name for p in _AUDIO.iterdir()) == sorted(_ENTRIES)


def test_examples_cover_the_formats_rates_and_outcomes_the_readme_promises():
  containers = {e["container"] for e in _ENTRIES.values()}
  assert {"WAV", "FLAC", "OGG", "MP3", "M4A"} <= containers
  assert {1, 2} == {e["channels"] for e in _ENTRIES.values()}
  assert len({e["sample_rate_hz"] for e in _ENTRIES.values()}) >= 5
  too_short = [e["file"] for e in _ENTRIES.values() if e["expected"]["table"] == "errors"]
  assert too_short == ["short_16k_mono.wav"]
  assert _ENTRIES["short_16k_mono.wav"]["expected"]["error_type"] == "too_short"


def test_examples_folder_stays_small():
  total_bytes = sum(p.stat().st_size for p in _AUDIO.iterdir())
  assert total_bytes < _MAX_FOLDER_BYTES


@pytest.mark.parametrize("name", sorted(_ENTRIES))
def test_committed_bytes_match_manifest(name):
  raw = (_AUDIO / name).read_bytes()
  assert len(raw) == _ENTRIES[name]["bytes"]
  assert hashlib.sha256(raw).hexdigest() == _ENTRIES[name]["sha256"]


@pytest.mark.parametrize("name", sorted(_ENTRIES))
def test_example_decodes_with_manifest_rate_channels_and_duration(generator, name):
  entry = _ENTRIES[name]
  samples, rate_hz = generator.decode(_AUDIO / name, entry["reader"])

  assert rate_hz == entry["sample_rate_hz"]
  assert samples.ndim == 2 and samples.shape[1] == entry["channels"]
  assert samples.shape[0] == entry["num_samples_decoded"]
  duration_seconds = samples.shape[0] / rate_hz
  tolerance = _LOSSY_DURATION_TOLERANCE_SECONDS if entry["lossy"] else 0.0
  assert abs(duration_seconds - entry["duration_seconds"]) <= tolerance
  assert np.all(np.isfinite(samples))
  peak = float(np.max(np.abs(samples)))
  assert 0.05 < peak <= 1.0, f"{name}: peak {peak}, expected audible and unclipped"
  # Every channel carries signal (stereo files are not duplicated silence).
  assert np.all(np.sqrt(np.mean(samples.astype(np.float64) ** 2, axis=0)) > 1e-3)


@pytest.mark.parametrize("name", sorted(_ENTRIES))
def test_expected_frames_follow_the_vggish_patch_arithmetic(name):
  from vggish.params import DEFAULT_PARAMS  # pylint: disable=import-outside-toplevel

  entry = _ENTRIES[name]
  samples_16k = int(entry["num_samples_decoded"] * 16000 / entry["sample_rate_hz"])
  assert entry["expected"]["num_frames"] == DEFAULT_PARAMS.num_patches(samples_16k)
  # Lengths sit well inside a frame count, so codec padding cannot change it.
  written_16k = int(entry["num_samples_written"] * 16000 / entry["sample_rate_hz"])
  assert DEFAULT_PARAMS.num_patches(written_16k) == entry["expected"]["num_frames"]


@pytest.mark.parametrize("name", sorted(_ENTRIES))
def test_script_regenerates_example_byte_for_byte(regenerated, name):
  out_dir, manifest = regenerated
  fresh = {entry["file"]: entry for entry in manifest["files"]}[name]
  assert fresh == _ENTRIES[name]
  assert (out_dir / "audio" / name).read_bytes() == (_AUDIO / name).read_bytes()


def test_script_regenerates_the_manifest(regenerated):
  out_dir, _ = regenerated
  assert (out_dir / "MANIFEST.json").read_text() == _MANIFEST_PATH.read_text()
