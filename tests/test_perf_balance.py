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
