"""Search an output: exact cosine top-k over a model's clip (or frame) embeddings.

**The index.** Built once per (output, model, level) and cached under
``<cache>/search/<key>/`` (``<cache>``: ``audiobeam.assets.default_cache_dir()`` or
``cache_dir``), never inside the user's output. ``key`` hashes the output path, model,
level, embedding column and the committed part files (names and sizes): a new run, or
another committed part, gives another key and a fresh build. The folder holds

* ``matrix.npy``: float32 ``[N, D]``, every row L2-normalised (a zero row stays zero),
  opened memory-mapped (``np.load(mmap_mode="r", allow_pickle=False)``);
* ``rows.arrow``: Arrow IPC file, row ``i`` = ``uri`` (and for frames ``start_seconds``,
  ``end_seconds``), memory-mapped;
* ``index.json``: format, key, what it indexes, the part files, the provenance.

It is built in a temporary folder beside it and renamed into place (a concurrent or killed
build never leaves a half index). Rows come from one embedding space only: an output whose
committed runs have different ``settings_sha256`` (other weights or settings) is refused.

**A query** is ``scores = matrix @ q`` (q L2-normalised: cosine similarity) and
``np.argpartition`` for the top k, then a sort of those k (ties by row). Exact, no
approximation; about 0.3 s per query for 1M x 512 on 2 cores (``bench/search_bench.py``).

**Query vectors.**
* ``query_vector_from_row``: the vector of a clip already in the index (``--like URI``).
* ``query_vector_from_audio``: the query file embedded with the same model, weights and
  settings as the index (from its provenance; other weights or settings are refused).
  Every model goes through its bundle, rebuilt from the provenance
  (``bundle_from_provenance``) and run as the pipeline runs it (``audiobeam.api.Embedder``).
  The weights' sha256 and the settings' hash are checked against the provenance before
  the model is loaded.
* ``query_vector_from_text``: models with a text encoder (``text_models()``: CLAP): the
  bundle's ``text_embedder(local_assets, device)`` (see ``TEXT_EMBEDDER_METHOD``), same
  checks; other models are refused with a clear error.

Loaded query models are kept per process (``functools.lru_cache``, 3 each for audio and
text), keyed by the provenance, the overrides and the size and mtime of the local weight
files (a file replaced in place is loaded again).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import tempfile
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from audiobeam.assets import default_cache_dir
from audiobeam.errors import AssetError, ConfigError
from explore import outputs

__all__ = [
    "LEVELS",
    "INDEX_FORMAT",
    "TEXT_EMBEDDER_METHOD",
    "Hit",
    "SearchIndex",
    "index_key",
    "open_index",
    "asset_records",
    "query_vector_from_row",
    "query_vector_from_audio",
    "query_vector_from_text",
    "bundle_from_provenance",
    "embedder_for",
    "text_models",
]

LEVELS = ("clips", "frames")
INDEX_FORMAT = 1
TEXT_EMBEDDER_METHOD = "text_embedder"
"""``bundle.text_embedder(local_assets, device) -> Callable[[Sequence[str]], float32 [n, D]]``:
the interface a text-capable bundle (CLAP) provides; D and the space are those of its
clips' ``embedding``."""
_SEARCH_SUBDIR = "search"
_BATCH_ROWS = 65_536
_MATRIX = "matrix.npy"
_ROWS = "rows.arrow"
_META = "index.json"


@dataclasses.dataclass(frozen=True)
class Hit:
  """One result: ``rank`` (1-based), cosine ``score`` in [-1, 1], the ``uri``, and for
  frames ``start_seconds``/``end_seconds`` (None for clips); ``row`` in the index."""

  rank: int
  score: float
  uri: str
  start_seconds: float | None
  end_seconds: float | None
  row: int

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


class SearchIndex:
  """An opened index (see the module docstring). ``matrix``: float32 [N, D] memory-mapped;
  ``rows``: Arrow table of N rows; ``info``: the ``index.json`` record; ``built``: whether
  this call built it (and ``build_seconds``)."""

  def __init__(self, directory: str, built: bool = False, build_seconds: float = 0.0):
    self.directory = directory
    with open(os.path.join(directory, _META), encoding="utf-8") as f:
      self.info = json.load(f)
    self.matrix = np.load(os.path.join(directory, _MATRIX), mmap_mode="r", allow_pickle=False)
    self._rows_file = pa.memory_map(os.path.join(directory, _ROWS))
    self.rows = ipc.open_file(self._rows_file).read_all()
    if (self.info.get("format") != INDEX_FORMAT or self.matrix.dtype != np.float32
        or self.matrix.shape != (self.info["count"], self.info["dim"])
        or self.rows.num_rows != self.info["count"]):
      raise ConfigError(f"expected a search index of format {INDEX_FORMAT} with "
                        f"{self.info.get('count')} rows in {directory!r}, found another shape; "
                        "delete that folder (it is a cache) or pass rebuild=True")
    self.built = built
    self.build_seconds = build_seconds

  def __len__(self) -> int:
    return self.matrix.shape[0]

  @property
  def dim(self) -> int:
    return self.matrix.shape[1]

  @property
  def provenance(self) -> dict:
    return self.info.get("provenance") or {}

  def query(self, vector: np.ndarray, top_k: int = 10) -> list[Hit]:
    """Exact cosine top-k of ``vector`` (float [D], any norm but zero) -> hits, best first."""
    q = np.asarray(vector, dtype=np.float32).reshape(-1)
    if q.shape[0] != self.dim:
      raise ConfigError(f"expected a query vector of {self.dim} numbers (the index's "
                        f"dimension), found {q.shape[0]}")
    norm = float(np.linalg.norm(q.astype(np.float64)))
    if not np.isfinite(norm) or norm == 0.0:
      raise ConfigError(f"expected a finite, non-zero query vector, found norm {norm}")
    if top_k < 1:
      raise ConfigError(f"expected --top_k >= 1, found {top_k}")
    q = q / np.float32(norm)
    scores = self.matrix @ q                                    # float32 [N]
    k = min(int(top_k), scores.shape[0])
    if k == 0:
      return []
    best = np.argpartition(-scores, k - 1)[:k] if k < scores.shape[0] else np.arange(k)
    best = best[np.lexsort((best, -scores[best]))]              # score desc, then row
    picked = self.rows.take(pa.array(best))
    uris = picked["uri"].to_pylist()
    names = picked.column_names
    starts = picked["start_seconds"].to_pylist() if "start_seconds" in names else [None] * k
    ends = picked["end_seconds"].to_pylist() if "end_seconds" in names else [None] * k
    return [Hit(rank=i + 1, score=float(scores[row]), uri=uris[i], start_seconds=starts[i],
                end_seconds=ends[i], row=int(row)) for i, row in enumerate(best)]


# --- building ----------------------------------------------------------------------------------

def index_key(output: str, model: str, level: str, column: str,
              parts: Sequence[outputs.PartFile]) -> str:
  """sha256 (first 24 hex) of what the index is made of: output, model, level, column,
  and each committed part file's path and size."""
  record = {"format": INDEX_FORMAT, "output": output, "model": model, "level": level,
            "column": column, "parts": [[p.path, p.size_bytes] for p in parts]}
  canonical = json.dumps(record, sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:24]


def _check_one_space(provs: Mapping[str, dict], model: str, level: str, path: str) -> dict:
  """The one provenance the index's rows share; ConfigError for mixed settings."""
  settings = {run: p.get("settings_sha256") for run, p in provs.items()}
  distinct = set(settings.values())
  if len(distinct) > 1:
    listing = "; ".join(f"run {run}: {sha}" for run, sha in sorted(settings.items()))
    raise ConfigError(f"expected the committed {model} {level} of {path!r} to come from one "
                      f"setting (one settings_sha256), found several ({listing}): their "
                      "embeddings are not comparable. Search each run's output separately or "
                      "re-embed with one setting.")
  return next(iter(provs.values()), {})


def _rows_schema(level: str) -> pa.Schema:
  fields = [pa.field("uri", pa.string())]
  if level == "frames":
    fields += [pa.field("start_seconds", pa.float64()), pa.field("end_seconds", pa.float64())]
  return pa.schema(fields)


def _build(directory: str, parts: Sequence[outputs.PartFile], column: str, level: str,
           info: dict) -> None:
  """Writes ``matrix.npy``, ``rows.arrow``, ``index.json`` into ``directory``."""
  counts, dim = [], None
  for part in parts:
    with outputs.open_binary(part.path) as f:
      parquet = pq.ParquetFile(f)
      counts.append(parquet.metadata.num_rows)
      field = parquet.schema_arrow.field(column)
      if pa.types.is_fixed_size_list(field.type):
        dim = dim or field.type.list_size
  total = int(sum(counts))
  schema = _rows_schema(level)
  row_columns = schema.names
  matrix = None
  offset = 0
  with pa.OSFile(os.path.join(directory, _ROWS), "wb") as sink, \
      ipc.new_file(sink, schema) as writer:
    for part in parts:
      with outputs.open_binary(part.path) as f:
        parquet = pq.ParquetFile(f)
        for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, columns=[column, *row_columns]):
          block = outputs.embedding_matrix(batch.column(column), what=column)   # [b, D]
          if matrix is None:
            dim = block.shape[1]
            matrix = np.lib.format.open_memmap(os.path.join(directory, _MATRIX), mode="w+",
                                               dtype=np.float32, shape=(total, dim))
          elif block.shape[1] != matrix.shape[1]:
            raise ConfigError(f"expected every {column} in the index to have "
                              f"{matrix.shape[1]} numbers, found {block.shape[1]} in {part.path!r}")
          norms = np.linalg.norm(block.astype(np.float64), axis=1, keepdims=True)
          # Into the (zero-filled) file: a zero row stays zero.
          np.divide(block, norms, out=matrix[offset:offset + len(block)], where=norms > 0,
                    casting="unsafe")
          offset += len(block)
          writer.write_batch(pa.record_batch(
              [batch.column(name).cast(schema.field(name).type) for name in row_columns],
              schema=schema))
  if matrix is None:  # no rows at all
    matrix = np.lib.format.open_memmap(os.path.join(directory, _MATRIX), mode="w+",
                                       dtype=np.float32, shape=(0, dim or 0))
  matrix.flush()
  del matrix
  info = {**info, "count": total, "dim": int(dim or 0), "column": column}
  with open(os.path.join(directory, _META), "w", encoding="utf-8") as f:
    json.dump(info, f, indent=1, sort_keys=True)


def open_index(path: str | outputs.Output, model: str, level: str = "clips", *,
               cache_dir: str | None = None, rebuild: bool = False,
               progress: Callable[[str], None] | None = None) -> SearchIndex:
  """The index of ``model``'s committed ``level`` rows (``clips`` or ``frames``) of the
  output at ``path``: opened from the cache, or built there first (see the module)."""
  if level not in LEVELS:
    raise ConfigError(f"expected level to be one of {', '.join(LEVELS)}, found {level!r}")
  out = outputs.open_output(path)
  outputs.require_model(out, model)
  parts = outputs.part_files(out, model, level)
  if not parts:
    raise ConfigError(f"expected committed {model}/{level} part files in {out.path!r}, found none"
                      + ("; the run wrote no frames (--format without parquet?)"
                         if level == "frames" else ""))
  provs = outputs.provenances(out, model, level)
  provenance = _check_one_space(provs, model, level, out.path)
  with outputs.open_binary(parts[0].path) as f:
    schema = pq.ParquetFile(f).schema_arrow
  column = outputs.embedding_column(schema, provenance)
  key = index_key(out.path, model, level, column, parts)
  root = os.path.join(cache_dir or default_cache_dir(), _SEARCH_SUBDIR)
  final = os.path.join(root, key)
  if os.path.isdir(final) and not rebuild:
    try:
      return SearchIndex(final)
    except (OSError, ValueError, KeyError, ConfigError, pa.ArrowInvalid):
      pass  # unreadable cache entry: build it again
  os.makedirs(root, exist_ok=True)
  if progress:
    progress(f"building the search index of {model} {level} ({len(parts)} part files) in {final}")
  started = time.monotonic()
  staging = tempfile.mkdtemp(dir=root, prefix=f".tmp-{key}-")
  try:
    _build(staging, parts, column, level, {
        "format": INDEX_FORMAT, "key": key, "output": out.path, "model": model, "level": level,
        "parts": [[p.path, p.size_bytes, p.run_id] for p in parts], "provenance": provenance,
        "run_ids": sorted(provs), "created_unix_seconds": round(time.time(), 3)})
    if os.path.isdir(final):
      shutil.rmtree(final)  # rebuild, or a broken entry: our own cache
    try:
      os.replace(staging, final)
    except OSError:  # another process just put the same index in place
      pass
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return SearchIndex(final, built=True, build_seconds=time.monotonic() - started)


# --- query vectors -----------------------------------------------------------------------------

def query_vector_from_row(index: SearchIndex, uri: str, start_seconds: float | None = None
                          ) -> np.ndarray:
  """The (normalised) vector of ``uri`` in the index (its first frame at ``start_seconds``
  for frame indexes; the first row of that uri otherwise). ConfigError when absent."""
  uris = index.rows["uri"]
  mask = pc.equal(uris, uri)
  if start_seconds is not None and "start_seconds" in index.rows.column_names:
    mask = pc.and_(mask, pc.less_equal(
        pc.abs(pc.subtract(index.rows["start_seconds"], start_seconds)), 1e-6))
  rows = np.nonzero(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool))[0]
  if len(rows) == 0:
    raise ConfigError(f"expected --like to name a uri in the index ({len(index):,} rows of "
                      f"{index.info['model']} {index.info['level']}), found no row for {uri!r}")
  return np.array(index.matrix[int(rows[0])])


def asset_records(provenance: Mapping[str, Any]) -> dict[str, dict[str, str | None]]:
  """``{asset name: {"uri", "sha256"}}`` from a provenance record: its ``assets`` mapping
  (the multi-model pipeline), or the ``<name>_uri`` keys with ``settings.<name>_sha256``
  (the VGGish-only pipeline: ``checkpoint``, ``pca_params``)."""
  records: dict[str, dict[str, str | None]] = {}
  assets = provenance.get("assets")
  if isinstance(assets, Mapping):
    for name, record in assets.items():
      if isinstance(record, Mapping):
        records[name] = {"uri": record.get("uri"), "sha256": record.get("sha256")}
  settings = provenance.get("settings") or {}
  for key, value in provenance.items():
    if key.endswith("_uri") and key[:-4] not in records:
      records[key[:-4]] = {"uri": value, "sha256": settings.get(f"{key[:-4]}_sha256")}
  return records


def text_models() -> tuple[str, ...]:
  """Registered models whose bundle has a text encoder in the space of its clips
  (``TEXT_EMBEDDER_METHOD``): CLAP today."""
  from audiobeam.registry import MODELS, bundle_class  # pylint: disable=import-outside-toplevel
  return tuple(m for m in MODELS if hasattr(bundle_class(m), TEXT_EMBEDDER_METHOD))


def _check_same_weights(provenance: Mapping[str, Any], found: Mapping[str, tuple[str, str]],
                        model: str) -> None:
  """``found``: {asset: (uri, sha256)} the query would use; AssetError unless every asset
  the index records has the same sha256."""
  recorded = asset_records(provenance)
  problems = []
  for name, record in sorted(recorded.items()):
    if name not in found:
      continue
    uri, sha = found[name]
    if record.get("sha256") and sha != record["sha256"]:
      problems.append(f"{name}: the index was made with sha256 {record['sha256']} "
                      f"({record.get('uri')}), the query would use {sha} ({uri})")
  if problems:
    raise AssetError(f"expected the query to be embedded with the {model} weights of the index, "
                     f"found other weights: {'; '.join(problems)}. Pass the index's weights "
                     "(their URIs are in `python -m pipelines.inspect OUT`).")


def _check_same_settings(provenance: Mapping[str, Any], settings: Mapping[str, Any],
                         model: str) -> None:
  """ConfigError unless ``settings`` (what the query would be embedded with) hash to the
  index's ``settings_sha256`` (compared as ``settings`` when the hash is not recorded)."""
  from transforms.provenance import settings_sha256  # pylint: disable=import-outside-toplevel
  ours = json.loads(json.dumps(settings, sort_keys=True))
  recorded_sha = provenance.get("settings_sha256")
  theirs = provenance.get("settings")
  same = (settings_sha256(ours) == recorded_sha if recorded_sha
          else theirs is None or ours == theirs)
  if same:
    return
  theirs = theirs if isinstance(theirs, Mapping) else {}
  differ = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
  shown = "; ".join(f"{k}: index {theirs.get(k)!r}, query {ours.get(k)!r}" for k in differ[:6])
  raise ConfigError(f"expected the query to be embedded with the {model} settings of the index "
                    f"(settings_sha256 {recorded_sha}), found other settings"
                    + (f" ({shown})" if shown else "") + ": its embedding would not be "
                    "comparable. Search with this audiobeam version's settings or re-embed.")


def _override_options(cls, model: str, provenance: Mapping[str, Any],
                      overrides: Mapping[str, str]) -> dict[str, str]:
  """``overrides`` (``--asset NAME=PATH``) -> option values. ``NAME`` is one of the model's
  path options (``checkpoint``, ``yamnet_weights``, ``clap_checkpoint``, ...) or an asset
  name of the provenance (``weights``, ``class_map``, ...: the path option whose recorded
  value is that asset's URI). ConfigError for any other name: an override is never ignored."""
  path_options = [o.name for o in cls.options if o.kind == "path"]
  recorded = provenance.get("options") or {}
  by_asset = {name: option for name, record in asset_records(provenance).items()
              for option in path_options
              if record.get("uri") and recorded.get(option) == record["uri"]}
  values = {}
  for name, path in overrides.items():
    if name in path_options:
      values[name] = path
    elif name in by_asset:
      values[by_asset[name]] = path
    else:
      raise ConfigError(f"expected --asset NAME=PATH with NAME one of {model}'s file options "
                        f"({', '.join(path_options)})"
                        + (f" or its assets ({', '.join(sorted(by_asset))})" if by_asset else "")
                        + f", found {name!r}")
  return values


def bundle_from_provenance(model: str, provenance: Mapping[str, Any],
                           overrides: Mapping[str, str] = (), cache_dir: str | None = None):
  """The model's ``ModelBundle`` configured as the index's run was: its recorded option
  values (``options``; ``overrides`` replacing some, e.g. a local copy of the weights, see
  ``_override_options``) and shared settings (``common``); on the CPU, caching remote
  weights in ``cache_dir``. ConfigError when the provenance does not say (an output of an
  older audiobeam) or the model is not registered."""
  from audiobeam.bundle import Common  # pylint: disable=import-outside-toplevel
  from audiobeam.registry import MODELS, bundle_class  # pylint: disable=import-outside-toplevel

  if model not in MODELS:
    raise ConfigError(f"expected the {model} model to be registered in audiobeam.registry to "
                      f"embed a query like its clips, found only {', '.join(MODELS)} in this "
                      f"build; search {model} with --like URI")
  cls = bundle_class(model)
  recorded_options = provenance.get("options")
  if not isinstance(recorded_options, Mapping):
    raise ConfigError(f"expected the index's provenance to record the {model} options "
                      "(key 'options') to embed a query the same way, found none (an output "
                      "of an older audiobeam); re-embed with this version or search with --like")
  values = {o.name: recorded_options.get(o.name, o.default) for o in cls.options}
  values.update(_override_options(cls, model, provenance, dict(overrides)))
  fields = {f.name for f in dataclasses.fields(Common)}
  common = Common(**{**{k: v for k, v in (provenance.get("common") or {}).items() if k in fields},
                     "cache_dir": cache_dir, "device": "cpu"})
  return cls(values, common)


def _checked_bundle(model: str, provenance: Mapping[str, Any], overrides: Mapping[str, str],
                    cache_dir: str | None):
  """(bundle, resolved assets) for a query, after checking that the weights' sha256 and
  the settings are the index's (AssetError / ConfigError before any model is loaded)."""
  bundle = bundle_from_provenance(model, provenance, overrides, cache_dir)
  assets = bundle.resolve_assets(local_runner=True)
  _check_same_weights(provenance, {n: (a.uri, a.sha256) for n, a in assets.items()}, model)
  _check_same_settings(provenance, bundle.settings(assets), model)
  return bundle, assets


def _file_stamps(bundle_values: Mapping[str, Any]) -> tuple:
  """(path, size, mtime_ns) of every local file behind the option values: a weights file
  replaced in place gives another cache key (the cached model is not reused for it)."""
  stamps = []
  for value in bundle_values.values():
    if not isinstance(value, str) or not outputs.is_local(value) or not os.path.exists(value):
      continue
    paths = ([os.path.join(d, n) for d, _, names in os.walk(value) for n in names]
             if os.path.isdir(value) else [value])
    for path in sorted(paths):
      info = os.stat(path)
      stamps.append((path, info.st_size, info.st_mtime_ns))
  return tuple(stamps)


@functools.lru_cache(maxsize=3)
def _audio_embedder(model: str, provenance_json: str, overrides_json: str, cache_dir: str | None,
                    stamps: tuple):
  """The model loaded as the index's run had it (``audiobeam.api.Embedder``), kept for the
  next query of the same process (a notebook, a server): loading costs seconds, a query
  milliseconds. ``stamps``: part of the cache key only."""
  del stamps
  from audiobeam.api import Embedder  # pylint: disable=import-outside-toplevel
  bundle, _ = _checked_bundle(model, json.loads(provenance_json), json.loads(overrides_json),
                              cache_dir)
  return Embedder(bundle)


@functools.lru_cache(maxsize=3)
def _text_embedder(model: str, provenance_json: str, overrides_json: str, cache_dir: str | None,
                   stamps: tuple) -> Callable[[Sequence[str]], np.ndarray]:
  """The bundle's text embedder, loaded as the index's run had the model (kept, as
  ``_audio_embedder``)."""
  del stamps
  bundle, assets = _checked_bundle(model, json.loads(provenance_json), json.loads(overrides_json),
                                   cache_dir)
  factory = getattr(bundle, TEXT_EMBEDDER_METHOD, None)
  if factory is None:
    raise ConfigError(f"expected the {model} bundle to provide {TEXT_EMBEDDER_METHOD}"
                      "(local_assets, device) for --text, found none in this version")
  return factory({name: asset.local_path for name, asset in assets.items()}, bundle.common.device)


def _cache_key(model: str, provenance: Mapping[str, Any], overrides: Mapping[str, str],
               cache_dir: str | None) -> tuple:
  values = dict(provenance.get("options") or {})
  values.update(overrides)
  return (model, json.dumps(provenance, sort_keys=True),
          json.dumps(dict(overrides), sort_keys=True), cache_dir, _file_stamps(values))


def embedder_for(model: str, provenance: Mapping[str, Any], overrides: Mapping[str, str] = (),
                 cache_dir: str | None = None):
  """``audiobeam.api.Embedder`` for ``model`` exactly as the provenance describes it (same
  weights by sha256, same settings; AssetError / ConfigError otherwise)."""
  return _audio_embedder(*_cache_key(model, provenance, dict(overrides), cache_dir))


def _provenance_of(output: str | outputs.Output | SearchIndex, model: str, level: str) -> dict:
  """The provenance of an index, or of an output's committed ``model``/``level`` rows
  (which must share one setting)."""
  if isinstance(output, SearchIndex):
    if output.info["model"] != model:
      raise ConfigError(f"expected an index of {model}, found one of {output.info['model']}")
    return output.provenance
  out = outputs.open_output(output)
  outputs.require_model(out, model)
  return _check_one_space(outputs.provenances(out, model, level), model, level, out.path)


def query_vector_from_audio(output: str | outputs.Output | SearchIndex, model: str, audio: str,
                            *, level: str = "clips", overrides: Mapping[str, str] | None = None,
                            cache_dir: str | None = None) -> np.ndarray:
  """The audio file ``audio`` embedded as the output's (or index's) ``model`` rows were:
  same weights and settings, read from the provenance (``overrides``: local copies of the
  weights, see ``_override_options``) -> its pooled clip embedding, float32 [D] (the
  pipeline's computation, ``audiobeam.api.Embedder``). AssetError/ConfigError when that
  cannot be done exactly (other weights, other settings, unknown settings); the
  pipeline's InputError when the file cannot be embedded (too short, corrupt)."""
  provenance = _provenance_of(output, model, level)
  embedder = embedder_for(model, provenance, overrides or {}, cache_dir)
  return np.asarray(embedder.embed_file(audio).clip_columns["embedding"], dtype=np.float32)


def query_vector_from_text(output: str | outputs.Output | SearchIndex, model: str, text: str, *,
                           overrides: Mapping[str, str] | None = None,
                           cache_dir: str | None = None) -> np.ndarray:
  """``text`` embedded by the model's text encoder (CLAP), in the space of its clips ->
  float32 [D] (unit norm). ConfigError for models without one (saying what to use instead)
  or an empty text; AssetError when the weights differ from the clips'.

  ``output``: an output (path or ``Output``; its clips' provenance says how they were made)
  or an opened index."""
  capable = text_models()
  if model not in capable:
    raise ConfigError(f"expected --text with a model that embeds text and audio in one space "
                      f"({', '.join(capable) or 'none registered'}), found {model!r}, which "
                      f"embeds audio only: search it with --audio QUERY_FILE or --like URI, or "
                      f"embed the collection with --model {' or '.join(capable) or 'clap'}")
  if not text or not text.strip():
    raise ConfigError("expected --text to be a non-empty description, found an empty one")
  provenance = _provenance_of(output, model, "clips")
  embed = _text_embedder(*_cache_key(model, provenance, dict(overrides or {}), cache_dir))
  vectors = np.asarray(embed([text]), dtype=np.float32)
  if vectors.ndim != 2 or vectors.shape[0] != 1:
    raise ConfigError(f"expected {model}'s text embedder to return [1, D], found {vectors.shape}")
  return vectors[0]
