"""Command line + YAML run configuration for ``python -m pipelines.embed``.

Layers, later wins: built-in defaults < ``--config FILE`` (YAML or JSON) < flags.
A config file is a flat mapping whose keys are our options (``input``, ``output``,
``checkpoint``, ...) or Beam pipeline options by their dest name (``runner``,
``project``, ``temp_location``, ``direct_num_workers``, ...). A ``run.json`` written by
a previous run is also accepted (its ``config`` section is used), so a run can be
repeated exactly. Unknown keys and unknown flags are errors that name them.

Everything is validated here, before a pipeline is built: a ``ConfigError`` says what
was expected, what was found and what to do.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
from typing import Any, Sequence

import yaml
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from audiobeam.errors import ConfigError
from vggish.params import DEFAULT_PARAMS, Params

__all__ = [
    "EmbedConfig",
    "FORMATS",
    "POOLINGS",
    "SHORT_CLIPS",
    "RESAMPLERS",
    "DEFAULT_RUNNER",
    "RUN_RECORD_KIND",
    "build_arg_parser",
    "parse_config",
    "is_local_runner",
]

FORMATS = ("parquet", "tfrecord")
POOLINGS = ("mean", "max")
SHORT_CLIPS = ("reference", "pad")
RESAMPLERS = ("kaiser_best", "resampy", "soxr_hq")  # as audiobeam.resample.RESAMPLERS
DEFAULT_RUNNER = "FnApiRunner"
"""Beam's local engine, chosen by name: ``DirectRunner`` in Beam 2.77 first tries to
download the Prism runner binary from GitHub; ``FnApiRunner`` never reaches the network
and supports ``--direct_running_mode=multi_processing --direct_num_workers=N``."""
RUN_RECORD_KIND = "audiobeam/run"
"""``kind`` of ``run.json``; such a file passed as ``--config`` contributes its ``config``."""

_DESCRIPTION = """\
Embed audio files with VGGish (Google's AudioSet model) on Apache Beam.

Matches --input patterns (local, gs://, s3://; globs incl. **), decodes each file,
resamples to 16 kHz, computes 96x64 log-mel patches, runs VGGish and writes under
--output: frames/ (one row per 0.96 s frame), clips/ (one pooled row per file),
errors/ (one row per file that produced no embedding) as zstd Parquet, and tfrecord/
(AudioSet SequenceExamples), plus run.json (provenance, effective config, counts).
"""

_EPILOG = """\
Any other flag is a Beam pipeline option (e.g. --runner=DataflowRunner --project=P
--region=R --temp_location=gs://...; --direct_running_mode=multi_processing
--direct_num_workers=4 for a parallel local run). The default runner is FnApiRunner
(Beam's local runner, with no network access).

Weights: --checkpoint/--pca_params take local, gs:// or s3:// paths; without them
Google's published files are downloaded once into the cache (--cache_dir, default
$AUDIOBEAM_CACHE_DIR or ~/.cache/audiobeam).

Example:
  python -m pipelines.embed --input 'data/**/*.wav' --output out/ \\
      --checkpoint vggish_model.ckpt --pca_params vggish_pca_params.npz
"""


@dataclasses.dataclass(frozen=True)
class EmbedConfig:
  """The effective, validated configuration of one run."""
  input: tuple[str, ...]
  output: str
  checkpoint: str | None = None
  pca_params: str | None = None
  format: tuple[str, ...] = FORMATS
  hop_seconds: float = DEFAULT_PARAMS.patch_hop_seconds
  pooling: str = "mean"
  short_clips: str = "reference"
  resampler: str = "kaiser_best"
  batch_size: int = 64
  cache_dir: str | None = None
  skip_existing: bool = False
  existing_outputs: tuple[str, ...] = ()
  beam_options: dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def params(self) -> Params:
    return dataclasses.replace(DEFAULT_PARAMS, patch_hop_seconds=self.hop_seconds)

  @property
  def runner(self) -> str:
    return str(self.beam_options.get("runner") or DEFAULT_RUNNER)

  def pipeline_options(self) -> PipelineOptions:
    return PipelineOptions.from_dictionary(self.beam_options)

  def to_dict(self) -> dict[str, Any]:
    """JSON/YAML-able; ``parse_config(['--config', file_with_this])`` gives this back."""
    out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "beam_options"}
    out["input"] = list(self.input)
    out["format"] = list(self.format)
    out["existing_outputs"] = list(self.existing_outputs)
    out.update(self.beam_options)
    return out


_OUR_KEYS = tuple(f.name for f in dataclasses.fields(EmbedConfig) if f.name != "beam_options")


def build_arg_parser() -> argparse.ArgumentParser:
  """Our flags only (Beam's are parsed by Beam). Every default is None so that we can
  tell a flag given from a flag left alone; the real defaults live in EmbedConfig."""
  parser = argparse.ArgumentParser(
      prog="python -m pipelines.embed", description=_DESCRIPTION, epilog=_EPILOG,
      formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
  add = parser.add_argument
  add("--input", action="append", metavar="PATTERN",
      help="file pattern to embed (repeatable): a path, a glob (* ? **), gs://, s3://")
  add("--output", metavar="DIR", help="output directory (local, gs://, s3://)")
  add("--checkpoint", metavar="PATH",
      help="VGGish checkpoint (vggish_model.ckpt; TF1 V1 or V2); default: download Google's")
  add("--pca_params", metavar="PATH",
      help="PCA parameters (vggish_pca_params.npz); default: download Google's")
  add("--format", metavar="LIST",
      help="comma-separated subset of parquet,tfrecord (default: both); clips/ and errors/ "
      "are always written")
  add("--hop_seconds", type=float, metavar="S",
      help=f"seconds between frame starts, a multiple of 0.01 (default: "
      f"{DEFAULT_PARAMS.patch_hop_seconds}, the reference's non-overlapping patches)")
  add("--pooling", choices=POOLINGS, help="how clips/ pools frame embeddings (default: mean)")
  add("--short_clips", choices=SHORT_CLIPS,
      help="clips under 0.975 s: 'reference' makes them errors rows (too_short), like "
      "Google's code yields nothing; 'pad' zero-pads them to one frame (default: reference)")
  add("--resampler", choices=RESAMPLERS,
      help="resampling to 16 kHz: kaiser_best (default; equals resampy's default filter), "
      "resampy (calls resampy), soxr_hq (faster, not reference-exact)")
  add("--batch_size", type=int, metavar="N", help="patches per model call (default: 64)")
  add("--cache_dir", metavar="DIR", help="cache for downloaded/remote weights")
  add("--skip_existing", action="store_const", const=True,
      help="incremental run: skip inputs already embedded (same uri, size, modification time) "
      "with the same weights and front-end settings, judged by the manifests in --output "
      "(and --existing_outputs); earlier runs' outputs are kept, this run adds the new files")
  add("--existing_outputs", action="append", metavar="PATTERN",
      help="with --skip_existing: other output directories (globs) whose manifests also count, "
      "e.g. 'gs://b/embeddings/dt=*' for date partitions (repeatable)")
  add("--config", metavar="FILE",
      help="YAML/JSON run config (same keys as these flags, plus Beam options) or a run.json; "
      "flags override it")
  return parser


def _beam_option_names() -> set[str]:
  return set(PipelineOptions([]).get_all_options().keys())


def _suggest(name: str, candidates: set[str] | Sequence[str]) -> str:
  close = difflib.get_close_matches(name, list(candidates), n=1)
  return f" (did you mean {close[0]!r}?)" if close else ""


def _load_config_file(path: str) -> dict[str, Any]:
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=import-outside-toplevel
  try:
    with FileSystems.open(path) as f:
      document = yaml.safe_load(f.read().decode("utf-8"))
  except (OSError, IOError) as error:
    raise ConfigError(f"expected a readable config file at --config {path!r}, got: {error}") from error
  except yaml.YAMLError as error:
    raise ConfigError(f"expected YAML or JSON in --config {path!r}, found a syntax error: "
                      f"{error}") from error
  except Exception as error:  # FileSystems raises BeamIOError for missing files.
    raise ConfigError(f"expected a readable config file at --config {path!r}, got: {error}") from error
  if document is None:
    return {}
  if not isinstance(document, dict):
    raise ConfigError(f"expected a mapping of option: value in --config {path!r}, found a "
                      f"{type(document).__name__}")
  if document.get("kind") == RUN_RECORD_KIND:
    document = document.get("config")
    if not isinstance(document, dict):
      raise ConfigError(f"expected a 'config' mapping in the run record {path!r}; it is damaged")
  return dict(document)


def _split_list(value: Any, what: str) -> list[str]:
  if value is None:
    return []
  if isinstance(value, str):
    return [v.strip() for v in value.split(",") if v.strip()] if what == "format" else [value]
  if isinstance(value, (list, tuple)):
    out = []
    for v in value:
      if not isinstance(v, str):
        raise ConfigError(f"expected strings in {what}, found {v!r}")
      out.extend(_split_list(v, what))
    return out
  raise ConfigError(f"expected a string or a list of strings for {what}, found {value!r}")


def parse_config(argv: Sequence[str] | None) -> EmbedConfig:
  """argv (without the program name) -> validated EmbedConfig. Raises ConfigError."""
  parser = build_arg_parser()
  args, beam_argv = parser.parse_known_args(list(argv) if argv is not None else None)
  known_beam = _beam_option_names()

  # Flags we do not know and Beam does not know are typos: say so instead of ignoring them.
  flags = PipelineOptions(beam_argv).get_all_options(retain_unknown_options=True, drop_default=True)
  unknown_flags = sorted(set(flags) - known_beam)
  stray = [a for i, a in enumerate(beam_argv)  # values not following a flag
           if not a.startswith("-") and (i == 0 or not beam_argv[i - 1].startswith("-")
                                         or "=" in beam_argv[i - 1])]
  if unknown_flags or stray:
    ours = {"--" + k for k in _OUR_KEYS} | {"--config"}
    names = [f"--{n}{_suggest('--' + n, ours | {'--' + b for b in known_beam})}" for n in unknown_flags]
    raise ConfigError(
        "expected our flags (see --help) or Beam pipeline options, found unknown "
        f"{', '.join(names + [repr(s) for s in stray])}")
  cli_beam = PipelineOptions(beam_argv).get_all_options(drop_default=True)

  file_values: dict[str, Any] = {}
  file_beam: dict[str, Any] = {}
  if args.config:
    document = _load_config_file(args.config)
    unknown = sorted(k for k in document if k not in _OUR_KEYS and k not in known_beam)
    if unknown:
      raise ConfigError(
          f"expected option names in --config {args.config!r}, found unknown key(s): " +
          ", ".join(f"{k!r}{_suggest(k, set(_OUR_KEYS) | known_beam)}" for k in unknown) +
          "; keys are our flag names without '--' or Beam pipeline option names")
    file_values = {k: v for k, v in document.items() if k in _OUR_KEYS}
    file_beam = {k: v for k, v in document.items() if k not in _OUR_KEYS}

  values: dict[str, Any] = dict(file_values)
  for key in _OUR_KEYS:
    flag_value = getattr(args, key)
    if flag_value is not None:
      values[key] = flag_value
  beam_options = {**file_beam, **cli_beam}
  beam_options.setdefault("runner", DEFAULT_RUNNER)
  return _validate(values, beam_options)


def _validate(values: dict[str, Any], beam_options: dict[str, Any]) -> EmbedConfig:
  inputs = _split_list(values.get("input"), "input")
  if not inputs:
    raise ConfigError("expected at least one --input PATTERN (e.g. --input 'audio/*.wav'), "
                      "found none")
  output = values.get("output")
  if not output or not isinstance(output, str):
    raise ConfigError(f"expected --output DIR, found {output!r}")
  if "://" not in output and os.path.isfile(output):
    raise ConfigError(f"expected --output to be a directory, found a file at {output!r}")

  formats = _split_list(values.get("format", list(FORMATS)), "format")
  bad = [f for f in formats if f not in FORMATS]
  if bad or not formats:
    raise ConfigError(f"expected --format to be a comma-separated subset of "
                      f"{','.join(FORMATS)}, found {values.get('format')!r}")
  formats = tuple(f for f in FORMATS if f in formats)  # canonical order, no duplicates

  def choice(key, options, default):
    value = values.get(key, default)
    if value not in options:
      raise ConfigError(f"expected --{key} to be one of {', '.join(options)}, found {value!r}")
    return value

  pooling = choice("pooling", POOLINGS, "mean")
  short_clips = choice("short_clips", SHORT_CLIPS, "reference")
  resampler = choice("resampler", RESAMPLERS, "kaiser_best")

  try:
    hop_seconds = float(values.get("hop_seconds", DEFAULT_PARAMS.patch_hop_seconds))
  except (TypeError, ValueError) as error:
    raise ConfigError(f"expected --hop_seconds to be a number, found "
                      f"{values.get('hop_seconds')!r}") from error
  batch_size = values.get("batch_size", 64)
  if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
    raise ConfigError(f"expected --batch_size to be a positive integer, found {batch_size!r}")

  for key in ("checkpoint", "pca_params", "cache_dir"):
    if values.get(key) is not None and not isinstance(values[key], str):
      raise ConfigError(f"expected --{key} to be a path, found {values[key]!r}")
  skip_existing = values.get("skip_existing", False)
  if not isinstance(skip_existing, bool):
    raise ConfigError(f"expected skip_existing to be true or false, found {skip_existing!r}")
  existing_outputs = tuple(_split_list(values.get("existing_outputs"), "existing_outputs"))

  runner = str(beam_options.get("runner") or DEFAULT_RUNNER)
  if not is_local_runner(runner):
    for key in ("checkpoint", "pca_params"):
      uri = values.get(key)
      if uri is not None and ("://" not in uri or uri.startswith("file://")):
        raise ConfigError(
            f"expected --{key} on storage the workers of {runner} can read (gs://, s3://, "
            f"https://), found the local path {uri!r}; upload it and pass that URI")

  config = EmbedConfig(
      input=tuple(inputs), output=output, checkpoint=values.get("checkpoint"),
      pca_params=values.get("pca_params"), format=formats, hop_seconds=hop_seconds,
      pooling=pooling, short_clips=short_clips, resampler=resampler, batch_size=batch_size,
      cache_dir=values.get("cache_dir"), skip_existing=skip_existing,
      existing_outputs=existing_outputs, beam_options=beam_options)
  try:
    config.params  # Params validates the hop (a multiple of 10 ms, > 0).
  except ConfigError as error:
    raise ConfigError(f"--hop_seconds {hop_seconds!r}: {error}") from error
  return config


def is_local_runner(runner: str) -> bool:
  """True for runners whose workers run on this machine (and so can read local paths)."""
  name = runner.rsplit(".", 1)[-1]
  return name in StandardOptions.LOCAL_RUNNERS
