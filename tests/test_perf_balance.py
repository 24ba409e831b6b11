"""Work balance on the local multi-processing runner: what the benchmark found mattered.

The local runner hands grouped files to its workers round-robin in arrival order, so
MatchAudio emits the files of a pattern largest first (see transforms/match.py).
"""

from __future__ import annotations

from transforms.match import _MatchPatternFn


def test_matched_files_come_largest_first(tmp_path):
  sizes = [10, 3000, 700, 0, 5000, 20]
  for i, size in enumerate(sizes):
    (tmp_path / f"f{i}.wav").write_bytes(b"x" * size)
  files = list(_MatchPatternFn().process(str(tmp_path / "*.wav")))
  assert [f.size_bytes for f in files] == sorted(sizes, reverse=True)


def test_multi_processing_workers_share_the_cores_between_their_tensorflow_pools(monkeypatch):
  """While the job runs, workers get cores // workers intra-op threads; user values win."""
  import os

  from apache_beam.options.pipeline_options import PipelineOptions

  from pipelines import embed

  env = embed.INTRA_OP_THREADS_ENV
  cores = len(os.sched_getaffinity(0))
  multi = PipelineOptions(["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
  monkeypatch.delenv(env, raising=False)
  with embed._share_cores_between_workers(PipelineOptions(["--direct_running_mode=in_memory"])):
    assert env not in os.environ
  with embed._share_cores_between_workers(multi):
    assert os.environ[env] == str(max(1, cores // 2))
  assert env not in os.environ  # Restored: the launcher's own TensorFlow is not affected.
  monkeypatch.setenv(env, "7")
  with embed._share_cores_between_workers(multi):
    assert os.environ[env] == "7"
  assert os.environ[env] == "7"
