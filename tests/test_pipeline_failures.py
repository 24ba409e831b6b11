"""Inference failures: isolated to the failing patch's file, routed to errors, never lost.

These run the Beam transforms on TestPipeline with a model callable that fails on
marked patches (a test double for the *failure*, not for VGGish: it never produces an
output that is called an embedding outside this file).
"""

from __future__ import annotations

import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from audiobeam.bundle import Common
from transforms.embed import BundleModelHandler, EmbedWithModel
from transforms.postprocess import FAILURES_TAG, _PostprocessFn
from transforms.records import AudioFile, ClipInfo, InferenceFailure, InputFailure
from vggish.bundle import VGGishBundle, _VGGishPostprocessor
from vggish.params import DEFAULT_PARAMS

_BUNDLE = VGGishBundle({}, Common())

_POISON = 1e6  # a patch holding this value makes the test model raise


class _FailOnPoison:
  """patches [N, 96, 64] -> [N, 128] of each patch's mean; raises if any patch is poisoned."""

  def __call__(self, patches):
    patches = np.asarray(patches, np.float32)
    if np.any(patches >= _POISON):
      raise RuntimeError("poisoned patch")
    return {"raw_embedding": np.repeat(patches.mean(axis=(1, 2))[:, None], 128,
                                       axis=1).astype(np.float32)}


class _HandlerWithTestModel(BundleModelHandler):

  def load_model(self):
    return _FailOnPoison()


def _handler(batch_size):
  return _HandlerWithTestModel(_BUNDLE, {}, batch_size=batch_size)


def _patch(value):
  return np.full((96, 64), value, np.float32)


def test_a_failing_batch_is_retried_per_patch_so_neighbours_still_embed():
  handler = _handler(4)
  batch = [_patch(1.0), _patch(_POISON), _patch(3.0)]
  results = list(handler.run_inference(batch, _FailOnPoison()))
  assert len(results) == 3
  np.testing.assert_allclose(results[0].inference["raw_embedding"], np.full(128, 1.0))
  assert isinstance(results[1].inference, InferenceFailure)
  assert "poisoned" in results[1].inference.message
  np.testing.assert_allclose(results[2].inference["raw_embedding"], np.full(128, 3.0))


def test_non_finite_inputs_or_outputs_fail_the_call_instead_of_reaching_the_output():
  handler = _handler(4)
  nan_patch = np.full((96, 64), np.nan, np.float32)
  results = list(handler.run_inference([_patch(1.0), nan_patch], _FailOnPoison()))
  assert not isinstance(results[0].inference, InferenceFailure)
  assert "finite" in results[1].inference.message

  def returns_inf(patches):
    return {"raw_embedding": np.full((len(patches), 128), np.inf, np.float32)}

  with pytest.raises(ValueError, match="NaN or inf"):
    handler.run_inference([_patch(1.0)], returns_inf)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_embed_routes_inference_failures_to_their_frames(batch_size):
  # batch_size 1: RunInference's dead-letter output; 4: our per-patch isolation.
  patches = [(("good.wav", i), _patch(float(i))) for i in range(3)]
  patches += [(("bad.wav", 0), _patch(0.5)), (("bad.wav", 1), _patch(_POISON))]

  def summarize(element):
    uri, (frame_index, inference) = element
    return uri, frame_index, isinstance(inference, InferenceFailure)

  options = PipelineOptions(["--runner=FnApiRunner"])
  with test_pipeline.TestPipeline(options=options) as pipeline:
    import apache_beam as beam
    frames = (pipeline | beam.Create(patches, reshuffle=False)
              | EmbedWithModel(_handler(batch_size)))
    assert_that(frames | beam.Map(summarize), equal_to(
        [("good.wav", 0, False), ("good.wav", 1, False), ("good.wav", 2, False),
         ("bad.wav", 0, False), ("bad.wav", 1, True)]))


@pytest.fixture(scope="module")
def pca():
  from vggish.postprocess import PCAParams
  return PCAParams(np.eye(128), np.zeros(128))


def _info(uri, num_frames):
  return ClipInfo(file=AudioFile(uri, 10, 1.0), model="vggish",
                  duration_seconds=num_frames * 0.96 + 0.015, sample_rate=16000, channels=1,
                  num_frames=num_frames)


def _raw(values):
  return {"raw_embedding": np.asarray(values, np.float32)}


def _run_postprocess(pca, outcome, frames):
  fn = _PostprocessFn(_BUNDLE, {})
  fn._postprocessor = _VGGishPostprocessor(pca, DEFAULT_PARAMS)  # what setup() loads
  return list(fn.process((outcome.uri, {"outcome": [outcome], "frames": frames})))


def _failure_of(outputs):
  assert len(outputs) == 1
  assert outputs[0].tag == FAILURES_TAG
  return outputs[0].value


def test_a_clip_with_a_failed_frame_is_one_errors_row(pca):
  frames = [(0, _raw(np.zeros(128))), (1, InferenceFailure("inference_failed", "boom"))]
  failure = _failure_of(_run_postprocess(pca, _info("x.wav", 2), frames))
  assert isinstance(failure, InputFailure)
  assert (failure.uri, failure.stage, failure.error_type, failure.model) == (
      "x.wav", "inference", "inference_failed", "vggish")


def test_a_clip_missing_frames_is_an_errors_row_not_a_short_clip(pca):
  frames = [(0, _raw(np.zeros(128)))]
  failure = _failure_of(_run_postprocess(pca, _info("x.wav", 2), frames))
  assert (failure.stage, failure.error_type) == ("postprocess", "missing_frames")


def test_frames_of_a_file_that_failed_to_decode_are_dropped(pca):
  failed = InputFailure(AudioFile("y.wav"), "decode", "decode_error", "truncated", "vggish")
  frames = [(0, _raw(np.zeros(128)))]  # emitted before the decoder failed
  assert _failure_of(_run_postprocess(pca, failed, frames)) == failed


def test_frames_come_out_in_order_whatever_order_they_arrive_in(pca):
  raw = np.random.default_rng(0).standard_normal((3, 128)).astype(np.float32)
  frames = [(2, _raw(raw[2])), (0, _raw(raw[0])), (1, _raw(raw[1]))]
  (clip,) = _run_postprocess(pca, _info("z.wav", 3), frames)
  np.testing.assert_array_equal(clip.frame_index, [0, 1, 2])
  np.testing.assert_array_equal(clip.frame_columns["raw_embedding"], raw)
  np.testing.assert_allclose(clip.clip_columns["embedding"], raw.mean(axis=0), rtol=1e-6,
                             atol=1e-6)
  np.testing.assert_allclose(clip.end_seconds - clip.start_seconds, 0.975)
