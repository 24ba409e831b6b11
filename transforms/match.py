"""MatchAudio: input patterns -> one ``AudioFile`` per distinct matched file.

Remote patterns (``gs://``, ``s3://``, ...) go through Beam FileSystems. **Local**
patterns (no scheme) are matched here, with the glob syntax of Beam's
``FileSystem.match`` (``*`` within one path segment, ``**`` across segments, ``?``,
``[...]``) but a walk of our own, because Beam's local listing (``os.walk`` without
following links) silently skipped every file behind a symlinked directory (``*/*.wav``
reported ``no_match`` for a tree of links) and listed FIFOs, devices and dangling
links that later hung or vanished. Our walk:

* follows symlinked directories, with loop protection: a link to a directory that is
  already on the current path (an ancestor, or itself) is not entered again (its files
  are listed through that ancestor);
* enters only directories the pattern can match below (a segment-wise prefix test,
  ``**`` matching any depth), instead of walking the whole tree under the prefix;
* gives every matching entry an outcome: a regular file (symlinks followed) is an
  ``AudioFile``; a FIFO, socket or device is an ``errors/`` row (stage ``match``,
  error_type ``not_a_regular_file``: it is never opened, it could block the worker); a
  dangling symlink is a row ``not_found``; an entry that cannot be examined is
  ``permission_denied`` (or ``unreadable`` for other OS errors), and so is a directory the pattern reaches into but that cannot
  be listed (its files would otherwise vanish silently). Directories themselves are
  never inputs of a glob (a directory named explicitly is a ``not_a_regular_file`` row).

Every refused entry counts in the ``files_matched`` metric (it was matched, and lands in
``errors/``), so files_matched = clips rows + errors rows - pattern rows. A pattern
matching nothing is one ``errors/`` row (stage ``match``, error_type ``no_match``); a pattern that cannot be matched at all (a scheme Beam has no filesystem
for, a listing that fails) is one row ``unsupported_scheme`` / ``match_failed``, never a
failed run; messages go through ``audiobeam.redact`` like every errors row.

One input per file: local paths are made absolute (``a.wav`` and ``./a.wav`` are one
input and the ``uri`` column does not depend on the working directory), and files are
deduplicated by their real path, so a file reached both directly and through a
symlinked directory (or by two patterns) is embedded once: under its real path when
that spelling was matched, else under the lexicographically smallest one. Failures are deduplicated by ``uri``.
"""

from __future__ import annotations

import os

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from audiobeam.inputs import match_local
from audiobeam.redact import redact_text, redact_uri
from transforms import progress
from transforms.records import AudioFile, InputFailure

__all__ = ["MatchAudio", "FAILURES_TAG", "PATTERN_ERROR_TYPES"]

FAILURES_TAG = "failures"
_NAMESPACE = "audiobeam"


def _failure(uri: str, error_type: str, message: str) -> InputFailure:
  return InputFailure(file=AudioFile(uri=uri), stage="match", error_type=error_type,
                      message=redact_text(message)[:2000])


def _match_local(pattern: str):
  """(files: list[AudioFile], failures: list[InputFailure]) of a local pattern."""
  found = match_local(pattern)
  files = [AudioFile(uri=f.path, size_bytes=f.size_bytes,
                     last_modified_seconds=f.last_modified_seconds) for f in found.files]
  failures = [_failure(path, error.error_type, str(error)) for path, error in found.failures]
  return files, failures


class _MatchPatternFn(beam.DoFn):
  """pattern -> AudioFile per match; TaggedOutput(failures) for entries that cannot be
  inputs and for a pattern matching nothing."""

  def process(self, pattern: str):
    if FileSystems.get_scheme(pattern) is None:
      files, failures = _match_local(pattern)
      for failure in failures:
        yield beam.pvalue.TaggedOutput(FAILURES_TAG, failure)
      yield from sorted(files, key=lambda f: (-(f.size_bytes or 0), f.uri))
      if not files and not failures:
        yield beam.pvalue.TaggedOutput(FAILURES_TAG, _no_match(pattern))
      return
    try:
      results = FileSystems.match([pattern])
    except Exception as error:  # pylint: disable=broad-except  # one bad pattern != failed run
      unsupported = isinstance(error, ValueError) and "Unable to get filesystem" in str(error)
      yield beam.pvalue.TaggedOutput(FAILURES_TAG, _failure(
          pattern, "unsupported_scheme" if unsupported else "match_failed",
          f"expected to list files matching {redact_uri(pattern)!r}, found "
          f"{type(error).__name__}: {error}; check the --input pattern and its scheme "
          "(local paths, gs://, s3://) and that the storage is reachable"))
      return
    found = 0
    for result in results:
      for metadata in _largest_first(result.metadata_list):
        found += 1
        yield AudioFile(
            uri=metadata.path,
            size_bytes=int(metadata.size_in_bytes) if metadata.size_in_bytes is not None else None,
            last_modified_seconds=(float(metadata.last_updated_in_seconds)
                                   if metadata.last_updated_in_seconds else None))
    if not found:
      yield beam.pvalue.TaggedOutput(FAILURES_TAG, _no_match(pattern))


def _no_match(pattern: str) -> InputFailure:
  return _failure(pattern, "no_match",
                  f"expected at least one file matching {pattern!r}, found none; check the "
                  "--input pattern (globs: *, ?, ** via Beam FileSystems)")


def _largest_first(metadata_list):
  """Matches ordered by size, largest first (unknown sizes last).

  The local multi-processing runner hands the grouped files to its workers round-robin
  in this order, so largest-first spreads long files evenly over the workers instead of
  by directory-listing order (measured: 2 long files + 20 clips on 2 workers had both
  long files on one worker, ~3x the other's work). Other runners ignore the order.
  """
  return sorted(metadata_list, key=lambda m: -(m.size_in_bytes or 0))


def _identity(file: AudioFile) -> str:
  """One key per file: the real path for local files (symlinks resolved), else the URI."""
  if FileSystems.get_scheme(file.uri) is None:
    return os.path.realpath(file.uri)
  return file.uri


def _preferred_spelling(key_and_files):
  """The file's real path if it was matched under it, else its smallest spelling."""
  identity, files = key_and_files
  return min(files, key=lambda f: (f.uri != identity, f.uri))


def _first_failure(key_and_failures):
  _, failures = key_and_failures
  return min(failures, key=lambda f: (f.error_type, f.message))


class MatchAudio(beam.PTransform):
  """PBegin -> (files: PCollection[AudioFile], failures: PCollection[InputFailure]).

  ``files`` are distinct by real path (local) or URI (remote) and redistributed (the
  dedupe is a GroupByKey, so it also breaks fusion: files spread across workers before
  the expensive decode). ``failures`` are distinct by ``uri``.
  """

  def __init__(self, patterns: list[str]):
    super().__init__()
    self._patterns = list(patterns)

  def expand(self, pbegin):
    matched = (
        pbegin
        | "Patterns" >> beam.Create(self._patterns)
        | "Match" >> beam.ParDo(_MatchPatternFn()).with_outputs(FAILURES_TAG, main="files"))
    files = (
        matched.files
        | "KeyByFile" >> beam.Map(lambda f: (_identity(f), f))
        | "GroupByFile" >> beam.GroupByKey()
        | "Dedupe" >> beam.Map(_preferred_spelling)
        | "CountFiles" >> beam.ParDo(_CountFn("files_matched")))
    failures = (
        matched[FAILURES_TAG]
        | "KeyFailureByUri" >> beam.Map(lambda f: (f.file.uri, f))
        | "GroupFailureByUri" >> beam.GroupByKey()
        | "DedupeFailures" >> beam.Map(_first_failure)
        | "CountRefused" >> beam.ParDo(_CountRefusedFn()))
    return files, failures


PATTERN_ERROR_TYPES = frozenset({"no_match", "match_failed", "unsupported_scheme"})
"""Match failures that stand for a whole pattern; every other one is a matched entry."""


class _CountRefusedFn(beam.DoFn):
  """Counts entries a pattern matched but that cannot be inputs (a FIFO, a dangling
  link, ...) as matched files too, so ``files_matched`` = clips + errors - pattern rows."""

  def __init__(self):
    self._matched = Metrics.counter(_NAMESPACE, "files_matched")
    self._refused = Metrics.counter(_NAMESPACE, "files_refused_at_match")

  def process(self, failure: InputFailure):
    if failure.error_type not in PATTERN_ERROR_TYPES:
      self._matched.inc()
      self._refused.inc()
    yield failure


class _CountFn(beam.DoFn):

  def __init__(self, name: str):
    self._name = name
    self._counter = Metrics.counter(_NAMESPACE, name)

  def process(self, element):
    self._counter.inc()
    progress.record(**{self._name: 1})
    yield element
