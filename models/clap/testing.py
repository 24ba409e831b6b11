"""TEST WEIGHTS ONLY: a deterministic random-weight CLAP checkpoint folder.

These machines (and CI) have no internet, so tests cannot use LAION's real checkpoints.
``write_test_checkpoint`` writes a stand-in in the folder layout Hugging Face publishes
for ``laion/clap-htsat-unfused`` (or ``laion/clap-htsat-fused`` with ``fused=True``):

- ``config.json``: a ``ClapConfig`` (``model_type`` "clap") with the real architecture
  (HTSAT Swin audio encoder with windowed + shifted-window attention, patch merging, the
  fusion block when fused; RoBERTa text encoder; two 512-d projections) but few and
  narrow layers (``TEST_AUDIO_CONFIG``, ``TEST_TEXT_CONFIG``);
- ``model.safetensors``: its weights (transformers' own initialisation under a fixed
  torch seed, then the mel BatchNorm's running statistics set to a typical log-mel
  level so the random network sees normalised inputs, as the trained one does);
- ``preprocessor_config.json``: the published feature-extractor values
  (``PUBLISHED_PREPROCESSOR``; ``truncation`` "fusion" for the fused layout);
- a byte-level BPE tokenizer (``vocab.json``, ``merges.txt``, ``tokenizer_config.json``,
  ``special_tokens_map.json``) trained on a fixed in-code corpus, whose size equals
  ``config.text_config.vocab_size``.

The outputs of this model are NOT embeddings: they mean nothing. Nothing in the product
calls this module implicitly; a user has to point ``--clap_checkpoint`` at its output on
purpose. Same seed, same bytes (checked by a test).

CLI: ``python -m models.clap.testing DIR [--seed N] [--fused]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from models.clap.params import (CONFIG_FILENAME, PREPROCESSOR_FILENAME, WEIGHTS_FILENAME,
                                DEFAULT_PARAMS)

__all__ = [
    "PUBLISHED_PREPROCESSOR",
    "TEST_AUDIO_CONFIG",
    "TEST_TEXT_CONFIG",
    "TOKENIZER_CORPUS",
    "write_tokenizer",
    "write_test_checkpoint",
    "main",
]

PUBLISHED_PREPROCESSOR = {
    "chunk_length_s": 10,
    "feature_extractor_type": "ClapFeatureExtractor",
    "feature_size": 64,
    "fft_window_size": 1024,
    "frequency_max": 14000,
    "frequency_min": 50,
    "hop_length": 480,
    "max_length_s": 10,
    "n_fft": 1024,
    "nb_frequency_bins": 513,
    "nb_max_frames": 1000,
    "nb_max_samples": 480000,
    "padding": "repeatpad",
    "padding_side": "right",
    "padding_value": 0.0,
    "processor_class": "ClapProcessor",
    "return_attention_mask": False,
    "sampling_rate": 48000,
    "top_db": None,
    "truncation": "rand_trunc",
}
"""``preprocessor_config.json`` of ``laion/clap-htsat-unfused`` (the fused checkpoint
differs only in ``truncation``: "fusion")."""

# HTSAT needs spec_size 256 for 64 mel bins (1001 frames fold into a 256 x 256 image),
# so the image stays full size; the network is made small by width and depth. Two
# blocks per stage keep Swin's shifted-window blocks; hidden_size must equal
# patch_embeds_hidden_size * 2 ** (stages - 1).
TEST_AUDIO_CONFIG = {
    "spec_size": 256,
    "num_mel_bins": 64,
    "window_size": 8,
    "patch_size": 4,
    "patch_stride": [4, 4],
    "patch_embeds_hidden_size": 8,
    "depths": [2, 2, 2, 2],
    "num_attention_heads": [1, 1, 2, 2],
    "num_hidden_layers": 4,
    "hidden_size": 64,
    "mlp_ratio": 2.0,
    "aff_block_r": 4,
}
TEST_TEXT_CONFIG = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}
_SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")  # RoBERTa's ids 0, 1, 2, 3.
_TOKENIZER_TARGET_SIZE = 400
TOKENIZER_CORPUS = (
    "This is a sound of dog barking.", "This is a sound of rain.", "This is a sound of a train.",
    "This is a sound of birds singing in the morning.", "A man is speaking loudly.",
    "A woman sings a song with a guitar.", "Music with drums, bass and piano.",
    "Cars pass by on a busy street.", "Water is running from a tap.", "Wind blows through trees.",
    "An engine starts and idles.", "Silence, then a door slams.", "Footsteps on a wooden floor.",
    "Thunder rumbles in the distance.", "A baby cries while people talk.", "Applause and cheering.",
    "A phone is ringing.", "Glass breaks on the ground.", "A siren passes by.", "White noise.",
)
# Log-mel level (dB) of typical audio, for the mel BatchNorm's running statistics.
_MEL_MEAN_DB = -45.0
_MEL_STD_DB = 20.0


def write_tokenizer(directory: str) -> int:
  """Writes a byte-level BPE tokenizer in RoBERTa's file layout; returns its size.

  Trained with the ``tokenizers`` library on ``TOKENIZER_CORPUS`` (deterministic):
  256 byte symbols, RoBERTa's special tokens at ids 0..4, merges up to ~400 entries.
  """
  from tokenizers import Tokenizer, models, pre_tokenizers, trainers

  tokenizer = Tokenizer(models.BPE())
  tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  trainer = trainers.BpeTrainer(vocab_size=_TOKENIZER_TARGET_SIZE, min_frequency=1,
                                special_tokens=list(_SPECIAL_TOKENS), show_progress=False,
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
  tokenizer.train_from_iterator(TOKENIZER_CORPUS, trainer)
  os.makedirs(directory, exist_ok=True)
  tokenizer.model.save(directory)  # vocab.json, merges.txt
  config = {
      "add_prefix_space": False, "bos_token": "<s>", "clean_up_tokenization_spaces": True,
      "cls_token": "<s>", "eos_token": "</s>", "errors": "replace", "mask_token": "<mask>",
      "model_max_length": 512, "pad_token": "<pad>", "processor_class": "ClapProcessor",
      "sep_token": "</s>", "tokenizer_class": "RobertaTokenizer", "trim_offsets": True,
      "unk_token": "<unk>",
  }
  special = {
      "bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>",
      "mask_token": {"content": "<mask>", "lstrip": True, "normalized": False,
                     "rstrip": False, "single_word": False},
      "pad_token": "<pad>", "sep_token": "</s>", "unk_token": "<unk>",
  }
  _write_json(os.path.join(directory, "tokenizer_config.json"), config)
  _write_json(os.path.join(directory, "special_tokens_map.json"), special)
  return tokenizer.get_vocab_size()


def _write_json(path: str, value) -> None:
  with open(path, "w", encoding="utf-8") as f:
    json.dump(value, f, indent=2, sort_keys=True)
    f.write("\n")


def write_test_checkpoint(directory: str, seed: int = 0, fused: bool = False) -> str:
  """Writes a TEST CLAP checkpoint folder into ``directory`` (created); returns it.

  Imports torch and transformers. Same ``seed`` and ``fused``, same bytes.
  """
  import torch
  from transformers import ClapConfig, ClapModel

  os.makedirs(directory, exist_ok=True)
  vocab_size = write_tokenizer(directory)
  audio = dict(TEST_AUDIO_CONFIG, enable_fusion=bool(fused))
  config = ClapConfig(text_config=dict(TEST_TEXT_CONFIG, vocab_size=vocab_size),
                      audio_config=audio, projection_dim=DEFAULT_PARAMS.embedding_size)
  torch.manual_seed(seed)
  with torch.no_grad():
    model = ClapModel(config).eval()
    norm = model.audio_model.audio_encoder.batch_norm
    norm.running_mean.fill_(_MEL_MEAN_DB)
    norm.running_var.fill_(_MEL_STD_DB ** 2)
  model.save_pretrained(directory, safe_serialization=True)
  for stray in ("generation_config.json",):
    if os.path.exists(os.path.join(directory, stray)):
      os.unlink(os.path.join(directory, stray))
  # save_pretrained records the transformers version; drop it so the bytes depend only
  # on the seed and the architecture.
  config_path = os.path.join(directory, CONFIG_FILENAME)
  with open(config_path, encoding="utf-8") as f:
    saved = json.load(f)
  saved.pop("transformers_version", None)
  _write_json(config_path, saved)
  preprocessor = dict(PUBLISHED_PREPROCESSOR, truncation="fusion" if fused else "rand_trunc")
  _write_json(os.path.join(directory, PREPROCESSOR_FILENAME), preprocessor)
  if not os.path.isfile(os.path.join(directory, WEIGHTS_FILENAME)):
    raise RuntimeError(f"save_pretrained did not write {WEIGHTS_FILENAME} in {directory}")
  return directory


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m models.clap.testing",
      description="Write a deterministic RANDOM-weight CLAP checkpoint folder for tests "
                  "(not real embeddings).")
  parser.add_argument("directory", help="output folder (created if missing)")
  parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
  parser.add_argument("--fused", action="store_true",
                      help="enable_fusion=True and truncation 'fusion' (laion/clap-htsat-fused layout)")
  args = parser.parse_args(argv)
  path = write_test_checkpoint(args.directory, args.seed, args.fused)
  print(f"TEST CLAP checkpoint (random weights, seed {args.seed}"
        f"{', fused' if args.fused else ''}) written:\n  --clap_checkpoint {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
