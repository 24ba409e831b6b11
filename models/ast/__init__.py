"""AST (Audio Spectrogram Transformer) embeddings for audiobeam: ``--model ast``.

``models.ast.bundle.ASTBundle`` is the pipeline's entry point; ``params`` (front-end
constants), ``fbank`` (Kaldi fbank in numpy), ``frontend`` (streaming 1024-frame
windows), ``checkpoint`` (folder validation without torch), ``model`` (transformers,
imported lazily) and ``testing`` (random TEST checkpoints) are its parts. Importing
this package imports neither torch nor transformers.
"""

from __future__ import annotations

from models.ast.bundle import ASTBundle

__all__ = ["ASTBundle"]
