"""python -m pipelines.inspect / explore.summary: what made an output.

On the REAL output of ``tests/explore_fixtures.py`` (one pipeline run of vggish, yamnet and
clap over a small corpus, test weights) and on a copy with a second, appended run:
models, weights (URI + sha256), run ids, counts per model and errors by type, compared
with what the pipeline recorded in ``run.json`` and with the files themselves. The
command line runs in a subprocess, as a user runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from explore import summary

pytest_plugins = ("explore_fixtures",)

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_json(output: str) -> dict:
  with open(os.path.join(output, "run.json"), encoding="utf-8") as f:
    return json.load(f)


def _inspect(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "pipelines.inspect", *args], cwd=_REPO,
                        capture_output=True, text=True, timeout=120, check=False)


def test_describe_matches_run_json_and_the_files(real_output):
  record = _run_json(real_output.output)
  described = summary.describe(real_output.output)
  (partition,) = described["partitions"]
  assert partition["run_id"] == record["run_id"] == real_output.summary.run_id
  assert partition["committed_run_ids"] == record["committed_run_ids"] == [record["run_id"]]
  assert partition["files_matched"] == record["counts"]["files_matched"] == len(real_output.files)
  assert sorted(partition["models"]) == sorted(record["models"])
  for model, described_model in partition["models"].items():
    counts = record["counts"]["models"][model]
    assert described_model["clips"] == counts["files_embedded"]
    assert described_model["frames"] == counts["frames"]
    assert described_model["errors"] == counts["errors"]
    assert described_model["errors_by_type"] == counts["errors_by_type"]
    provenance = record["provenance"][model]
    (run,) = described_model["runs"].values()
    assert run["assets"] == provenance["assets"]  # every weight file: uri and sha256
    assert run["settings"] == provenance["settings"]
    assert run["settings_sha256"] == provenance["settings_sha256"]
    assert described_model == described["partitions"][0]["models"][model]
  assert partition["models"]["vggish"]["errors_by_type"] == {
      "no_match": 1, "too_short": 1, "unsupported_format": 1}
  tfrecords = os.listdir(os.path.join(real_output.output, "vggish", "tfrecord"))
  assert partition["models"]["vggish"]["extras"] == {"tfrecord": {
      "files": len(tfrecords), "bytes": sum(os.path.getsize(os.path.join(
          real_output.output, "vggish", "tfrecord", n)) for n in tfrecords)}}
  assert partition["models"]["clap"]["extras"] == {"labels": {
      "rows": 4 * record["counts"]["models"]["clap"]["files_embedded"], "files": 1}}
  assert partition["count_mismatches"] == [] and partition["unfinished_runs"] == {}
  assert partition["lease"] is None and partition["uncommitted_part_files"] == []
  assert partition["errors_without_model"] == {}
  assert described["totals"] == {m: {"clips": r["clips"], "frames": r["frames"], "errors": r["errors"]}
                                 for m, r in partition["models"].items()}


def test_two_committed_runs(appended_output):
  appended, _ = appended_output
  record = _run_json(appended.output)
  (partition,) = summary.describe(appended.output)["partitions"]
  assert partition["committed_run_ids"] == sorted(record["committed_run_ids"])
  first, second = sorted(record["committed_run_ids"])
  assert sorted(partition["models"]["vggish"]["runs"]) == [first, second]
  assert list(partition["models"]["clap"]["runs"]) == [first]  # the second run was vggish only
  counts = record["counts"]["models"]["vggish"]  # run.json counts the last run only
  assert partition["models"]["vggish"]["clips"] > counts["files_embedded"] == 2
  assert partition["count_mismatches"] == []  # not comparable with two runs: not checked
  text = summary.format_text(summary.describe(appended.output))
  assert f"(committed: {first}, {second})" in text


def test_counts_that_disagree_with_run_json_are_reported(real_output, tmp_path):
  """run.json edited BY THE TEST: one model's counts no longer match its files."""
  out = tmp_path / "out"
  shutil.copytree(real_output.output, out)
  record = _run_json(str(out))
  record["counts"]["models"]["clap"]["files_embedded"] += 1
  (out / "run.json").write_text(json.dumps(record))
  (partition,) = summary.describe(str(out))["partitions"]
  clips = partition["models"]["clap"]["clips"]
  assert partition["count_mismatches"] == [
      f"clap: clips {clips} in the files, run.json files_embedded {clips + 1}"]
  assert "COUNT MISMATCH with run.json: clap: clips" in summary.format_text(summary.describe(str(out)))


def test_cli_text_json_partitions_and_errors(real_output, appended_output, tmp_path):
  record = _run_json(real_output.output)
  done = _inspect(real_output.output)
  assert done.returncode == 0, done.stderr
  text = done.stdout
  run_id = record["run_id"]
  assert f"run {run_id} (committed: {run_id})" in text
  assert f"files matched by the last run: {record['counts']['files_matched']}" in text
  for model, counts in record["counts"]["models"].items():
    by_type = ", ".join(f"{k}={v}" for k, v in sorted(counts["errors_by_type"].items()))
    assert (f"{model}: {counts['files_embedded']} clips, {counts['frames']} frames, "
            f"{counts['errors']} errors ({by_type})") in text
    for name, asset in record["provenance"][model]["assets"].items():
      assert f"{name}: {asset['uri']}  sha256 {asset['sha256']}" in text
    assert f"settings_sha256 {record['provenance'][model]['settings_sha256']}" in text
  assert "tfrecord/: 1 files" in text and "labels/: " in text
  assert "MISMATCH" not in text and "uncommitted" not in text
  done = _inspect(real_output.output, "--json")
  assert done.returncode == 0 and json.loads(done.stdout) == json.loads(
      json.dumps(summary.describe(real_output.output)))

  root = tmp_path / "daily"
  shutil.copytree(real_output.output, root / "dt=2026-03-04")
  shutil.copytree(appended_output[0].output, root / "dt=2026-03-05")
  done = _inspect(str(root))
  assert done.returncode == 0, done.stderr
  vggish = record["counts"]["models"]["vggish"]
  assert (f"2 partitions; totals: clap: {2 * record['counts']['models']['clap']['files_embedded']} "
          f"clips") in done.stdout
  assert f"vggish: {2 * vggish['files_embedded'] + 2} clips" in done.stdout

  for args, message in (([str(tmp_path / "nothing")], "error: expected an audiobeam output with "
                                                      "run.json"),
                        ([str(real_output.corpus)], "error: expected an audiobeam output")):
    done = _inspect(*args)
    assert done.returncode == 2 and done.stdout == "" and done.stderr.startswith(message), done.stderr
