"""``python -m bench.search_bench``: the search index and exact queries on 1M x 512.

Writes a SYNTHETIC output once into ``--work_dir`` (``explore.testing``: ``--rows`` CLAP-like
clips of ``--dim`` float32 numbers in 8 part files; not embeddings of audio), then
measures in this process:

* the index build (``explore.search.open_index``: Parquet -> L2-normalised float32
  ``matrix.npy`` + ``rows.arrow`` in the cache), and re-opening it;
* ``--queries`` exact cosine top-10 queries (``SearchIndex.query``: ``matrix @ q`` +
  ``argpartition``), the first right after opening (pages not yet touched) and the rest,
  checked against a float64 numpy brute force for a few;
* peak RSS of the process;
* with ``--duckdb``: one query as plain DuckDB SQL over the Parquet files with
  ``array_cosine_similarity`` (the README's query);
* with ``--faiss N``: faiss ``IndexHNSWFlat`` (inner product on normalised rows) on the
  first N rows: build time, query time, recall@10 against the exact result;
* with ``--vss N``: DuckDB's HNSW index (``duckdb-extension-vss`` wheel) on the first N
  rows: build and query time.

Not a test: nothing asserts a speed. ``--report PATH`` writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

__all__ = ["main"]

_DEFAULT_WORK_DIR = os.path.join(os.environ.get("TMPDIR", "/tmp"), "audiobeam-search-bench")
_TOP_K = 10


def _parse(argv):
  p = argparse.ArgumentParser(prog="python -m bench.search_bench", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--rows", type=int, default=1_000_000)
  p.add_argument("--dim", type=int, default=512)
  p.add_argument("--queries", type=int, default=20)
  p.add_argument("--work_dir", default=_DEFAULT_WORK_DIR)
  p.add_argument("--duckdb", action="store_true", help="time the plain-SQL exact query too")
  p.add_argument("--faiss", type=int, default=0, metavar="N", help="HNSW with faiss on N rows")
  p.add_argument("--ef_search", type=int, default=256, help="faiss HNSW efSearch (recall vs speed)")
  p.add_argument("--vss", type=int, default=0, metavar="N", help="HNSW with DuckDB vss on N rows")
  p.add_argument("--report", default=None, help="write the results as JSON here")
  p.add_argument("--write_only", action="store_true", help=argparse.SUPPRESS)
  return p.parse_args(argv)


def _peak_rss_mb() -> float:
  return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def _output_dir(work_dir: str, rows: int, dim: int) -> str:
  return os.path.join(work_dir, f"out-{rows}x{dim}")


def _ensure_output(work_dir: str, rows: int, dim: int) -> str:
  """The synthetic output, written by a child process (so that this one's peak RSS is the
  search's own)."""
  output = _output_dir(work_dir, rows, dim)
  if not os.path.exists(os.path.join(output, "run.json")):
    subprocess.run([sys.executable, "-m", "bench.search_bench", "--write_only", "--rows",
                    str(rows), "--dim", str(dim), "--work_dir", work_dir], check=True)
  return output


def _write_output(work_dir: str, rows: int, dim: int) -> str:
  from explore.testing import write_synthetic_output  # pylint: disable=import-outside-toplevel

  output = _output_dir(work_dir, rows, dim)
  shutil.rmtree(output, ignore_errors=True)
  started = time.monotonic()
  folders = tuple(f"folder_{i:03d}" for i in range(100))
  write_synthetic_output(output, n_clips=rows, models=("clap",), dims={"clap": dim},
                         folders=folders, write_frames=False, write_labels=False, n_errors=0,
                         leftover=False, num_shards=8)
  print(f"wrote the synthetic output {output} ({rows:,} x {dim}) in "
        f"{time.monotonic() - started:.1f} s", file=sys.stderr)
  return output


def _exact(matrix: np.ndarray, query: np.ndarray, k: int) -> list[int]:
  """float64 brute force, chunked: the rows of the k best cosines."""
  q = query.astype(np.float64) / np.linalg.norm(query)
  scores = np.concatenate([matrix[i:i + 100_000].astype(np.float64) @ q
                           for i in range(0, matrix.shape[0], 100_000)])
  return np.argsort(-scores, kind="stable")[:k].tolist()


def main(argv=None) -> int:
  args = _parse(argv)
  from explore import search  # pylint: disable=import-outside-toplevel

  os.makedirs(args.work_dir, exist_ok=True)
  if args.write_only:
    _write_output(args.work_dir, args.rows, args.dim)
    return 0
  output = _ensure_output(args.work_dir, args.rows, args.dim)
  cache_dir = os.path.join(args.work_dir, "cache")
  shutil.rmtree(os.path.join(cache_dir, "search"), ignore_errors=True)
  report = {
      "date": datetime.datetime.now().isoformat(timespec="seconds"),
      "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                  "python": platform.python_version(), "numpy": np.__version__,
                  "load_before": os.getloadavg()},
      "rows": args.rows, "dim": args.dim, "top_k": _TOP_K,
      "note": "synthetic output (explore.testing, written by a child process); build and queries "
              "in this process; the Parquet files were just written or read, so they are likely "
              "in the page cache; peak RSS counts the memory-mapped index pages it touched",
  }
  started = time.monotonic()
  index = search.open_index(output, "clap", cache_dir=cache_dir)
  report["index_build_seconds"] = round(time.monotonic() - started, 2)
  report["index_bytes"] = sum(os.path.getsize(os.path.join(index.directory, n))
                              for n in os.listdir(index.directory))
  report["peak_rss_mb_after_build"] = _peak_rss_mb()
  started = time.monotonic()
  index = search.open_index(output, "clap", cache_dir=cache_dir)
  report["index_open_seconds"] = round(time.monotonic() - started, 3)
  assert not index.built

  rng = np.random.default_rng(0)
  queries = [np.array(index.matrix[int(i)]) + 0.05 * rng.standard_normal(args.dim).astype(np.float32)
             for i in rng.integers(0, len(index), size=args.queries)]
  times, results = [], []
  for q in queries:
    started = time.monotonic()
    results.append(index.query(q, _TOP_K))
    times.append(time.monotonic() - started)
  report["query_seconds"] = {"first": round(times[0], 4),
                             "median": round(statistics.median(times), 4),
                             "max_after_first": round(max(times[1:] or times), 4)}
  exact_ok = all([h.row for h in results[i]] == _exact(index.matrix, queries[i], _TOP_K)
                 for i in range(min(3, len(queries))))
  report["top10_equal_to_float64_brute_force"] = exact_ok
  report["peak_rss_mb_after_queries"] = _peak_rss_mb()
  print(f"index build {report['index_build_seconds']} s ({report['index_bytes'] / 1e9:.2f} GB), "
        f"open {report['index_open_seconds']} s; query first {times[0]:.3f} s, median "
        f"{statistics.median(times):.3f} s, max {report['query_seconds']['max_after_first']:.3f} s; "
        f"exact: {exact_ok}; peak RSS {report['peak_rss_mb_after_queries']} MB")

  if args.duckdb:
    import duckdb  # pylint: disable=import-outside-toplevel
    con = duckdb.connect()
    q = queries[0].tolist()
    started = time.monotonic()
    rows = con.execute(f"""
        SELECT uri, array_cosine_similarity(embedding::FLOAT[{args.dim}], $q::FLOAT[{args.dim}]) AS score
        FROM read_parquet('{output}/clap/clips/*.parquet')
        ORDER BY score DESC LIMIT {_TOP_K}""", {"q": q}).fetchall()
    report["duckdb_sql_query_seconds"] = round(time.monotonic() - started, 2)
    report["duckdb_sql_equal_to_index"] = [r[0] for r in rows] == [h.uri for h in results[0]]
    print(f"duckdb SQL over Parquet: {report['duckdb_sql_query_seconds']} s per query "
          f"(same top-10: {report['duckdb_sql_equal_to_index']})")

  if args.faiss:
    import faiss  # pylint: disable=import-outside-toplevel
    n = min(args.faiss, len(index))
    data = np.ascontiguousarray(index.matrix[:n])
    hnsw = faiss.IndexHNSWFlat(args.dim, 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efSearch = args.ef_search
    started = time.monotonic()
    hnsw.add(data)
    build = time.monotonic() - started
    qs = np.stack([q / np.linalg.norm(q) for q in queries]).astype(np.float32)
    started = time.monotonic()
    _, found = hnsw.search(qs, _TOP_K)
    per_query = (time.monotonic() - started) / len(qs)
    exact = [np.argsort(-(data @ q), kind="stable")[:_TOP_K] for q in qs]
    recall = float(np.mean([len(set(f) & set(e)) / _TOP_K for f, e in zip(found, exact)]))
    report["faiss_hnsw"] = {"rows": n, "M": 32, "efSearch": args.ef_search,
                            "build_seconds": round(build, 1),
                            "query_seconds": round(per_query, 5), "recall_at_10": round(recall, 3)}
    print(f"faiss HNSW (M=32, efSearch={args.ef_search}) on {n:,} rows: build {build:.1f} s, "
          f"{per_query * 1e3:.2f} ms per "
          f"query, recall@10 {recall:.3f}")

  if args.vss:
    import duckdb  # pylint: disable=import-outside-toplevel
    import pyarrow as pa  # pylint: disable=import-outside-toplevel
    from explore import sql  # pylint: disable=import-outside-toplevel
    n = min(args.vss, len(index))
    con = duckdb.connect()
    sql.load_vss(con)
    vectors = pa.table({"row": np.arange(n), "embedding": pa.FixedSizeListArray.from_arrays(
        pa.array(np.ascontiguousarray(index.matrix[:n]).reshape(-1)), args.dim)})
    con.execute("SET enable_progress_bar = false")
    con.execute("CREATE TABLE v AS SELECT * FROM vectors")
    started = time.monotonic()
    con.execute("CREATE INDEX h ON v USING HNSW (embedding) WITH (metric = 'cosine')")
    build = time.monotonic() - started
    started = time.monotonic()
    con.execute(f"SELECT row FROM v ORDER BY array_cosine_distance(embedding, $q::FLOAT[{args.dim}]) "
                f"LIMIT {_TOP_K}", {"q": queries[0].tolist()}).fetchall()
    report["duckdb_vss_hnsw"] = {"rows": n, "build_seconds": round(build, 1),
                                 "query_seconds": round(time.monotonic() - started, 4)}
    print(f"duckdb vss HNSW on {n:,} rows: build {build:.1f} s, query "
          f"{report['duckdb_vss_hnsw']['query_seconds']} s")

  report["machine"]["load_after"] = os.getloadavg()
  if args.report:
    with open(args.report, "w", encoding="utf-8") as f:
      json.dump(report, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
