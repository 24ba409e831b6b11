"""TEST WEIGHTS ONLY: deterministic random AST checkpoints in the published folder layout.

These machines (and CI) cannot reach the Hugging Face hub, so tests cannot use MIT's
``MIT/ast-finetuned-audioset-10-10-0.4593``. ``write_test_checkpoint`` writes a stand-in
folder in *exactly* the published layout: ``config.json`` (``model_type``
``"audio-spectrogram-transformer"``, the published architecture values -- 16x16 patches,
strides 10/10, 128 mel bins, 1024 frames, GELU, layer-norm eps 1e-12, qkv biases -- with
a small width and depth so that tests run in seconds), ``preprocessor_config.json`` with
the published values of MIT/ast-finetuned-audioset-10-10-0.4593 (ASTFeatureExtractor,
16000 Hz, 128 bins, max_length 1024, mean -4.2677393, std 4.5689974, do_normalize), and
``model.safetensors`` with the published tensor names (``models.ast.checkpoint
.expected_tensors``). Two variants: ``ASTForAudioClassification`` with a small
``id2label`` of AudioSet class names, and a bare ``ASTModel``.

The outputs of these models are NOT embeddings: they mean nothing. Nothing in the
product calls this module implicitly; a user has to point ``--ast_checkpoint`` at its
output on purpose.

Weights come from a seeded numpy Generator (same seed, same bytes): normal(0, 0.02) like
transformers' initialiser for matrices and embeddings, layer norms 1 + normal(0, 0.1)
and biases normal(0, 0.02), so that every tensor matters; the classifier is scaled up
(std 0.5) so that scores spread over (0, 1) instead of sitting at 0.5.

CLI: ``python -m models.ast.testing DIR [--seed N] [--hidden_size H] [--num_hidden_layers L]``
writes ``DIR/ast-classification-test`` and ``DIR/ast-base-test``. No torch needed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from models.ast.checkpoint import (CONFIG_FILENAME, MODEL_TYPE, PREPROCESSOR_FILENAME,
                                   WEIGHTS_FILENAME, expected_tensors, layout_from_config)

__all__ = [
    "PUBLISHED_PREPROCESSOR_CONFIG",
    "TEST_LABELS",
    "test_config",
    "make_test_tensors",
    "write_test_checkpoint",
    "write_test_checkpoints",
    "main",
]

PUBLISHED_PREPROCESSOR_CONFIG = {
    "do_normalize": True,
    "feature_extractor_type": "ASTFeatureExtractor",
    "feature_size": 1,
    "max_length": 1024,
    "mean": -4.2677393,
    "num_mel_bins": 128,
    "padding_side": "right",
    "padding_value": 0.0,
    "return_attention_mask": False,
    "sampling_rate": 16000,
    "std": 4.5689974,
}
"""preprocessor_config.json of MIT/ast-finetuned-audioset-10-10-0.4593, as published."""

TEST_LABELS = ("Speech", "Male speech, man speaking", "Music", "Musical instrument", "Dog",
               "Silence", "White noise", "Sine wave")
"""id2label of the classification test checkpoint (AudioSet display names; 8, so top-5 ranks)."""

_CLASSIFIER_STD = 0.5


def test_config(classification: bool = True, hidden_size: int = 64, num_hidden_layers: int = 2,
                num_attention_heads: int = 4, intermediate_size: int = 128,
                labels=TEST_LABELS) -> dict:
  """config.json contents: the published AST architecture at a small width and depth."""
  config = {
      "architectures": ["ASTForAudioClassification" if classification else "ASTModel"],
      "attention_probs_dropout_prob": 0.0,
      "frequency_stride": 10,
      "hidden_act": "gelu",
      "hidden_dropout_prob": 0.0,
      "hidden_size": hidden_size,
      "initializer_range": 0.02,
      "intermediate_size": intermediate_size,
      "layer_norm_eps": 1e-12,
      "max_length": 1024,
      "model_type": MODEL_TYPE,
      "num_attention_heads": num_attention_heads,
      "num_hidden_layers": num_hidden_layers,
      "num_mel_bins": 128,
      "patch_size": 16,
      "qkv_bias": True,
      "time_stride": 10,
      "torch_dtype": "float32",
  }
  if classification:
    config["id2label"] = {str(i): name for i, name in enumerate(labels)}
    config["label2id"] = {name: i for i, name in enumerate(labels)}
  return config


def make_test_tensors(config: dict, seed: int = 0) -> dict[str, np.ndarray]:
  """float32 tensors for every name of ``expected_tensors`` of ``config`` (sorted by name)."""
  layout = layout_from_config(config)
  rng = np.random.default_rng(seed)
  out = {}
  for name, shape in sorted(expected_tensors(layout).items()):
    noise = rng.standard_normal(shape)
    if "layernorm" in name and name.endswith(".weight"):
      value = 1.0 + 0.1 * noise
    elif name.startswith("classifier.dense"):
      value = _CLASSIFIER_STD * noise
    else:
      value = 0.02 * noise
    out[name] = np.ascontiguousarray(value, dtype=np.float32)
  return out


def write_test_checkpoint(directory: str, classification: bool = True, seed: int = 0,
                          **config_overrides) -> str:
  """Writes one TEST checkpoint folder (config, preprocessor config, safetensors) -> its path."""
  from safetensors.numpy import save_file

  os.makedirs(directory, exist_ok=True)
  config = test_config(classification, **config_overrides)
  with open(os.path.join(directory, CONFIG_FILENAME), "w", encoding="utf-8") as f:
    json.dump(config, f, indent=2, sort_keys=True)
    f.write("\n")
  with open(os.path.join(directory, PREPROCESSOR_FILENAME), "w", encoding="utf-8") as f:
    json.dump(PUBLISHED_PREPROCESSOR_CONFIG, f, indent=2, sort_keys=True)
    f.write("\n")
  save_file(make_test_tensors(config, seed), os.path.join(directory, WEIGHTS_FILENAME),
            metadata={"format": "pt"})
  return directory


def write_test_checkpoints(directory: str, seed: int = 0, **config_overrides) -> tuple[str, str]:
  """Both variants under ``directory`` -> (classification folder, base folder)."""
  classification = write_test_checkpoint(os.path.join(directory, "ast-classification-test"),
                                         True, seed, **config_overrides)
  base = write_test_checkpoint(os.path.join(directory, "ast-base-test"), False, seed + 1,
                               **config_overrides)
  return classification, base


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m models.ast.testing",
      description="Write deterministic RANDOM-weight AST checkpoint folders for tests (not "
                  "real embeddings).")
  parser.add_argument("directory", help="output directory (created if missing)")
  parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
  parser.add_argument("--hidden_size", type=int, default=64)
  parser.add_argument("--num_hidden_layers", type=int, default=2)
  parser.add_argument("--num_attention_heads", type=int, default=4)
  parser.add_argument("--intermediate_size", type=int, default=128)
  args = parser.parse_args(argv)
  classification, base = write_test_checkpoints(
      args.directory, args.seed, hidden_size=args.hidden_size,
      num_hidden_layers=args.num_hidden_layers, num_attention_heads=args.num_attention_heads,
      intermediate_size=args.intermediate_size)
  print(f"TEST AST checkpoints (random, seed {args.seed}) written:\n"
        f"  --ast_checkpoint {classification}   (ASTForAudioClassification, "
        f"{len(TEST_LABELS)} labels)\n  --ast_checkpoint {base}   (ASTModel)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
