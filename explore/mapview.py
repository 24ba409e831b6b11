"""The map: a model's pooled clip embeddings in 2-D, as ONE self-contained offline HTML file.

``load_map_data`` reads a model's committed clips (``explore.outputs``), samples large
inputs deterministically, joins top labels (YAMNet/AST ``top_labels``, CLAP ``top_label``:
of this model or of any other model in the same output, by uri), resolves the colour
column and projects to 2-D (``explore.projection``). ``write_html`` writes the page:
plotly.js inlined (works offline, no CDN), a WebGL scatter (``scattergl``; 100,000 points
stay responsive), hover shows uri, duration and labels, clicking a point plays the clip in
the page when its uri is a local file (as a ``file://`` URL) or an ``http(s)`` URL.
``write_png`` renders the same figure to PNG with kaleido (headless Chromium).

Same input, same picture: rows are ordered by uri, the sample and the projection are
seeded, and the HTML holds no timestamp (equal inputs give byte-identical files).
"""

from __future__ import annotations

import dataclasses
import html
import math
import os
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from audiobeam.assets import write_atomically
from audiobeam.errors import ConfigError
from explore import outputs
from explore.projection import DEFAULT_METHOD, DEFAULT_SAMPLE, project, sample_indices, uri_order

__all__ = [
    "LABEL_COLUMNS",
    "MAX_CATEGORIES",
    "DIV_ID",
    "MapData",
    "label_texts",
    "relative_folders",
    "read_metadata_csv",
    "load_map_data",
    "figure",
    "html_page",
    "write_html",
    "write_png",
    "choose_model",
]

LABEL_COLUMNS = ("top_labels", "top_label")
"""Clip columns holding a model's best labels: YAMNet's and AST's ``top_labels`` (a list,
best first: of strings, or of structs with ``label``/``score``), CLAP's ``top_label``."""
MAX_CATEGORIES = 20
DIV_ID = "audiobeam-map"
_HOVER_LABELS = 3
_MISSING = "(missing)"
_PNG_SIZE = (1600, 1000)


@dataclasses.dataclass
class MapData:
  """Everything the page shows. Arrays are in point order (sorted by uri).

  ``x``, ``y``: float32 [n]; ``duration_seconds``: float64 [n]; ``labels``: per point the
  hover text of its labels ('' when none); ``color``: per point a category (str) or a number
  (float, NaN when missing) or None; ``total_clips``: committed clips before sampling;
  ``models``: every model of the output.
  """

  output: str
  model: str
  method: str
  seed: int
  sample: int
  uris: list[str]
  x: np.ndarray
  y: np.ndarray
  duration_seconds: np.ndarray
  labels: list[str]
  label_sources: list[str]
  color_by: str | None
  color_kind: str | None
  color: list[Any] | None
  total_clips: int
  run_ids: list[str]
  settings_sha256: list[str]
  assets: dict[str, str]
  models: list[str] = dataclasses.field(default_factory=list)

  @property
  def sampled(self) -> bool:
    return len(self.uris) < self.total_clips


# --- labels, folders, metadata ---------------------------------------------------------------

def _label_items(value) -> list[tuple[str, float | None]]:
  """One cell of a label column -> [(label, score or None)], best first."""
  if value is None:
    return []
  if isinstance(value, str):
    return [(value, None)]
  if isinstance(value, dict):
    name = next((value[k] for k in ("label", "name", "display_name") if value.get(k)), None)
    score = value.get("score")
    return [(str(name), float(score) if score is not None else None)] if name is not None else []
  if isinstance(value, (list, tuple)):
    return [item for v in value for item in _label_items(v)]
  return [(str(value), None)]


def label_texts(column: pa.ChunkedArray | pa.Array | Sequence
                ) -> list[list[tuple[str, float | None]]]:
  """A label column (string, list<string>, list<struct<label, score>>) -> per row the
  ``(label, score)`` pairs, best first."""
  values = column.to_pylist() if hasattr(column, "to_pylist") else list(column)
  return [_label_items(v) for v in values]


def _format_labels(items: list[tuple[str, float | None]]) -> str:
  return ", ".join(f"{name} ({score:.2f})" if score is not None else name
                   for name, score in items[:_HOVER_LABELS])


def relative_folders(uris: Sequence[str]) -> list[str]:
  """Each uri's folder below the folders' longest common prefix (``dogs``, ``cats/big``);
  the last folder name when they all share one folder."""
  parents = [u.rsplit("/", 1)[0] if "/" in u else "" for u in uris]
  if not parents:
    return []
  split = [p.split("/") for p in parents]
  common = 0
  for parts in zip(*split):
    if any(p != parts[0] for p in parts):
      break
    common += 1
  out = []
  for parts in split:
    rest = parts[common:]
    out.append("/".join(rest) if rest else (parts[-1] if parts and parts[-1] else "."))
  return out


def read_metadata_csv(path: str) -> tuple[dict[str, int], pa.Table]:
  """A CSV with a ``uri`` column -> ({uri: row}, table). ConfigError when the file cannot be
  read, has no ``uri`` column, or names a uri twice."""
  import pyarrow.csv as pacsv  # pylint: disable=import-outside-toplevel
  try:
    table = pacsv.read_csv(path)
  except (OSError, pa.ArrowInvalid) as error:
    raise ConfigError(f"expected --metadata {path!r} to be a readable CSV file with a header, "
                      f"found: {error}") from None
  if "uri" not in table.column_names:
    raise ConfigError(f"expected --metadata {path!r} to have a 'uri' column (the clips' uri as in "
                      f"clips/), found columns {table.column_names}")
  rows: dict[str, int] = {}
  for i, uri in enumerate(table["uri"].cast(pa.string()).to_pylist()):
    if uri in rows:
      raise ConfigError(f"expected each uri once in --metadata {path!r}, found {uri!r} on rows "
                        f"{rows[uri] + 2} and {i + 2}")
    rows[uri] = i
  return rows, table


# --- loading ------------------------------------------------------------------------------------

def choose_model(path: str | outputs.Output, model: str | None) -> str:
  """``model`` if the output has it; when ``model`` is None, ``outputs.default_model`` (the
  run's first model)."""
  out = outputs.open_output(path)
  if model is None:
    return outputs.default_model(out)
  return outputs.require_model(out, model)


def _scalar_columns(schema: pa.Schema) -> list[str]:
  """Columns that are not vectors (the embedding) -- cheap to read for every row."""
  return [f.name for f in schema if not outputs.is_vector_type(f.type)]


def _read_selected_embeddings(parts: Sequence[outputs.PartFile], column: str,
                              rows: np.ndarray) -> np.ndarray:
  """Rows ``rows`` (global indices over the parts, in the wanted order) of ``column``,
  read one part at a time: float32 [len(rows), D]."""
  counts = []
  for part in parts:
    with outputs.open_binary(part.path) as f:
      counts.append(pq.ParquetFile(f).metadata.num_rows)
  offsets = np.concatenate([[0], np.cumsum(counts)])
  out = None
  for p, part in enumerate(parts):
    mask = (rows >= offsets[p]) & (rows < offsets[p + 1])
    if not mask.any():
      continue
    with outputs.open_binary(part.path) as f:
      table = pq.ParquetFile(f).read(columns=[column])
    block = outputs.embedding_matrix(table[column].take(pa.array(rows[mask] - offsets[p])),
                                     what=column)
    if out is None:
      out = np.empty((len(rows), block.shape[1]), np.float32)
    out[np.nonzero(mask)[0]] = block
  return out if out is not None else np.zeros((0, 0), np.float32)


def _label_sources(path: outputs.Output, model: str, uris: Sequence[str],
                   own: pa.Table) -> dict[str, list[list[tuple[str, float | None]]]]:
  """``{"<model>.<column>": per point [(label, score)]}`` for every label column of this
  model and of the other models of the output (joined by uri)."""
  sources = {}
  for name in LABEL_COLUMNS:
    if name in own.column_names:
      sources[f"{model}.{name}"] = _with_scores(own, name)
  for other in outputs.models(path):
    if other == model:
      continue
    parts = outputs.part_files(path, other, "clips")
    if not parts:
      continue
    with outputs.open_binary(parts[0].path) as f:
      names = pq.ParquetFile(f).schema_arrow.names
    wanted = [c for c in LABEL_COLUMNS if c in names]
    if not wanted:
      continue
    table = outputs.read_parts(parts, ["uri", *wanted, *(_SCORE_COLUMNS[c] for c in wanted)])
    index = {u: i for i, u in enumerate(table["uri"].to_pylist())}
    for name in wanted:
      if name not in table.column_names:
        continue
      texts = _with_scores(table, name)
      sources[f"{other}.{name}"] = [texts[index[u]] if u in index else [] for u in uris]
  return sources


_SCORE_COLUMNS = {"top_labels": "top_labels_scores", "top_label": "top_label_score"}


def _with_scores(table: pa.Table, name: str) -> list[list[tuple[str, float | None]]]:
  """Label column ``name`` as (label, score) pairs; a plain string label takes its score
  from the companion column (CLAP's ``top_label_score``) when there is one."""
  texts = label_texts(table[name])
  score_name = _SCORE_COLUMNS.get(name)
  if score_name in table.column_names and not pa.types.is_nested(table[score_name].type):
    scores = table[score_name].to_pylist()
    texts = [[(items[0][0], scores[i])] + items[1:] if items and items[0][1] is None
              and scores[i] is not None else items for i, items in enumerate(texts)]
  return texts


def _categorical(values: Sequence[Any]) -> bool:
  """Categories (a legend) unless the values are numbers that are not all integers
  (``duration_seconds``) or are integers of more than ``MAX_CATEGORIES`` values
  (``size_bytes``): those get a colour scale."""
  present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
  numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
  if not (numeric and present):
    return True
  fractional = any(isinstance(v, float) and not v.is_integer() for v in present)
  return not (fractional or len(set(present)) > MAX_CATEGORIES)


def _resolve_color(color_by: str, *, table: pa.Table, uris: Sequence[str],
                   label_sources: dict[str, list], metadata: tuple[dict[str, int], pa.Table] | None
                   ) -> tuple[str, list[Any]]:
  """``--color_by`` -> (kind "category"|"number", per point value)."""
  values: list[Any] | None = None
  if color_by == "folder":
    values = relative_folders(uris)
  elif color_by == "label" and label_sources:
    values = [items[0][0] if items else None for items in next(iter(label_sources.values()))]
  elif color_by in table.column_names and color_by not in LABEL_COLUMNS:
    column = table[color_by]
    if pa.types.is_nested(column.type):
      raise ConfigError(f"expected --color_by to name a column of single values, found "
                        f"{color_by!r} of type {column.type}")
    values = column.to_pylist()
  else:
    qualified = [k for k in label_sources if k == color_by or k.split(".", 1)[1] == color_by]
    if qualified:
      values = [items[0][0] if items else None for items in label_sources[qualified[0]]]
    elif metadata is not None and color_by in metadata[1].column_names:
      rows, meta = metadata
      column = meta[color_by].to_pylist()
      values = [column[rows[u]] if u in rows else None for u in uris]
  if values is None:
    choices = ["folder", *(["label"] if label_sources else []), *label_sources,
               *[c for c in table.column_names if c not in LABEL_COLUMNS and c != "uri"
                 and not pa.types.is_nested(table[c].type)],
               *([c for c in metadata[1].column_names if c != "uri"] if metadata else [])]
    raise ConfigError(f"expected --color_by to be one of {', '.join(choices)}; found {color_by!r}")
  if _categorical(values):
    return "category", [_MISSING if v is None else str(v) for v in values]
  return "number", [float("nan") if v is None else float(v) for v in values]


def load_map_data(path: str | outputs.Output, model: str | None = None, *,
                  method: str = DEFAULT_METHOD, color_by: str | None = None, metadata: str | None = None,
                  sample: int = DEFAULT_SAMPLE, seed: int = 0) -> MapData:
  """Reads, samples, labels, colours and projects a model's committed clips (see module)."""
  if sample < 0:
    raise ConfigError(f"expected --sample to be 0 (all clips) or a positive count, found {sample}")
  path = outputs.open_output(path)
  model = choose_model(path, model)
  parts = outputs.part_files(path, model, "clips")
  with outputs.open_binary(parts[0].path) as f:
    schema = pq.ParquetFile(f).schema_arrow
  provs = outputs.provenances(path, model, "clips")
  column = outputs.embedding_column(schema, next(iter(provs.values()), None))
  meta = outputs.read_parts(parts, [c for c in _scalar_columns(schema) if c != column])
  all_uris = meta["uri"].to_pylist()
  chosen = sample_indices(all_uris, sample, seed)
  chosen = chosen[uri_order([all_uris[i] for i in chosen])]
  meta = meta.take(pa.array(chosen))
  uris = meta["uri"].to_pylist()
  embeddings = _read_selected_embeddings(parts, column, chosen)
  points = project(embeddings, method, seed)

  sources = _label_sources(path, model, uris, meta)
  csv = read_metadata_csv(metadata) if metadata else None
  if csv is not None and not any(u in csv[0] for u in uris):
    raise ConfigError(f"expected --metadata {metadata!r} to share uris with the clips, found none "
                      f"in common (clips e.g. {uris[0]!r}; CSV e.g. {next(iter(csv[0]), None)!r}); "
                      "its uri column must hold the clips' uri exactly")
  color_kind, color = (None, None)
  if color_by:
    color_kind, color = _resolve_color(color_by, table=meta, uris=uris, label_sources=sources,
                                       metadata=csv)
  labels = []
  for i in range(len(uris)):
    texts = [f"{name.split('.')[0]}: {_format_labels(items[i])}"
             for name, items in sources.items() if items[i]]
    labels.append("; ".join(texts))
  durations = (np.asarray(meta["duration_seconds"].to_numpy(zero_copy_only=False), np.float64)
               if "duration_seconds" in meta.column_names else np.full(len(uris), np.nan))
  assets = {}
  for prov in provs.values():
    for name, record in (prov.get("assets") or {}).items():
      if isinstance(record, dict) and record.get("sha256"):
        assets[name] = record["sha256"]
  return MapData(
      output=path.path, model=model, method=method, seed=seed, sample=sample, uris=uris,
      x=points[:, 0], y=points[:, 1], duration_seconds=durations, labels=labels,
      label_sources=list(sources), color_by=color_by, color_kind=color_kind, color=color,
      total_clips=len(all_uris), run_ids=sorted(provs), models=outputs.models(path),
      settings_sha256=sorted({p.get("settings_sha256", "") for p in provs.values()} - {""}),
      assets=assets)


# --- the figure and the page -------------------------------------------------------------------

def _hover(data: MapData, i: int) -> str:
  lines = [f"<b>{html.escape(data.uris[i], quote=False)}</b>"]
  duration = data.duration_seconds[i]
  if not math.isnan(duration):
    lines.append(f"duration {duration:.2f} s")
  if data.labels[i]:
    lines.append(html.escape(data.labels[i], quote=False))
  if data.color is not None and data.color_by not in ("folder",):
    value = data.color[i]
    shown = f"{value:.4g}" if isinstance(value, float) else value
    lines.append(html.escape(f"{data.color_by}: {shown}", quote=False))
  return "<br>".join(lines)


def _marker_size(n: int) -> int:
  return 7 if n <= 2_000 else 5 if n <= 20_000 else 3


def figure(data: MapData):
  """The plotly figure: one WebGL trace per category (legend toggles them), or one trace
  coloured by a number (with a colour bar), or one plain trace. ``customdata`` is the uri."""
  import plotly.graph_objects as go  # pylint: disable=import-outside-toplevel

  n = len(data.uris)
  hover = [_hover(data, i) for i in range(n)]
  size = _marker_size(n)
  uris = np.asarray(data.uris, dtype=object)
  hover_arr = np.asarray(hover, dtype=object)

  def trace(index: np.ndarray, name: str, **marker):
    return go.Scattergl(
        x=data.x[index], y=data.y[index], mode="markers", name=name,
        customdata=uris[index].tolist(), hovertext=hover_arr[index].tolist(),
        hovertemplate="%{hovertext}<extra></extra>",
        marker=dict(size=size, opacity=0.8, line=dict(width=0), **marker))

  traces = []
  if data.color_kind == "category":
    values = np.asarray(data.color, dtype=object)
    names, counts = np.unique(values.astype(str), return_counts=True)
    order = sorted(zip(names.tolist(), counts.tolist()), key=lambda nc: (-nc[1], nc[0]))
    kept = [name for name, _ in order if name != _MISSING][:MAX_CATEGORIES]
    for name in kept:
      index = np.nonzero(values == name)[0]
      traces.append(trace(index, f"{name} ({len(index):,})"))
    other = np.nonzero(~np.isin(values.astype(str), kept) & (values != _MISSING))[0]
    if len(other):
      traces.append(trace(other, f"(other values) ({len(other):,})", color="#9e9e9e"))
    missing = np.nonzero(values == _MISSING)[0]
    if len(missing):
      traces.append(trace(missing, f"{_MISSING} ({len(missing):,})", color="#cfcfcf"))
  elif data.color_kind == "number":
    values = np.asarray(data.color, dtype=np.float64)
    present = np.nonzero(~np.isnan(values))[0]
    traces.append(trace(present, data.color_by or "", color=values[present],
                        colorscale="Viridis", showscale=True,
                        colorbar=dict(title=dict(text=data.color_by))))
    missing = np.nonzero(np.isnan(values))[0]
    if len(missing):
      traces.append(trace(missing, f"{_MISSING} ({len(missing):,})", color="#cfcfcf"))
  else:
    traces.append(trace(np.arange(n), f"clips ({n:,})"))

  fig = go.Figure(traces)
  fig.update_layout(
      template="plotly_white", hovermode="closest", dragmode="zoom",
      margin=dict(l=10, r=10, t=10, b=10), showlegend=len(traces) > 1,
      legend=dict(title=dict(text=data.color_by or ""), itemsizing="constant", y=0.94,
                  yanchor="top"),  # below the mode bar
      xaxis=dict(showticklabels=False, zeroline=False, title=None),
      yaxis=dict(showticklabels=False, zeroline=False, title=None),
      hoverlabel=dict(align="left"), uirevision="audiobeam")
  return fig


def _summary_lines(data: MapData) -> list[str]:
  n = len(data.uris)
  method = {"umap": "UMAP", "pca": "PCA", "tsne": "t-SNE"}[data.method]
  if data.sampled:
    shown = (f"Showing {n:,} of {data.total_clips:,} clips: a deterministic sample "
             f"(--sample {data.sample}, seed {data.seed}; chosen by a seeded hash of each uri).")
  else:
    shown = f"All {n:,} clips."
  lines = [shown, f"Projection: {method} of the pooled clip embeddings (seed {data.seed})."
           + (f" Colour: {data.color_by}." if data.color_by else "")
           + (f" Labels: {', '.join(data.label_sources)}." if data.label_sources else "")]
  weights = ", ".join(f"{name} sha256 {sha[:12]}" for name, sha in sorted(data.assets.items()))
  lines.append(f"Runs: {', '.join(data.run_ids) or '?'}"
               + (f"; weights: {weights}" if weights else "")
               + (f"; settings {', '.join(s[:12] for s in data.settings_sha256)}"
                  if data.settings_sha256 else "") + ".")
  return lines


_PLAY_SCRIPT = """
(function () {
  var gd = document.getElementById('%(div)s');
  var player = document.getElementById('audiobeam-player');
  var status = document.getElementById('audiobeam-status');
  function playableUrl(uri) {
    if (/^(https?|file):\\/\\//i.test(uri)) { return uri; }
    if (uri.charAt(0) === '/') {
      return 'file://' + uri.split('/').map(encodeURIComponent).join('/');
    }
    return null;
  }
  gd.on('plotly_click', function (event) {
    if (!event || !event.points || !event.points.length) { return; }
    var uri = event.points[0].customdata;
    var url = playableUrl(String(uri));
    if (!url) {
      status.textContent = 'Cannot play ' + uri + ' here: only local files and http(s) URLs play in the page.';
      return;
    }
    status.textContent = 'Playing ' + uri;
    player.src = url;
    var playing = player.play();
    if (playing && playing.catch) {
      playing.catch(function (error) { status.textContent = 'Could not play ' + uri + ': ' + error.message; });
    }
  });
  player.addEventListener('error', function () {
    status.textContent = 'Could not load ' + player.src + ' (moved, or not readable by the browser).';
  });
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="generator" content="audiobeam explore.mapview">
<title>%(title)s</title>
<style>
  html, body { margin: 0; height: 100%%; font-family: system-ui, sans-serif; font-size: 14px; }
  body { display: flex; flex-direction: column; }
  header { padding: 8px 12px; border-bottom: 1px solid #ddd; }
  header h1 { font-size: 16px; margin: 0 0 4px 0; }
  header p { margin: 2px 0; color: #333; }
  #audiobeam-controls { display: flex; align-items: center; gap: 12px; margin-top: 4px; }
  #audiobeam-status { color: #555; overflow-wrap: anywhere; }
  #audiobeam-plot { flex: 1; min-height: 300px; }
</style>
<script>%(plotlyjs)s</script>
</head>
<body>
<header>
<h1>%(title)s</h1>
%(lines)s
<div id="audiobeam-controls"><audio id="audiobeam-player" controls preload="none"></audio>
<span id="audiobeam-status">Hover a point for its clip; click it to play.</span></div>
</header>
<div id="audiobeam-plot">%(figure)s</div>
<script>%(script)s</script>
</body>
</html>
"""


def html_page(data: MapData) -> str:
  """The whole page as a string (plotly.js inlined)."""
  from plotly.offline import get_plotlyjs  # pylint: disable=import-outside-toplevel

  fig = figure(data)
  div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=DIV_ID,
                    default_width="100%", default_height="100%",
                    config={"displaylogo": False, "responsive": True, "scrollZoom": True})
  title = f"audiobeam map: {data.model}, {data.output}"
  lines = "\n".join(f"<p>{html.escape(line)}</p>" for line in _summary_lines(data))
  return _PAGE % {"title": html.escape(title), "lines": lines, "plotlyjs": get_plotlyjs(),
                  "figure": div, "script": _PLAY_SCRIPT % {"div": DIV_ID}}


def _check_destination(path: str, suffix: str, flag: str) -> str:
  path = os.fspath(path)
  if not outputs.is_local(path) or path.startswith("file://"):
    raise ConfigError(f"expected {flag} to be a local file path, found {path!r}")
  if not path.lower().endswith(suffix):
    raise ConfigError(f"expected {flag} to end in {suffix} (an existing file of another kind is "
                      f"never overwritten), found {path!r}")
  if os.path.isdir(path):
    raise ConfigError(f"expected {flag} to be a file path, found the folder {path!r}")
  return path


def write_html(data: MapData, path: str) -> int:
  """Writes the page to ``path`` (``.html``; temp file + rename); returns its size in bytes."""
  path = _check_destination(path, ".html", "--output")
  payload = html_page(data).encode("utf-8")
  write_atomically(os.path.abspath(path), lambda f: f.write(payload))
  return len(payload)


def write_png(data: MapData, path: str) -> None:
  """Renders the figure to ``path`` (``.png``) with kaleido, which drives a local headless
  Chromium/Chrome (never downloads one). ConfigError when either is missing."""
  path = _check_destination(path, ".png", "--png")
  try:
    import kaleido  # pylint: disable=import-outside-toplevel,unused-import
  except ImportError:
    raise ConfigError("expected kaleido for --png, found it missing: pip install "
                      "'audiobeam[explore]' (kaleido drives a local Chromium)") from None
  fig = figure(data)
  fig.update_layout(title=dict(text=html.escape(f"{data.model}: {len(data.uris):,} clips, "
                                                f"{data.method}"), x=0.01),
                    margin=dict(l=10, r=10, t=40, b=10))
  width, height = _PNG_SIZE
  try:
    payload = fig.to_image(format="png", width=width, height=height)
  except Exception as error:  # pylint: disable=broad-except  # kaleido/choreographer errors
    raise ConfigError(f"expected a local Chromium or Chrome for --png (kaleido renders with it; "
                      f"apt-get install chromium, or set BROWSER_PATH), found an error: "
                      f"{type(error).__name__}: {error}") from None
  write_atomically(os.path.abspath(path), lambda f: f.write(payload))
