"""EmbedWithModel: RunInference over keyed model inputs with one generic ModelHandler.

``BundleModelHandler`` serves every model through its bundle (``audiobeam.bundle``):
inputs from many files are packed into batches of exactly ``batch_size`` (the last batch
of a bundle may be smaller). The model is loaded once per worker process in
``load_model()`` (Beam's shared handle lets the DoFn threads of a process share it) from
the assets the launcher resolved, each checked against the launcher's sha256
(``ModelBundle.localize``), so every worker provably ran the weights recorded in the
provenance.

Failures are isolated per input: if a batch call raises, each input is retried alone
and the ones that still fail come out as ``InferenceFailure`` values (their files then
become ``errors/`` rows with stage ``inference``), so good neighbours in the same batch
still get embeddings. Every call checks its contract: finite inputs in, finite outputs
of the right length out. Anything RunInference itself still catches goes to its
dead-letter output and is turned into the same ``InferenceFailure`` values.
"""

from __future__ import annotations

import gc
from typing import Any, Iterable, Mapping, Optional, Sequence

import sys

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics


def _import_inference_base():
  """Beam 2.77's ``ml.inference.base`` imports its optional ``ModelManager``, whose module
  imports torch at the top: 3-7 s of start-up in every process where torch is installed,
  for a feature we do not use (``use_model_manager`` stays False). A ``None`` entry in
  ``sys.modules`` makes that optional import fail fast, as Beam's own ``except
  ImportError`` expects; it is removed right after, so an explicit import of the module
  later works as usual."""
  name = "apache_beam.ml.inference.model_manager"
  if "apache_beam.ml.inference.base" in sys.modules or name in sys.modules:
    import apache_beam.ml.inference.base as base  # pylint: disable=import-outside-toplevel
    return base
  sys.modules[name] = None  # type: ignore[assignment]
  try:
    import apache_beam.ml.inference.base as base  # pylint: disable=import-outside-toplevel
  finally:
    del sys.modules[name]
  if getattr(base, "resource", None) is None:  # imported in the same try block as the manager
    import resource  # pylint: disable=import-outside-toplevel
    base.resource = resource
  return base


_base = _import_inference_base()
KeyedModelHandler, ModelHandler = _base.KeyedModelHandler, _base.ModelHandler
PredictionResult, RunInference = _base.PredictionResult, _base.RunInference

from audiobeam.bundle import Asset, ModelBundle
from transforms import progress
from transforms.records import InferenceFailure

__all__ = ["BundleModelHandler", "EmbedWithModel", "model_metrics_namespace",
           "poison_input_for_test"]

_NAMESPACE = "audiobeam"


def model_metrics_namespace(model: str) -> str:
  """Namespace of RunInference's own metrics (batch sizes, latencies) for ``model``."""
  return f"audiobeam_{model}"


class BundleModelHandler(ModelHandler[np.ndarray, PredictionResult, Any]):
  """float32 input -> PredictionResult(input, {output: row} | InferenceFailure)."""

  def __init__(self, bundle: ModelBundle, assets: Mapping[str, Asset], *, batch_size: int,
               model_copies: int | None = None):
    super().__init__(min_batch_size=batch_size, max_batch_size=batch_size,
                     model_copies=model_copies)
    self._bundle = bundle
    self._assets = dict(assets)
    self._isolated = Metrics.counter(_NAMESPACE, f"{bundle.name}_inference_batches_isolated")
    self._embedded = Metrics.counter(_NAMESPACE, f"{bundle.name}_inputs_embedded")

  def load_model(self):
    local = {name: self._bundle.localize(asset) for name, asset in self._assets.items()}
    model = self._bundle.load_model(local, self._bundle.common.device)
    # TensorFlow and torch leave ~10^6 long-lived Python objects; move them (and the model)
    # out of the collector's reach. Full collections during the run then skip them, and
    # so does the interpreter's final collection: a worker's exit went from ~2.8 s to
    # ~0.3 s, and the local runner waits for its workers to exit one after the other.
    gc.freeze()
    return model

  def run_inference(self, batch: Sequence[np.ndarray], model,
                    inference_args: Optional[dict[str, Any]] = None) -> Iterable[PredictionResult]:
    if not batch:
      return []
    self._embedded.inc(len(batch))
    progress.record(inputs_embedded=len(batch))
    try:
      outputs = _checked_call(model, np.stack(batch))
    except Exception:  # pylint: disable=broad-except
      if len(batch) == 1:
        raise
      return self._run_isolated(batch, model)
    return [PredictionResult(example=None, inference={k: v[i] for k, v in outputs.items()})
            for i in range(len(batch))]

  def _run_isolated(self, batch, model) -> list[PredictionResult]:
    """The batch failed: retry each input alone; the failing ones become InferenceFailure."""
    self._isolated.inc()
    results = []
    for item in batch:
      try:
        outputs = _checked_call(model, item[np.newaxis])
        inference = {k: v[0] for k, v in outputs.items()}
      except Exception as error:  # pylint: disable=broad-except
        inference = InferenceFailure("inference_failed", f"{type(error).__name__}: {error}"[:2000])
      results.append(PredictionResult(example=None, inference=inference))
    return results

  def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
    return int(sum(np.asarray(x).nbytes for x in batch))

  def get_metrics_namespace(self) -> str:
    return model_metrics_namespace(self._bundle.name)


def _checked_call(model, inputs: np.ndarray) -> dict[str, np.ndarray]:
  """``model(inputs)`` with its contract enforced: finite float32 [N, ...] in, finite
  ``{output: [N, ...]}`` out. A violation raises, so the input's file becomes an
  ``inference`` errors row instead of NaN embeddings in the output."""
  inputs = np.asarray(inputs, dtype=np.float32)
  if not np.isfinite(inputs).all():
    raise ValueError("expected finite model inputs, found NaN or inf (extreme sample "
                     "values or a front-end bug); the file's frames are not embedded")
  outputs = model(inputs)
  for name, value in outputs.items():
    value = np.asarray(value)
    if value.shape[:1] != inputs.shape[:1]:
      raise ValueError(f"the model returned {name} of shape {value.shape} for "
                       f"{inputs.shape[0]} inputs")
    if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
      raise ValueError(f"the model returned NaN or inf in {name} for finite inputs; the "
                       "file's frames are not embedded")
  return outputs


def poison_input_for_test(keyed_input, uris: frozenset):
  """TEST ONLY fault injection: the inputs of files in ``uris`` become NaN, so the model
  call that holds them fails for real (see ``_checked_call``). Wired in only when the
  environment variable ``AUDIOBEAM_TEST_ONLY_INFERENCE_FAULT_URIS`` is set."""
  (uri, frame_index), item = keyed_input
  if uri in uris:
    item = np.full_like(item, np.nan)
  return (uri, frame_index), item


def _to_frame(keyed_result):
  (uri, frame_index), result = keyed_result
  return uri, (frame_index, result.inference)


def _failed_batch_to_frames(batch_and_error):
  """A batch RunInference gave up on -> (uri, (frame_index, InferenceFailure)) per input."""
  batch, error = batch_and_error
  failure = InferenceFailure("inference_failed", f"{type(error).__name__}: {error}"[:2000])
  for (uri, frame_index), _ in batch:
    yield uri, (frame_index, failure)


class EmbedWithModel(beam.PTransform):
  """((uri, frame_index), input) -> (uri, (frame_index, {output: row} | InferenceFailure))."""

  def __init__(self, handler: BundleModelHandler):
    super().__init__()
    self._handler = handler

  def expand(self, inputs):
    results, dead_letter = (
        inputs
        | "RunInference" >> RunInference(KeyedModelHandler(self._handler)).with_exception_handling())
    embedded = results | "ToFrames" >> beam.Map(_to_frame)
    failed = dead_letter.failed_inferences | "FailedToFrames" >> beam.FlatMap(_failed_batch_to_frames)
    return (embedded, failed) | "MergeFailures" >> beam.Flatten()
