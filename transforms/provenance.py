"""Provenance: what produced an output, recorded next to every output.

``provenance()`` gives a JSON-able dict per model (its assets' URIs and sha256, the
model's settings -- front-end params, resampler, short-clip policy, pooling -- and the
library versions) that goes into the schema metadata of every Parquet file of that model
and into ``run.json``. ``settings_sha256()`` hashes only the settings (what determines
the values; each bundle's ``settings()``), so two runs with equal hashes produce equal
rows for the same input: an incremental run can skip inputs already embedded under the
same hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import platform
from typing import Any

from audiobeam.redact import redact_uri

__all__ = ["provenance", "settings_sha256", "library_versions"]

_LIBRARIES = ("audiobeam", "apache-beam", "tensorflow", "torch", "transformers", "numpy",
              "pyarrow", "soundfile", "av", "resampy", "soxr")


def library_versions() -> dict[str, str | None]:
  """Installed versions (from package metadata: no heavy imports)."""
  versions: dict[str, str | None] = {"python": platform.python_version()}
  for name in _LIBRARIES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      versions[name] = None
  return versions


def settings_sha256(settings_dict: dict[str, Any]) -> str:
  """sha256 of the canonical JSON of ``settings_dict``."""
  canonical = json.dumps(settings_dict, sort_keys=True, separators=(",", ":"))
  return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def provenance(*, run_id: str, bundle, assets: dict[str, Any]) -> dict[str, Any]:
  """The provenance record of one model, written into Parquet metadata and ``run.json``.

  ``bundle``: the configured ``audiobeam.bundle.ModelBundle``; ``assets``: asset name ->
  ``audiobeam.bundle.Asset``. Besides what made the values (``assets``, ``settings``), it
  records the model's option values (``options``) and the shared settings (``common``), so
  a query can be embedded the same way later (``pipelines.search --audio``). URIs are
  redacted.
  """
  settings_dict = bundle.settings(assets)
  options = {}
  for option in bundle.options:
    value = bundle.values.get(option.name)
    options[option.name] = redact_uri(value) if option.kind == "path" else value
  common = dataclasses.asdict(bundle.common)
  common.pop("cache_dir", None)  # where this machine caches; not how the values were made
  return {
      "run_id": run_id,
      "model": bundle.name,
      "assets": {name: {"uri": redact_uri(a.uri), "sha256": a.sha256}
                 for name, a in sorted(assets.items())},
      "settings": settings_dict,
      "settings_sha256": settings_sha256(settings_dict),
      "options": options,
      "common": common,
      "embedding_column": bundle.embedding_column(),
      "versions": library_versions(),
  }
