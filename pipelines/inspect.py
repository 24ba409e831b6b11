"""``python -m pipelines.inspect OUT``: what made an output.

Prints the models, their weights (URIs and sha256), the committed run ids, counts per
model (clips, frames, errors by type, extras such as ``labels/`` or ``tfrecord/``; checked
against ``run.json``'s counts when one run made every row, a difference printed as COUNT
MISMATCH), the settings that determine the values, and runs that started and did not
commit (the ledger ``_audiobeam/``: writing now, or interrupted). Works on an output
directory, a DAG partition (``.../dt=2026-03-04/``) or a folder of partitions. ``--json``
prints the same as JSON (``explore.summary.describe``). Reads only ``run.json``, the ledger's
small JSON records and Parquet footers. Exits 2 with one ``error: expected ...`` line when
OUT is not an output. Remote outputs: Beam's filesystem flags (``--s3_endpoint_url=...``)
are passed on.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from audiobeam.errors import AudiobeamError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
  p = argparse.ArgumentParser(prog="python -m pipelines.inspect", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("output", metavar="OUT", help="an output of pipelines.embed (local, gs://, s3://)")
  p.add_argument("--json", action="store_true", help="print JSON")
  args, beam_flags = p.parse_known_args(argv)
  unknown = [f for f in beam_flags if not f.startswith("--")]
  if unknown:
    p.error(f"unexpected arguments: {' '.join(unknown)}")
  from explore import outputs, summary  # pylint: disable=import-outside-toplevel

  try:
    outputs.set_filesystem_options(beam_flags)
    record = summary.describe(args.output)
  except AudiobeamError as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  print(json.dumps(record, indent=1, sort_keys=True, ensure_ascii=False) if args.json
        else summary.format_text(record))
  return 0


if __name__ == "__main__":
  sys.exit(main())
