"""MatchAudio: input patterns -> one ``AudioFile`` per distinct matched file.

Patterns go through Beam FileSystems (local paths, ``gs://``, ``s3://``; globs
including ``**``). We match in our own DoFn rather than ``fileio.MatchAll`` (which
calls the same ``FileSystems.match``) so that a pattern matching nothing can be
attributed to its pattern and become an ``errors/`` row (stage ``match``, error_type
``no_match``) instead of vanishing. A pattern that cannot be matched at all (a scheme
Beam has no filesystem for, a listing that fails) is also one ``errors/`` row (stage
``match``, error_type ``unsupported_scheme`` / ``match_failed``), never a failed run; its
message goes through ``audiobeam.redact`` like every errors row. The same file matched by two patterns is kept once;
local paths are made absolute first, so ``a.wav`` and ``./a.wav`` are one input and the
``uri`` column does not depend on the working directory.
"""

from __future__ import annotations

import os

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from transforms import progress
from transforms.records import AudioFile, InputFailure
from audiobeam.redact import redact_text, redact_uri

__all__ = ["MatchAudio", "FAILURES_TAG"]

FAILURES_TAG = "failures"
_NAMESPACE = "audiobeam"


class _MatchPatternFn(beam.DoFn):
  """pattern -> AudioFile per match; TaggedOutput(failures) for a pattern matching nothing."""

  def process(self, pattern: str):
    try:
      results = FileSystems.match([pattern])
    except Exception as error:  # pylint: disable=broad-except  # one bad pattern != failed run
      unsupported = isinstance(error, ValueError) and "Unable to get filesystem" in str(error)
      yield beam.pvalue.TaggedOutput(FAILURES_TAG, InputFailure(
          file=AudioFile(uri=pattern), stage="match",
          error_type="unsupported_scheme" if unsupported else "match_failed",
          message=redact_text(
              f"expected to list files matching {redact_uri(pattern)!r}, found "
              f"{type(error).__name__}: {error}; check the --input pattern and its scheme "
              "(local paths, gs://, s3://) and that the storage is reachable")[:2000]))
      return
    found = 0
    for result in results:
      for metadata in _largest_first(result.metadata_list):
        path = metadata.path
        if FileSystems.get_scheme(path) is None:
          # One spelling per file: './a.wav' == 'a.wav'. (Globs list regular files only; a
          # directory named explicitly is kept and becomes an 'unreadable' errors row.)
          path = os.path.abspath(path)
        found += 1
        yield AudioFile(
            uri=path,
            size_bytes=int(metadata.size_in_bytes) if metadata.size_in_bytes is not None else None,
            last_modified_seconds=(float(metadata.last_updated_in_seconds)
                                   if metadata.last_updated_in_seconds else None))
    if not found:
      yield beam.pvalue.TaggedOutput(FAILURES_TAG, InputFailure(
          file=AudioFile(uri=pattern), stage="match", error_type="no_match",
          message=(f"expected at least one file matching {pattern!r}, found none; check the "
                   "--input pattern (globs: *, ?, ** via Beam FileSystems)")))


def _largest_first(metadata_list):
  """Matches ordered by size, largest first (unknown sizes last).

  The local multi-processing runner hands the grouped files to its workers round-robin
  in this order, so largest-first spreads long files evenly over the workers instead of
  by directory-listing order (measured: 2 long files + 20 clips on 2 workers had both
  long files on one worker, ~3x the other's work). Other runners ignore the order.
  """
  return sorted(metadata_list, key=lambda m: -(m.size_in_bytes or 0))


def _first(uri_and_files):
  _, files = uri_and_files
  return next(iter(files))


class MatchAudio(beam.PTransform):
  """PBegin -> (files: PCollection[AudioFile], failures: PCollection[InputFailure]).

  ``files`` are distinct by URI and redistributed (the dedupe is a GroupByKey, so it
  also breaks fusion: files spread across workers before the expensive decode).
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
        | "KeyByUri" >> beam.Map(lambda f: (f.uri, f))
        | "GroupByUri" >> beam.GroupByKey()
        | "Dedupe" >> beam.Map(_first)
        | "CountFiles" >> beam.ParDo(_CountFn("files_matched")))
    return files, matched[FAILURES_TAG]


class _CountFn(beam.DoFn):

  def __init__(self, name: str):
    self._name = name
    self._counter = Metrics.counter(_NAMESPACE, name)

  def process(self, element):
    self._counter.inc()
    progress.record(**{self._name: 1})
    yield element
