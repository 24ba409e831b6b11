"""The command line and run-config layer: validation before any job is built."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest
import yaml

from pipelines import embed
from pipelines.options import DEFAULT_RUNNER, FORMATS, EmbedConfig, parse_config
from audiobeam.errors import AssetError, ConfigError

_REPO = pathlib.Path(__file__).resolve().parents[1]
_BASE = ["--input", "a/*.wav", "--output", "out"]


def test_defaults_are_the_reference_settings():
  config = parse_config(_BASE)
  assert config.input == ("a/*.wav",) and config.output == "out"
  assert config.format == FORMATS and config.model == ("vggish",)
  assert (config.options["hop_seconds"], config.pooling, config.short_clips, config.resampler,
          config.normalize) == (0.96, "mean", "reference", "kaiser_best", "none")
  assert config.options["checkpoint"] is None and config.options["pca_params"] is None
  (bundle,) = config.bundles()
  assert config.batch_size is None and config.batch_size_of(bundle) == 64
  assert config.model_copies is None  # each worker process loads its own models
  assert config.runner == DEFAULT_RUNNER == "FnApiRunner"
  assert config.output_mode is None and config.output_mode_effective == "replace"


def test_repeated_inputs_and_comma_separated_formats():
  config = parse_config(["--input", "a", "--input", "gs://b/**", "--output", "o",
                         "--format", "tfrecord"])
  assert config.input == ("a", "gs://b/**") and config.format == ("tfrecord",)
  assert parse_config(_BASE + ["--format", "tfrecord,parquet"]).format == ("parquet", "tfrecord")


@pytest.mark.parametrize("argv, needle", [
    (["--output", "out"], "--input"),
    (["--input", "a"], "--output"),
    (_BASE + ["--format", "csv"], "parquet,tfrecord"),
    (_BASE + ["--format", ""], "parquet,tfrecord"),
    (_BASE + ["--hop_seconds", "0.955"], "--hop_seconds"),
    (_BASE + ["--hop_seconds", "0"], "--hop_seconds"),
    (_BASE + ["--batch_size", "0"], "--batch_size"),
    (_BASE + ["--batch_size", "1000000000"], "--batch_size between 1 and 4096"),
    (_BASE + ["--batch_size", "x"], "--batch_size"),
    (_BASE + ["--model_copies", "0"], "--model_copies between 1 and 64"),
    (_BASE + ["--model_copies", "1.5"], "model_copies"),
    (_BASE + ["--hop_seconds", "nan"], "--hop_seconds"),
    (_BASE + ["--hop_seconds", "inf"], "--hop_seconds"),
    (_BASE + ["--hop_seconds", "1e-300"], "--hop_seconds"),
    (_BASE + ["--pooling_method", "max"], "did you mean '--pooling'"),
    (_BASE + ["--model", "vggish,nope"], "'nope'"),
    (_BASE + ["--model", ""], "--model"),
    (_BASE + ["--skip_existing", "--output_mode", "replace"], "--output_mode append"),
    (["--input", "a", "--output", "runs/out?"], "glob characters"),
    (["--input", "a", "--output", "runs/out*"], "glob characters"),
])
def test_bad_options_raise_config_error_naming_the_option(argv, needle):
  with pytest.raises(ConfigError) as error:
    parse_config(argv)
  assert needle in str(error.value)


def test_argparse_choices_reject_unknown_pooling_and_resampler():
  for flag in (["--pooling", "median"], ["--resampler", "linear"],
               ["--short_clips", "crop"], ["--normalize", "l1"], ["--output_mode", "wipe"]):
    with pytest.raises(SystemExit):
      parse_config(_BASE + flag)


def test_yaml_supplies_options_and_flags_override(tmp_path):
  config_file = tmp_path / "run.yaml"
  config_file.write_text(yaml.safe_dump({
      "input": ["x/*.flac", "y/*.wav"], "output": "from_yaml", "pooling": "max",
      "format": "parquet", "hop_seconds": 0.48, "direct_num_workers": 3}))
  config = parse_config(["--config", str(config_file), "--output", "from_flag"])
  assert config.input == ("x/*.flac", "y/*.wav")
  assert config.output == "from_flag"
  assert (config.pooling, config.format, config.options["hop_seconds"]) == (
      "max", ("parquet",), 0.48)
  assert config.beam_options["direct_num_workers"] == 3
  assert config.bundles()[0].params.patch_hop_frames == 48
  flagged = parse_config(["--config", str(config_file), "--direct_num_workers=2"])
  assert flagged.beam_options["direct_num_workers"] == 2


def test_unknown_yaml_keys_are_named(tmp_path):
  config_file = tmp_path / "bad.yaml"
  config_file.write_text("input: a\noutput: o\npoolin: max\nbogus_option: 1\n")
  with pytest.raises(ConfigError) as error:
    parse_config(["--config", str(config_file)])
  message = str(error.value)
  assert "'poolin'" in message and "'bogus_option'" in message and "'pooling'" in message


def test_config_file_errors(tmp_path):
  with pytest.raises(ConfigError, match="readable config"):
    parse_config(["--config", str(tmp_path / "missing.yaml")])
  (tmp_path / "list.yaml").write_text("- a\n- b\n")
  with pytest.raises(ConfigError, match="mapping"):
    parse_config(["--config", str(tmp_path / "list.yaml")])
  (tmp_path / "broken.yaml").write_text("input: [a\n")
  with pytest.raises(ConfigError, match="YAML"):
    parse_config(["--config", str(tmp_path / "broken.yaml")])


def test_yaml_aliases_are_refused_before_they_expand(tmp_path):
  # "Billion laughs": 9 levels of 10 aliases would be 10**9 strings once expanded.
  lines = ["input: a", "output: o", 'a0: &a0 "lol"']
  for level in range(1, 10):
    lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
  lines.append("labels: *a9")
  (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
  with pytest.raises(ConfigError, match="anchors .* and aliases"):
    parse_config(["--config", str(tmp_path / "bomb.yaml")])


def test_effective_config_round_trips_through_a_file(tmp_path):
  config = parse_config(_BASE + ["--pooling", "max", "--format", "parquet", "--normalize", "l2",
                                 "--direct_num_workers=2", "--checkpoint", "c.ckpt",
                                 "--output_mode", "append"])
  record = {"kind": "audiobeam/run", "run_id": "x", "config": config.to_dict()}
  (tmp_path / "run.json").write_text(json.dumps(record))
  (tmp_path / "plain.yaml").write_text(yaml.safe_dump(config.to_dict()))
  for name in ("run.json", "plain.yaml"):
    again = parse_config(["--config", str(tmp_path / name)])
    assert again == config
    assert again.to_dict() == config.to_dict()


def test_shipped_local_config_is_valid():
  config = parse_config(["--config", str(_REPO / "configs" / "local.yaml")] + _BASE)
  assert config.runner == "FnApiRunner"
  assert EmbedConfig(input=("a/*.wav",), output="out", options=config.options,
                     beam_options=config.beam_options).to_dict() == config.to_dict()


def test_missing_weights_stop_before_the_job(tmp_path):
  argv = _BASE[:3] + [str(tmp_path / "out"), "--checkpoint", str(tmp_path / "none.ckpt"),
                      "--pca_params", str(tmp_path / "none.npz")]
  with pytest.raises(AssetError, match="--checkpoint"):
    embed.run(argv)
  assert not (tmp_path / "out").exists()


def test_remote_runner_refuses_launcher_local_weights():
  argv = _BASE + ["--checkpoint", "/local/vggish_model.ckpt", "--pca_params",
                  "gs://bucket/vggish_pca_params.npz", "--runner=DataflowRunner"]
  with pytest.raises(ConfigError, match="gs://") as error:
    parse_config(argv)
  assert "/local/vggish_model.ckpt" in str(error.value)
  remote = parse_config(_BASE + ["--checkpoint", "gs://b/c.ckpt", "--pca_params", "s3://b/p.npz",
                                 "--runner=DataflowRunner"])
  assert remote.runner == "DataflowRunner"


def test_main_prints_the_error_and_exits_2(tmp_path, capsys):
  assert embed.main(["--output", str(tmp_path)]) == 2
  assert "--input" in capsys.readouterr().err


def test_help_works_on_its_own():
  result = subprocess.run([sys.executable, "-m", "pipelines.embed", "--help"], cwd=_REPO,
                          capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 0
  for flag in ("--input", "--output", "--model", "--checkpoint", "--pca_params", "--format",
               "--hop_seconds", "--pooling", "--normalize", "--short_clips", "--resampler",
               "--output_mode", "--device", "--config", "--runner"):
    assert flag in result.stdout

