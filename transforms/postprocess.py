"""PostprocessAndPool: join each file's model outputs with its outcome; postprocess, pool.

Per uri (one model) the join sees the front end's outcome (``ClipInfo`` or
``InputFailure``) and every frame that came back from the model. Exactly one of two
things leaves:

* an ``EmbeddedClip`` (main output) when the file decoded and every one of its
  ``num_frames`` frames has model outputs; or
* an ``InputFailure`` (``failures`` output) otherwise: the front end's own failure,
  an inference failure of any frame (stage ``inference``), or frames missing
  (stage ``postprocess``, which would be a bug).

The maths is the bundle's ``Postprocessor`` (loaded once per DoFn instance: PCA
parameters, class names, ...); frame times are the bundle's ``frame_times``.
"""

from __future__ import annotations

from typing import Mapping

import apache_beam as beam
import numpy as np

from audiobeam.bundle import Asset, ModelBundle
from transforms.extract import failure_from_exception
from transforms.records import AudioFile, ClipInfo, EmbeddedClip, InferenceFailure, InputFailure

__all__ = ["PostprocessAndPool", "FAILURES_TAG"]

FAILURES_TAG = "failures"


class _ClipFailure(Exception):

  def __init__(self, failure: InputFailure):
    super().__init__(failure.message)
    self.failure = failure


class _PostprocessFn(beam.DoFn):
  """(uri, {outcome: [ClipInfo|InputFailure], frames: [(frame_index, outputs|InferenceFailure)]})
  -> EmbeddedClip | TaggedOutput(failures, InputFailure)."""

  def __init__(self, bundle: ModelBundle, assets: Mapping[str, Asset]):
    self._bundle = bundle
    self._assets = dict(assets)
    self._postprocessor = None

  def setup(self):
    local = {name: self._bundle.localize(asset) for name, asset in self._assets.items()}
    self._postprocessor = self._bundle.load_postprocessor(local)

  def process(self, joined):
    uri, grouped = joined
    outcomes = list(grouped["outcome"])
    frames = grouped["frames"]
    model = self._bundle.name
    if len(outcomes) != 1:  # Cannot happen after MatchAudio's dedupe; never lose it silently.
      yield beam.pvalue.TaggedOutput(FAILURES_TAG, InputFailure(
          AudioFile(uri), "postprocess", "internal_error",
          f"expected one front-end outcome for {uri!r}, found {len(outcomes)}", model))
      return
    outcome = outcomes[0]
    if isinstance(outcome, InputFailure):
      yield beam.pvalue.TaggedOutput(FAILURES_TAG, outcome)
      return
    try:
      clip = self._embed_clip(outcome, frames)
    except _ClipFailure as failure:
      yield beam.pvalue.TaggedOutput(FAILURES_TAG, failure.failure)
      return
    except Exception as error:  # pylint: disable=broad-except
      yield beam.pvalue.TaggedOutput(
          FAILURES_TAG, failure_from_exception(outcome.file, "postprocess", error, model))
      return
    yield clip

  def _embed_clip(self, info: ClipInfo, frames) -> EmbeddedClip:
    model = self._bundle.name
    by_index = {}
    for frame_index, inference in frames:
      if isinstance(inference, InferenceFailure):
        raise _ClipFailure(InputFailure(info.file, "inference", inference.error_type,
                                        f"frame {frame_index}: {inference.message}", model))
      by_index[int(frame_index)] = inference
    if sorted(by_index) != list(range(info.num_frames)):
      raise _ClipFailure(InputFailure(
          info.file, "postprocess", "missing_frames",
          f"expected frames 0..{info.num_frames - 1} from the model, found {len(by_index)} "
          "distinct frames; this is a bug: please report it with this row", model))
    ordered = [by_index[i] for i in range(info.num_frames)]
    outputs = {name: np.stack([o[name] for o in ordered]) for name in ordered[0]}
    frame_columns, clip_columns, start_seconds, end_seconds = self._bundle.file_rows(
        self._postprocessor, outputs, info.num_frames, info.duration_seconds)
    common = self._bundle.common
    return EmbeddedClip(
        info=info, frame_index=np.arange(info.num_frames, dtype=np.int32),
        start_seconds=start_seconds, end_seconds=end_seconds,
        frame_columns=frame_columns, clip_columns=clip_columns,
        pooling=clip_columns.pop("pooling", common.pooling),
        normalize=clip_columns.pop("normalize", common.normalize))


class PostprocessAndPool(beam.PTransform):
  """(outcomes, frames) -> (clips: PCollection[EmbeddedClip], failures: PCollection[InputFailure]).

  outcomes: ``(uri, ClipInfo | InputFailure)``; frames: ``(uri, (frame_index, {output: row}
  | InferenceFailure))``.
  """

  def __init__(self, bundle: ModelBundle, assets: Mapping[str, Asset]):
    super().__init__()
    self._fn = _PostprocessFn(bundle, assets)

  def expand(self, outcomes_and_frames):
    outcomes, frames = outcomes_and_frames
    results = (
        {"outcome": outcomes, "frames": frames}
        | "JoinByUri" >> beam.CoGroupByKey()
        | "PostprocessAndPool" >> beam.ParDo(self._fn).with_outputs(FAILURES_TAG, main="clips"))
    return results.clips, results[FAILURES_TAG]
