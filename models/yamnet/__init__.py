"""YAMNet (Google's AudioSet classifier, MobileNet v1 on log-mel patches), exact to the
published reference (tensorflow/models, research/audioset/yamnet).

Modules: ``params`` (constants), ``features`` (TF float32 log-mel front end),
``stream`` (bounded-memory streaming front end), ``network`` (the layer table),
``weights`` (``yamnet.h5`` and class-map readers), ``model`` (TensorFlow 2),
``torch_model`` (PyTorch), ``bundle`` (``YAMNetBundle`` for the pipeline),
``testing`` (TEST weights only). Importing this package imports neither TensorFlow
nor torch.
"""

from __future__ import annotations

from models.yamnet.params import DEFAULT_PARAMS, Params

__all__ = ["Params", "DEFAULT_PARAMS"]
