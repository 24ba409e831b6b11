"""Incremental runs: inputs embedded before under the same settings are skipped.

Two tiers: ``SkipAlreadyEmbedded`` on a real Beam pipeline against manifests written by
``write_manifest`` (every rule of what counts as "already embedded"), and two real runs
of ``pipelines.embed`` with ``--skip_existing`` where the second run, over the same
inputs plus one new file, embeds exactly the new file.
"""

from __future__ import annotations

import json
import os
import pathlib

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from audiobeam.errors import ERROR_TYPES
from transforms import manifest
from transforms.records import AudioFile

__all__: list[str] = []

_SETTINGS = "a" * 64
_OTHER_SETTINGS = "b" * 64


def _entry(uri, size_bytes=100, last_modified_seconds=1_700_000_000.5, settings=_SETTINGS,
           outcome="embedded", error_type=None, model="vggish"):
  entry = {"uri": uri, "model": model, "size_bytes": size_bytes,
           "last_modified_seconds": last_modified_seconds, "settings_sha256": settings,
           "run_id": "r1", "outcome": outcome}
  if error_type:
    entry["error_type"] = error_type
  return entry


def _write_manifest(output: str, run_id: str, entries) -> None:
  """A manifest in the documented layout (``_audiobeam/manifests/run-<id>.jsonl``),
  written by the test."""
  path = pathlib.Path(manifest.manifest_path(output, run_id))
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("".join(json.dumps(e) + "\n" for e in entries))


def _local_pipeline() -> test_pipeline.TestPipeline:
  from apache_beam.runners.portability.fn_api_runner import FnApiRunner
  return test_pipeline.TestPipeline(runner=FnApiRunner())  # DirectRunner would try to fetch Prism


def test_skip_already_embedded_keeps_only_new_changed_or_retryable_files(tmp_path):
  out, partition = str(tmp_path / "out"), str(tmp_path / "root" / "dt=2026-01-01")
  _write_manifest(out, "r1", [
      _entry("/a/same.wav"),
      _entry("/a/resized.wav", size_bytes=99),
      _entry("/a/touched.wav", last_modified_seconds=1.0),
      _entry("/a/other_settings.wav", settings=_OTHER_SETTINGS),
      _entry("/a/too_short.wav", outcome="error", error_type="too_short"),
      _entry("/a/no_samples.wav", outcome="error", error_type="no_samples"),
      _entry("/a/features.wav", outcome="error", error_type="non_finite_features"),
      _entry("/a/vanished.wav", outcome="error", error_type="not_found"),
      _entry("/a/crashed.wav", outcome="error", error_type="unexpected_ValueError"),
      _entry("/a/no_identity.wav", size_bytes=None),
  ])
  _write_manifest(partition, "r0", [_entry("/a/in_partition.wav")])
  names = ["same", "resized", "touched", "other_settings", "too_short", "no_samples", "features",
           "vanished", "crashed", "no_identity", "in_partition", "new"]
  files = [AudioFile(f"/a/{n}.wav", 100, 1_700_000_000.5) for n in names]

  with _local_pipeline() as p:
    kept = (p | beam.Create(files)
            | manifest.SkipAlreadyEmbedded(
                manifest.manifest_patterns(out, [str(tmp_path / "root" / "dt=*")]),
                {"vggish": _SETTINGS})
            | beam.Map(lambda f: (f.uri, f.models)))
    assert_that(kept, equal_to([(f"/a/{n}.wav", None) for n in (
        "resized", "touched", "other_settings", "vanished", "crashed", "no_identity", "new")]))


def test_every_content_error_type_is_skipped_and_every_other_retried():
  # The skip rule reads the one error-type table: no error type can be forgotten.
  for name, entry in ERROR_TYPES.items():
    row = _entry("/a/x.wav", outcome="error", error_type=name)
    assert manifest.skippable(row, {"vggish": _SETTINGS}) == entry.content, name
  assert {n for n, e in ERROR_TYPES.items() if e.content} >= {
      "too_short", "no_samples", "non_finite_features", "corrupt_audio", "empty_file"}


def test_a_file_is_decoded_only_for_the_models_that_still_need_it(tmp_path):
  out = str(tmp_path / "out")
  _write_manifest(out, "r1", [_entry("/a/x.wav"), _entry("/a/both.wav"),
                              _entry("/a/both.wav", model="second", settings=_OTHER_SETTINGS)])
  files = [AudioFile(f"/a/{n}.wav", 100, 1_700_000_000.5) for n in ("x", "both", "new")]
  settings = {"vggish": _SETTINGS, "second": _OTHER_SETTINGS}

  with _local_pipeline() as p:
    kept = (p | beam.Create(files)
            | manifest.SkipAlreadyEmbedded(manifest.manifest_patterns(out), settings)
            | beam.Map(lambda f: (f.uri, f.models)))
    assert_that(kept, equal_to([("/a/x.wav", ("second",)), ("/a/new.wav", None)]))


def test_skip_already_embedded_accepts_beam_file_metadata_and_empty_manifest(tmp_path):
  from apache_beam.io.filesystem import FileMetadata
  files = [FileMetadata(str(tmp_path / "x.wav"), 10, 5.0)]

  with _local_pipeline() as p:
    kept = (p | beam.Create(files)
            | manifest.SkipAlreadyEmbedded(manifest.manifest_patterns(str(tmp_path / "none")),
                                           {"vggish": _SETTINGS})
            | beam.Map(lambda m: m.path))
    assert_that(kept, equal_to([str(tmp_path / "x.wav")]))


# --- end to end through pipelines.embed ------------------------------------------------------


def _write_tone(path: pathlib.Path, frequency_hz: float) -> str:
  rate_hz = 16000
  t = np.arange(int(rate_hz * 2.0)) / rate_hz
  sf.write(path, 0.3 * np.sin(2 * np.pi * frequency_hz * t), rate_hz, subtype="PCM_16")
  return str(path)


def _clip_uris(output: pathlib.Path, run_id: str | None = None) -> list[str]:
  uris = []
  for path in sorted((output / "vggish" / "clips").glob(f"part-{run_id + '-' if run_id else ''}*.parquet")):
    uris += pq.read_table(path, columns=["uri"]).column("uri").to_pylist()
  return sorted(uris)


def test_second_run_with_one_new_file_embeds_exactly_that_file(tmp_path, test_weights):
  from pipelines import embed
  audio, output = tmp_path / "audio", tmp_path / "out"
  audio.mkdir()
  old = [_write_tone(audio / "a.wav", 440.0), _write_tone(audio / "b.wav", 550.0)]
  argv = ["--input", str(audio / "*.wav"), "--output", str(output), "--skip_existing",
          "--checkpoint", test_weights.checkpoint, "--pca_params", test_weights.pca_params,
          "--format", "parquet"]

  first = embed.run(argv)
  new = _write_tone(audio / "c.wav", 660.0)
  second = embed.run(argv)

  assert _clip_uris(output, first.run_id) == sorted(old)
  assert _clip_uris(output, second.run_id) == [new]  # exactly the new file was embedded
  assert second.metrics.get("files_skipped_existing") == 2
  assert second.counts["models"]["vggish"]["files_skipped_existing"] == 2
  assert _clip_uris(output) == sorted(old + [new])  # the output holds every file once
  assert _run_json(output)["committed_run_ids"] == [first.run_id, second.run_id]

  files_before = sorted(p for p in output.rglob("*") if p.is_file() and p.name != "run.json")
  third = embed.run(argv)  # nothing new: nothing embedded, nothing lost, nothing added

  assert _clip_uris(output, third.run_id) == []
  assert _clip_uris(output) == sorted(old + [new])
  assert _run_json(output)["run_id"] == third.run_id
  assert _run_json(output)["committed_run_ids"] == [first.run_id, second.run_id]
  assert sorted(p for p in output.rglob("*") if p.is_file() and p.name != "run.json") == files_before


def _run_json(output: pathlib.Path) -> dict:
  return json.loads((output / "run.json").read_text())


def test_a_changed_input_replaces_its_old_rows(tmp_path, test_weights):
  from pipelines import embed
  audio, output = tmp_path / "audio", tmp_path / "out"
  audio.mkdir()
  a, b = _write_tone(audio / "a.wav", 440.0), _write_tone(audio / "b.wav", 550.0)
  argv = ["--input", str(audio / "*.wav"), "--output", str(output), "--skip_existing",
          "--checkpoint", test_weights.checkpoint, "--pca_params", test_weights.pca_params]
  first = embed.run(argv)
  before = {r["uri"]: r["embedding"] for r in _clips(output)}
  rate_hz = 16000
  t = np.arange(int(rate_hz * 3.0)) / rate_hz  # new content, new size and mtime
  sf.write(b, 0.3 * np.sin(2 * np.pi * 1234.0 * t), rate_hz, subtype="PCM_16")
  os.utime(b, (1_800_000_000, 1_800_000_000))

  second = embed.run(argv)

  rows = _clips(output)
  assert sorted(r["uri"] for r in rows) == [a, b]  # b once: its old row was retired
  (new_b,) = [r for r in rows if r["uri"] == b]
  assert new_b["run_id"] == second.run_id and new_b["num_frames"] == 3
  assert new_b["embedding"] != before[b]
  frames = pq.read_table(output / "vggish" / "frames").to_pylist()
  assert len([f for f in frames if f["uri"] == b]) == 3
  tfrecords = [p for p in (output / "vggish" / "tfrecord").glob("*.tfrecord")]
  assert sum(_tfrecord_uris(p).count(b) for p in tfrecords) == 1
  entries = [json.loads(line) for p in (output / "_audiobeam" / "manifests").glob("*.jsonl")
             for line in p.read_text().splitlines()]
  assert [e["run_id"] for e in entries if e["uri"] == b] == [second.run_id]
  assert _run_json(output)["committed_run_ids"] == [first.run_id, second.run_id]


def _clips(output: pathlib.Path) -> list[dict]:
  return pq.read_table(output / "vggish" / "clips").to_pylist()


def _tfrecord_uris(path: pathlib.Path) -> list[str]:
  import tensorflow as tf
  uris = []
  for record in tf.data.TFRecordDataset([str(path)]):
    example = tf.train.SequenceExample.FromString(record.numpy())
    uris.append(example.context.feature["video_id"].bytes_list.value[0].decode())
  return uris
