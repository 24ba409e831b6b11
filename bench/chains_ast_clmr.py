"""Baselines for AST and CLMR: the one-file-at-a-time chains people use today.

Written here from the tools' published descriptions so the benchmark has no dependency on
our own front ends (the network math is the same, loaded from the same checkpoint):

``auditus_ast_chain`` -- auditus (CarloLepelaars/auditus ``AudioPipeline``):
  per file: ``soundfile`` read -> mean to mono (auditus itself interpolates the raw
  [n, channels] array; mono keeps it runnable on stereo files) -> ``np.interp`` onto
  ``int(n * 16000 / sr)`` evenly spaced positions (linear interpolation, no low-pass) ->
  ``ASTFeatureExtractor`` (its numpy fbank, as without torchaudio) which keeps the first
  1024 frames (10.24 s) -> the AST model once -> mean (or max) over the output tokens.
  (auditus' own ``AudioEmbedding`` step returns the extractor's ``input_values`` and its
  ``Pooling`` step pools those over time; the model step and token pooling here are what
  the task's "token embeddings" name.)

``exact_ast_chain`` -- the same one-file-at-a-time chain with the two front-end choices
  that differ from ours replaced by exact ones, to show that the model part matches:
  resampling with ``audiobeam.resample.resample`` (kaiser_best, resampy's filter) instead
  of ``np.interp``, and the Kaldi fbank in float64 (torchaudio's ``compliance/kaldi.py``,
  the oracle of ``tests/kaldi_oracle.py``, when it can be loaded; else
  ``models.ast.fbank``) instead of the extractor's numpy approximation; the first 1024
  frames, zero-padded, normalised ``(x - mean) / (2 std)`` with the checkpoint's
  preprocessor values, the same transformers model, token pooling.

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

Nothing here asserts a speed. Each stage is timed with ``time.perf_counter``. As a
process (``bench.models`` runs each chain like this, start-up included)::

  python -m bench.chains_ast_clmr --chain auditus --checkpoint DIR --manifest files.json \\
      --output auditus.npz
  python -m bench.chains_ast_clmr --chain towhee --checkpoint PATH FILE...
  python -m bench.chains_ast_clmr --model ast --checkpoint DIR FILE...   # baseline + ours
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import sys
import time

import numpy as np

__all__ = ["ChainResult", "CHAINS", "AST_WINDOW_SPAN_SECONDS", "auditus_ast_chain",
           "exact_ast_chain", "kaldi_fbank", "towhee_clmr_chain", "ours_chain",
           "save_result", "load_result", "main"]

_AST_RATE_HZ = 16000
_CLMR_RATE_HZ = 22050
_CLMR_WINDOW = 59049
_AST_FRAME_SAMPLES, _AST_SHIFT_SAMPLES = 400, 160

AST_WINDOW_SPAN_SECONDS = (1023 * _AST_SHIFT_SAMPLES + _AST_FRAME_SAMPLES) / _AST_RATE_HZ
"""Audio one 1024-frame AST input covers: 10.255 s (what the extractor sees of a file)."""

CHAINS = {"auditus": "ast", "auditus_exact": "ast", "towhee": "clmr"}
"""Baseline chain name -> the model it runs."""


@dataclasses.dataclass
class ChainResult:
  """Per-file outputs and per-stage seconds of one chain over a list of files.

  ``embeddings[i]``: file ``i``'s output (AST chains: float32 [H], one pooled vector;
  CLMR: float32 [num_windows, 512]; ours: float32 [num_frames, D]).
  ``audio_seconds``: decoded duration of all files; ``covered_seconds``: the part of it
  that reaches the model (auditus: at most 10.255 s per file; CLMR: whole windows).
  """

  name: str
  embeddings: list = dataclasses.field(default_factory=list)   # per file: np.ndarray
  seconds: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(float))
  audio_seconds: float = 0.0
  covered_seconds: float = 0.0
  model_calls: int = 0
  model_inputs: int = 0
  notes: dict = dataclasses.field(default_factory=dict)

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


def _load_ast(checkpoint_dir: str):
  """transformers' AST encoder (``ASTModel``; the base of a classification checkpoint)."""
  import transformers

  config = transformers.AutoConfig.from_pretrained(checkpoint_dir, local_files_only=True)
  if "ASTForAudioClassification" in (config.architectures or []):
    model = transformers.ASTForAudioClassification.from_pretrained(
        checkpoint_dir, use_safetensors=True, local_files_only=True)
    return model.audio_spectrogram_transformer.eval()
  return transformers.ASTModel.from_pretrained(checkpoint_dir, use_safetensors=True,
                                               local_files_only=True).eval()


def _pool_tokens(model, inputs, pooling: str) -> np.ndarray:
  """One AST input [1, 1024, 128] -> tokens [1, T, H] -> pooled float32 [H]."""
  import torch

  with torch.inference_mode():
    tokens = model(inputs).last_hidden_state                         # [1, 1214, H]
    pooled = tokens.mean(dim=1) if pooling == "mean" else tokens.max(dim=1).values
  return pooled.numpy()[0]


def auditus_ast_chain(paths, checkpoint_dir: str, pooling: str = "mean") -> ChainResult:
  """auditus-style AST: one file at a time, first 10.24 s, np.interp, numpy fbank."""
  import transformers

  result = ChainResult("auditus-style AST")
  clock = time.perf_counter()
  extractor = transformers.ASTFeatureExtractor.from_pretrained(checkpoint_dir)
  model = _load_ast(checkpoint_dir)
  result.seconds["load_model"] += time.perf_counter() - clock
  result.notes["pooling"] = pooling
  for path in paths:
    clock = time.perf_counter()
    audio, rate = _read_mono(path)
    result.audio_seconds += audio.shape[0] / rate
    result.covered_seconds += min(audio.shape[0] / rate, AST_WINDOW_SPAN_SECONDS)
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
    result.embeddings.append(_pool_tokens(model, inputs, pooling))
    result.model_calls += 1
    result.model_inputs += 1
    result.seconds["model"] += time.perf_counter() - clock
  return result


def kaldi_fbank(prefer_oracle: bool = True):
  """The Kaldi fbank AST was trained on, in float64: ``(name, fn)``, fn: 16 kHz float64
  [n] -> float64 [F, 128].

  torchaudio's ``compliance/kaldi.py`` (loaded by ``tests/kaldi_oracle.py``, fetched from
  PyPI into ``.cache/`` if missing), called as the extractor calls it
  (``window_type="hanning"``, ``num_mel_bins=128``, 16 kHz) but on float64 samples; when
  it cannot be obtained (no PyPI, no cached copy), ``models.ast.fbank``, which is
  measured equal to it to ~1e-13.
  """
  import os

  if prefer_oracle:
    tests_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "tests")
    try:
      if tests_dir not in sys.path:
        sys.path.insert(0, tests_dir)
      import kaldi_oracle  # pylint: disable=import-outside-toplevel
      kaldi = kaldi_oracle.load_kaldi(kaldi_oracle.fetch())
    except (ImportError, RuntimeError, OSError, KeyError) as error:
      print(f"kaldi oracle unavailable ({error}); using models.ast.fbank", file=sys.stderr)
    else:
      import torch

      def oracle(samples: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float64))[None]
        return kaldi.fbank(x, sample_frequency=_AST_RATE_HZ, window_type="hanning",
                           num_mel_bins=128).numpy()

      return f"torchaudio {kaldi_oracle.TORCHAUDIO_VERSION} compliance/kaldi.py, float64", oracle
  from models.ast import fbank as fbank_lib
  from models.ast.params import DEFAULT_PARAMS

  return "models.ast.fbank, float64", lambda samples: fbank_lib.fbank(samples, DEFAULT_PARAMS)


def exact_ast_chain(paths, checkpoint_dir: str, pooling: str = "mean",
                    prefer_oracle: bool = True) -> ChainResult:
  """The auditus-style chain with exact resampling and the Kaldi fbank (module docstring)."""
  import torch
  import transformers

  from audiobeam.resample import resample

  result = ChainResult("auditus-style AST, exact front end")
  clock = time.perf_counter()
  extractor = transformers.ASTFeatureExtractor.from_pretrained(checkpoint_dir)
  model = _load_ast(checkpoint_dir)
  fbank_name, fbank = kaldi_fbank(prefer_oracle)
  result.seconds["load_model"] += time.perf_counter() - clock
  result.notes.update(pooling=pooling, fbank=fbank_name, resampler="kaiser_best")
  max_frames = int(extractor.max_length)
  span = (max_frames - 1) * _AST_SHIFT_SAMPLES + _AST_FRAME_SAMPLES
  for path in paths:
    clock = time.perf_counter()
    audio, rate = _read_mono(path)
    result.audio_seconds += audio.shape[0] / rate
    result.covered_seconds += min(audio.shape[0] / rate, span / _AST_RATE_HZ)
    now = time.perf_counter()
    result.seconds["decode"] += now - clock
    clock = now
    if rate != _AST_RATE_HZ:
      audio = resample(audio, rate, _AST_RATE_HZ, "kaiser_best")
    now = time.perf_counter()
    result.seconds["resample"] += now - clock
    clock = now
    frames = fbank(audio[:span])                                       # [<=1024, 128]
    window = np.zeros((max_frames, frames.shape[1]), dtype=np.float64)
    window[:frames.shape[0]] = frames[:max_frames]
    if extractor.do_normalize:
      window = (window - extractor.mean) / (2.0 * extractor.std)
    inputs = torch.from_numpy(window.astype(np.float32))[None]
    now = time.perf_counter()
    result.seconds["features"] += now - clock
    clock = now
    result.embeddings.append(_pool_tokens(model, inputs, pooling))
    result.model_calls += 1
    result.model_inputs += 1
    result.seconds["model"] += time.perf_counter() - clock
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
    result.covered_seconds += len(windows) * _CLMR_WINDOW / _CLMR_RATE_HZ
    now = time.perf_counter()
    result.seconds["features"] += now - clock
    clock = now
    if windows:
      with torch.inference_mode():
        out = encoder(torch.stack(windows).unsqueeze(1)).reshape(len(windows), -1)
      result.embeddings.append(out.numpy())
      result.model_calls += 1
      result.model_inputs += len(windows)
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
      result.model_calls += 1
      result.model_inputs += count
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


def save_result(result: ChainResult, paths, output: str) -> None:
  """Writes a chain's embeddings (one array per file, in ``paths`` order) and its
  timings to ``output`` (.npz, no pickled objects)."""
  meta = {"name": result.name, "paths": list(paths), "stage_seconds": dict(result.seconds),
          "audio_seconds": result.audio_seconds, "covered_seconds": result.covered_seconds,
          "model_calls": result.model_calls, "model_inputs": result.model_inputs,
          "notes": result.notes}
  arrays = {f"embedding_{i:06d}": np.asarray(e, dtype=np.float32)
            for i, e in enumerate(result.embeddings)}
  with open(output, "wb") as f:
    np.savez(f, meta=np.array(json.dumps(meta)), **arrays)


def load_result(path: str) -> tuple[dict[str, np.ndarray], dict]:
  """``save_result`` output -> ({file path: embedding array}, meta dict)."""
  with np.load(path, allow_pickle=False) as data:
    meta = json.loads(str(data["meta"]))
    return ({p: data[f"embedding_{i:06d}"] for i, p in enumerate(meta["paths"])}, meta)


def _run_chain(chain: str, paths, checkpoint: str, pooling: str) -> ChainResult:
  if chain == "auditus":
    return auditus_ast_chain(paths, checkpoint, pooling)
  if chain == "auditus_exact":
    return exact_ast_chain(paths, checkpoint, pooling)
  return towhee_clmr_chain(paths, checkpoint)


def main(argv=None) -> int:
  from audiobeam.bundle import Common

  parser = argparse.ArgumentParser(prog="python -m bench.chains_ast_clmr", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--chain", choices=sorted(CHAINS),
                      help="run this baseline chain alone (as bench.models does); without "
                           "it, --model's baseline and ours run side by side in this process")
  parser.add_argument("--model", choices=("ast", "clmr"))
  parser.add_argument("--checkpoint", required=True, help="AST folder or CLMR checkpoint file")
  parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "gpu"))
  parser.add_argument("--pooling", default="mean", choices=("mean", "max"),
                      help="AST chains: how output tokens are pooled (default mean)")
  parser.add_argument("--manifest", help="JSON list of audio file paths (instead of FILE...)")
  parser.add_argument("--output", help=".npz for the chain's embeddings and timings")
  parser.add_argument("files", nargs="*")
  args = parser.parse_args(argv)
  paths = list(args.files)
  if args.manifest:
    with open(args.manifest, encoding="utf-8") as f:
      paths += json.load(f)
  if not paths:
    parser.error("no input files: pass FILE... or --manifest")
  import torch  # noqa: F401  Imported before any clock starts, for every chain alike.
  if args.chain:
    if args.model and args.model != CHAINS[args.chain]:
      parser.error(f"--chain {args.chain} runs {CHAINS[args.chain]}, not {args.model}")
    if CHAINS[args.chain] == "ast":
      import transformers  # noqa: F401
    start = time.perf_counter()
    result = _run_chain(args.chain, paths, args.checkpoint, args.pooling)
    if args.output:
      save_result(result, paths, args.output)
    print(f"{result.summary()} ({time.perf_counter() - start:.1f} s after imports)",
          file=sys.stderr)
    return 0
  if not args.model:
    parser.error("pass --chain, or --model for baseline + ours side by side")
  common = Common(device=args.device, short_clips="pad")
  if args.model == "ast":
    import transformers  # noqa: F401,F811
    from models.ast.bundle import ASTBundle

    baseline = auditus_ast_chain(paths, args.checkpoint, args.pooling)
    ours = ours_chain(ASTBundle({"ast_checkpoint": args.checkpoint}, common), paths)
  else:
    from models.clmr.bundle import CLMRBundle

    baseline = towhee_clmr_chain(paths, args.checkpoint)
    ours = ours_chain(CLMRBundle({"clmr_checkpoint": args.checkpoint}, common), paths)
  print(baseline.summary())
  print(ours.summary())
  return 0


if __name__ == "__main__":
  sys.exit(main())
