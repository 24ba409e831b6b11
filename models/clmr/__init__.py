"""CLMR (SampleCNN, contrastive music representations) for audiobeam: ``--model clmr``.

``models.clmr.bundle.CLMRBundle`` is the pipeline's entry point; ``params`` (window and
sizes), ``network`` (the encoder as a table; torch module built lazily), ``checkpoint``
(``torch.load(weights_only=True)`` + validation by name), ``frontend`` (streaming raw
windows), ``model`` (the runner) and ``testing`` (random TEST checkpoints) are its parts.
Importing this package does not import torch.
"""

from __future__ import annotations

from models.clmr.bundle import CLMRBundle

__all__ = ["CLMRBundle"]
