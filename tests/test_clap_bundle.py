"""The CLAP bundle end to end without Beam: a real file written and decoded, resampled
as the bundle says, windowed by its streaming front end, embedded, postprocessed, the
labels extra written to Parquet and read back; checked against an independent
computation (librosa's soxr_hq, ClapFeatureExtractor + ClapModel per window)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from audiobeam.audio import decode_audio, open_audio, to_mono
from audiobeam.bundle import Common
from audiobeam.resample import StreamingResampler
from clap_fixtures import clap_signal, checkpoint_dir, reference_embedding, reference_for
from models.clap.bundle import ClapBundle
from models.clap.frontend import cut_windows

torch = pytest.importorskip("torch")
librosa = pytest.importorskip("librosa")

LABELS = ["dog barking", "rain", "a train passing", "birds singing"]
TOLERANCE = 1e-5


@dataclasses.dataclass
class _Clip:
  """The clip object the generic pipeline hands to ``Extra.to_table``."""

  uri: str
  clip_columns: dict[str, Any]


def _embed_file(bundle: ClapBundle, path: str, local_assets):
  """Decode -> mono -> resample (bundle's resampler and length rule) -> front end ->
  model -> postprocessor, in 0.5 s blocks. Returns (frames, clip, front end, duration)."""
  model = bundle.load_model(local_assets, "cpu")
  post = bundle.load_postprocessor(local_assets)
  with open_audio(path) as stream:
    rate = stream.info.sample_rate_hz
    resampler = StreamingResampler(rate, bundle.sample_rate_hz, bundle.resampler,
                                   length_rule=bundle.resample_length_rule)
    front = bundle.frontend()
    blocks = []
    for block in stream.blocks(rate // 2):
      blocks.extend(front.push(resampler.process(to_mono(block))))
    blocks.extend(front.push(resampler.flush()))
    duration = stream.frames_decoded / rate
    blocks.extend(front.finish(duration))
  inputs = np.concatenate([b.inputs for b in blocks])
  outputs = {"embedding": np.concatenate([model(inputs[i:i + 2])["embedding"]
                                          for i in range(0, inputs.shape[0], 2)])}
  frames = post.frame_columns(outputs)
  return frames, post.clip_columns(frames, bundle.common), front, duration


def test_bundle_end_to_end_on_a_real_file(tmp_path):
  import pyarrow as pa
  import pyarrow.parquet as pq

  checkpoint = checkpoint_dir(False)
  path = str(tmp_path / "clip.flac")
  left = clap_signal(int(23.3 * 44100), 44100, seed=2)
  sf.write(path, np.stack([left, 0.5 * left[::-1]], axis=1), 44100, subtype="PCM_16")

  bundle = ClapBundle({"clap_checkpoint": checkpoint, "clap_hop_seconds": 7.5,
                       "clap_labels": ",".join(LABELS)}, Common(device="cpu"))
  assets = bundle.resolve_assets(local_runner=True)
  local = {name: asset.local_path for name, asset in assets.items()}
  frames, clip, front, duration = _embed_file(bundle, path, local)

  # Independent chain: whole decode, librosa's soxr_hq, whole-signal windows, and the
  # reference extractor + model on each window alone.
  samples, rate = decode_audio(path)
  signal = librosa.resample(to_mono(samples), orig_sr=rate, target_sr=48000, res_type="soxr_hq")
  windows = cut_windows(signal, 360000)
  assert windows.shape[0] == 3 and front.num_frames == 3 and front.padded
  want = np.stack([reference_embedding(checkpoint, w) for w in windows])
  assert frames["embedding"].shape == (3, 512) and frames["embedding"].dtype == np.float32
  assert np.abs(frames["embedding"] - want).max() <= TOLERANCE

  pooled = want.astype(np.float64).mean(axis=0)
  pooled /= np.linalg.norm(pooled)
  assert clip["embedding"].dtype == np.float32
  assert np.abs(clip["embedding"] - pooled).max() <= TOLERANCE

  model, _, tokenizer = reference_for(checkpoint)
  with torch.inference_mode():
    texts = [bundle.label_template.format(label) for label in LABELS]
    text = model.get_text_features(**tokenizer(texts, padding=True, return_tensors="pt"))
    logits = float(model.logit_scale_a.exp()) * (text.pooler_output.numpy() @ pooled)
  scores = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
  np.testing.assert_allclose(clip["label_scores"], scores, rtol=0, atol=TOLERANCE)
  assert clip["top_label"] == LABELS[int(np.argmax(scores))]

  start, end = bundle.frame_times(np.arange(3), duration)
  np.testing.assert_allclose(start, [0.0, 7.5, 15.0])
  np.testing.assert_allclose(end, [10.0, 17.5, duration])

  # Arrow columns as the generic writer builds them.
  frame_type = bundle.frame_fields()[0].type
  pa.array(list(frames["embedding"]), type=frame_type)
  clip_types = {f.name: f.type for f in bundle.clip_fields()}
  pa.array([clip["embedding"]], type=clip_types["embedding"])
  pa.array([clip["top_label"]], type=clip_types["top_label"])
  pa.array([clip["top_label_score"]], type=clip_types["top_label_score"])

  # The labels extra, written and read back.
  (extra,) = bundle.extras(["parquet"])
  schema = pa.schema(extra.fields(), metadata={"audiobeam.provenance": "{}"})
  other = dict(clip, label_scores=clip["label_scores"][::-1].copy(),
               label_cosine_similarities=clip["label_cosine_similarities"][::-1].copy(),
               label_ranks=clip["label_ranks"][::-1].copy())
  table = extra.to_table([_Clip("file:///a.flac", clip), {"uri": "b.wav", **other}], schema)
  pq.write_table(table, str(tmp_path / "labels.parquet"))
  back = pq.read_table(str(tmp_path / "labels.parquet"))
  assert back.schema.field("rank").type == pa.int32()
  assert back.schema.field("score").type == pa.float32()
  assert back.num_rows == 2 * len(LABELS)
  rows = back.to_pylist()
  assert [r["uri"] for r in rows] == ["file:///a.flac"] * 4 + ["b.wav"] * 4
  assert [r["label"] for r in rows[:4]] == LABELS
  assert sorted(r["rank"] for r in rows[:4]) == [1, 2, 3, 4]
  best = min(rows[:4], key=lambda r: r["rank"])
  assert best["label"] == clip["top_label"]
  assert best["score"] == pytest.approx(float(clip["top_label_score"]))
  assert sum(r["score"] for r in rows[:4]) == pytest.approx(1.0, abs=1e-5)
  np.testing.assert_allclose([r["cosine_similarity"] for r in rows[:4]],
                             clip["label_cosine_similarities"], rtol=1e-6)


def test_settings_record_what_determines_the_numbers(tmp_path):
  checkpoint = checkpoint_dir(False)
  labels = tmp_path / "labels.txt"
  labels.write_text("rain\nwind\n", encoding="utf-8")
  bundle = ClapBundle({"clap_checkpoint": checkpoint, "clap_hop_seconds": 5.0,
                       "clap_labels_file": str(labels), "clap_label_template": "A {} sound."},
                      Common(pooling="max"))
  settings = bundle.settings(bundle.resolve_assets(local_runner=True))
  assert settings == {
      "model": "clap", "checkpoint_sha256": settings["checkpoint_sha256"],
      "sample_rate_hz": 48000, "resampler": "soxr_hq", "resample_length_rule": "librosa",
      "window_seconds": 10.0, "hop_seconds": 5.0, "padding": "repeatpad", "pooling": "max",
      "clip_normalize": "l2", "labels": ["rain", "wind"], "label_template": "A {} sound."}
  assert len(settings["checkpoint_sha256"]) == 64
  import pickle

  restored = pickle.loads(pickle.dumps(bundle))  # workers get the labels, not the file
  labels.unlink()
  assert restored.labels == ("rain", "wind")
