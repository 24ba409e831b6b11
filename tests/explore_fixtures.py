"""Real pipeline outputs for the explore tests (map, search, inspect, SQL): a pytest plugin.

Test modules load it with ``pytest_plugins = ("explore_fixtures",)`` so that its
session-scoped fixtures are built ONCE per session whichever modules use them (a fixture
imported into several modules is built once per module).

``real_output``: ONE real run of ``python -m pipelines.embed`` (``pipelines.embed.run``)
with ``--model vggish,yamnet,clap`` and CLAP ``--clap_labels_file`` over a small real corpus: the
example clips (``examples/audio/*``, copied into ``corpus/examples/``), a few generated
WAVs in ``corpus/tones/`` and ``corpus/noise/`` (so that ``--color_by folder`` separates
something), a corrupt file at the top and an ``--input`` pattern that matches nothing (an
``errors/`` row per model each: ``unsupported_format``, ``no_match``). The weights are
the deterministic TEST weights each model's own tool writes (``model_weights`` of
``tests/conftest.py``): the vectors mean nothing, but every file, column,
provenance record and ledger entry is what the pipeline writes.

``appended_output``: a copy of that output plus a second real run (``--model vggish
--output_mode append``) over two new files: two committed runs.

``other_weights``: TEST weights of another seed (VGGish, YAMNet, CLAP): what a user who
passes the wrong weights to a search has.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import pathlib
import shutil

import numpy as np
import pytest

__all__ = ["RealOutput", "MODELS", "LABELS", "FOLDERS", "NO_MATCH", "real_output",
           "appended_output", "other_weights"]

_REPO = pathlib.Path(__file__).resolve().parents[1]
MODELS = ("vggish", "yamnet", "clap")
LABELS = ("speech", "music", "a pure tone", "noise, hiss")
"""CLAP's zero-shot labels (one with a comma: they go through a labels file)."""
FOLDERS = ("examples", "noise", "tones")
_TONES_HZ = (220.0, 440.0, 880.0)
BROKEN = "broken.wav"
NO_MATCH = "birds/*.wav"
"""An --input pattern (below the corpus) that matches nothing in the first run."""


@dataclasses.dataclass(frozen=True)
class RealOutput:
  """A real output: ``output`` (its folder), ``corpus`` (the input folder), ``files``
  (every input file, sorted), ``summary`` (``pipelines.embed.RunSummary``), ``weights``
  (``model_weights``: each model's flags), ``folder`` (uri -> its folder below corpus)."""

  output: str
  corpus: str
  files: tuple[str, ...]
  summary: object
  weights: dict

  def folder(self, uri: str) -> str:
    return os.path.relpath(os.path.dirname(uri), self.corpus)


def _write_corpus(root: pathlib.Path) -> list[str]:
  import soundfile as sf

  (root / "examples").mkdir(parents=True)
  for path in sorted(glob.glob(str(_REPO / "examples" / "audio" / "*"))):
    shutil.copy(path, root / "examples")
  (root / "tones").mkdir()
  t = np.arange(int(2.5 * 16000)) / 16000.0
  for hz in _TONES_HZ:
    sf.write(root / "tones" / f"tone_{int(hz)}hz.wav", 0.3 * np.sin(2 * np.pi * hz * t), 16000,
             subtype="PCM_16")
  (root / "noise").mkdir()
  for seed in range(2):
    noise = np.random.default_rng(seed).uniform(-0.3, 0.3, int(2.0 * 22050))
    sf.write(root / "noise" / f"noise_{seed}.wav", noise, 22050, subtype="PCM_16")
  (root / BROKEN).write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4)
  return sorted(str(p) for p in root.rglob("*") if p.is_file())


def _flags(weights: dict, models) -> list[str]:
  flags = []
  for model in models:
    for key, value in weights[model].items():
      if key != "clap_labels":  # the shared weights fixture's labels: ours come from a labels file
        flags += [f"--{key}", value]
  return flags


@pytest.fixture(scope="session")
def real_output(model_weights, tmp_path_factory) -> RealOutput:
  from pipelines import embed

  root = tmp_path_factory.mktemp("explore_real")
  corpus = root / "corpus"
  files = _write_corpus(corpus)
  labels_file = root / "labels.txt"
  labels_file.write_text("\n".join(LABELS) + "\n", encoding="utf-8")
  output = root / "out"
  summary = embed.run(["--input", str(corpus / "**"), "--input", str(corpus / "birds" / "*.wav"),
                       "--output", str(output),
                       "--model", ",".join(MODELS), "--clap_labels_file", str(labels_file),
                       *_flags(model_weights, MODELS)])
  return RealOutput(str(output), str(corpus), tuple(files), summary, model_weights)


@pytest.fixture(scope="session")
def appended_output(real_output, tmp_path_factory) -> tuple[RealOutput, list[str]]:
  """(a copy of ``real_output`` plus a second committed run: ``--model vggish
  --output_mode append`` over two new files in ``corpus/birds/``; those two files)."""
  import soundfile as sf

  from pipelines import embed

  root = tmp_path_factory.mktemp("explore_appended")
  output = root / "out"
  shutil.copytree(real_output.output, output)
  birds = pathlib.Path(real_output.corpus).parent / "corpus_birds" / "birds"
  birds.mkdir(parents=True, exist_ok=True)
  t = np.arange(int(2.0 * 16000)) / 16000.0
  new = []
  for i, hz in enumerate((2000.0, 3000.0)):
    path = birds / f"chirp_{i}.wav"
    sf.write(path, 0.2 * np.sin(2 * np.pi * (hz + 500 * t) * t), 16000, subtype="PCM_16")
    new.append(str(path))
  summary = embed.run(["--input", str(birds / "*.wav"), "--output", str(output),
                       "--model", "vggish", "--output_mode", "append",
                       *_flags(real_output.weights, ["vggish"])])
  return RealOutput(str(output), real_output.corpus, real_output.files + tuple(new), summary,
                    real_output.weights), new


@pytest.fixture(scope="session")
def other_weights(tmp_path_factory) -> dict[str, dict[str, str]]:
  """Each model's file options pointing at TEST weights of seed 1 (the index has seed 0)."""
  from models.clap.testing import write_test_checkpoint
  from models.yamnet.testing import write_test_weights as write_yamnet
  from vggish.testing import write_test_weights as write_vggish

  root = tmp_path_factory.mktemp("other_weights")
  checkpoint, pca_params = write_vggish(str(root / "vggish"), seed=1, checkpoint_format="V1")
  yamnet_weights, yamnet_class_map = write_yamnet(str(root / "yamnet"), seed=1)
  return {
      "vggish": {"checkpoint": checkpoint, "pca_params": pca_params},
      "yamnet": {"yamnet_weights": yamnet_weights, "yamnet_class_map": yamnet_class_map},
      "clap": {"clap_checkpoint": write_test_checkpoint(str(root / "clap"), seed=1)},
  }
