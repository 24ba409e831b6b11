"""Incremental runs: inputs embedded before under the same settings are skipped.

Two tiers: ``SkipAlreadyEmbedded`` on a real Beam pipeline against manifests written by
``write_manifest`` (every rule of what counts as "already embedded"), and two real runs
of ``pipelines.embed`` with ``--skip_existing`` where the second run, over the same
inputs plus one new file, embeds exactly the new file.
"""

from __future__ import annotations

import os
import pathlib

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from transforms import manifest
from transforms.records import AudioFile

__all__: list[str] = []

_SETTINGS = "a" * 64
_OTHER_SETTINGS = "b" * 64


def _entry(uri, size_bytes=100, last_modified_seconds=1_700_000_000.5, settings=_SETTINGS,
           outcome="embedded", error_type=None):
  entry = {"uri": uri, "size_bytes": size_bytes, "last_modified_seconds": last_modified_seconds,
           "settings_sha256": settings, "run_id": "r1", "outcome": outcome}
  if error_type:
    entry["error_type"] = error_type
  return entry


def _local_pipeline() -> test_pipeline.TestPipeline:
  from apache_beam.runners.portability.fn_api_runner import FnApiRunner
  return test_pipeline.TestPipeline(runner=FnApiRunner())  # DirectRunner would try to fetch Prism


def test_skip_already_embedded_keeps_only_new_changed_or_retryable_files(tmp_path):
  out, partition = str(tmp_path / "out"), str(tmp_path / "root" / "dt=2026-01-01")
  manifest.write_manifest(out, "r1", [
      _entry("/a/same.wav"),
      _entry("/a/resized.wav", size_bytes=99),
      _entry("/a/touched.wav", last_modified_seconds=1.0),
      _entry("/a/other_model.wav", settings=_OTHER_SETTINGS),
      _entry("/a/too_short.wav", outcome="error", error_type="too_short"),
      _entry("/a/vanished.wav", outcome="error", error_type="not_found"),
      _entry("/a/no_identity.wav", size_bytes=None),
  ])
  manifest.write_manifest(partition, "r0", [_entry("/a/in_partition.wav")])
  names = ["same", "resized", "touched", "other_model", "too_short", "vanished", "no_identity",
           "in_partition", "new"]
  files = [AudioFile(f"/a/{n}.wav", 100, 1_700_000_000.5) for n in names]

  with _local_pipeline() as p:
    kept = (p | beam.Create(files)
            | manifest.SkipAlreadyEmbedded(
                manifest.manifest_patterns(out, [str(tmp_path / "root" / "dt=*")]), _SETTINGS)
            | beam.Map(lambda f: f.uri))
    assert_that(kept, equal_to([f"/a/{n}.wav" for n in
                                ("resized", "touched", "other_model", "vanished", "no_identity", "new")]))


def test_skip_already_embedded_accepts_beam_file_metadata_and_empty_manifest(tmp_path):
  from apache_beam.io.filesystem import FileMetadata
  files = [FileMetadata(str(tmp_path / "x.wav"), 10, 5.0)]

  with _local_pipeline() as p:
    kept = (p | beam.Create(files)
            | manifest.SkipAlreadyEmbedded(manifest.manifest_patterns(str(tmp_path / "none")), _SETTINGS)
            | beam.Map(lambda m: m.path))
    assert_that(kept, equal_to([str(tmp_path / "x.wav")]))


def test_manifest_round_trips_and_marks_committed_runs(tmp_path):
  out = str(tmp_path / "out")
  manifest.write_manifest(out, "20260101T000000Z-aaaaaa", [_entry("/a/1.wav")])
  manifest.write_manifest(out, "20260102T000000Z-bbbbbb", [_entry("/a/2.wav", settings=_OTHER_SETTINGS)])

  assert manifest.committed_run_ids(out) == {"20260101T000000Z-aaaaaa", "20260102T000000Z-bbbbbb"}
  assert [e["uri"] for e in manifest.read_manifest(manifest.manifest_patterns(out), _SETTINGS)] == ["/a/1.wav"]
  assert manifest.delete_manifests(out, {"20260102T000000Z-bbbbbb"})
  assert manifest.committed_run_ids(out) == {"20260102T000000Z-bbbbbb"}
  assert not list((tmp_path / "out" / manifest.MANIFEST_DIR).glob(".tmp-*"))


# --- end to end through pipelines.embed ------------------------------------------------------


def _write_tone(path: pathlib.Path, frequency_hz: float) -> str:
  rate_hz = 16000
  t = np.arange(int(rate_hz * 2.0)) / rate_hz
  sf.write(path, 0.3 * np.sin(2 * np.pi * frequency_hz * t), rate_hz, subtype="PCM_16")
  return str(path)


def _clip_uris(output: pathlib.Path, run_id: str | None = None) -> list[str]:
  uris = []
  for path in sorted((output / "clips").glob(f"part-{run_id + '-' if run_id else ''}*.parquet")):
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
  assert _clip_uris(output) == sorted(old + [new])  # the output holds every file once
  assert manifest.committed_run_ids(str(output)) == {first.run_id, second.run_id}

  third = embed.run(argv)  # nothing new: nothing embedded, nothing lost

  assert _clip_uris(output, third.run_id) == []
  assert _clip_uris(output) == sorted(old + [new])
