"""Outputs read with DuckDB, pandas and polars: the README's queries, run for real.

They read the REAL output of ``tests/explore_fixtures.py`` (one pipeline run of vggish,
yamnet and clap with CLAP labels, over a small corpus in three folders; test weights).
Expected answers come from run.json, pyarrow and numpy, independently of SQL.
"""

from __future__ import annotations

import collections
import os
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from explore import outputs, search
from explore import sql as sql_lib

pytest_plugins = ("explore_fixtures",)
duckdb = pytest.importorskip("duckdb")

_MODELS = ("clap", "vggish", "yamnet")
_DIMS = {"vggish": 128, "yamnet": 1024, "clap": 512}
_FOLDER_SQL = "regexp_extract(uri, '([^/]+)/[^/]+$', 1)"


@pytest.fixture(scope="module")
def con(real_output):
  return sql_lib.connect(real_output.output)


def _counts(real_output) -> dict:
  return real_output.summary.counts["models"]


def _rows(output: str, model: str, kind: str = "clips") -> list[dict]:
  return pq.read_table(os.path.join(output, model, kind)).to_pylist()


def test_one_glob_reads_every_model_with_union_by_name(real_output):
  out = real_output.output
  counts = _counts(real_output)
  per_model = duckdb.sql(f"""
      SELECT regexp_extract(filename, '/([^/]+)/clips/', 1) AS model, count(*) AS clips,
             count(top_label) AS with_clap_label, count(top_labels) AS with_yamnet_labels
      FROM read_parquet('{out}/*/clips/*.parquet', union_by_name = true)
      GROUP BY ALL ORDER BY model""").fetchall()
  assert per_model == [
      ("clap", counts["clap"]["files_embedded"], counts["clap"]["files_embedded"], 0),
      ("vggish", counts["vggish"]["files_embedded"], 0, 0),
      ("yamnet", counts["yamnet"]["files_embedded"], 0, counts["yamnet"]["files_embedded"])]
  frames = duckdb.sql(f"""
      SELECT regexp_extract(filename, '/([^/]+)/frames/', 1) AS model, count(*)
      FROM read_parquet('{out}/*/frames/*.parquet', union_by_name = true)
      GROUP BY ALL ORDER BY model""").fetchall()
  assert frames == [(m, counts[m]["frames"]) for m in _MODELS]
  errors = duckdb.sql(f"""
      SELECT model, error_type, count(*) FROM read_parquet('{out}/errors/*.parquet')
      GROUP BY ALL ORDER BY ALL""").fetchall()
  assert errors == sorted((m, t, n) for m in _MODELS for t, n in counts[m]["errors_by_type"].items())
  # committed_runs(): run.json's committed_run_ids, in SQL.
  con = duckdb.connect()
  con.execute(sql_lib.COMMITTED_RUNS_MACRO)
  assert con.sql(f"SELECT run_id FROM committed_runs('{out}')").fetchall() == [
      (real_output.summary.run_id,)]


def test_a_run_in_progress_is_not_in_the_glob(real_output, tmp_path):
  """The pipeline stages its files under ``_audiobeam/staging/``; the readable folders the
  README's globs read hold committed files only."""
  from pipelines.lifecycle import OutputLedger

  out = str(tmp_path / "out")
  shutil.copytree(real_output.output, out)
  run_id = "20270101T000000Z-5ta9ed"
  ledger = OutputLedger(out)
  ledger.prepare(run_id, "append", ledger.list())
  staged = os.path.join(ledger.staging(run_id), "clap", "clips", f"part-{run_id}-00000-of-00001.parquet")
  os.makedirs(os.path.dirname(staged))
  shutil.copy(outputs.committed_paths(out, "clap", "clips")[0], staged)
  query = f"SELECT count(*) FROM read_parquet('{out}/*/clips/*.parquet', union_by_name = true)"
  assert duckdb.sql(query).fetchone() == (sum(c["files_embedded"] for c in _counts(real_output).values()),)
  assert sql_lib.connect(out).sql("SELECT count(*) FROM clap_clips").fetchone() == (
      _counts(real_output)["clap"]["files_embedded"],)


def test_views_cast_embeddings_to_arrays(real_output, con):
  glob = f"{real_output.output}/vggish/clips/*.parquet"
  # Parquet has no fixed-size list: DuckDB reads FLOAT[] (a cast makes the array) ...
  raw = duckdb.connect()
  assert raw.sql(f"SELECT DISTINCT typeof(embedding) FROM '{glob}'").fetchall() == [("FLOAT[]",)]
  # ... through Arrow (our readers) it stays FLOAT[128]; connect()'s views cast it.
  clips = outputs.read_clips(real_output.output, "vggish", ["uri", "embedding"])
  assert {t for (t,) in raw.from_arrow(clips).select("typeof(embedding)").fetchall()} == {"FLOAT[128]"}
  views = {r[0] for r in con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
  assert views == {f"{m}_{k}" for m in _MODELS for k in ("clips", "frames")} | {"clap_labels", "errors"}
  types = dict(con.sql("SELECT column_name, data_type FROM information_schema.columns "
                       "WHERE table_name = 'vggish_frames'").fetchall())
  assert types["raw_embedding"] == "FLOAT[128]" and types["audio_embedding"] == "UTINYINT[128]"
  for model, dim in _DIMS.items():
    assert con.sql(f"SELECT DISTINCT typeof(embedding) FROM {model}_clips").fetchall() == [(f"FLOAT[{dim}]",)]
  assert con.sql("SELECT DISTINCT typeof(mean_scores) FROM yamnet_clips").fetchall() == [("FLOAT[521]",)]


def test_nearest_neighbours_with_array_cosine_similarity(real_output, con, tmp_path):
  rows = _rows(real_output.output, "clap")
  uris = [r["uri"] for r in rows]
  matrix = np.array([r["embedding"] for r in rows], np.float64)
  uri = next(u for u in uris if u.endswith("tone_880hz.wav"))
  result = con.sql("""
      WITH q AS (SELECT embedding FROM clap_clips WHERE uri = $uri)
      SELECT c.uri, array_cosine_similarity(c.embedding, q.embedding) AS score
      FROM clap_clips c, q ORDER BY score DESC, c.uri LIMIT 5""", params={"uri": uri}).fetchall()
  query = matrix[uris.index(uri)]
  scores = matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
  assert result[0][0] == uri
  np.testing.assert_allclose([r[1] for r in result], [scores[uris.index(u)] for u, _ in result], atol=1e-5)
  np.testing.assert_allclose([r[1] for r in result], np.sort(scores)[::-1][:5], atol=1e-5)
  index = search.open_index(real_output.output, "clap", cache_dir=str(tmp_path / "cache"))
  hits = index.query(search.query_vector_from_row(index, uri), 5)
  np.testing.assert_allclose([h.score for h in hits], [r[1] for r in result], atol=1e-5)


def test_hnsw_index_from_the_offline_vss_wheel(real_output):
  con = sql_lib.connect(real_output.output)
  sql_lib.load_vss(con)
  con.execute("CREATE TABLE clap AS SELECT uri, embedding FROM clap_clips")
  con.execute("CREATE INDEX clap_hnsw ON clap USING HNSW (embedding) WITH (metric = 'cosine')")
  row = _rows(real_output.output, "clap")[3]
  query = "SELECT uri FROM clap ORDER BY array_cosine_distance(embedding, $q::FLOAT[512]) LIMIT 3"
  plan = "\n".join(r[1] for r in con.sql("EXPLAIN " + query, params={"q": row["embedding"]}).fetchall())
  assert "HNSW_INDEX_SCAN" in plan
  assert con.sql(query, params={"q": row["embedding"]}).fetchall()[0] == (row["uri"],)


def test_frames_joined_to_clips(real_output, con):
  for model in _MODELS:
    result = con.sql(f"""
        SELECT c.uri, c.num_frames, count(*) AS frames, min(f.frame_index), max(f.frame_index)
        FROM {model}_frames f JOIN {model}_clips c USING (uri)
        GROUP BY ALL ORDER BY c.uri""").fetchall()
    frames = collections.Counter(r["uri"] for r in _rows(real_output.output, model, "frames"))
    assert [(r[0], r[2]) for r in result] == sorted(frames.items()), model
    assert all(r[1] == r[2] and r[3] == 0 and r[4] == r[2] - 1 for r in result), model
  # CLAP: one 10 s window per clip under 10 s, its end the clip's duration.
  ends = con.sql("SELECT f.end_seconds, c.duration_seconds FROM clap_frames f "
                 "JOIN clap_clips c USING (uri)").fetchall()
  assert all(end == pytest.approx(duration) for end, duration in ends if duration <= 10.0)


def test_top_labels_per_folder(real_output, con):
  def by_folder(pairs):
    counts = collections.Counter((real_output.folder(uri), label) for uri, label in pairs)
    return sorted((f, l, n) for (f, l), n in counts.items())

  clap = _rows(real_output.output, "clap")
  labels = _rows(real_output.output, "clap", "labels")
  # CLAP: the labels extra (one row per clip and label; rank 1 is the clip's top_label).
  assert sorted(con.sql(f"""
      SELECT {_FOLDER_SQL} AS folder, label, count(*) FROM clap_labels WHERE rank = 1
      GROUP BY ALL""").fetchall()) == by_folder((r["uri"], r["label"]) for r in labels if r["rank"] == 1)
  assert sorted(con.sql(f"SELECT {_FOLDER_SQL}, top_label, count(*) FROM clap_clips "
                        "GROUP BY ALL").fetchall()) == by_folder((r["uri"], r["top_label"]) for r in clap)
  mean_scores = con.sql(f"""
      SELECT {_FOLDER_SQL} AS folder, label, avg(score) FROM clap_labels GROUP BY ALL""").fetchall()
  assert len(mean_scores) == 3 * 4  # 3 folders x 4 labels
  # YAMNet: top_labels is list<struct<index, display_name, score>>, best first.
  yamnet = _rows(real_output.output, "yamnet")
  assert sorted(con.sql(f"""
      SELECT {_FOLDER_SQL}, top_labels[1].display_name, count(*) FROM yamnet_clips
      GROUP BY ALL""").fetchall()) == by_folder((r["uri"], r["top_labels"][0]["display_name"])
                                                 for r in yamnet)


def test_dag_partitions_with_hive_partitioning(real_output, appended_output, tmp_path):
  root = tmp_path / "daily"
  shutil.copytree(real_output.output, root / "dt=2026-03-04")
  shutil.copytree(appended_output[0].output, root / "dt=2026-03-05")
  rows = duckdb.connect().sql(f"""
      SELECT dt, count(*) FROM read_parquet('{root}/dt=*/vggish/clips/*.parquet',
                                            hive_partitioning = true)
      GROUP BY ALL ORDER BY dt""").fetchall()
  day1 = _counts(real_output)["vggish"]["files_embedded"]
  assert [(str(d), n) for d, n in rows] == [("2026-03-04", day1), ("2026-03-05", day1 + 2)]
  assert sql_lib.connect(str(root)).sql("SELECT count(*) FROM vggish_clips").fetchone() == (2 * day1 + 2,)


def test_pandas_and_polars_read_every_output(real_output):
  import pandas as pd
  import polars as pl

  out = real_output.output
  counts = _counts(real_output)
  for model in _MODELS:
    clips = pd.read_parquet(os.path.join(out, model, "clips"))
    assert len(clips) == counts[model]["files_embedded"]
    assert np.stack(clips["embedding"].to_numpy()).shape == (len(clips), _DIMS[model])
    assert len(pd.read_parquet(os.path.join(out, model, "frames"))) == counts[model]["frames"]
    table = pl.read_parquet(f"{out}/{model}/clips/*.parquet")
    assert table.schema["embedding"] == pl.Array(pl.Float32, _DIMS[model])
    np.testing.assert_array_equal(table.sort("uri")["embedding"].to_numpy(),
                                  np.stack(clips.sort_values("uri")["embedding"].to_numpy()))
  assert len(pd.read_parquet(os.path.join(out, "clap", "labels"))) == 4 * counts["clap"]["files_embedded"]
  errors = pl.read_parquet(f"{out}/errors/*.parquet")
  assert errors.group_by("model").len().sort("model").rows() == [
      (m, counts[m]["errors"]) for m in _MODELS]
  yamnet = pl.read_parquet(f"{out}/yamnet/clips/*.parquet")
  assert yamnet.schema["top_labels"] == pl.List(pl.Struct(
      {"index": pl.Int32, "display_name": pl.String, "score": pl.Float32}))
  per_folder = (yamnet.with_columns(folder=pl.col("uri").str.extract(r"([^/]+)/[^/]+$"),
                                    top=pl.col("top_labels").list.first().struct.field("display_name"))
                .group_by("folder", "top").len().sort("folder", "top"))
  expected = collections.Counter((real_output.folder(r["uri"]), r["top_labels"][0]["display_name"])
                                 for r in _rows(out, "yamnet"))
  assert per_folder.rows() == sorted((f, t, n) for (f, t), n in expected.items())
  # The committed files by name, for readers that take a list (one run here: all of them).
  assert sorted(outputs.committed_paths(out, "vggish", "clips")) == sorted(
      os.path.join(out, "vggish", "clips", n) for n in os.listdir(os.path.join(out, "vggish", "clips")))


def test_readme_queries_straight_from_the_parquet_files(real_output):
  """The README's plain-SQL queries (no views, no Python helpers) on the real output."""
  out = real_output.output
  counts = _counts(real_output)
  con = duckdb.connect()
  per_model = con.sql(f"""
      SELECT regexp_extract(filename, '/([^/]+)/clips/', 1) AS model, count(*) AS clips,
             avg(duration_seconds) AS mean_seconds
      FROM read_parquet('{out}/*/clips/*.parquet', union_by_name = true) GROUP BY ALL ORDER BY model""").fetchall()
  assert [(m, n) for m, n, _ in per_model] == [(m, counts[m]["files_embedded"]) for m in _MODELS]
  rows = _rows(out, "clap")
  uri = rows[2]["uri"]
  neighbours = con.sql(f"""
      WITH c AS (SELECT uri, embedding::FLOAT[512] AS e FROM read_parquet('{out}/clap/clips/*.parquet')),
           q AS (SELECT e FROM c WHERE uri = $uri)
      SELECT c.uri, array_cosine_similarity(c.e, q.e) AS score FROM c, q ORDER BY score DESC LIMIT 10""",
                       params={"uri": uri}).fetchall()
  matrix = np.array([r["embedding"] for r in rows], np.float64)
  scores = matrix @ matrix[2] / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(matrix[2]))
  assert neighbours[0][0] == uri and len(neighbours) == 10
  np.testing.assert_allclose([s for _, s in neighbours], np.sort(scores)[::-1][:10], atol=1e-5)
  joined = con.sql(f"""
      SELECT c.uri, c.duration_seconds, f.frame_index, f.start_seconds, f.end_seconds
      FROM read_parquet('{out}/yamnet/frames/*.parquet') f
      JOIN read_parquet('{out}/yamnet/clips/*.parquet') c USING (uri) ORDER BY c.uri, f.frame_index""").fetchall()
  assert len(joined) == counts["yamnet"]["frames"]
  labels = con.sql(f"""
      SELECT regexp_extract(uri, '([^/]+)/[^/]+$', 1) AS folder, label, count(*) AS clips
      FROM read_parquet('{out}/clap/labels/*.parquet') WHERE rank = 1 GROUP BY ALL ORDER BY folder, clips DESC""").fetchall()
  assert sum(n for _, _, n in labels) == counts["clap"]["files_embedded"]
  assert {f for f, _, _ in labels} == {"examples", "noise", "tones"}
  yamnet = con.sql(f"""
      SELECT regexp_extract(uri, '([^/]+)/[^/]+$', 1) AS folder, top_labels[1].display_name AS label,
             count(*) AS clips
      FROM read_parquet('{out}/yamnet/clips/*.parquet') GROUP BY ALL ORDER BY folder, clips DESC""").fetchall()
  assert sum(n for _, _, n in yamnet) == counts["yamnet"]["files_embedded"]
