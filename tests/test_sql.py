"""Outputs read with DuckDB, pandas and polars: the README's queries, run for real.

Outputs are WRITTEN BY THE TEST (``explore.testing``: the documented layout, realistic
types, an uncommitted leftover run whose rows every query must leave out), not by the
pipeline. Expected answers come from numpy / the writer, independently of SQL.
"""

from __future__ import annotations

import numpy as np
import pytest

from explore import outputs, search
from explore import sql as sql_lib
from explore.testing import FOLDER_LABELS, write_synthetic_output

duckdb = pytest.importorskip("duckdb")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
  root = tmp_path_factory.mktemp("sql")
  return write_synthetic_output(str(root / "out"), n_clips=40,
                                models=("vggish", "yamnet", "ast", "clap"))


@pytest.fixture(scope="module")
def con(synthetic):
  return sql_lib.connect(synthetic.output)


def test_parquet_lists_come_back_as_lists_and_views_make_them_arrays(synthetic, con):
  raw = duckdb.connect()
  glob = f"{synthetic.output}/vggish/clips/*.parquet"
  # Parquet has no fixed-size list: DuckDB reads FLOAT[] (a cast makes the array) ...
  assert raw.sql(f"SELECT DISTINCT typeof(embedding) FROM '{glob}'").fetchall() == [("FLOAT[]",)]
  assert raw.sql(f"SELECT DISTINCT typeof(embedding::FLOAT[128]) FROM '{glob}'").fetchall() == [
      ("FLOAT[128]",)]
  # ... through Arrow (our readers) it stays FLOAT[128]; connect()'s views cast it.
  clips = outputs.read_clips(synthetic.output, "vggish", ["uri", "embedding"])
  assert {t for (t,) in raw.from_arrow(clips).select("typeof(embedding)").fetchall()} == {"FLOAT[128]"}
  types = dict(con.sql("SELECT column_name, data_type FROM information_schema.columns "
                       "WHERE table_name = 'vggish_frames'").fetchall())
  assert types["raw_embedding"] == "FLOAT[128]" and types["audio_embedding"] == "UTINYINT[128]"
  assert con.sql("SELECT DISTINCT typeof(embedding) FROM yamnet_clips").fetchall() == [("FLOAT[1024]",)]
  views = {r[0] for r in con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}
  assert {"vggish_clips", "vggish_frames", "yamnet_clips", "clap_labels", "errors"} <= views


def test_all_models_with_union_by_name_and_committed_runs(synthetic):
  con = duckdb.connect()
  con.execute(sql_lib.COMMITTED_RUNS_MACRO)
  out = synthetic.output
  everything = con.sql(f"""
      SELECT regexp_extract(filename, '/([^/]+)/clips/', 1) AS model, count(*) AS n
      FROM read_parquet('{out}/*/clips/*.parquet', union_by_name = true)
      GROUP BY ALL ORDER BY model""").fetchall()
  assert everything == [("ast", 40), ("clap", 40), ("vggish", 42), ("yamnet", 40)]  # +2 leftovers
  committed = con.sql(f"""
      SELECT regexp_extract(filename, '/([^/]+)/clips/', 1) AS model, count(*) AS n
      FROM read_parquet('{out}/*/clips/*.parquet', union_by_name = true)
      WHERE run_id IN (SELECT run_id FROM committed_runs('{out}'))
      GROUP BY ALL ORDER BY model""").fetchall()
  assert committed == [("ast", 40), ("clap", 40), ("vggish", 40), ("yamnet", 40)]
  frames = con.sql(f"""
      SELECT count(*) FROM read_parquet('{out}/vggish/frames/*.parquet')
      WHERE {sql_lib.FRAME_RUN_ID_SQL} IN (SELECT run_id FROM committed_runs('{out}'))""").fetchone()
  assert frames == (sum(synthetic.frame_counts),)


def test_top_labels_per_folder(synthetic, con):
  expected = {(folder, FOLDER_LABELS[folder][0], 10) for folder in FOLDER_LABELS}
  for query in (
      # YAMNet: top_labels list<string>, best first
      "SELECT regexp_extract(uri, '([^/]+)/[^/]+$', 1) AS folder, top_labels[1] AS top_label, "
      "count(*) AS n FROM yamnet_clips GROUP BY ALL",
      # AST: top_labels list<struct<label, score>>
      "SELECT regexp_extract(uri, '([^/]+)/[^/]+$', 1) AS folder, top_labels[1].label AS top_label, "
      "count(*) AS n FROM ast_clips GROUP BY ALL",
      # CLAP: top_label string
      "SELECT regexp_extract(uri, '([^/]+)/[^/]+$', 1) AS folder, top_label, count(*) AS n "
      "FROM clap_clips GROUP BY ALL"):
    assert set(con.sql(query).fetchall()) == expected


def test_nearest_neighbours_of_one_clip(synthetic, con, tmp_path):
  uri = synthetic.uris[5]
  rows = con.sql("""
      WITH q AS (SELECT embedding FROM vggish_clips WHERE uri = $uri)
      SELECT c.uri, array_cosine_similarity(c.embedding, q.embedding) AS score
      FROM vggish_clips c, q ORDER BY score DESC, c.uri LIMIT 5""", params={"uri": uri}).fetchall()
  matrix = synthetic.clip_embeddings["vggish"].astype(np.float64)
  scores = matrix @ matrix[5] / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(matrix[5]))
  order = np.argsort(-scores, kind="stable")[:5]
  assert [r[0] for r in rows] == [synthetic.uris[i] for i in order]
  np.testing.assert_allclose([r[1] for r in rows], scores[order], atol=1e-5)
  index = search.open_index(synthetic.output, "vggish", cache_dir=str(tmp_path / "cache"))
  hits = index.query(search.query_vector_from_row(index, uri), 5)
  assert [h.uri for h in hits] == [r[0] for r in rows]


def test_hnsw_index_from_the_offline_vss_wheel(synthetic, con):
  sql_lib.load_vss(con)
  con.execute("CREATE TABLE clap AS SELECT uri, embedding FROM clap_clips")
  con.execute("CREATE INDEX clap_hnsw ON clap USING HNSW (embedding) WITH (metric = 'cosine')")
  uri = synthetic.uris[11]
  vector = synthetic.clip_embeddings["clap"][11].tolist()
  query = "SELECT uri FROM clap ORDER BY array_cosine_distance(embedding, $q::FLOAT[512]) LIMIT 3"
  plan = "\n".join(row[1] for row in con.sql("EXPLAIN " + query, params={"q": vector}).fetchall())
  assert "HNSW_INDEX_SCAN" in plan
  assert con.sql(query, params={"q": vector}).fetchall()[0] == (uri,)


def test_frames_joined_to_clips_and_errors(synthetic, con):
  rows = con.sql("""
      SELECT c.uri, c.num_frames, count(*) AS frames, max(f.end_seconds) AS last_end
      FROM vggish_frames f JOIN vggish_clips c USING (uri)
      GROUP BY ALL ORDER BY c.uri""").fetchall()
  assert [r[0] for r in rows] == synthetic.uris
  assert [r[2] for r in rows] == synthetic.frame_counts == [r[1] for r in rows]
  errors = con.sql("SELECT model, error_type, count(*) FROM errors GROUP BY ALL ORDER BY ALL").fetchall()
  assert errors == [(m, t, 1) for m in ("ast", "clap", "vggish", "yamnet")
                    for t in ("corrupt_audio", "too_short", "unsupported_format")]


def test_dag_partitions_with_hive_partitioning(tmp_path):
  root = tmp_path / "daily"
  write_synthetic_output(str(root / "dt=2026-03-04"), n_clips=5, models=("vggish",),
                         run_id="20260304T020000Z-d00001", leftover=False, write_frames=False)
  write_synthetic_output(str(root / "dt=2026-03-05"), n_clips=7, models=("vggish",),
                         run_id="20260305T020000Z-d00002", leftover=False, write_frames=False)
  rows = duckdb.connect().sql(f"""
      SELECT dt, count(*) FROM read_parquet('{root}/dt=*/vggish/clips/*.parquet',
                                            hive_partitioning = true)
      GROUP BY ALL ORDER BY dt""").fetchall()
  assert [(str(d), n) for d, n in rows] == [("2026-03-04", 5), ("2026-03-05", 7)]
  assert sql_lib.connect(str(root)).sql("SELECT count(*) FROM vggish_clips").fetchone() == (12,)


def test_pandas_and_polars_read_the_committed_files(synthetic):
  import pandas as pd
  import polars as pl

  paths = outputs.committed_paths(synthetic.output, "vggish", "clips")
  assert all(synthetic.run_id in p for p in paths) and len(paths) == 2
  frame = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
  assert frame["uri"].tolist() == synthetic.uris
  np.testing.assert_array_equal(np.stack(frame["embedding"].to_numpy()),
                                synthetic.clip_embeddings["vggish"])
  table = pl.read_parquet(paths)
  assert table.schema["embedding"] == pl.Array(pl.Float32, 128)
  np.testing.assert_array_equal(table["embedding"].to_numpy(), synthetic.clip_embeddings["vggish"])
  labels = pl.read_parquet(outputs.committed_paths(synthetic.output, "yamnet", "clips"))
  assert labels.schema["top_labels"] == pl.List(pl.String)
  per_folder = (labels.with_columns(folder=pl.col("uri").str.extract(r"([^/]+)/[^/]+$"),
                                    top=pl.col("top_labels").list.first())
                .group_by("folder", "top").len().sort("folder"))
  assert per_folder.rows() == [(f, FOLDER_LABELS[f][0], 10) for f in sorted(FOLDER_LABELS)]
