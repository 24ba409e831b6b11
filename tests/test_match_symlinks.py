"""MatchAudio on real local trees: symlinked directories are followed (with loop
protection), non-regular entries get an errors row, each file is one input.

Before: Beam's local listing (``os.walk`` without following links) skipped every file
behind a symlinked directory silently (``links/*/*.wav`` was ``no_match``), and listed
FIFOs and devices as inputs (a FIFO then blocked the run in ``FileSystems.open``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.io.filesystems import FileSystems
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to

import robust_fixtures
from audiobeam.inputs import glob_regex, match_local
from transforms.match import MatchAudio, _MatchPatternFn

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def tree(tmp_path):
  """root/real/{b.wav, sub/a.wav}, root/links/sub_link -> ../real/sub,
  root/links/outside_link -> <tmp>/outside (c.wav), root/real/sub/up -> .. (a loop)."""
  root = tmp_path / "root"
  (root / "real" / "sub").mkdir(parents=True)
  (root / "links").mkdir()
  (tmp_path / "outside").mkdir()
  for path, size in ((root / "real" / "b.wav", 20), (root / "real" / "sub" / "a.wav", 10),
                     (tmp_path / "outside" / "c.wav", 30)):
    path.write_bytes(b"x" * size)
  os.symlink("../real/sub", root / "links" / "sub_link")
  os.symlink(tmp_path / "outside", root / "links" / "outside_link")
  os.symlink("..", root / "real" / "sub" / "up")  # loop: sub/up/sub/up/...
  return root


def _paths(found):
  return sorted(f.path for f in found.files)


def test_files_behind_symlinked_directories_are_matched(tree):
  found = match_local(str(tree / "links" / "*" / "*.wav"))
  assert _paths(found) == [str(tree / "links" / "outside_link" / "c.wav"),
                          str(tree / "links" / "sub_link" / "a.wav")]
  assert found.failures == ()


def test_double_star_follows_links_and_stops_at_loops(tree):
  found = match_local(str(tree / "**.wav"))
  assert _paths(found) == sorted([
      str(tree / "links" / "outside_link" / "c.wav"),
      str(tree / "links" / "sub_link" / "a.wav"),
      str(tree / "links" / "sub_link" / "up" / "b.wav"),   # sub_link/up -> real
      str(tree / "real" / "b.wav"),
      str(tree / "real" / "sub" / "a.wav"),
  ])
  assert found.failures == ()


def test_a_file_reached_twice_is_one_input_under_its_real_path(tree):
  patterns = [str(tree / "**.wav"), str(tree / "links" / "sub_link" / "a.wav")]
  with beam.Pipeline(runner=FnApiRunner()) as pipeline:
    files, failures = pipeline | MatchAudio(patterns)
    assert_that(files | "Uris" >> beam.Map(lambda f: f.uri), equal_to([
        str(tree / "links" / "outside_link" / "c.wav"),
        str(tree / "real" / "b.wav"),
        str(tree / "real" / "sub" / "a.wav"),
    ]), label="files")
    assert_that(failures, equal_to([]), label="failures")


def test_non_regular_entries_get_errors_rows_once(tmp_path):
  os.mkfifo(tmp_path / "fifo.wav")
  os.symlink("/dev/zero", tmp_path / "zero.wav")
  os.symlink(tmp_path / "missing.wav", tmp_path / "dangling.wav")
  socket.socket(socket.AF_UNIX).bind(str(tmp_path / "sock.wav"))
  (tmp_path / "dir.wav").mkdir()
  (tmp_path / "ok.wav").write_bytes(b"RIFF")
  patterns = [str(tmp_path / "*.wav"), str(tmp_path / "dangling.wav"), str(tmp_path / "dir.wav")]
  with beam.Pipeline(runner=FnApiRunner()) as pipeline:
    files, failures = pipeline | MatchAudio(patterns)
    assert_that(files | "Uris" >> beam.Map(lambda f: f.uri),
                equal_to([str(tmp_path / "ok.wav")]), label="files")
    assert_that(failures | "Rows" >> beam.Map(lambda f: (f.uri, f.stage, f.error_type)),
                equal_to([(str(tmp_path / "fifo.wav"), "match", "not_a_regular_file"),
                          (str(tmp_path / "zero.wav"), "match", "not_a_regular_file"),
                          (str(tmp_path / "sock.wav"), "match", "not_a_regular_file"),
                          (str(tmp_path / "dangling.wav"), "match", "not_found"),
                          (str(tmp_path / "dir.wav"), "match", "not_a_regular_file")]),
                label="failures")


def test_a_pattern_matching_nothing_is_still_no_match(tmp_path):
  outputs = list(_MatchPatternFn().process(str(tmp_path / "nothing*.wav")))
  assert [(o.value.stage, o.value.error_type) for o in outputs] == [("match", "no_match")]


@pytest.mark.parametrize("relative", ["*", "*.wav", "**", "sub/*.wav", "**/*.flac", "?.wav",
                                      "[ab].wav", "sub/", "a.wav", "sub/deeper/*"])
def test_plain_trees_match_exactly_what_beam_matches(tmp_path, relative):
  """Without symlinks or special files our walk and Beam's local match agree."""
  for name in ("a.wav", "b.wav", "ab.wav", "sub/c.wav", "sub/d.flac", "sub/deeper/e.wav",
               "x.flac"):
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_bytes(b"x")
  pattern = str(tmp_path / relative) + ("/" if relative.endswith("/") else "")
  ours = match_local(pattern)
  beams = [m.path for r in FileSystems.match([pattern]) for m in r.metadata_list]
  assert _paths(ours) == sorted(beams) and ours.failures == ()


@pytest.mark.parametrize("pattern", ["/a/*.wav", "/a/**", "/a/?b[!x]c[]]d[^e]f\\g[",
                                     "/x/y z+(1).wav", "/a/[!]x]", "rel/**/[0-9]*.flac"])
def test_glob_regex_is_beams_translate_pattern(pattern):
  from apache_beam.io.filesystem import FileSystem
  assert glob_regex(pattern).pattern == FileSystem.translate_pattern(pattern)


def test_an_unlistable_directory_the_pattern_reaches_is_an_errors_row(tmp_path):
  """Mode 000 only stops a process without CAP_DAC_OVERRIDE: as root, in a child started
  without it (setpriv); skipped if that is impossible."""
  (tmp_path / "open").mkdir()
  (tmp_path / "open" / "a.wav").write_bytes(b"x")
  (tmp_path / "locked").mkdir()
  (tmp_path / "locked" / "b.wav").write_bytes(b"x")
  (tmp_path / "locked").chmod(0)
  drop = robust_fixtures.can_drop_file_permission_override()
  if os.geteuid() == 0 and not drop:
    pytest.skip("running as root without a way to start an unprivileged child")
  code = textwrap.dedent(f"""
      import json
      from audiobeam.inputs import match_local
      found = match_local({str(tmp_path / "*" / "*.wav")!r})
      print(json.dumps([[f.path for f in found.files],
                        [[path, e.error_type] for path, e in found.failures]]))
      """)
  prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if drop else []
  try:
    done = subprocess.run([*prefix, sys.executable, "-c", code], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)
  finally:
    (tmp_path / "locked").chmod(0o755)
  assert json.loads(done.stdout.strip().splitlines()[-1]) == [
      [str(tmp_path / "open" / "a.wav")], [[str(tmp_path / "locked"), "permission_denied"]]
  ], done.stderr[-2000:]
