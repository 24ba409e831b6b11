"""SYNTHETIC OUTPUTS FOR TESTS AND BENCHMARKS ONLY -- written here, not by the pipeline.

``write_synthetic_output`` writes Parquet files in exactly the documented output layout
(``<output>/<model>/{clips,frames,labels}/part-<run_id>-SSSSS-of-NNNNN.parquet``,
``<output>/errors/``, ``run.json``; provenance JSON under the schema metadata key
``audiobeam.provenance``), with realistic column types and values: clips grouped in
folders whose embeddings cluster, frame embeddings whose mean is the clip embedding,
top labels per folder, error rows, and an *uncommitted* run's leftover part file (a run
killed before it wrote ``run.json``) that readers must ignore.

The vectors are seeded random numbers, not embeddings of any audio. Nothing in the
product calls this module. ``bench/map_bench.py`` and ``bench/search_bench.py`` use it for
scale (100,000 and 1,000,000 clips); ``explore``'s tests read real pipeline outputs
(``tests/explore_fixtures.py``) and use this module only for shapes one real run does not
give (another sharding, runs with other settings, the VGGish-only layout), in tests whose
names end in ``written_by_the_test``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from explore.outputs import PROVENANCE_KEY, RUN_JSON

__all__ = [
    "FOLDER_LABELS",
    "MODEL_DIMS",
    "LEFTOVER_RUN_ID",
    "SyntheticOutput",
    "synthetic_provenance",
    "write_synthetic_output",
    "write_table",
    "write_run_json",
]

FOLDER_LABELS = {
    "dogs": ("Dog", "Bark", "Animal"),
    "trains": ("Train", "Rail transport", "Vehicle"),
    "speech": ("Speech", "Conversation", "Narration"),
    "music": ("Music", "Guitar", "Piano"),
}
"""Folder -> its clips' top labels (first = the top one)."""

MODEL_DIMS = {"vggish": 128, "yamnet": 1024, "clap": 512, "ast": 768}
LEFTOVER_RUN_ID = "20260305T000000Z-dead01"
_HOP_SECONDS = 0.96
_WINDOW_SECONDS = 0.975
_DEFAULT_ASSETS = {"vggish": {"checkpoint": "/weights/vggish/vggish_model.ckpt",
                              "pca_params": "/weights/vggish/vggish_pca_params.npz"}}
_CODECS = {"wav": "pcm_s16le", "flac": "flac", "ogg": "vorbis", "mp3": "mp3"}


@dataclasses.dataclass
class SyntheticOutput:
  """What was written: ``uris`` (sorted), each clip's ``folder``, and per model the clip
  embeddings float32 [N, D] in ``uris`` order; ``leftover_uris`` only in the uncommitted
  part; ``error_uris`` in ``errors/``."""

  output: str
  run_id: str
  models: tuple[str, ...]
  uris: list[str]
  folders: list[str]
  clip_embeddings: dict[str, np.ndarray]
  frame_counts: list[int]
  error_uris: list[str]
  leftover_uris: list[str]


def _sha(text: str) -> str:
  return hashlib.sha256(text.encode()).hexdigest()


def synthetic_provenance(model: str, run_id: str, *, asset_uris: dict[str, str] | None = None,
                         asset_sha256: dict[str, str] | None = None,
                         settings: dict | None = None) -> dict:
  """A provenance record in the shape ``explore`` reads: ``run_id``, ``model``,
  ``assets`` ({name: {uri, sha256}}), ``settings`` (everything that determines the values,
  asset sha256s among them), ``settings_sha256``, ``versions``."""
  asset_uris = asset_uris or _DEFAULT_ASSETS.get(model) or {"weights": f"/weights/{model}/model.safetensors"}
  asset_sha256 = asset_sha256 or {name: _sha(uri) for name, uri in asset_uris.items()}
  settings = dict(settings or {})
  settings.setdefault("model", model)
  for name, sha in asset_sha256.items():
    settings.setdefault(f"{name}_sha256", sha)
  settings.setdefault("resampler", "kaiser_best")
  settings.setdefault("short_clips", "reference")
  settings.setdefault("pooling", "mean")
  settings.setdefault("normalize", "none")
  canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"))
  return {
      "run_id": run_id,
      "model": model,
      "assets": {name: {"uri": uri, "sha256": asset_sha256[name]} for name, uri in asset_uris.items()},
      "settings": settings,
      "settings_sha256": hashlib.sha256(canonical.encode()).hexdigest(),
      "versions": {"audiobeam": "0.1.0", "python": "3.11"},
  }


def _fsl(values: np.ndarray, value_type: pa.DataType) -> pa.Array:
  values = np.ascontiguousarray(values)
  return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), type=value_type),
                                           values.shape[1])


def write_table(table: pa.Table, directory: str, run_id: str, provenance: dict | None,
                num_shards: int = 1) -> list[str]:
  """Writes ``table`` as ``num_shards`` zstd part files ``part-<run_id>-SSSSS-of-NNNNN.parquet``
  with ``provenance`` in the schema metadata; returns their paths."""
  os.makedirs(directory, exist_ok=True)
  metadata = {PROVENANCE_KEY: json.dumps(provenance, sort_keys=True).encode()} if provenance else None
  table = table.replace_schema_metadata(metadata)
  bounds = np.linspace(0, table.num_rows, num_shards + 1).astype(int)
  paths = []
  for shard in range(num_shards):
    path = os.path.join(directory, f"part-{run_id}-{shard:05d}-of-{num_shards:05d}.parquet")
    pq.write_table(table.slice(bounds[shard], bounds[shard + 1] - bounds[shard]), path,
                   compression="zstd")
    paths.append(path)
  return paths


def _label_column(model: str, folders: Sequence[str], rng: np.random.Generator):
  """Per model, its label columns in the (assumed) pipeline types."""
  scores = np.sort(rng.uniform(0.2, 0.95, size=(len(folders), 3)), axis=1)[:, ::-1]
  labels = [FOLDER_LABELS.get(f, ("Unknown", "Noise", "Silence")) for f in folders]
  if model == "yamnet":  # list<string>, best first
    return {"top_labels": pa.array([list(l) for l in labels], pa.list_(pa.string()))}
  if model == "ast":  # list<struct<label, score>>, best first
    struct = pa.struct([("label", pa.string()), ("score", pa.float32())])
    return {"top_labels": pa.array(
        [[{"label": l, "score": float(s)} for l, s in zip(ls, ss)] for ls, ss in zip(labels, scores)],
        pa.list_(struct))}
  if model == "clap":  # the best zero-shot label and its score
    return {"top_label": pa.array([l[0] for l in labels], pa.string()),
            "top_label_score": pa.array(scores[:, 0].astype(np.float32), pa.float32())}
  return {}


def write_synthetic_output(output: str, *, n_clips: int = 40,
                           models: Sequence[str] = ("vggish", "yamnet", "clap"),
                           run_id: str = "20260304T010203Z-abc123", seed: int = 0,
                           root: str = "/data/audio",
                           folders: Sequence[str] = ("dogs", "trains", "speech", "music"),
                           dims: dict[str, int] | None = None, write_frames: bool = True,
                           write_labels: bool = True, n_errors: int = 3, leftover: bool = True,
                           num_shards: int = 2, extra_uris: Sequence[str] = (),
                           write_audio: bool = False,
                           provenance_overrides: dict[str, dict] | None = None) -> SyntheticOutput:
  """Writes a synthetic output under ``output`` (a local folder); see the module docstring.

  Clip ``i`` is ``<root>/<folder>/<folder>_<i:05d>.wav`` (``extra_uris`` are added as
  further clips, e.g. names with odd characters). ``write_audio`` also writes each uri as a
  real 0.5 s 16 kHz WAV (the map's click-to-play). ``provenance_overrides[model]`` are
  keyword arguments of ``synthetic_provenance``.
  """
  rng = np.random.default_rng(seed)
  dims = {**MODEL_DIMS, **(dims or {})}
  uris = [f"{root.rstrip('/')}/{folders[i % len(folders)]}/{folders[i % len(folders)]}_{i:05d}.wav"
          for i in range(n_clips)] + list(extra_uris)
  uris.sort()
  n = len(uris)
  clip_folders = [u.rsplit("/", 2)[-2] if u.count("/") >= 2 else "" for u in uris]
  folder_index = {f: i for i, f in enumerate(sorted(set(clip_folders)))}
  folder_ids = np.array([folder_index[f] for f in clip_folders])
  durations = np.round(rng.uniform(1.0, 12.0, size=n), 3)
  frame_counts = [max(1, int((d - _WINDOW_SECONDS) // _HOP_SECONDS) + 1) for d in durations]
  containers = np.array(["wav", "flac", "ogg", "mp3"])[rng.integers(0, 4, size=n)]
  if write_audio:
    import soundfile  # pylint: disable=import-outside-toplevel
    t = np.arange(8000) / 16000.0
    for i, uri in enumerate(uris):
      os.makedirs(os.path.dirname(uri), exist_ok=True)
      soundfile.write(uri, 0.3 * np.sin(2 * np.pi * (220.0 + 20 * i) * t), 16000, subtype="PCM_16")

  os.makedirs(output, exist_ok=True)
  provenance_overrides = provenance_overrides or {}
  provenance_by_model, clip_embeddings = {}, {}
  first_clips = None
  for model in models:
    dim = dims[model]
    prov = synthetic_provenance(model, run_id, **provenance_overrides.get(model, {}))
    provenance_by_model[model] = prov
    centres = rng.standard_normal((int(folder_ids.max()) + 1, dim)).astype(np.float32)
    clip_vectors = centres[folder_ids] + 0.35 * rng.standard_normal((n, dim)).astype(np.float32)
    if write_frames:
      total = int(sum(frame_counts))
      frame_uris = np.repeat(np.array(uris, dtype=object), frame_counts)
      frame_index = np.concatenate([np.arange(k, dtype=np.int32) for k in frame_counts])
      noise = 0.1 * rng.standard_normal((total, dim)).astype(np.float32)
      offsets = np.cumsum([0] + frame_counts)
      for i in range(n):  # frames average exactly to the clip vector
        block = noise[offsets[i]:offsets[i + 1]]
        block -= block.mean(axis=0, keepdims=True)
      frames = np.repeat(clip_vectors, frame_counts, axis=0) + noise
      clip_vectors = np.stack([frames[offsets[i]:offsets[i + 1]].astype(np.float64).mean(axis=0)
                               for i in range(n)]).astype(np.float32)
      start = frame_index.astype(np.float64) * _HOP_SECONDS
      columns = {"uri": pa.array(frame_uris, pa.string()),
                 "frame_index": pa.array(frame_index, pa.int32()),
                 "start_seconds": pa.array(start, pa.float64()),
                 "end_seconds": pa.array(start + _WINDOW_SECONDS, pa.float64())}
      if model == "vggish":
        columns["raw_embedding"] = _fsl(frames, pa.float32())
        quantized = ((np.clip(frames, -2, 2) + 2) * (255.0 / 4.0)).astype(np.uint8)
        columns["audio_embedding"] = _fsl(quantized, pa.uint8())
      else:
        columns["embedding"] = _fsl(frames, pa.float32())
      write_table(pa.table(columns), os.path.join(output, model, "frames"), run_id, prov, num_shards)
    clip_embeddings[model] = clip_vectors
    columns = {
        "uri": pa.array(uris, pa.string()),
        "duration_seconds": pa.array(durations, pa.float64()),
        "sample_rate": pa.array(np.where(containers == "mp3", 44100, 16000), pa.int32()),
        "channels": pa.array(rng.integers(1, 3, size=n), pa.int32()),
        "num_frames": pa.array(frame_counts, pa.int32()),
        "embedding": _fsl(clip_vectors, pa.float32()),
        **_label_column(model, clip_folders, rng),
        "pooling": pa.array(["mean"] * n, pa.string()),
        "normalize": pa.array(["none"] * n, pa.string()),
        "padded": pa.array([False] * n, pa.bool_()),
        "container": pa.array(containers, pa.string()),
        "codec": pa.array([_CODECS[c] for c in containers], pa.string()),
        "size_bytes": pa.array((durations * 32000).astype(np.int64), pa.int64()),
        "last_modified_seconds": pa.array(np.full(n, 1.77e9), pa.float64()),
        "settings_sha256": pa.array([prov["settings_sha256"]] * n, pa.string()),
        "run_id": pa.array([run_id] * n, pa.string()),
    }
    clips_table = pa.table(columns)
    if model == models[0]:
      first_clips = clips_table
    write_table(clips_table, os.path.join(output, model, "clips"), run_id, prov, num_shards)
    if model == "clap" and write_labels:
      labels = [FOLDER_LABELS.get(f, ("Unknown", "Noise", "Silence")) for f in clip_folders]
      write_table(pa.table({
          "uri": pa.array(np.repeat(np.array(uris, dtype=object), 3), pa.string()),
          "rank": pa.array(np.tile(np.arange(1, 4, dtype=np.int32), n), pa.int32()),
          "label": pa.array([l for ls in labels for l in ls], pa.string()),
          "score": pa.array(np.tile(np.float32([0.8, 0.15, 0.05]), n), pa.float32()),
      }), os.path.join(output, model, "labels"), run_id, prov, 1)

  error_uris = [f"{root.rstrip('/')}/broken/broken_{i:03d}.wav" for i in range(n_errors)]
  error_types = [("frontend", "too_short"), ("decode", "corrupt_audio"),
                 ("decode", "unsupported_format")]
  rows = [(uri, model, *error_types[i % len(error_types)]) for i, uri in enumerate(error_uris)
          for model in models]
  if rows:
    write_table(pa.table({
        "uri": pa.array([r[0] for r in rows], pa.string()),
        "model": pa.array([r[1] for r in rows], pa.string()),
        "stage": pa.array([r[2] for r in rows], pa.string()),
        "error_type": pa.array([r[3] for r in rows], pa.string()),
        "message": pa.array([f"expected audio, found {r[3]}" for r in rows], pa.string()),
        "size_bytes": pa.array([100] * len(rows), pa.int64()),
        "last_modified_seconds": pa.array([1.77e9] * len(rows), pa.float64()),
        "settings_sha256": pa.array([provenance_by_model[r[1]]["settings_sha256"] for r in rows],
                                    pa.string()),
        "run_id": pa.array([run_id] * len(rows), pa.string()),
    }), os.path.join(output, "errors"), run_id, {"run_id": run_id, "models": list(models)}, 1)

  leftover_uris = []
  if leftover and models:  # a killed run: complete part files under a run id run.json does not name
    model = models[0]
    leftover_uris = [f"{root.rstrip('/')}/uncommitted/left_{i}.wav" for i in range(2)]
    clips = first_clips.slice(0, 2)
    clips = clips.set_column(clips.schema.get_field_index("uri"), "uri",
                             pa.array(leftover_uris, pa.string()))
    clips = clips.set_column(clips.schema.get_field_index("run_id"), "run_id",
                             pa.array([LEFTOVER_RUN_ID] * 2, pa.string()))
    write_table(clips, os.path.join(output, model, "clips"), LEFTOVER_RUN_ID,
                synthetic_provenance(model, LEFTOVER_RUN_ID), 1)

  write_run_json(output, run_id, models, provenance_by_model, root=root,
                 counts={"files_matched": n + n_errors, "files_embedded": n, "errors": len(rows)})
  return SyntheticOutput(output=output, run_id=run_id, models=tuple(models), uris=uris,
                         folders=clip_folders, clip_embeddings=clip_embeddings,
                         frame_counts=frame_counts, error_uris=error_uris,
                         leftover_uris=leftover_uris)


def write_run_json(output: str, run_id: str, models: Sequence[str],
                   provenance_by_model: dict[str, dict], *, root: str = "/data/audio",
                   counts: dict | None = None) -> str:
  """``<output>/run.json`` naming ``run_id`` as the committed run; returns its path."""
  record = {
      "kind": "audiobeam.run",
      "run_id": run_id,
      "started_at": "2026-03-04T01:02:03+00:00",
      "finished_at": "2026-03-04T01:05:00+00:00",
      "config": {"model": list(models), "input": [f"{root}/**"], "output": output,
                 "format": ["parquet"], "pooling": "mean"},
      "provenance": provenance_by_model,
      "counts": counts or {},
      "note": "SYNTHETIC: written by explore.testing, not by the pipeline",
  }
  path = os.path.join(output, RUN_JSON)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(record, f, indent=2, sort_keys=True)
  return path
