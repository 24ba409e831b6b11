"""Names in an output folder that its writer (``pipelines.lifecycle``,
``transforms.manifest``, ``transforms.records``) and its readers (``explore.outputs``)
share: one definition, no Beam import. The layout is documented in
``pipelines/lifecycle.py``."""

from __future__ import annotations

__all__ = ["RUN_JSON", "LEDGER_DIR", "RUNS_DIR", "STAGING_DIR", "LOCK", "STARTED_SUFFIX",
           "MANIFESTS_DIR", "PROVENANCE_METADATA_KEY"]

RUN_JSON = "run.json"
LEDGER_DIR = "_audiobeam"
RUNS_DIR = f"{LEDGER_DIR}/runs"
STAGING_DIR = f"{LEDGER_DIR}/staging"
LOCK = f"{LEDGER_DIR}/lock.json"
STARTED_SUFFIX = ".started.json"
MANIFESTS_DIR = f"{LEDGER_DIR}/manifests"
PROVENANCE_METADATA_KEY = "audiobeam.provenance"
"""The Parquet schema metadata key that holds a file's provenance JSON."""
