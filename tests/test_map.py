"""The map (explore.mapview, explore.projection, python -m pipelines.map) without a browser.

Most tests map the REAL output of ``tests/explore_fixtures.py`` (one pipeline run of
vggish, yamnet and clap with CLAP labels over a small corpus in three folders, test
weights); what they expect is read independently from the Parquet files with pyarrow.
An output WRITTEN BY THE TEST (``explore.testing``) remains for what one small run cannot
show: byte-identical pages from differently sharded part files. Most tests use PCA
(exact, fast); one UMAP and one t-SNE test check determinism on the real embeddings (UMAP's
first call compiles with numba). The page itself runs in a real browser in
``test_map_browser.py``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from audiobeam.errors import ConfigError
from explore import mapview, outputs, projection
from explore.testing import write_synthetic_output
from pipelines import map as map_cli

pytest_plugins = ("explore_fixtures",)

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _points(fig) -> int:
  return sum(len(trace.x) for trace in fig.data)


def _rows(output: str, model: str) -> dict[str, dict]:
  """uri -> clip row, read with pyarrow alone."""
  return {r["uri"]: r for r in pq.read_table(os.path.join(output, model, "clips")).to_pylist()}


def _expected_hover_labels(output: str, uri: str) -> list[str]:
  """The labels a clip's hover must show, formatted from the Parquet rows: YAMNet's three
  best ``top_labels`` and CLAP's ``top_label`` with its score."""
  yamnet, clap = _rows(output, "yamnet"), _rows(output, "clap")
  shown = []
  if uri in clap:
    shown.append(f"clap: {clap[uri]['top_label']} ({clap[uri]['top_label_score']:.2f})")
  if uri in yamnet:
    shown.append("yamnet: " + ", ".join(f"{l['display_name']} ({l['score']:.2f})"
                                        for l in yamnet[uri]["top_labels"][:3]))
  return shown


def test_pca_map_of_the_real_clips_with_every_models_labels(real_output):
  rows = _rows(real_output.output, "vggish")
  data = mapview.load_map_data(real_output.output, "vggish", method="pca", color_by="folder")
  assert data.uris == sorted(rows) and data.total_clips == len(rows) and not data.sampled
  assert data.x.dtype == np.float32 and np.isfinite(data.x).all() and np.isfinite(data.y).all()
  np.testing.assert_allclose(data.duration_seconds, [rows[u]["duration_seconds"] for u in data.uris])
  fig = mapview.figure(data)
  assert _points(fig) == len(rows) and {t.type for t in fig.data} == {"scattergl"}
  folders = [real_output.folder(u) for u in data.uris]
  assert sorted(t.name for t in fig.data) == sorted(
      f"{f} ({folders.count(f)})" for f in set(folders))
  assert set(folders) == {"examples", "noise", "tones"}
  for trace in fig.data:  # each trace holds its folder's clips
    name = trace.name.rsplit(" (", 1)[0]
    assert {real_output.folder(u) for u in trace.customdata} == {name}
  # Hover: every clip's labels, from the other models' rows joined by uri.
  assert data.label_sources == ["clap.top_label", "yamnet.top_labels"]
  for i, uri in enumerate(data.uris):
    assert data.labels[i] == "; ".join(_expected_hover_labels(real_output.output, uri))
  assert all("Test class" in label for label in data.labels)  # YAMNet's test class map
  provenance = real_output.summary.provenance["vggish"]
  assert data.run_ids == [real_output.summary.run_id]
  assert data.assets == {n: a["sha256"] for n, a in provenance["assets"].items()}
  assert data.settings_sha256 == [provenance["settings_sha256"]]
  # The clip YAMNet and CLAP pad (0.5 s) is on their maps, not on VGGish's.
  short = next(f for f in real_output.files if f.endswith("short_16k_mono.wav"))
  assert short not in data.uris
  assert short in mapview.load_map_data(real_output.output, "clap", method="pca").uris


def test_sample_is_deterministic_and_stated(real_output):
  a = mapview.load_map_data(real_output.output, "yamnet", method="pca", sample=6, seed=3)
  b = mapview.load_map_data(real_output.output, "yamnet", method="pca", sample=6, seed=3)
  c = mapview.load_map_data(real_output.output, "yamnet", method="pca", sample=6, seed=4)
  assert a.uris == b.uris and len(a.uris) == 6 and a.uris == sorted(a.uris)
  assert a.uris != c.uris and a.sampled and a.total_clips == len(_rows(real_output.output, "yamnet"))
  np.testing.assert_array_equal(a.x, b.x)
  assert (f"Showing 6 of {a.total_clips} clips: a deterministic sample (--sample 6, seed 3"
          in mapview.html_page(a))
  # The sample depends on the uris, not on their order.
  uris = sorted(_rows(real_output.output, "yamnet"))
  picked = projection.sample_indices(uris, 6, 3)
  reversed_pick = projection.sample_indices(uris[::-1], 6, 3)
  assert sorted(uris[i] for i in picked) == sorted(uris[::-1][i] for i in reversed_pick) == a.uris
  assert list(projection.sample_indices(uris, 0, 3)) == list(range(len(uris)))


@pytest.mark.parametrize("color_by", ["folder", "label", "yamnet.top_labels", "top_label",
                                      "container", "sample_rate", "duration_seconds"])
def test_color_by_real_columns(real_output, color_by):
  data = mapview.load_map_data(real_output.output, "vggish", method="pca", color_by=color_by)
  vggish, yamnet, clap = (_rows(real_output.output, m) for m in ("vggish", "yamnet", "clap"))
  expected = {
      "folder": [real_output.folder(u) for u in data.uris],
      "label": [clap[u]["top_label"] for u in data.uris],  # the first label source: CLAP's
      "yamnet.top_labels": [yamnet[u]["top_labels"][0]["display_name"] for u in data.uris],
      "top_label": [clap[u]["top_label"] for u in data.uris],
      "container": [vggish[u]["container"] for u in data.uris],
      "sample_rate": [str(vggish[u]["sample_rate"]) for u in data.uris],
      "duration_seconds": [vggish[u]["duration_seconds"] for u in data.uris],
  }[color_by]
  assert data.color == expected
  fig = mapview.figure(data)
  assert _points(fig) == len(data.uris)
  if color_by == "duration_seconds":  # fractional numbers: one trace with a colour scale
    assert data.color_kind == "number" and fig.data[0].marker.showscale
  else:
    assert data.color_kind == "category" and len(fig.data) == len(set(expected))
  assert len(set(_rows(real_output.output, "vggish")[u]["sample_rate"] for u in data.uris)) > 2


def test_color_by_metadata_csv_joined_on_uri(real_output, tmp_path):
  uris = sorted(_rows(real_output.output, "clap"))
  path = tmp_path / "meta.csv"
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["uri", "recorder", "year"])
    for i, uri in enumerate(uris[:10]):  # the other clips are not in the CSV
      writer.writerow([uri, f"rec{i % 3}", 2000 + 3 * i])
    writer.writerow(["/elsewhere/not_a_clip.wav", "rec9", 1999])
  data = mapview.load_map_data(real_output.output, "clap", method="pca", color_by="recorder",
                               metadata=str(path))
  assert data.color[:10] == [f"rec{i % 3}" for i in range(10)]
  missing = len(uris) - 10
  assert data.color[10:] == ["(missing)"] * missing
  names = [t.name for t in mapview.figure(data).data]
  assert names == ["rec0 (4)", "rec1 (3)", "rec2 (3)", f"(missing) ({missing})"]
  year = mapview.load_map_data(real_output.output, "clap", method="pca", color_by="year",
                               metadata=str(path))
  assert year.color_kind == "category" and year.color[0] == "2000"  # 10 whole numbers
  assert year.color[-1] == "(missing)"


def test_bad_requests_say_what_to_do(real_output, tmp_path):
  out = real_output.output
  with pytest.raises(ConfigError, match=r"--color_by to be one of folder, label, clap.top_label, "
                                        r"yamnet.top_labels, .*container"):
    mapview.load_map_data(out, "vggish", method="pca", color_by="nope")
  with pytest.raises(ConfigError, match=r"one of the models .*\(clap, vggish, yamnet\), found 'clmr'"):
    mapview.load_map_data(out, "clmr", method="pca")
  with pytest.raises(ConfigError, match="--method to be one of umap, pca, tsne"):
    mapview.load_map_data(out, "vggish", method="mds")
  with pytest.raises(ConfigError, match="--color_by to be one of folder"):  # a vector column
    mapview.load_map_data(out, "yamnet", method="pca", color_by="mean_scores")
  bad_csv = tmp_path / "bad.csv"
  bad_csv.write_text("path,x\n/a.wav,1\n")
  with pytest.raises(ConfigError, match="'uri' column"):
    mapview.load_map_data(out, "vggish", method="pca", metadata=str(bad_csv))
  other_csv = tmp_path / "other.csv"
  other_csv.write_text("uri,x\nrelative/a.wav,1\n")
  with pytest.raises(ConfigError, match="none in common"):
    mapview.load_map_data(out, "vggish", method="pca", metadata=str(other_csv))
  first = sorted(_rows(out, "vggish"))[0]
  dup_csv = tmp_path / "dup.csv"
  dup_csv.write_text(f"uri,x\n{first},1\n{first},2\n")
  with pytest.raises(ConfigError, match="each uri once.*rows 2 and 3"):
    mapview.load_map_data(out, "vggish", method="pca", metadata=str(dup_csv))
  data = mapview.load_map_data(out, "vggish", method="pca")
  audio = tmp_path / "song.wav"
  audio.write_bytes(b"RIFF")
  with pytest.raises(ConfigError, match=r"end in \.html"):
    mapview.write_html(data, str(audio))
  assert audio.read_bytes() == b"RIFF"


def test_cli_as_a_user_runs_it(real_output, tmp_path):
  page = tmp_path / "m.html"
  done = subprocess.run([sys.executable, "-m", "pipelines.map", "--input", real_output.output,
                         "--output", str(page), "--method", "pca"], cwd=_REPO,
                        capture_output=True, text=True, timeout=300, check=False)
  assert done.returncode == 0, done.stderr
  clips = _rows(real_output.output, "vggish")  # the run's first model (--model vggish,yamnet,clap)
  assert re.search(rf"wrote .*m\.html \(\d+\.\d MB\): vggish, {len(clips)} clips, pca, .* s "
                   r"\(also in this output: clap, yamnet; pick with --model\)", done.stdout)
  html = page.read_text(encoding="utf-8")
  figure_json = re.search(r"Plotly\.newPlot\(\s*\"audiobeam-map\",\s*(\[.*?\]),\s*\{", html, re.S)
  traces = json.loads(figure_json.group(1))
  assert sorted(u for t in traces for u in t["customdata"]) == sorted(clips)
  assert not re.search(r"<(script|link)[^>]*(src|href)=", html)  # offline: plotly.js inlined
  assert f"All {len(clips)} clips." in html and real_output.summary.run_id in html
  # Bad input: exit status 2 and one line saying what to do; nothing written.
  for args, message in (
      (["--input", real_output.output, "--model", "ast"], "expected --model to be one of the models"),
      (["--input", str(tmp_path / "missing")], "expected an audiobeam output with run.json"),
      (["--input", real_output.output, "--color_by", "nope"], "expected --color_by to be one of")):
    done = subprocess.run([sys.executable, "-m", "pipelines.map", *args, "--output",
                           str(tmp_path / "bad.html"), "--method", "pca"], cwd=_REPO,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2 and done.stderr.startswith(f"error: {message}"), done.stderr
    assert not (tmp_path / "bad.html").exists()


def test_same_input_same_page_whatever_the_part_files_written_by_the_test(tmp_path):
  """Sharding differs between runs of the pipeline (workers); the page must not."""
  pages = []
  for shards in (2, 3):
    synthetic = write_synthetic_output(str(tmp_path / f"s{shards}"), n_clips=40,
                                       models=("vggish", "yamnet", "clap"), write_frames=False,
                                       num_shards=shards)
    data = mapview.load_map_data(synthetic.output, "vggish", method="pca", color_by="label")
    data.output = "OUT"  # the page names its input; the rest must be equal
    pages.append(mapview.html_page(data))
  assert pages[0] == pages[1]
  assert pages[0].count("Plotly.newPlot") == 1 and len(pages[0]) > 3_000_000


def test_tsne_and_umap_repeat_on_real_embeddings(real_output):
  x = outputs.embedding_matrix(outputs.read_clips(real_output.output, "clap", ["embedding"])["embedding"])
  for method in ("tsne", "umap"):
    a = projection.project(x, method, seed=0)
    b = projection.project(x, method, seed=0)
    assert a.shape == (x.shape[0], 2) and np.isfinite(a).all(), method
    np.testing.assert_array_equal(a, b)
  with pytest.raises(ConfigError, match="at least 4 clips"):
    projection.project(x[:3], "umap")
