"""See and use what was embedded: read outputs, map them, search them, say what made them.

- ``explore.outputs``: find and read a model's committed ``clips``/``frames``/``labels``
  of an output directory (or of the DAG's ``dt=...`` partitions), ``run.json`` and the
  provenance in the Parquet schema metadata. Local paths, ``gs://`` and ``s3://``.
- ``explore.projection``: embeddings -> 2-D (UMAP, PCA, t-SNE), deterministic sampling.
- ``explore.mapview``: the offline interactive map, one self-contained HTML file.
- ``explore.search``: a cached exact-cosine index per (output, model, level) and top-k
  queries by vector, by audio file (same model and weights as the index) or by text
  (models with a text encoder: CLAP).
- ``explore.summary``: what made an output (models, weights, runs, counts, settings).

The command lines are thin: ``python -m pipelines.map``, ``pipelines.search``,
``pipelines.inspect``. Importing this package imports neither TensorFlow, torch nor Beam.
"""

from __future__ import annotations

__all__: list[str] = []
