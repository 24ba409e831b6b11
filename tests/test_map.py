"""The map (explore.mapview, explore.projection, python -m pipelines.map) without a browser.

Outputs are WRITTEN BY THE TEST (``explore.testing.write_synthetic_output``, the documented
layout), not by the pipeline. Most tests use PCA (fast, exact); one small UMAP test checks
determinism (its first call imports TensorFlow and compiles with numba: ~30 s), one t-SNE.
The page itself is exercised in a real browser in ``test_map_browser.py``.
"""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

from audiobeam.errors import ConfigError
from explore import mapview, projection
from explore.testing import FOLDER_LABELS, write_synthetic_output
from pipelines import map as map_cli


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
  """Test-written output with vggish, yamnet (list<string> labels), ast (list<struct>
  labels), clap (top_label + score); 40 clips in 4 folders, 2 part files per table."""
  root = tmp_path_factory.mktemp("map")
  return write_synthetic_output(str(root / "out"), n_clips=40,
                                models=("vggish", "yamnet", "ast", "clap"), write_frames=False)


def _points(fig) -> int:
  return sum(len(trace.x) for trace in fig.data)


def test_pca_map_has_every_clip_labels_and_clusters(synthetic):
  data = mapview.load_map_data(synthetic.output, "vggish", method="pca", color_by="folder")
  assert data.uris == synthetic.uris and data.total_clips == 40 and not data.sampled
  assert data.x.dtype == np.float32 and np.isfinite(data.x).all()
  fig = mapview.figure(data)
  assert _points(fig) == 40 and {t.type for t in fig.data} == {"scattergl"}
  assert sorted(t.name for t in fig.data) == ["dogs (10)", "music (10)", "speech (10)", "trains (10)"]
  # Every clip's hover: its uri, duration, and the labels of every model that has some.
  i = synthetic.uris.index(next(u for u in synthetic.uris if "/dogs/" in u))
  assert data.labels[i].startswith("ast: Dog (0.")
  assert "clap: Dog (0." in data.labels[i] and "yamnet: Dog, Bark, Animal" in data.labels[i]
  assert set(data.label_sources) == {"ast.top_labels", "clap.top_label", "yamnet.top_labels"}
  # The folders separate in 2-D (the synthetic embeddings cluster by folder).
  points = np.stack([data.x, data.y], axis=1)
  folders = np.array(synthetic.folders)
  centres = {f: points[folders == f].mean(axis=0) for f in set(synthetic.folders)}
  nearest = [min(centres, key=lambda f: np.linalg.norm(p - centres[f])) for p in points]
  assert (np.array(nearest) == folders).mean() > 0.9


def test_same_input_same_page_whatever_the_part_files(tmp_path, synthetic):
  again = write_synthetic_output(str(tmp_path / "reshard"), n_clips=40,
                                 models=("vggish", "yamnet", "ast", "clap"), write_frames=False,
                                 num_shards=3)
  pages = []
  for output in (synthetic.output, again.output):
    data = mapview.load_map_data(output, "vggish", method="pca", color_by="label")
    data.output = "OUT"  # the page names its input; the rest must be equal
    pages.append(mapview.html_page(data))
  assert pages[0] == pages[1]
  page = pages[0]
  assert not re.search(r"<(script|link)[^>]*(src|href)=", page)  # offline: plotly.js inlined
  assert page.count("Plotly.newPlot") == 1 and len(page) > 3_000_000
  assert "All 40 clips." in page


def test_sample_is_deterministic_and_stated(synthetic, tmp_path):
  a = mapview.load_map_data(synthetic.output, "clap", method="pca", sample=12, seed=3)
  b = mapview.load_map_data(synthetic.output, "clap", method="pca", sample=12, seed=3)
  c = mapview.load_map_data(synthetic.output, "clap", method="pca", sample=12, seed=4)
  assert a.uris == b.uris and len(a.uris) == 12 and a.uris == sorted(a.uris)
  assert a.uris != c.uris and a.sampled
  np.testing.assert_array_equal(a.x, b.x)
  assert "Showing 12 of 40 clips: a deterministic sample (--sample 12, seed 3" in mapview.html_page(a)
  # The sample depends on the uris, not on their order.
  uris = list(synthetic.uris)
  picked = projection.sample_indices(uris, 12, 3)
  reversed_pick = projection.sample_indices(uris[::-1], 12, 3)
  assert sorted(uris[i] for i in picked) == sorted(uris[::-1][i] for i in reversed_pick)
  assert list(projection.sample_indices(uris, 0, 3)) == list(range(40))


@pytest.mark.parametrize("color_by, kind, expected", [
    ("folder", "category", {"dogs", "music", "speech", "trains"}),
    ("label", "category", {labels[0] for labels in FOLDER_LABELS.values()}),
    ("yamnet.top_labels", "category", {labels[0] for labels in FOLDER_LABELS.values()}),
    ("top_label", "category", {labels[0] for labels in FOLDER_LABELS.values()}),
    ("container", "category", {"wav", "flac", "ogg", "mp3"}),
    ("duration_seconds", "number", None),
])
def test_color_by(synthetic, color_by, kind, expected):
  data = mapview.load_map_data(synthetic.output, "vggish", method="pca", color_by=color_by)
  assert data.color_kind == kind and len(data.color) == 40
  if expected is not None:
    assert set(data.color) == expected
  else:
    assert all(isinstance(v, float) for v in data.color)
    fig = mapview.figure(data)
    assert fig.data[0].marker.showscale and _points(fig) == 40


def test_color_by_metadata_csv_joined_on_uri(synthetic, tmp_path):
  path = tmp_path / "meta.csv"
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["uri", "recorder", "year"])
    for i, uri in enumerate(synthetic.uris[:30]):  # 10 clips not in the CSV
      writer.writerow([uri, f"rec{i % 3}", 2000 + i])
    writer.writerow(["/elsewhere/not_a_clip.wav", "rec9", 1999])
  data = mapview.load_map_data(synthetic.output, "vggish", method="pca", color_by="recorder",
                               metadata=str(path))
  assert data.color[:30] == [f"rec{i % 3}" for i in range(30)]
  assert data.color[30:] == ["(missing)"] * 10
  names = [t.name for t in mapview.figure(data).data]
  assert names == ["rec0 (10)", "rec1 (10)", "rec2 (10)", "(missing) (10)"]
  year = mapview.load_map_data(synthetic.output, "vggish", method="pca", color_by="year",
                               metadata=str(path))
  assert year.color_kind == "number" and np.isnan(year.color[-1]) and year.color[0] == 2000.0


def test_bad_requests_say_what_to_do(synthetic, tmp_path):
  with pytest.raises(ConfigError, match=r"--color_by to be one of folder, label, .*container"):
    mapview.load_map_data(synthetic.output, "vggish", method="pca", color_by="nope")
  with pytest.raises(ConfigError, match="pick one of the models.*ast, clap, vggish, yamnet"):
    mapview.load_map_data(synthetic.output, None, method="pca")
  with pytest.raises(ConfigError, match="one of the models .* found 'clmr'"):
    mapview.load_map_data(synthetic.output, "clmr", method="pca")
  with pytest.raises(ConfigError, match="--method to be one of umap, pca, tsne"):
    mapview.load_map_data(synthetic.output, "vggish", method="mds")
  bad_csv = tmp_path / "bad.csv"
  bad_csv.write_text("path,x\n/a.wav,1\n")
  with pytest.raises(ConfigError, match="'uri' column"):
    mapview.load_map_data(synthetic.output, "vggish", method="pca", metadata=str(bad_csv))
  other_csv = tmp_path / "other.csv"
  other_csv.write_text("uri,x\nrelative/a.wav,1\n")
  with pytest.raises(ConfigError, match="none in common"):
    mapview.load_map_data(synthetic.output, "vggish", method="pca", metadata=str(other_csv))
  dup_csv = tmp_path / "dup.csv"
  dup_csv.write_text(f"uri,x\n{synthetic.uris[0]},1\n{synthetic.uris[0]},2\n")
  with pytest.raises(ConfigError, match="each uri once.*rows 2 and 3"):
    mapview.load_map_data(synthetic.output, "vggish", method="pca", metadata=str(dup_csv))
  data = mapview.load_map_data(synthetic.output, "vggish", method="pca")
  audio = tmp_path / "song.wav"
  audio.write_bytes(b"RIFF")
  with pytest.raises(ConfigError, match=r"end in \.html"):
    mapview.write_html(data, str(audio))
  assert audio.read_bytes() == b"RIFF"


def test_cli_writes_the_page_and_reports_errors(synthetic, tmp_path, capsys):
  out = tmp_path / "map.html"
  assert map_cli.main(["--input", synthetic.output, "--model", "yamnet", "--output", str(out),
                       "--method", "pca", "--color_by", "folder", "--sample", "25"]) == 0
  printed = capsys.readouterr().out
  assert re.search(r"wrote .*map\.html \(\d+\.\d MB\): yamnet, 25 of 40 clips \(sample, seed 0\), pca",
                   printed)
  page = out.read_text(encoding="utf-8")
  figure_json = re.search(r"Plotly\.newPlot\(\s*\"audiobeam-map\",\s*(\[.*?\]),\s*\{", page, re.S)
  traces = json.loads(figure_json.group(1))
  assert sum(len(t["customdata"]) for t in traces) == 25
  assert map_cli.main(["--input", str(tmp_path / "missing"), "--output", str(out)]) == 2
  assert "no run.json" in capsys.readouterr().err


def test_tsne_runs_and_repeats(synthetic):
  a = projection.project(np.stack(synthetic.clip_embeddings["clap"]), "tsne", seed=0)
  b = projection.project(np.stack(synthetic.clip_embeddings["clap"]), "tsne", seed=0)
  assert a.shape == (40, 2) and np.isfinite(a).all()
  np.testing.assert_array_equal(a, b)


def test_umap_is_deterministic(synthetic):
  x = synthetic.clip_embeddings["vggish"]
  a = projection.project(x, "umap", seed=0)
  c = projection.project(x, "umap", seed=0)
  assert a.shape == (40, 2) and np.isfinite(a).all()
  np.testing.assert_array_equal(a, c)
  with pytest.raises(ConfigError, match="at least 4 clips"):
    projection.project(x[:3], "umap")
