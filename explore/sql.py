"""SQL over an output with DuckDB: committed rows only, embeddings as fixed-size arrays.

``connect(OUT)`` returns a DuckDB connection with one view per table of the output, over
its committed part files only: ``<model>_clips``, ``<model>_frames``, ``<model>_labels``
(each model's extras in Parquet) and ``errors``. Embedding columns are cast to DuckDB
arrays (``FLOAT[128]``, ``UTINYINT[128]``): Parquet has no fixed-size list type, so
DuckDB reads them back as lists (``FLOAT[]``), and ``array_cosine_similarity`` or an
HNSW index need the array type.

Without Python, ``COMMITTED_RUNS_MACRO`` is the same filter in plain SQL (see the README):
``WHERE run_id IN (SELECT run_id FROM committed_runs('out'))`` for clips and errors (they
have a ``run_id`` column), and on the file name for frames.

``load_vss(con)`` loads the HNSW extension from the ``duckdb-extension-vss`` wheel (no
download: ``INSTALL vss`` needs the network).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from audiobeam.errors import ConfigError
from explore import outputs

__all__ = ["COMMITTED_RUNS_MACRO", "FRAME_RUN_ID_SQL", "connect", "load_vss", "vss_extension_path"]

COMMITTED_RUNS_MACRO = """
CREATE OR REPLACE MACRO committed_runs(output_dir) AS TABLE
  SELECT unnest(coalesce(
      from_json(json_extract(content, '$.committed_run_ids'), '["VARCHAR"]'),
      [json_extract_string(content, '$.run_id')])) AS run_id
  FROM read_text(output_dir || '/run.json')
"""
"""``committed_runs('out')``: run.json's ``committed_run_ids``, else its ``run_id``.
(Outputs of the VGGish-only pipeline's ``--skip_existing`` also count the runs named in
``out/_manifest/``: use ``connect`` or ``explore.outputs`` for those.)"""

FRAME_RUN_ID_SQL = r"regexp_extract(filename, 'part-(.+)-[0-9]{5}-of-[0-9]{5}\.parquet$', 1)"
"""The run id of a row, from its file name (for tables without a ``run_id`` column)."""

_DUCKDB_TYPES = {
    pa.float16(): "FLOAT", pa.float32(): "FLOAT", pa.float64(): "DOUBLE",
    pa.uint8(): "UTINYINT", pa.int8(): "TINYINT", pa.int16(): "SMALLINT", pa.int32(): "INTEGER",
    pa.int64(): "BIGINT",
}


def _quote_identifier(name: str) -> str:
  return '"' + name.replace('"', '""') + '"'


def _quote_literal(text: str) -> str:
  return "'" + text.replace("'", "''") + "'"


def _select(parts: list[outputs.PartFile]) -> str:
  """``SELECT * REPLACE (col::T[D] AS col, ...) FROM read_parquet([...])`` over ``parts``."""
  with outputs.open_binary(parts[0].path) as f:
    schema = pq.ParquetFile(f).schema_arrow
  casts = []
  for field in schema:
    if pa.types.is_fixed_size_list(field.type) and field.type.value_type in _DUCKDB_TYPES:
      name = _quote_identifier(field.name)
      array_type = f"{_DUCKDB_TYPES[field.type.value_type]}[{field.type.list_size}]"
      casts.append(f"{name}::{array_type} AS {name}")
  files = ", ".join(_quote_literal(p.path) for p in parts)
  replace = f" REPLACE ({', '.join(casts)})" if casts else ""
  return f"SELECT *{replace} FROM read_parquet([{files}], union_by_name = true)"


def connect(path: str | outputs.Output, database: str = ":memory:"):
  """A DuckDB connection with views over the committed tables of a local output (see the
  module docstring); ``committed_runs`` is defined too. ConfigError for gs:// / s3://
  (DuckDB reads them through its httpfs extension, which needs a download: read them with
  ``explore.outputs`` and ``con.from_arrow(table)`` instead)."""
  import duckdb  # pylint: disable=import-outside-toplevel

  out = outputs.open_output(path)
  if not outputs.is_local(out.path):
    raise ConfigError(f"expected a local output for explore.sql.connect, found {out.path!r}: "
                      "read remote outputs with explore.outputs.read_clips(...) and query the "
                      "Arrow table with con.from_arrow(table)")
  con = duckdb.connect(database)
  con.execute(COMMITTED_RUNS_MACRO)
  for model in outputs.models(out):
    kinds = set()
    for directory in out.dirs:
      prefix = out.model_prefix(directory, model)
      kinds |= {rel[len(prefix):].split("/")[0] for rel, _ in out.relative_files(directory)
                if rel.startswith(prefix) and rel[len(prefix):].count("/") == 1
                and rel.endswith(".parquet")}
    for kind in sorted(kinds - {outputs.ERRORS_DIR}):
      parts = outputs.part_files(out, model, kind)
      if parts:
        con.execute(f"CREATE VIEW {_quote_identifier(f'{model}_{kind}')} AS {_select(parts)}")
  errors = outputs.part_files(out, None, outputs.ERRORS_DIR)
  if errors:
    con.execute(f"CREATE VIEW errors AS {_select(errors)}")
  return con


def vss_extension_path() -> str:
  """The ``vss.duckdb_extension`` file shipped by the ``duckdb-extension-vss`` wheel."""
  import importlib.resources  # pylint: disable=import-outside-toplevel

  import duckdb  # pylint: disable=import-outside-toplevel
  try:
    root = importlib.resources.files("duckdb_extension_vss")
  except ModuleNotFoundError:
    raise ConfigError("expected the duckdb-extension-vss package for HNSW indexes, found it "
                      "missing: pip install 'audiobeam[explore]'") from None
  path = root / "extensions" / f"v{duckdb.__version__}" / "vss.duckdb_extension"
  if not path.is_file():
    raise ConfigError(f"expected {path} (duckdb-extension-vss for duckdb {duckdb.__version__}), "
                      "found none: install the duckdb-extension-vss version equal to duckdb's")
  return str(path)


def load_vss(con) -> None:
  """Loads the HNSW extension into ``con`` from the wheel, offline."""
  con.execute(f"LOAD {_quote_literal(vss_extension_path())}")
