"""PostprocessAndPool: join each file's embedded frames with its outcome; PCA, quantize, pool.

Per uri the join sees the front end's outcome (``ClipInfo`` or ``InputFailure``) and
every frame that came back from the model. Exactly one of two things leaves:

* an ``EmbeddedClip`` (main output) when the file decoded and every one of its
  ``num_frames`` frames has a raw embedding; or
* an ``InputFailure`` (``failures`` output) otherwise: the front end's own failure,
  an inference failure of any frame (stage ``inference``), or frames missing
  (stage ``postprocess``, which would be a bug).

The maths is ``vggish.postprocess`` (PCA params loaded once per DoFn instance).
"""

from __future__ import annotations

import apache_beam as beam
import numpy as np

from transforms.extract import failure_from_exception
from transforms.records import ClipInfo, EmbeddedClip, InferenceFailure, InputFailure
from vggish.params import Params

__all__ = ["PostprocessAndPool", "FAILURES_TAG"]

FAILURES_TAG = "failures"


class _PostprocessFn(beam.DoFn):
  """(uri, {outcome: [ClipInfo|InputFailure], frames: [(frame_index, raw|InferenceFailure)]})
  -> EmbeddedClip | TaggedOutput(failures, InputFailure)."""

  def __init__(self, pca_params_uri: str, pca_params_sha256: str | None, params: Params,
               pooling: str, cache_dir: str | None = None):
    self._pca_params_uri = pca_params_uri
    self._pca_params_sha256 = pca_params_sha256
    self._params = params
    self._pooling = pooling
    self._cache_dir = cache_dir
    self._pca = None

  def setup(self):
    from transforms.embed import verify_sha256  # pylint: disable=import-outside-toplevel
    from vggish import assets  # pylint: disable=import-outside-toplevel
    from vggish.postprocess import PCAParams  # pylint: disable=import-outside-toplevel
    path = assets.localize(self._pca_params_uri, cache_dir=self._cache_dir, kind="pca_params",
                           params=self._params)
    verify_sha256(path, self._pca_params_sha256, "PCA parameters")
    self._pca = PCAParams.load(path, self._params)

  def process(self, joined):
    uri, grouped = joined
    outcomes = list(grouped["outcome"])
    frames = grouped["frames"]
    if len(outcomes) != 1:  # Cannot happen after MatchAudio's dedupe; never lose it silently.
      from transforms.records import AudioFile  # pylint: disable=import-outside-toplevel
      yield beam.pvalue.TaggedOutput(FAILURES_TAG, InputFailure(
          AudioFile(uri), "postprocess", "internal_error",
          f"expected one front-end outcome for {uri!r}, found {len(outcomes)}"))
      return
    outcome = outcomes[0]
    if isinstance(outcome, InputFailure):
      yield beam.pvalue.TaggedOutput(FAILURES_TAG, outcome)
      return
    info: ClipInfo = outcome
    try:
      clip = self._embed_clip(info, frames)
    except _ClipFailure as failure:
      yield beam.pvalue.TaggedOutput(FAILURES_TAG, failure.failure)
      return
    except Exception as error:  # pylint: disable=broad-except
      yield beam.pvalue.TaggedOutput(
          FAILURES_TAG, failure_from_exception(info.file, "postprocess", error))
      return
    yield clip

  def _embed_clip(self, info: ClipInfo, frames) -> EmbeddedClip:
    from vggish.postprocess import pool, postprocess  # pylint: disable=import-outside-toplevel
    by_index = {}
    for frame_index, inference in frames:
      if isinstance(inference, InferenceFailure):
        raise _ClipFailure(InputFailure(info.file, "inference", inference.error_type,
                                        f"frame {frame_index}: {inference.message}"))
      by_index[int(frame_index)] = inference
    if sorted(by_index) != list(range(info.num_frames)):
      raise _ClipFailure(InputFailure(
          info.file, "postprocess", "missing_frames",
          f"expected frames 0..{info.num_frames - 1} from the model, found {len(by_index)} "
          "distinct frames; this is a bug: please report it with this row"))
    frame_index = np.arange(info.num_frames, dtype=np.int32)
    raw = np.stack([by_index[i] for i in range(info.num_frames)]).astype(np.float32, copy=False)
    quantized = postprocess(raw, self._pca, self._params)
    start_seconds = frame_index.astype(np.float64) * self._params.patch_hop_seconds  # as vggish.api
    return EmbeddedClip(
        info=info,
        frame_index=frame_index,
        start_seconds=start_seconds,
        end_seconds=start_seconds + self._params.patch_span_seconds,
        raw=raw,
        quantized=quantized,
        embedding=pool(raw, self._pooling),
        pooling=self._pooling)


class _ClipFailure(Exception):

  def __init__(self, failure: InputFailure):
    super().__init__(failure.message)
    self.failure = failure


class PostprocessAndPool(beam.PTransform):
  """(outcomes, frames) -> (clips: PCollection[EmbeddedClip], failures: PCollection[InputFailure]).

  outcomes: ``(uri, ClipInfo | InputFailure)``; frames: ``(uri, (frame_index, raw float32
  [128] | InferenceFailure))``.
  """

  def __init__(self, pca_params_uri: str, *, pca_params_sha256: str | None, params: Params,
               pooling: str, cache_dir: str | None = None):
    super().__init__()
    self._fn = _PostprocessFn(pca_params_uri, pca_params_sha256, params, pooling, cache_dir)

  def expand(self, outcomes_and_frames):
    outcomes, frames = outcomes_and_frames
    results = (
        {"outcome": outcomes, "frames": frames}
        | "JoinByUri" >> beam.CoGroupByKey()
        | "PostprocessAndPool" >> beam.ParDo(self._fn).with_outputs(FAILURES_TAG, main="clips"))
    return results.clips, results[FAILURES_TAG]
