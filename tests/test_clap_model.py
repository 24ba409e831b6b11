"""CLAP's numerical contract against transformers itself, on TEST weights (random, in the
real HTSAT + RoBERTa architecture), unfused and fused:

* features: ours == ``ClapFeatureExtractor`` for a window alone;
* embeddings: ours == ``ClapFeatureExtractor`` + ``ClapModel.get_audio_features`` on
  that same 10 s window alone, to <= 1e-5, whatever the batch;
* labels: ours == ``pipeline("zero-shot-audio-classification")`` on clips <= 10 s;
* text: ``embed_text`` == ``get_text_features`` on each text alone;
* two loads give identical numbers.
"""

from __future__ import annotations

import numpy as np
import pytest

from clap_fixtures import checkpoint_dir, clap_signal, reference_embedding, reference_for, runner_for
from models.clap.frontend import cut_windows

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

W = 480000
TOLERANCE = 1e-5
CHECKPOINTS = [pytest.param(False, id="unfused"), pytest.param(True, id="fused")]


SHORT_CLIP = clap_signal(int(1.3 * 48000), seed=7).astype(np.float32)  # a clip under 10 s


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
  """float32 [3, 480000]: the two windows of a 16 s signal (the second repeat-padded)
  and the window of SHORT_CLIP."""
  x = clap_signal(int(1.6 * W), seed=3)
  return np.concatenate([cut_windows(x, W), cut_windows(SHORT_CLIP, W)])


@pytest.fixture(scope="module")
def batch_embeddings(windows) -> dict[bool, np.ndarray]:
  """Our embeddings of ``windows`` computed as one batch, per checkpoint (fused or not)."""
  return {fused: runner_for(checkpoint_dir(fused))(windows)["embedding"] for fused in (False, True)}


@pytest.mark.parametrize("fused", CHECKPOINTS)
def test_features_equal_the_feature_extractor_on_a_window_alone(fused, windows):
  from models.clap.features import is_longer_flags, log_mel_features

  runner = runner_for(checkpoint_dir(fused))
  _, extractor, _ = reference_for(checkpoint_dir(fused))
  ours = log_mel_features(torch.from_numpy(windows[1:]), runner.mel).numpy()
  flags = is_longer_flags(2, runner.mel).numpy()
  np.random.seed(0)
  ref = extractor(windows[1], sampling_rate=48000, return_tensors="np")
  assert ours[0].shape == ref["input_features"][0].shape == ((4 if fused else 1), 1001, 64)
  np.testing.assert_allclose(ours[0], ref["input_features"][0], rtol=0, atol=1e-4)
  assert bool(flags[0, 0]) == bool(ref["is_longer"][0][0]) == fused
  assert np.abs(ours[0] - ours[1]).max() > 1.0  # different windows, different features


@pytest.mark.parametrize("fused", CHECKPOINTS)
def test_embeddings_equal_transformers_on_each_window_alone(fused, windows, batch_embeddings):
  path = checkpoint_dir(fused)
  ours = batch_embeddings[fused]
  assert ours.shape == (3, 512) and ours.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)
  # Windows 0 and 1 against the reference on the same window; window 2 against the
  # reference on the short clip itself (the extractor repeat-pads it as we did).
  for i, reference_input in enumerate([windows[0], windows[1], SHORT_CLIP]):
    want = reference_embedding(path, reference_input)
    assert np.abs(ours[i] - want).max() <= TOLERANCE, i
  # The windows differ by far more than the tolerance: the comparison can fail.
  assert np.abs(ours[0] - ours[1]).max() > 100 * TOLERANCE
  assert np.abs(ours[1] - ours[2]).max() > 100 * TOLERANCE


@pytest.mark.parametrize("fused", CHECKPOINTS)
def test_a_window_alone_equals_it_inside_any_batch(fused, windows, batch_embeddings):
  runner = runner_for(checkpoint_dir(fused))
  batch = batch_embeddings[fused]
  for i in (0, 2):
    np.testing.assert_allclose(runner(windows[i:i + 1])["embedding"][0], batch[i], rtol=0,
                               atol=TOLERANCE)
  reordered = runner(windows[[2, 0]])["embedding"]
  np.testing.assert_allclose(reordered, batch[[2, 0]], rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("fused", CHECKPOINTS)
def test_labels_match_the_zero_shot_pipeline(fused):
  from transformers import pipeline

  from audiobeam.bundle import Common
  from models.clap.bundle import ClapBundle

  path = checkpoint_dir(fused)
  model, extractor, tokenizer = reference_for(path)
  classify = pipeline("zero-shot-audio-classification", model=model,
                      feature_extractor=extractor, tokenizer=tokenizer, device="cpu")
  labels = ["dog barking", "rain", "a train passing", "birds singing", "speech"]
  bundle = ClapBundle({"clap_checkpoint": path, "clap_labels": ",".join(labels)}, Common())
  post = bundle.load_postprocessor({"checkpoint": path})
  runner = runner_for(path)
  for seconds, seed in ([(2.0, 1), (10.0, 2)] if not fused else [(3.0, 4)]):
    clip = clap_signal(int(seconds * 48000), seed=seed).astype(np.float32)
    np.random.seed(0)
    want = classify(clip, candidate_labels=labels)  # sorted by score
    frames = post.frame_columns(runner(cut_windows(clip, W)))
    got = post.clip_columns(frames, Common())
    order = np.argsort(got["label_ranks"])
    assert [labels[i] for i in order] == [w["label"] for w in want]
    np.testing.assert_allclose(got["label_scores"][order], [w["score"] for w in want],
                               rtol=0, atol=TOLERANCE)
    assert got["top_label"] == want[0]["label"]
    assert abs(float(got["top_label_score"]) - want[0]["score"]) <= TOLERANCE
    # Scores are not uniform: the ranking is meaningful for this test.
    assert want[0]["score"] - want[-1]["score"] > 100 * TOLERANCE


def test_logit_scale_is_the_models_audio_scale():
  path = checkpoint_dir(False)
  model, _, _ = reference_for(path)
  assert runner_for(path).logit_scale_audio == pytest.approx(
      float(model.logit_scale_a.detach().exp()), rel=1e-7)


def test_embed_text_equals_get_text_features_on_each_text_alone():
  path = checkpoint_dir(False)
  model, _, tokenizer = reference_for(path)
  texts = ["a dog barking", "rain on a tin roof at night", "x"]
  ours = runner_for(path).embed_text(texts)
  assert ours.shape == (3, 512) and ours.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)
  for i, text in enumerate(texts):
    tokens = tokenizer([text], return_tensors="pt")
    with torch.inference_mode():
      want = model.get_text_features(**tokens).pooler_output[0].numpy()
    assert np.abs(ours[i] - want).max() <= TOLERANCE
  assert runner_for(path).embed_text([]).shape == (0, 512)


def test_two_loads_give_identical_numbers(windows):
  from models.clap.loading import load_clap

  path = checkpoint_dir(False)
  first = load_clap(path, "cpu")
  second = load_clap(path, "cpu")
  np.testing.assert_array_equal(first(windows[:1])["embedding"], second(windows[:1])["embedding"])
  np.testing.assert_array_equal(first.embed_text(["rain"]), second.embed_text(["rain"]))


def test_runner_rejects_wrong_window_shapes():
  runner = runner_for(checkpoint_dir(False))
  with pytest.raises(ValueError, match=r"\[N, 480000\]"):
    runner(np.zeros((2, 16000), np.float32))
  assert runner(np.zeros((0, W), np.float32))["embedding"].shape == (0, 512)
