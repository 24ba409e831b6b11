"""EmbedWithVGGish: RunInference over keyed log-mel patches with our VGGish ModelHandler.

Patches from many files are packed into batches of exactly ``batch_size`` (the last
batch of a bundle may be smaller): a batch of 64 one-second files is one model call.
The model is loaded once per worker process in ``load_model()`` (Beam's shared handle
lets the DoFn threads of a process share it) from the weight URI the launcher
resolved, and its sha256 is checked against the launcher's so every worker provably
ran the weights recorded in the provenance.

Failures are isolated per patch: if a batch call raises, each patch is retried alone
and the ones that still fail come out as ``InferenceFailure`` values (their files then
become ``errors/`` rows with stage ``inference``), so good neighbours in the same batch
still get embeddings. Anything RunInference itself still catches goes to its dead-letter
output and is turned into the same ``InferenceFailure`` values.
"""

from __future__ import annotations

import gc
from typing import Any, Iterable, Optional, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, PredictionResult, RunInference

from transforms.records import InferenceFailure
from vggish.params import Params

__all__ = ["VGGishModelHandler", "EmbedWithVGGish", "verify_sha256", "MODEL_METRICS_NAMESPACE",
           "poison_patch_for_test"]

_NAMESPACE = "audiobeam"
MODEL_METRICS_NAMESPACE = "audiobeam_vggish"
"""Namespace of RunInference's own metrics (batch sizes, latencies) for our handler."""


def verify_sha256(path: str, expected_sha256: str | None, what: str, *,
                  checkpoint: bool = False) -> None:
  """Raises AssetError if the file at ``path`` does not hash to ``expected_sha256``."""
  if not expected_sha256:
    return
  from vggish import assets  # pylint: disable=import-outside-toplevel
  from audiobeam.errors import AssetError  # pylint: disable=import-outside-toplevel
  found = assets.sha256_of(path, checkpoint=checkpoint)
  if found != expected_sha256:
    raise AssetError(
        f"expected the {what} at {path} to have sha256 {expected_sha256} (what the launcher "
        f"resolved), found {found}; the file changed during the run: re-run.")


class VGGishModelHandler(ModelHandler[np.ndarray, PredictionResult, Any]):
  """float32 [96, 64] patch -> PredictionResult(patch, raw float32 [128] | InferenceFailure)."""

  def __init__(self, checkpoint_uri: str, *, checkpoint_sha256: str | None = None,
               params: Params, batch_size: int, cache_dir: str | None = None,
               model_copies: int | None = None):
    super().__init__(min_batch_size=batch_size, max_batch_size=batch_size,
                     model_copies=model_copies)
    self._checkpoint_uri = checkpoint_uri
    self._checkpoint_sha256 = checkpoint_sha256
    self._params = params
    self._cache_dir = cache_dir
    self._isolated = Metrics.counter(_NAMESPACE, "inference_batches_isolated")

  def load_model(self):
    from vggish import assets  # pylint: disable=import-outside-toplevel
    from vggish.model import VGGishModel  # pylint: disable=import-outside-toplevel
    path = assets.localize(self._checkpoint_uri, cache_dir=self._cache_dir, kind="checkpoint",
                           params=self._params)
    verify_sha256(path, self._checkpoint_sha256, "checkpoint", checkpoint=True)
    model = VGGishModel.from_checkpoint(path, self._params)
    # TensorFlow leaves ~10^6 long-lived Python objects; move them (and the model) out of
    # the collector's reach. Full collections during the run then skip them, and so does
    # the interpreter's final collection: a worker's exit went from ~2.8 s to ~0.3 s, and
    # the local runner waits for its workers to exit one after the other.
    gc.freeze()
    return model

  def run_inference(self, batch: Sequence[np.ndarray], model,
                    inference_args: Optional[dict[str, Any]] = None) -> Iterable[PredictionResult]:
    if not batch:
      return []
    try:
      raw = _checked_call(model, np.stack(batch))
    except Exception:  # pylint: disable=broad-except
      if len(batch) == 1:
        raise
      return self._run_isolated(batch, model)
    return [PredictionResult(example=None, inference=row) for row in raw]

  def _run_isolated(self, batch, model) -> list[PredictionResult]:
    """The batch failed: retry each patch alone; the failing ones become InferenceFailure."""
    self._isolated.inc()
    results = []
    for patch in batch:
      try:
        inference = _checked_call(model, patch[np.newaxis])[0]
      except Exception as error:  # pylint: disable=broad-except
        inference = InferenceFailure("inference_failed", f"{type(error).__name__}: {error}"[:2000])
      results.append(PredictionResult(example=None, inference=inference))
    return results

  def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
    return int(sum(np.asarray(x).nbytes for x in batch))

  def get_metrics_namespace(self) -> str:
    return MODEL_METRICS_NAMESPACE


def _checked_call(model, patches: np.ndarray) -> np.ndarray:
  """``model(patches)`` with its contract enforced: finite float32 [N, 96, 64] in, finite
  [N, 128] out. A violation raises, so the patch's file becomes an ``inference`` errors
  row instead of NaN embeddings in the output."""
  if not np.isfinite(patches).all():
    raise ValueError("expected finite log-mel patches, found NaN or inf (extreme sample "
                     "values or a front-end bug); the file's frames are not embedded")
  raw = model(patches)
  if not np.isfinite(raw).all():
    raise ValueError("the model returned NaN or inf for finite patches; the file's frames "
                     "are not embedded")
  return raw


def poison_patch_for_test(keyed_patch, uris: frozenset):
  """TEST ONLY fault injection: the patches of files in ``uris`` become NaN, so the model
  call that holds them fails for real (see ``_checked_call``). Wired in only when the
  environment variable ``AUDIOBEAM_TEST_ONLY_INFERENCE_FAULT_URIS`` is set."""
  (uri, frame_index), patch = keyed_patch
  if uri in uris:
    patch = np.full_like(patch, np.nan)
  return (uri, frame_index), patch


def _to_frame(keyed_result):
  (uri, frame_index), result = keyed_result
  return uri, (frame_index, result.inference)


def _failed_batch_to_frames(batch_and_error):
  """A batch RunInference gave up on -> (uri, (frame_index, InferenceFailure)) per patch."""
  batch, error = batch_and_error
  failure = InferenceFailure("inference_failed", f"{type(error).__name__}: {error}"[:2000])
  for (uri, frame_index), _ in batch:
    yield uri, (frame_index, failure)


class EmbedWithVGGish(beam.PTransform):
  """((uri, frame_index), float32 [96, 64]) -> (uri, (frame_index, raw float32 [128] |
  InferenceFailure))."""

  def __init__(self, handler: VGGishModelHandler):
    super().__init__()
    self._handler = handler

  def expand(self, patches):
    results, dead_letter = (
        patches
        | "RunInference" >> RunInference(KeyedModelHandler(self._handler)).with_exception_handling())
    embedded = results | "ToFrames" >> beam.Map(_to_frame)
    failed = dead_letter.failed_inferences | "FailedToFrames" >> beam.FlatMap(_failed_batch_to_frames)
    return (embedded, failed) | "MergeFailures" >> beam.Flatten()
