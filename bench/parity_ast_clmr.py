"""Measures the numerical contracts of AST and CLMR (the numbers quoted in the README).

Not a test (tests/test_ast.py and tests/test_clmr.py assert the bounds); this prints the
measured distances, on this machine, with TEST weights:

- AST fbank: ours vs torchaudio's ``compliance/kaldi.py`` (the oracle of
  ``tests/kaldi_oracle.py``) on the same float64 samples; vs the extractor's own path
  (float32 samples, torchaudio in float32); transformers' numpy fallback vs the oracle.
- AST model outputs per window: our bundle vs ``ASTFeatureExtractor`` (with the oracle)
  + the HF model called directly, on every window of a 23 s file; with the small test
  checkpoint and, with ``--published_size``, a random checkpoint of the published size
  (768 wide, 12 layers, 527 labels; ~350 MB written to a temp folder, slow on CPU).
- CLMR: our encoder vs an independent float64 numpy SampleCNN on the same windows
  (the one in tests/test_clmr.py), and the batch-size dependence of CPU convolutions.

  python -m bench.parity_ast_clmr [--published_size] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np

__all__ = ["main"]

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_RATE = 16000


def _test_helpers():
  sys.path.insert(0, os.path.join(_REPO, "tests"))
  import audio_fixtures  # noqa: E402  (test helpers: analytic signals, the oracle loader)
  import kaldi_oracle

  return audio_fixtures, kaldi_oracle


def _long_signal(fx) -> np.ndarray:
  from audiobeam.resample import resample

  rate, n = 44100, 23 * 44100
  mono = 0.7 * (fx.music_like(n, rate) + 0.3 * fx.speech_like(n, rate)
                + 0.5 * fx.chirp(n, rate, 200.0, 9000.0) + fx.noise(n, seed=3, amplitude=0.02)) / 2
  return resample(mono, rate, _RATE)


def _fbank_report(fx, kaldi) -> dict:
  import soundfile as sf
  import torch
  import transformers

  from models.ast import fbank as fbank_lib
  from models.ast.params import DEFAULT_PARAMS as P

  n = 3 * _RATE + 123
  speech, _ = sf.read(os.path.join(_REPO, "examples", "audio", "speech_16k_mono.wav"))
  signals = {"noise": fx.noise(n, seed=5), "tone_440": fx.sine(n, _RATE, 440.0),
             "chirp": fx.chirp(n, _RATE, 50.0, 7900.0), "music": fx.music_like(n, _RATE),
             "speech_example": speech, "quiet_noise": fx.noise(n, seed=6, amplitude=1e-4)}
  numpy_path = transformers.ASTFeatureExtractor()
  report = {}
  for name, x in signals.items():
    ours = fbank_lib.fbank(x, P)
    oracle64 = kaldi.fbank(torch.from_numpy(x)[None], sample_frequency=_RATE,
                           window_type="hanning", num_mel_bins=128).numpy()
    oracle32 = kaldi.fbank(torch.from_numpy(x.astype(np.float32))[None], sample_frequency=_RATE,
                           window_type="hanning", num_mel_bins=128).numpy()
    fallback = numpy_path._extract_fbank_features(x.astype(np.float32), 1024)[:ours.shape[0]]
    report[name] = {"ours_vs_oracle_float64": float(np.abs(ours - oracle64).max()),
                    "ours_vs_oracle_float32_samples": float(np.abs(ours - oracle32).max()),
                    "numpy_fallback_vs_oracle_float32_samples":
                        float(np.abs(fallback - oracle32).max()),
                    "numpy_fallback_vs_oracle_float64": float(np.abs(fallback - oracle64).max())}
  return report


def _ast_contract(folder: str, samples: np.ndarray, kaldi, device: str) -> dict:
  import torch
  import transformers
  from transformers.models.audio_spectrogram_transformer import (
      feature_extraction_audio_spectrogram_transformer as fe_module)

  from audiobeam.bundle import Common
  from models.ast.bundle import ASTBundle

  fe_module.is_speech_available = lambda: True
  fe_module.ta_kaldi = kaldi
  extractor = transformers.ASTFeatureExtractor.from_pretrained(folder)
  config = transformers.AutoConfig.from_pretrained(folder)
  classification = "ASTForAudioClassification" in (config.architectures or [])
  cls = transformers.ASTForAudioClassification if classification else transformers.ASTModel
  reference = cls.from_pretrained(folder).eval().to(device)
  out = {}
  for embedding in ("pooler", "mean_tokens"):
    bundle = ASTBundle({"ast_checkpoint": folder, "ast_embedding": embedding},
                       Common(device="gpu" if device == "cuda" else "cpu"))
    assets = bundle.resolve_assets(local_runner=True)
    model = bundle.load_model({k: a.local_path for k, a in assets.items()}, bundle.common.device)
    front = bundle.frontend()
    inputs = np.concatenate([b.inputs for b in [*front.push(samples), *front.finish(23.0)]])
    ours = model(inputs)
    params = front.params
    emb_diff, score_diff = 0.0, 0.0
    with torch.inference_mode():
      for w in range(inputs.shape[0]):
        start = w * params.hop_samples
        x = extractor(samples[start:start + params.window_span_samples], sampling_rate=_RATE,
                      return_tensors="pt")["input_values"].to(device)
        base = reference.audio_spectrogram_transformer if classification else reference
        hidden = base(x)
        want = hidden.pooler_output if embedding == "pooler" else hidden.last_hidden_state.mean(1)
        emb_diff = max(emb_diff, float(np.abs(ours["embedding"][w] - want.cpu().numpy()[0]).max()))
        if classification:
          scores = torch.sigmoid(reference(x).logits).cpu().numpy()[0]
          score_diff = max(score_diff, float(np.abs(ours["scores"][w] - scores).max()))
    out[embedding] = {"windows": int(inputs.shape[0]), "embedding_max_abs_diff": emb_diff,
                      "embedding_max_abs": float(np.abs(ours["embedding"]).max())}
    if classification:
      out[embedding]["scores_max_abs_diff"] = score_diff
  return out


def _clmr_report(fx, device: str) -> dict:
  import torch

  sys.path.insert(0, os.path.join(_REPO, "tests"))
  from test_clmr import numpy_samplecnn  # the independent oracle

  from audiobeam.bundle import Common
  from models.clmr import testing
  from models.clmr.bundle import CLMRBundle
  from models.clmr.frontend import whole_file_windows
  from models.clmr.params import DEFAULT_PARAMS

  with tempfile.TemporaryDirectory() as tmp:
    pt_path, _ = testing.write_test_checkpoints(tmp)
    bundle = CLMRBundle({"clmr_checkpoint": pt_path},
                        Common(device="gpu" if device == "cuda" else "cpu"))
    assets = bundle.resolve_assets(local_runner=True)
    model = bundle.load_model({k: a.local_path for k, a in assets.items()}, bundle.common.device)
    raw = torch.load(pt_path, map_location="cpu", weights_only=True)
  n = 8 * 22050
  signal = 0.5 * (fx.music_like(n, 22050) + fx.speech_like(n, 22050)) + fx.noise(n, seed=9,
                                                                                 amplitude=0.01)
  windows, _ = whole_file_windows(signal, DEFAULT_PARAMS)
  ours = model(windows)["embedding"]
  oracle = numpy_samplecnn(raw, "encoder.", windows)
  alone = np.concatenate([model(windows[i:i + 1])["embedding"] for i in range(len(windows))])
  return {"windows": int(windows.shape[0]),
          "ours_vs_numpy_float64_max_abs_diff": float(np.abs(ours - oracle).max()),
          "embedding_max_abs": float(np.abs(oracle).max()),
          "batch_vs_alone_max_abs_diff": float(np.abs(alone - ours).max())}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m bench.parity_ast_clmr", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--published_size", action="store_true",
                      help="also measure a random AST checkpoint of the published size")
  parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
  args = parser.parse_args(argv)
  fx, oracle = _test_helpers()
  kaldi = oracle.load_kaldi(oracle.fetch())
  from models.ast import testing as ast_testing

  report = {"fbank": _fbank_report(fx, kaldi)}
  samples = _long_signal(fx)
  with tempfile.TemporaryDirectory() as tmp:
    cls_dir, base_dir = ast_testing.write_test_checkpoints(tmp)
    report["ast_test_size_classification"] = _ast_contract(cls_dir, samples, kaldi, args.device)
    report["ast_test_size_base"] = _ast_contract(base_dir, samples, kaldi, args.device)
    if args.published_size:
      labels = tuple(f"class {i}" for i in range(527))
      folder = ast_testing.write_test_checkpoint(
          os.path.join(tmp, "published"), True, seed=5, hidden_size=768, num_hidden_layers=12,
          num_attention_heads=12, intermediate_size=3072, labels=labels)
      report["ast_published_size_classification"] = _ast_contract(folder, samples, kaldi,
                                                                  args.device)
  report["clmr"] = _clmr_report(fx, args.device)
  print(json.dumps(report, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
