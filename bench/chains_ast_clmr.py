"""Baselines for AST and CLMR: the one-file-at-a-time chains people use today.

Written here from the tools' published descriptions so the benchmark has no dependency on
our own front ends (the network math is the same, loaded from the same checkpoint):

``auditus_ast_chain`` -- auditus (CarloLepelaars/auditus ``AudioPipeline``):
  per file: ``soundfile`` read -> mean to mono (auditus itself interpolates the raw
  [n, channels] array; mono keeps it runnable on stereo files) -> ``np.interp`` onto
  ``int(n * 16000 / sr)`` evenly spaced positions (linear interpolation, no low-pass) ->
  ``ASTFeatureExtractor`` (its numpy fbank, as without torchaudio) which keeps the first
  1024 frames (10.24 s) -> the AST model once -> mean (or max) over the output tokens.
  (auditus' own ``AudioEmbedding`` step returns the extractor's ``input_values``; the
  model step and token pooling here are what the task's "token embeddings" name.)

``towhee_clmr_chain`` -- Towhee's ``audio_embedding.clmr`` operator:
  per file: ``soundfile`` read -> mean to mono -> ``resampy.resample`` to 22050 Hz
  (kaiser_best) -> split into 59049-sample windows, trailing partial window dropped ->
  the SampleCNN encoder on that file's windows as one batch -> [num_windows, 512].
  The encoder is a torch ``Sequential`` built here from CLMR's layer description and
  loaded from the checkpoint's ``encoder.sequential.*`` / ``model.encoder.sequential.*``
  tensors (``torch.load(weights_only=True)``), as CLMR's ``load_encoder_checkpoint`` does.

``ours_chain`` runs our bundle the way the generic pipeline does (streamed decode,
``StreamingResampler``, the bundle's front end, windows of all files packed into full
batches, postprocessing) without Beam, for a side-by-side in one process.

Nothing here asserts a speed. Each stage is timed with ``time.perf_counter``.

  python -m bench.chains_ast_clmr --model ast --checkpoint DIR FILE...
  python -m bench.chains_ast_clmr --model clmr --checkpoint PATH FILE...
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import sys
import time

import numpy as np

__all__ = ["ChainResult", "auditus_ast_chain", "towhee_clmr_chain", "ours_chain", "main"]

_AST_RATE_HZ = 16000
_CLMR_RATE_HZ = 22050
_CLMR_WINDOW = 59049


@dataclasses.dataclass
class ChainResult:
  """Per-file outputs and per-stage seconds of one chain over a list of files."""

  name: str
  embeddings: list = dataclasses.field(default_factory=list)   # per file: np.ndarray
  seconds: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(float))
  audio_seconds: float = 0.0

  @property
  def total_seconds(self) -> float:
    return float(sum(self.seconds.values()))

  def summary(self) -> str:
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in self.seconds.items())
    speed = self.audio_seconds / self.total_seconds if self.total_seconds else float("nan")
    return (f"{self.name}: {len(self.embeddings)} files, {self.audio_seconds:.1f} s audio in "
            f"{self.total_seconds:.2f} s ({speed:.1f} audio-s/s); {stages}")


def _read_mono(path: str) -> tuple[np.ndarray, int]:
  import soundfile as sf

  data, rate = sf.read(path, dtype="float64", always_2d=True)
  return data.mean(axis=1), rate


def auditus_ast_chain(paths, checkpoint_dir: str, pooling: str = "mean") -> ChainResult:
  """auditus-style AST: one file at a time, first 10.24 s, np.interp, numpy fbank."""
  import torch
  import transformers

  result = ChainResult("auditus-style AST")
  clock = time.perf_counter()
  extractor = transformers.ASTFeatureExtractor.from_pretrained(checkpoint_dir)
  config = transformers.AutoConfig.from_pretrained(checkpoint_dir, local_files_only=True)
  if "ASTForAudioClassification" in (config.architectures or []):
    model = transformers.ASTForAudioClassification.from_pretrained(
        checkpoint_dir, use_safetensors=True, local_files_only=True)
    model = model.audio_spectrogram_transformer.eval()
  else:
    model = transformers.ASTModel.from_pretrained(checkpoint_dir, use_safetensors=True,
                                                  local_files_only=True).eval()
  result.seconds["load_model"] += time.perf_counter() - clock
  for path in paths:
    clock = time.perf_counter()
    audio, rate = _read_mono(path)
    result.audio_seconds += audio.shape[0] / rate
    now = time.perf_counter()
    result.seconds["decode"] += now - clock
    clock = now
    if rate != _AST_RATE_HZ:
      positions = np.linspace(0, audio.shape[0] - 1, int(audio.shape[0] * (_AST_RATE_HZ / rate)))
      audio = np.interp(positions, np.arange(audio.shape[0]), audio)
    now = time.perf_counter()
    result.seconds["resample"] += now - clock
    clock = now
    inputs = extractor(audio, sampling_rate=_AST_RATE_HZ, return_tensors="pt")["input_values"]
    now = time.perf_counter()
    result.seconds["features"] += now - clock
    clock = now
    with torch.inference_mode():
      tokens = model(inputs).last_hidden_state                       # [1, 1214, H]
    now = time.perf_counter()
    result.seconds["model"] += now - clock
    clock = now
    pooled = tokens.mean(dim=1) if pooling == "mean" else tokens.max(dim=1).values
    result.embeddings.append(pooled.numpy()[0])
    result.seconds["pool"] += time.perf_counter() - clock
  return result


def _clmr_encoder(checkpoint_path: str):
  """CLMR's SampleCNN encoder (no classifier) from its published layer description."""
  import torch
  from torch import nn

  raw = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
  state = raw["state_dict"] if isinstance(raw.get("state_dict"), dict) else raw
  prefix = next(p for p in ("model.encoder.", "encoder.", "")
                if f"{p}sequential.0.0.weight" in state)
  channels = [1, 128, 128, 128, 256, 256, 256, 256, 256, 256, 512, 512]
  blocks = []
  for i in range(11):
    first, last = i == 0, i == 10
    parts = [nn.Conv1d(channels[i], channels[i + 1], 3, stride=3 if first else 1,
                       padding=0 if first else 1),
             nn.BatchNorm1d(channels[i + 1]), nn.ReLU()]
    if not (first or last):
      parts.append(nn.MaxPool1d(3, stride=3))
    blocks.append(nn.Sequential(*parts))
  encoder = nn.Sequential(*blocks)
  weights = {k[len(prefix) + len("sequential."):]: v for k, v in state.items()
             if k.startswith(prefix + "sequential.")}
  encoder.load_state_dict(weights, strict=True)
  return encoder.eval()


def towhee_clmr_chain(paths, checkpoint_path: str) -> ChainResult:
  """Towhee-style CLMR: one file at a time, resampy to 22.05 kHz, 59049-sample windows."""
  import resampy
  import torch

  result = ChainResult("Towhee-style CLMR")
  clock = time.perf_counter()
  encoder = _clmr_encoder(checkpoint_path)
  result.seconds["load_model"] += time.perf_counter() - clock
  for path in paths:
    clock = time.perf_counter()
    audio, rate = _read_mono(path)
    result.audio_seconds += audio.shape[0] / rate
    now = time.perf_counter()
    result.seconds["decode"] += now - clock
    clock = now
    if rate != _CLMR_RATE_HZ:
      audio = resampy.resample(audio, rate, _CLMR_RATE_HZ)
    now = time.perf_counter()
    result.seconds["resample"] += now - clock
    clock = now
    windows = torch.split(torch.from_numpy(audio.astype(np.float32)), _CLMR_WINDOW)
    windows = [w for w in windows if w.shape[0] == _CLMR_WINDOW]
    now = time.perf_counter()
    result.seconds["features"] += now - clock
    clock = now
    if windows:
      with torch.inference_mode():
        out = encoder(torch.stack(windows).unsqueeze(1)).reshape(len(windows), -1)
      result.embeddings.append(out.numpy())
    else:
      result.embeddings.append(np.zeros((0, 512), np.float32))
    result.seconds["model"] += time.perf_counter() - clock
  return result


def ours_chain(bundle, paths, batch_size: int | None = None) -> ChainResult:
  """Our bundle without Beam: streamed decode and resampling, its front end, windows of
  all files packed into full batches, its postprocessor. Per file: frame embeddings."""
  from audiobeam.audio import open_audio, to_mono
  from audiobeam.resample import StreamingResampler

  result = ChainResult(f"ours ({bundle.name})")
  clock = time.perf_counter()
  assets = bundle.resolve_assets(local_runner=True)
  local = {name: asset.local_path for name, asset in assets.items()}
  model = bundle.load_model(local, bundle.common.device)
  post = bundle.load_postprocessor(local)
  result.seconds["load_model"] += time.perf_counter() - clock
  batch_size = batch_size or bundle.default_batch_size
  rows, owners = [], []                       # queued model inputs, one per window
  outputs = collections.defaultdict(list)     # file index -> model outputs in frame order

  def run(force: bool) -> None:
    while len(rows) >= batch_size or (force and rows):
      count = min(batch_size, len(rows))
      start = time.perf_counter()
      out = model(np.stack(rows[:count]))
      result.seconds["model"] += time.perf_counter() - start
      for j, owner in enumerate(owners[:count]):
        outputs[owner].append({key: value[j] for key, value in out.items()})
      del rows[:count], owners[:count]

  for index, path in enumerate(paths):
    clock = time.perf_counter()
    with open_audio(path) as stream:
      converter = StreamingResampler(stream.info.sample_rate_hz, bundle.sample_rate_hz,
                                     bundle.resampler)
      front = bundle.frontend()
      items = []
      for block in stream.blocks(1 << 18):
        items += front.push(converter.process(to_mono(block)))
      items += front.push(converter.flush())
      duration = stream.frames_decoded / stream.info.sample_rate_hz
      items += front.finish(duration)
    for item in items:
      rows.extend(item.inputs)
      owners.extend([index] * len(item.inputs))
    result.audio_seconds += duration
    result.seconds["decode+front_end"] += time.perf_counter() - clock
    run(force=False)
  run(force=True)
  clock = time.perf_counter()
  for index in range(len(paths)):
    if outputs[index]:
      stacked = {key: np.stack([o[key] for o in outputs[index]]) for key in outputs[index][0]}
      result.embeddings.append(post.frame_columns(stacked)["embedding"])
    else:
      result.embeddings.append(np.zeros((0, 0), np.float32))
  result.seconds["postprocess"] += time.perf_counter() - clock
  return result


def main(argv=None) -> int:
  from audiobeam.bundle import Common

  parser = argparse.ArgumentParser(prog="python -m bench.chains_ast_clmr", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model", choices=("ast", "clmr"), required=True)
  parser.add_argument("--checkpoint", required=True, help="AST folder or CLMR checkpoint file")
  parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "gpu"))
  parser.add_argument("files", nargs="+")
  args = parser.parse_args(argv)
  common = Common(device=args.device, short_clips="pad")
  import torch  # noqa: F401  Imported before any clock starts, for both chains alike.
  if args.model == "ast":
    import transformers  # noqa: F401
  if args.model == "ast":
    from models.ast.bundle import ASTBundle

    baseline = auditus_ast_chain(args.files, args.checkpoint)
    ours = ours_chain(ASTBundle({"ast_checkpoint": args.checkpoint}, common), args.files)
  else:
    from models.clmr.bundle import CLMRBundle

    baseline = towhee_clmr_chain(args.files, args.checkpoint)
    ours = ours_chain(CLMRBundle({"clmr_checkpoint": args.checkpoint}, common), args.files)
  print(baseline.summary())
  print(ours.summary())
  return 0


if __name__ == "__main__":
  sys.exit(main())
