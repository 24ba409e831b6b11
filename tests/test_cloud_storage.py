"""The pipeline reads inputs and weights from, and writes outputs to, gs:// and s3://.

Real HTTP emulators on loopback (``cloud_emulators``): gcp-storage-emulator for GCS,
moto's server for S3. The corpus and the test weights are uploaded with the storage
clients themselves (not Beam), the pipeline runs with nothing but cloud URIs (inputs,
``--output``, ``--checkpoint``, ``--pca_params``), and the outputs are downloaded with
the storage clients again and read with pyarrow / TensorFlow's record reader.
"""

from __future__ import annotations

import io
import json
import pathlib

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from cloud_emulators import gcs_emulator, s3_emulator  # noqa: F401  (fixtures)

__all__: list[str] = []

# name -> (sample_rate_hz, channels, duration_seconds, soundfile format, subtype)
_CORPUS = {
    "tone_16k_mono.wav": (16000, 1, 2.5, "WAV", "PCM_16"),
    "music_22k_stereo.flac": (22050, 2, 2.1, "FLAC", "PCM_16"),
    "short_8k_mono.wav": (8000, 1, 0.5, "WAV", "PCM_16"),  # < 0.975 s: an errors/ row
}
_EXPECTED_FRAMES = {"tone_16k_mono.wav": 2, "music_22k_stereo.flac": 2}  # floor((n-15600)/15360)+1


@pytest.fixture(scope="module")
def local_corpus(tmp_path_factory) -> pathlib.Path:
  directory = tmp_path_factory.mktemp("cloud_corpus")
  rng = np.random.default_rng(7)
  for index, (name, (rate_hz, channels, seconds, fmt, subtype)) in enumerate(sorted(_CORPUS.items())):
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    tone = 0.3 * np.sin(2 * np.pi * (220.0 * (index + 1)) * t)
    signal = np.stack([tone + 0.05 * rng.standard_normal(t.size) for _ in range(channels)], axis=1)
    sf.write(directory / name, signal, rate_hz, format=fmt, subtype=subtype)
  return directory


def _upload_case(emulator, bucket: str, corpus: pathlib.Path, weights) -> str:
  root = emulator.create_bucket(bucket)
  for path in sorted(corpus.iterdir()):
    emulator.upload(path, f"{root}/audio/{path.name}")
  emulator.upload(weights.checkpoint, f"{root}/weights/vggish_model.ckpt")
  emulator.upload(weights.pca_params, f"{root}/weights/vggish_pca_params.npz")
  return root


def _run_pipeline(root: str, cache_dir: pathlib.Path, extra_flags: list[str]):
  from pipelines import embed
  return embed.run([
      "--input", f"{root}/audio/*.wav",
      "--input", f"{root}/audio/*.flac",
      "--output", f"{root}/out/",
      "--checkpoint", f"{root}/weights/vggish_model.ckpt",
      "--pca_params", f"{root}/weights/vggish_pca_params.npz",
      "--cache_dir", str(cache_dir),  # empty: the weights must come from the emulator
      "--format", "parquet,tfrecord",
      *extra_flags,
  ])


def _read_parquet(emulator, prefix: str):
  import pyarrow as pa
  paths = [p for p in emulator.list(prefix) if p.endswith(".parquet")]
  assert paths, f"no Parquet files under {prefix}"
  return pa.concat_tables([pq.read_table(io.BytesIO(emulator.read(p))) for p in paths])


def _count_tfrecords(emulator, prefix: str) -> tuple[int, list[bytes]]:
  import tensorflow as tf
  video_ids = []
  for path in [p for p in emulator.list(prefix) if p.endswith(".tfrecord")]:
    local = io.BytesIO(emulator.read(path)).getvalue()
    # A TFRecord file is framed records; parse them back with TF's own reader.
    tmp = tf.io.gfile.join("ram://", path.replace("://", "_").replace("/", "_"))
    with tf.io.gfile.GFile(tmp, "wb") as f:
      f.write(local)
    for record in tf.data.TFRecordDataset(tmp):
      context, _ = tf.io.parse_single_sequence_example(
          record, context_features={"video_id": tf.io.FixedLenFeature([], tf.string)},
          sequence_features={"audio_embedding": tf.io.FixedLenSequenceFeature([], tf.string)})
      video_ids.append(context["video_id"].numpy())
  return len(video_ids), video_ids


def _check_outputs(emulator, root: str, summary) -> None:
  clips = _read_parquet(emulator, f"{root}/out/vggish/clips/").to_pydict()
  assert sorted(clips["uri"]) == sorted(f"{root}/audio/{n}" for n in _EXPECTED_FRAMES)
  assert dict(zip(clips["uri"], clips["num_frames"])) == {
      f"{root}/audio/{n}": frames for n, frames in _EXPECTED_FRAMES.items()}

  frames = _read_parquet(emulator, f"{root}/out/vggish/frames/")
  assert frames.num_rows == sum(_EXPECTED_FRAMES.values())
  raw = np.asarray(frames.column("raw_embedding").to_pylist(), dtype=np.float32)
  assert raw.shape == (frames.num_rows, 128) and np.all(np.isfinite(raw))
  assert np.ptp(raw, axis=0).max() > 0  # frames differ: real embeddings, not a constant

  errors = _read_parquet(emulator, f"{root}/out/errors/").to_pydict()
  assert list(zip(errors["uri"], errors["error_type"])) == [
      (f"{root}/audio/short_8k_mono.wav", "too_short")]

  count, video_ids = _count_tfrecords(emulator, f"{root}/out/vggish/tfrecord/")
  assert count == len(_EXPECTED_FRAMES) and all(video_ids)

  run_json = json.loads(emulator.read(f"{root}/out/run.json"))
  assets = run_json["provenance"]["vggish"]["assets"]
  assert assets["checkpoint"]["uri"] == f"{root}/weights/vggish_model.ckpt"
  assert run_json["committed_run_ids"] == [summary.run_id]
  counts = summary.counts["models"]["vggish"]
  assert counts["files_embedded"] == 2 and counts["errors"] == 1
  # Staging and the lease are gone; the ledger holds the run's record and manifest.
  ledger = sorted(p[len(f"{root}/out/_audiobeam/"):] for p in emulator.list(f"{root}/out/_audiobeam/"))
  assert ledger == [f"manifests/run-{summary.run_id}.jsonl", f"runs/{summary.run_id}.json"]


def test_pipeline_reads_and_writes_gcs_through_emulator(gcs_emulator, local_corpus, test_weights,
                                                         tmp_path):
  root = _upload_case(gcs_emulator, "audiobeam-gcs-case", local_corpus, test_weights)

  summary = _run_pipeline(root, tmp_path / "cache", [f"--project={gcs_emulator.project}"])

  _check_outputs(gcs_emulator, root, summary)


def test_pipeline_reads_and_writes_s3_through_emulator(s3_emulator, local_corpus, test_weights,
                                                        tmp_path):
  root = _upload_case(s3_emulator, "audiobeam-s3-case", local_corpus, test_weights)

  # Only the flags point at the emulator: the launcher (weights, run.json) and the
  # workers both get them through the pipeline options.
  summary = _run_pipeline(root, tmp_path / "cache", s3_emulator.beam_flags)

  _check_outputs(s3_emulator, root, summary)


def test_every_model_reads_weights_and_audio_from_gcs_and_writes_its_outputs_there(
    gcs_emulator, local_corpus, model_weights, tmp_path):
  """YAMNet's h5 and class map, CLAP's and AST's checkpoint folders and CLMR's checkpoint
  come from gs:// (copied once into an empty cache, sha256-checked); every model's
  outputs land in gs:// and are read back with the storage client."""
  from pipelines import embed
  from test_multimodel import MODELS
  root = gcs_emulator.create_bucket("audiobeam-all-models")
  for path in sorted(local_corpus.iterdir()):
    gcs_emulator.upload(path, f"{root}/audio/{path.name}")
  flags = []
  for model in MODELS:
    for key, value in model_weights[model].items():
      if isinstance(value, list):
        flags += [f"--{key}", ",".join(v.replace(",", "") for v in value)]
        continue
      local = pathlib.Path(value)
      remote = f"{root}/weights/{model}/{local.name}"
      for file in ([p for p in local.iterdir() if p.is_file()] if local.is_dir() else [local]):
        gcs_emulator.upload(file, remote + (f"/{file.name}" if local.is_dir() else ""))
      flags += [f"--{key}", remote]

  summary = embed.run(["--input", f"{root}/audio/*", "--output", f"{root}/out",
                       "--model", ",".join(MODELS), "--cache_dir", str(tmp_path / "cache"),
                       "--short_clips", "pad",  # the clips are shorter than CLMR's 2.68 s
                       f"--project={gcs_emulator.project}", *flags])

  matched = {f"{root}/audio/{n}" for n in _CORPUS}
  errors = _read_parquet(gcs_emulator, f"{root}/out/errors/").to_pylist()
  for model in MODELS:
    clips = _read_parquet(gcs_emulator, f"{root}/out/{model}/clips/").column("uri").to_pylist()
    failed = [r["uri"] for r in errors if r["model"] == model]
    assert sorted(clips + failed) == sorted(matched), model
    assert summary.counts["models"][model]["files_embedded"] == len(clips) >= 1
    assert _read_parquet(gcs_emulator, f"{root}/out/{model}/frames/").num_rows >= len(clips)
  assert _read_parquet(gcs_emulator, f"{root}/out/clap/labels/").num_rows > 0
  run_json = json.loads(gcs_emulator.read(f"{root}/out/run.json"))
  assert run_json["provenance"]["clap"]["assets"]["checkpoint"]["uri"] == (
      f"{root}/weights/clap/{pathlib.Path(model_weights['clap']['clap_checkpoint']).name}")
