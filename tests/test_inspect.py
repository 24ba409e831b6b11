"""python -m pipelines.inspect / explore.summary: what made an output.

Outputs are WRITTEN BY THE TEST (``explore.testing``, the documented layout, plus a
VGGish ``tfrecord/`` extra and a matching error without a model), not by the pipeline.
"""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq

from explore import summary
from explore.testing import write_synthetic_output
from pipelines import inspect as inspect_cli


def _output(tmp_path):
  synthetic = write_synthetic_output(str(tmp_path / "out"), n_clips=12,
                                     models=("vggish", "yamnet", "clap"))
  tfrecord = os.path.join(synthetic.output, "vggish", "tfrecord")
  os.makedirs(tfrecord)
  with open(os.path.join(tfrecord, f"part-{synthetic.run_id}-00000-of-00001.tfrecord"), "wb") as f:
    f.write(b"\0" * 100)
  # A pattern that matched nothing: an errors row of no model, in a second part file.
  pq.write_table(pa.table({"uri": ["/data/audio/missing/*.wav"], "model": pa.array([None], pa.string()),
                           "stage": ["match"], "error_type": ["no_match"], "message": ["no file"]}),
                 os.path.join(synthetic.output, "errors",
                              f"part-{synthetic.run_id}-00001-of-00002.parquet"))
  return synthetic


def test_describe_counts_weights_runs_and_leftovers(tmp_path):
  synthetic = _output(tmp_path)
  record = summary.describe(synthetic.output)
  (partition,) = record["partitions"]
  assert partition["run_id"] == synthetic.run_id
  assert partition["committed_run_ids"] == [synthetic.run_id]
  assert sorted(partition["models"]) == ["clap", "vggish", "yamnet"]
  vggish = partition["models"]["vggish"]
  assert (vggish["clips"], vggish["frames"]) == (12, sum(synthetic.frame_counts))
  assert vggish["errors_by_type"] == {"corrupt_audio": 1, "too_short": 1, "unsupported_format": 1}
  assert vggish["extras"] == {"tfrecord": {"files": 1, "bytes": 100}}
  assert partition["models"]["clap"]["extras"] == {"labels": {"rows": 36, "files": 1}}
  run = vggish["runs"][synthetic.run_id]
  assert run["assets"]["checkpoint"]["uri"] == "/weights/vggish/vggish_model.ckpt"
  assert len(run["assets"]["checkpoint"]["sha256"]) == 64
  assert run["settings"]["pooling"] == "mean" and len(run["settings_sha256"]) == 64
  assert partition["errors_without_model"] == {"no_match": 1}
  assert len(partition["uncommitted_part_files"]) == 1
  assert record["totals"]["yamnet"] == {"clips": 12, "frames": sum(synthetic.frame_counts),
                                        "errors": 3}


def test_cli_text_json_and_dag_partitions(tmp_path, capsys):
  synthetic = _output(tmp_path)
  assert inspect_cli.main([synthetic.output]) == 0
  text = capsys.readouterr().out
  assert f"run {synthetic.run_id} (committed: {synthetic.run_id})" in text
  assert "vggish: 12 clips" in text and "3 errors (corrupt_audio=1, too_short=1" in text
  assert "checkpoint: /weights/vggish/vggish_model.ckpt  sha256 " in text
  assert "tfrecord/: 1 files, 100 bytes" in text and "labels/: 36 rows" in text
  assert "errors of no model (matching): no_match=1" in text
  assert "uncommitted part files" in text
  assert inspect_cli.main([synthetic.output, "--json"]) == 0
  assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(summary.describe(synthetic.output)))

  root = tmp_path / "daily"
  write_synthetic_output(str(root / "dt=2026-03-04"), n_clips=5, models=("vggish",),
                         run_id="20260304T020000Z-d00001", leftover=False)
  write_synthetic_output(str(root / "dt=2026-03-05"), n_clips=6, models=("vggish", "clap"),
                         run_id="20260305T020000Z-d00002", leftover=False)
  assert inspect_cli.main([str(root)]) == 0
  text = capsys.readouterr().out
  assert "2 partitions; totals: clap: 6 clips" in text and "vggish: 11 clips" in text
  assert inspect_cli.main([str(root / "dt=2026-03-05"), "--json"]) == 0
  one = json.loads(capsys.readouterr().out)
  assert [p["run_id"] for p in one["partitions"]] == ["20260305T020000Z-d00002"]
  assert inspect_cli.main([str(tmp_path / "nothing")]) == 2
  assert "no run.json" in capsys.readouterr().err
