"""Provenance: what produced an output, recorded next to every output.

``provenance()`` gives a JSON-able dict (weights URIs and sha256, front-end params,
resampler, short-clip policy, pooling, library versions) that goes into every Parquet
file's schema metadata and into ``run.json``. ``settings_sha256()`` hashes only what
determines the embedding values (weights hashes + params + resampler + short-clip
policy + pooling), so two runs with equal hashes produce equal rows for the same input:
an incremental run can skip inputs already embedded under the same hash.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
from typing import Any

from vggish.params import Params
from audiobeam.redact import redact_uri

__all__ = ["provenance", "settings", "settings_sha256", "library_versions"]

_LIBRARIES = ("audiobeam", "apache-beam", "tensorflow", "numpy", "pyarrow", "soundfile", "av",
              "resampy", "soxr")


def library_versions() -> dict[str, str | None]:
  """Installed versions (from package metadata: no heavy imports)."""
  versions: dict[str, str | None] = {"python": platform.python_version()}
  for name in _LIBRARIES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      versions[name] = None
  return versions


def settings(*, checkpoint_sha256: str, pca_params_sha256: str, params: Params, resampler: str,
             short_clips: str, pooling: str) -> dict[str, Any]:
  """Everything that determines the output values, and nothing else."""
  return {
      "model": "vggish",
      "checkpoint_sha256": checkpoint_sha256,
      "pca_params_sha256": pca_params_sha256,
      "params": params.as_dict(),
      "resampler": resampler,
      "short_clips": short_clips,
      "pooling": pooling,
  }


def settings_sha256(settings_dict: dict[str, Any]) -> str:
  """sha256 of the canonical JSON of ``settings_dict``."""
  canonical = json.dumps(settings_dict, sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def provenance(*, run_id: str, checkpoint_uri: str, pca_params_uri: str,
               settings_dict: dict[str, Any]) -> dict[str, Any]:
  """The provenance record written into Parquet metadata and ``run.json``."""
  return {
      "run_id": run_id,
      "checkpoint_uri": redact_uri(checkpoint_uri),
      "pca_params_uri": redact_uri(pca_params_uri),
      "settings": settings_dict,
      "settings_sha256": settings_sha256(settings_dict),
      "versions": library_versions(),
  }
