"""Command-line flags and YAML run configs for ``pipelines.embed``, validated up front.

Layers, later wins: built-in defaults < ``--config FILE`` (YAML or JSON) < flags.
A config file is a flat mapping whose keys are our options (``input``, ``output``,
``model``, ``checkpoint``, ...) or Beam pipeline options by their dest name (``runner``,
``project``, ``temp_location``, ``direct_num_workers``, ...). A ``run.json`` written by
a previous run is also accepted (its ``config`` section is used), so a run can be
repeated exactly. Unknown keys and unknown flags are errors that name them.

Options come from two places, each defined once: the shared options below
(``SHARED_OPTIONS``) and each model's own (its bundle's ``options``, e.g. VGGish's
``--checkpoint``, YAMNet's ``--yamnet_weights``). A model's flag given on the command
line for a model that is not selected is an error; in a config file it is ignored (one
file may carry the weights of several models).

Everything is validated here, before a pipeline is built: a ``ConfigError`` says what
was expected, what was found and what to do.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import difflib
import math
import os
from typing import Any, Sequence

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from audiobeam import registry
from audiobeam.bundle import (BACKENDS, DEVICES, NORMALIZATIONS, POOLINGS, SHORT_CLIP_POLICIES,
                              Common, ModelBundle, Option, check_choice)
from audiobeam.errors import ConfigError
from audiobeam.resample import RESAMPLERS

__all__ = [
    "EmbedConfig",
    "FORMATS",
    "OUTPUT_MODES",
    "SHARED_OPTIONS",
    "MAX_BATCH_SIZE",
    "DEFAULT_RUNNER",
    "RUN_RECORD_KIND",
    "build_arg_parser",
    "parse_config",
    "is_local_runner",
    "model_options",
]

FORMATS = ("parquet", "tfrecord")
OUTPUT_MODES = ("replace", "append")
MAX_BATCH_SIZE = 4096
"""Model inputs per call at most: 4096 VGGish patches are 96 MB of inputs and ~1.5 GB of
activations; beyond that a batch only costs memory."""
MAX_MODEL_COPIES = 64
"""Upper bound of --model_copies (copies of each model on one machine)."""
DEFAULT_RUNNER = "FnApiRunner"
"""Beam's local engine, chosen by name: ``DirectRunner`` in Beam 2.77 first tries to
download the Prism runner binary from GitHub; ``FnApiRunner`` never reaches the network
and supports ``--direct_running_mode=multi_processing --direct_num_workers=N``."""
RUN_RECORD_KIND = "audiobeam/run"
"""``kind`` of ``run.json``; such a file passed as ``--config`` contributes its ``config``."""

SHARED_OPTIONS: tuple[Option, ...] = (
    Option("input", "file pattern to embed (repeatable): a path, a glob (* ? **), gs://, s3://",
           kind="list", metavar="PATTERN"),
    Option("output", "output directory (local, gs://, s3://)", kind="path", metavar="DIR"),
    Option("model", "comma-separated models to run on every file (default: vggish); one of "
           "or several of: " + ", ".join(registry.MODELS), kind="list",
           default=(registry.DEFAULT_MODEL,), metavar="LIST"),
    Option("format", "comma-separated subset of parquet,tfrecord (default: both): parquet "
           "writes <model>/frames/, tfrecord VGGish's AudioSet TFRecords; clips/ and errors/ "
           "are always written", kind="list", default=FORMATS, metavar="LIST"),
    Option("pooling", "how clips/ pools frame embeddings (default: mean)", kind="choice",
           default="mean", choices=POOLINGS),
    Option("normalize", "L2-normalise pooled clip embeddings (default: none; CLAP always "
           "re-normalises)", kind="choice", default="none", choices=NORMALIZATIONS),
    Option("short_clips", "clips shorter than one model input: 'reference' makes them errors "
           "rows (too_short), like Google's VGGish code yields nothing; 'pad' zero-pads them "
           "to one input (default: reference; YAMNet and CLAP always pad, as their references "
           "do)", kind="choice", default="reference", choices=SHORT_CLIP_POLICIES),
    Option("resampler", "resampling to the model rate: kaiser_best (default; equals "
           "resampy's default filter), resampy (calls resampy), soxr_hq (faster, not "
           "reference-exact); CLAP always uses soxr_hq, its reference", kind="choice",
           default="kaiser_best", choices=RESAMPLERS),
    Option("batch_size", f"model inputs per model call, 1..{MAX_BATCH_SIZE}: N for every "
           "model, or per model as 'vggish=512,clap=16' (a YAML mapping in a config); default: "
           "each model's own (vggish 64, yamnet 64, clap 16, ast 8, clmr 32)",
           kind="batch_sizes", metavar="N|MODEL=N,..."),
    Option("model_copies", "load each model N times per machine, shared by all its worker "
           "processes (Beam's RunInference model_copies; the Dataflow GPU config uses 1: one "
           "copy on the GPU, every vCPU's SDK process feeding it); default: one copy per worker "
           "process", kind="int", metavar="N"),
    Option("device", "where models run: auto (a GPU when one is visible), cpu or gpu "
           "(default: auto)", kind="choice", default="auto", choices=DEVICES),
    Option("backend", "VGGish/YAMNet implementation: tf (default) or torch", kind="choice",
           default="tf", choices=BACKENDS),
    Option("allow_tf32", "allow TF32 matmuls on Ampere+ GPUs (faster, breaks the float32 "
           "numerical contract; default: off)", kind="bool", default=False),
    Option("cache_dir", "cache for downloaded/remote weights", kind="path", metavar="DIR"),
    Option("output_mode", "an --output that holds files audiobeam did not write is refused "
           "unless you say: 'replace' (replace audiobeam's earlier outputs there, leave every "
           "other file untouched) or 'append' (keep earlier runs' rows and add this run's)",
           kind="choice", choices=OUTPUT_MODES),
    Option("skip_existing", "incremental run: skip inputs already embedded (same uri, size, "
           "modification time) with the same weights and settings, judged by the manifests in "
           "--output (and --existing_outputs); earlier runs' outputs are kept, this run adds "
           "the new files", kind="bool", default=False),
    Option("existing_outputs", "with --skip_existing: other output directories (globs) whose "
           "manifests also count, e.g. 'gs://b/embeddings/dt=*' (repeatable)", kind="list",
           default=(), metavar="PATTERN"),
    Option("verbose", "show TensorFlow's and Beam's start-up logs", kind="bool", default=False),
    Option("progress", "progress line on stderr every 10 s during local runs: auto (when "
           "stderr is a terminal or --verbose), on, off (default: auto)", kind="choice",
           default="auto", choices=("auto", "on", "off")),
)
"""Options every run has (before the models' own)."""

_DESCRIPTION = """\
Embed audio files with VGGish, YAMNet, CLAP, AST or CLMR on Apache Beam.

Matches --input patterns (local, gs://, s3://; globs incl. **), decodes each file once,
resamples it once per model rate, runs every --model and writes under --output, per
model: <model>/frames/ (one row per model input window), <model>/clips/ (one pooled row
per file) and the model's extras (vggish/tfrecord/, clap/labels/); errors/ (one row per
file and model that produced no embedding) and run.json (provenance, effective config,
counts) at the top.
"""

_EPILOG = """\
Any other flag is a Beam pipeline option (e.g. --runner=DataflowRunner --project=P
--region=R --temp_location=gs://...; --direct_running_mode=multi_processing
--direct_num_workers=4 for a parallel local run). The default runner is FnApiRunner
(Beam's local runner, with no network access).

Weights: each model's weight flags take local, gs://, s3:// or https:// paths; without
them VGGish's and YAMNet's published files are downloaded once into the cache
(--cache_dir, default $AUDIOBEAM_CACHE_DIR or ~/.cache/audiobeam); CLAP and AST take a
Hugging Face checkpoint folder, CLMR its checkpoint file. There is never a fallback to
other weights.

Example:
  python -m pipelines.embed --input 'data/**/*.wav' --output out/ \\
      --checkpoint vggish_model.ckpt --pca_params vggish_pca_params.npz
"""


def model_options() -> dict[str, tuple[str, Option]]:
  """Every model's options: flag name -> (model name, Option). Names are unique across
  models and never shadow a shared option or a Beam pipeline option (checked: Dataflow's
  own ``--labels``, which Airflow's Beam operator always passes, is why CLAP's labels
  flag is ``--clap_labels``)."""
  out: dict[str, tuple[str, Option]] = {}
  taken = {o.name for o in SHARED_OPTIONS} | {"config"} | _beam_option_names()
  for name in registry.MODELS:
    for option in registry.bundle_class(name).options:
      if option.name in taken or option.name in out:
        raise RuntimeError(f"option {option.name!r} of model {name!r} collides with another "
                           "audiobeam or Beam option; name it --<model>_...")
      out[option.name] = (name, option)
  return out


@dataclasses.dataclass(frozen=True)
class EmbedConfig:
  """The effective, validated configuration of one run.

  ``options``: the selected models' own option values (every option of every selected
  model, defaults filled), by flag name.
  """
  input: tuple[str, ...]
  output: str
  model: tuple[str, ...] = (registry.DEFAULT_MODEL,)
  format: tuple[str, ...] = FORMATS
  pooling: str = "mean"
  normalize: str = "none"
  short_clips: str = "reference"
  resampler: str = "kaiser_best"
  batch_size: int | dict[str, int] | None = None
  model_copies: int | None = None
  device: str = "auto"
  backend: str = "tf"
  allow_tf32: bool = False
  cache_dir: str | None = None
  output_mode: str | None = None
  skip_existing: bool = False
  existing_outputs: tuple[str, ...] = ()
  verbose: bool = False
  progress: str = "auto"
  options: dict[str, Any] = dataclasses.field(default_factory=dict)
  beam_options: dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def common(self) -> Common:
    return Common(resampler=self.resampler, short_clips=self.short_clips, pooling=self.pooling,
                  normalize=self.normalize, device=self.device, backend=self.backend,
                  cache_dir=self.cache_dir, allow_tf32=self.allow_tf32)

  def bundles(self) -> list[ModelBundle]:
    """The configured bundle of every selected model, in ``model`` order."""
    by_model: dict[str, dict[str, Any]] = {m: {} for m in self.model}
    for flag, (model, _) in model_options().items():
      if model in by_model:
        by_model[model][flag] = self.options.get(flag)
    return [registry.bundle_class(m)(by_model[m], self.common) for m in self.model]

  def batch_size_of(self, bundle: ModelBundle) -> int:
    """``--batch_size`` for this model: its own entry, the one number, or its default."""
    if isinstance(self.batch_size, dict):
      return self.batch_size.get(bundle.name) or bundle.default_batch_size
    return self.batch_size or bundle.default_batch_size

  @property
  def runner(self) -> str:
    return str(self.beam_options.get("runner") or DEFAULT_RUNNER)

  @property
  def output_mode_effective(self) -> str:
    """``append`` for incremental runs, else ``replace``."""
    return self.output_mode or ("append" if self.skip_existing else "replace")

  def pipeline_options(self) -> PipelineOptions:
    return PipelineOptions.from_dictionary(self.beam_options)

  def to_dict(self) -> dict[str, Any]:
    """JSON/YAML-able; ``parse_config(['--config', file_with_this])`` gives this back."""
    out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
           if f.name not in ("options", "beam_options")}
    for key in ("input", "model", "format", "existing_outputs"):
      out[key] = list(out[key])
    for key, value in self.options.items():
      out[key] = list(value) if isinstance(value, tuple) else value
    out.update(self.beam_options)
    return out


_SHARED = {o.name: o for o in SHARED_OPTIONS}


def _all_options() -> dict[str, Option]:
  return {**_SHARED, **{k: o for k, (_, o) in model_options().items()}}


def _add_flag(parser: argparse.ArgumentParser, option: Option, model: str | None) -> None:
  """Every default is None so that we can tell a flag given from a flag left alone; the
  real defaults live in the Options."""
  help_text = option.help if model is None else f"[{model}] {option.help}"
  flag = "--" + option.name
  if option.kind == "bool":
    parser.add_argument(flag, action="store_const", const=True, help=help_text)
  elif option.kind == "list" and option.name in ("input", "existing_outputs"):
    parser.add_argument(flag, action="append", metavar=option.metavar, help=help_text)
  elif option.kind == "choice":
    parser.add_argument(flag, choices=option.choices, help=help_text)
  else:
    parser.add_argument(flag, metavar=option.metavar or option.kind.upper(), help=help_text)


def build_arg_parser() -> argparse.ArgumentParser:
  """Our flags only (Beam's are parsed by Beam)."""
  parser = argparse.ArgumentParser(
      prog="python -m pipelines.embed", description=_DESCRIPTION, epilog=_EPILOG,
      formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
  for option in SHARED_OPTIONS:
    _add_flag(parser, option, None)
  parser.add_argument("--config", metavar="FILE",
                      help="YAML/JSON run config (same keys as these flags, plus Beam options) "
                      "or a run.json; flags override it")
  for name in registry.MODELS:
    group = parser.add_argument_group(f"model {name}", registry.bundle_class(name).description)
    for option in registry.bundle_class(name).options:
      _add_flag(group, option, name)
  return parser


@functools.lru_cache(maxsize=1)
def _beam_option_names() -> frozenset[str]:
  return frozenset(PipelineOptions([]).get_all_options().keys())


def _suggest(name: str, candidates) -> str:
  close = difflib.get_close_matches(name, list(candidates), n=1)
  return f" (did you mean {close[0]!r}?)" if close else ""


def _load_config_file(path: str) -> dict[str, Any]:
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=import-outside-toplevel
  from audiobeam.yamlsafe import MAX_DOCUMENT_BYTES, load_document  # pylint: disable=import-outside-toplevel
  try:
    with FileSystems.open(path) as f:
      text = f.read(MAX_DOCUMENT_BYTES + 1)
  except Exception as error:  # OSError; FileSystems raises BeamIOError for missing files.
    raise ConfigError(f"expected a readable config file at --config {path!r}, got: {error}") from error
  try:
    document = load_document(text.decode("utf-8"), f"--config {path!r}")
  except UnicodeDecodeError as error:
    raise ConfigError(f"expected UTF-8 YAML or JSON in --config {path!r}: {error}") from error
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


def _as_list(value: Any, option: Option) -> list[str]:
  """A list option from a comma-separated string (a flag), or a YAML list whose items are
  kept whole (a label may hold a comma). ``input`` patterns may contain commas: a string
  is one pattern; repeated ``--input`` flags make the list."""
  if value is None:
    return []
  if isinstance(value, str):
    if option.name in ("input", "existing_outputs"):
      return [value]
    return [v.strip() for v in value.split(",") if v.strip()]
  if isinstance(value, (list, tuple)):
    for item in value:
      if not isinstance(item, str):
        raise ConfigError(f"expected strings in {option.name}, found {item!r}")
    if option.name in ("input", "existing_outputs"):
      return list(value)
    return [item.strip() for item in value if item.strip()]
  raise ConfigError(f"expected a string or a list of strings for {option.name}, found {value!r}")


def _convert(option: Option, value: Any) -> Any:
  """One option's value (from a flag string or YAML) -> its typed value; ConfigError."""
  name = "--" + option.name
  if value is None:
    return list(option.default) if isinstance(option.default, tuple) else option.default
  kind = option.kind
  if kind == "list":
    return _as_list(value, option)
  if kind == "bool":
    if isinstance(value, bool):
      return value
    raise ConfigError(f"expected {option.name} to be true or false, found {value!r}")
  if kind in ("str", "path"):
    if not isinstance(value, str) or not value:
      raise ConfigError(f"expected {name} to be a {'path' if kind == 'path' else 'string'}, "
                        f"found {value!r}")
    return value
  if kind == "choice":
    return check_choice(name, value, option.choices)
  if kind == "int":
    try:
      number = int(value) if not isinstance(value, (bool, float)) else None
    except (TypeError, ValueError):
      number = None
    if number is None:
      raise ConfigError(f"expected {name} to be an integer, found {value!r}")
    return number
  if kind == "batch_sizes":
    return _batch_sizes(value)
  if kind == "float":
    try:
      number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
      number = math.nan
    if not math.isfinite(number):
      raise ConfigError(f"expected {name} to be a finite number, found {value!r}")
    return number
  raise RuntimeError(f"option {option.name!r} has unknown kind {kind!r}")


def _batch_sizes(value: Any) -> int | dict[str, int]:
  """``--batch_size``: ``N``, ``"model=N,model=N"`` or a mapping -> int or {model: int},
  each 1..MAX_BATCH_SIZE."""
  def size(text: Any, where: str) -> int:
    try:
      number = int(text) if not isinstance(text, (bool, float)) else None
    except (TypeError, ValueError):
      number = None
    if number is None or not 1 <= number <= MAX_BATCH_SIZE:
      raise ConfigError(f"expected --batch_size{where} between 1 and {MAX_BATCH_SIZE}, found "
                        f"{text!r}")
    return number

  if isinstance(value, str) and "=" in value:
    pairs = [item.split("=", 1) for item in value.split(",") if item.strip()]
    value = {k.strip(): v.strip() for k, v in pairs}
  if isinstance(value, dict):
    unknown = sorted(set(value) - set(registry.MODELS))
    if unknown:
      raise ConfigError(f"expected --batch_size per model among {', '.join(registry.MODELS)}, "
                        f"found {', '.join(map(repr, unknown))}")
    return {model: size(n, f" of {model}") for model, n in value.items()}
  return size(value, "")


_GLOB_CHARS = "*?["


def parse_config(argv: Sequence[str] | None) -> EmbedConfig:
  """argv (without the program name) -> validated EmbedConfig. Raises ConfigError."""
  parser = build_arg_parser()
  args, beam_argv = parser.parse_known_args(list(argv) if argv is not None else None)
  known_beam = _beam_option_names()
  options = _all_options()

  # Flags we do not know and Beam does not know are typos: say so instead of ignoring them.
  flags = PipelineOptions(beam_argv).get_all_options(retain_unknown_options=True, drop_default=True)
  unknown_flags = sorted(set(flags) - known_beam)
  stray = [a for i, a in enumerate(beam_argv)  # values not following a flag
           if not a.startswith("-") and (i == 0 or not beam_argv[i - 1].startswith("-")
                                         or "=" in beam_argv[i - 1])]
  if unknown_flags or stray:
    ours = {"--" + k for k in options} | {"--config"}
    names = [f"--{n}{_suggest('--' + n, ours | {'--' + b for b in known_beam})}" for n in unknown_flags]
    raise ConfigError(
        "expected our flags (see --help) or Beam pipeline options, found unknown "
        f"{', '.join(names + [repr(s) for s in stray])}")
  cli_beam = PipelineOptions(beam_argv).get_all_options(drop_default=True)

  file_values: dict[str, Any] = {}
  file_beam: dict[str, Any] = {}
  if args.config:
    document = _load_config_file(args.config)
    unknown = sorted(k for k in document if k not in options and k not in known_beam)
    if unknown:
      raise ConfigError(
          f"expected option names in --config {args.config!r}, found unknown key(s): " +
          ", ".join(f"{k!r}{_suggest(k, set(options) | known_beam)}" for k in unknown) +
          "; keys are our flag names without '--' or Beam pipeline option names")
    file_values = {k: v for k, v in document.items() if k in options}
    file_beam = {k: v for k, v in document.items() if k not in options}

  cli_values = {k: getattr(args, k) for k in options if getattr(args, k) is not None}
  values = {**file_values, **cli_values}
  beam_options = {**file_beam, **cli_beam}
  beam_options.setdefault("runner", DEFAULT_RUNNER)
  return _validate(values, set(cli_values), beam_options)


def _validate(values: dict[str, Any], from_cli: set[str], beam_options: dict[str, Any]) -> EmbedConfig:
  shared = {name: _convert(option, values.get(name)) for name, option in _SHARED.items()}
  if not shared["input"]:
    raise ConfigError("expected at least one --input PATTERN (e.g. --input 'audio/*.wav'), "
                      "found none")
  output = shared["output"]
  if not output:
    raise ConfigError("expected --output DIR, found none")
  if any(c in output for c in _GLOB_CHARS):
    raise ConfigError(f"expected --output to be a plain directory, found glob characters "
                      f"({_GLOB_CHARS}) in {output!r}: audiobeam never uses an output path as a "
                      "pattern; choose a name without them")
  if "://" not in output and os.path.isfile(output):
    raise ConfigError(f"expected --output to be a directory, found a file at {output!r}")

  models = registry.parse_models(values.get("model", list(_SHARED["model"].default)))
  formats = shared["format"]
  bad = [f for f in formats if f not in FORMATS]
  if bad or not formats:
    raise ConfigError(f"expected --format to be a comma-separated subset of "
                      f"{','.join(FORMATS)}, found {values.get('format')!r}")
  formats = tuple(f for f in FORMATS if f in formats)  # canonical order, no duplicates
  batch_size = shared["batch_size"]
  model_copies = shared["model_copies"]
  if model_copies is not None and not 1 <= model_copies <= MAX_MODEL_COPIES:
    raise ConfigError(f"expected --model_copies between 1 and {MAX_MODEL_COPIES}, found "
                      f"{model_copies}")
  if shared["skip_existing"] and shared["output_mode"] == "replace":
    raise ConfigError("expected --skip_existing with --output_mode append (or none): an "
                      "incremental run keeps earlier rows, --output_mode replace drops them")

  per_model = model_options()
  given_for_others = sorted(k for k in from_cli if k in per_model and per_model[k][0] not in models)
  if given_for_others:
    raise ConfigError("expected flags of the selected models (--model " + ",".join(models) +
                      "), found " + ", ".join(f"--{k} (for {per_model[k][0]})"
                                              for k in given_for_others) +
                      "; add the model to --model or drop the flag")
  chosen = {k: _convert(option, values.get(k)) for k, (model, option) in per_model.items()
            if model in models}

  runner = str(beam_options.get("runner") or DEFAULT_RUNNER)
  if not is_local_runner(runner):
    for key, (model, option) in per_model.items():
      uri = chosen.get(key)
      if model in models and option.kind == "path" and uri is not None and (
          "://" not in uri or uri.startswith("file://")):
        raise ConfigError(
            f"expected --{key} on storage the workers of {runner} can read (gs://, s3://, "
            f"https://), found the local path {uri!r}; upload it and pass that URI")

  config = EmbedConfig(
      input=tuple(shared["input"]), output=output, model=models, format=formats,
      pooling=shared["pooling"], normalize=shared["normalize"],
      short_clips=shared["short_clips"], resampler=shared["resampler"], batch_size=batch_size,
      model_copies=model_copies, device=shared["device"], backend=shared["backend"],
      allow_tf32=shared["allow_tf32"],
      cache_dir=shared["cache_dir"], output_mode=shared["output_mode"],
      skip_existing=shared["skip_existing"],
      existing_outputs=tuple(shared["existing_outputs"]), verbose=shared["verbose"],
      progress=shared["progress"], options=chosen, beam_options=beam_options)
  config.bundles()  # each model validates its own options (ConfigError)
  return config


def is_local_runner(runner: str) -> bool:
  """True for runners whose workers run on this machine (and so can read local paths)."""
  name = runner.rsplit(".", 1)[-1]
  return name in StandardOptions.LOCAL_RUNNERS
