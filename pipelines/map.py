"""``python -m pipelines.map``: an interactive offline map of an embedded collection.

  python -m pipelines.map --input OUT [--model vggish] --output map.html [--png map.png]
      [--method umap|pca|tsne] [--color_by COLUMN] [--metadata FILE.csv]
      [--sample N] [--seed 0]

Each point is a clip (its pooled embedding projected to 2-D); hover shows uri, duration and
top labels; clicking plays local and http(s) clips in the page. The HTML is one file with
plotly.js inlined: it opens offline. See ``explore.mapview``. Remote inputs: Beam's
filesystem flags (``--s3_endpoint_url=...``, ``--project=...``) are passed on.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Sequence

from audiobeam.errors import AudiobeamError
from explore.projection import DEFAULT_METHOD, DEFAULT_SAMPLE, METHODS

__all__ = ["main", "parse_args"]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  p = argparse.ArgumentParser(prog="python -m pipelines.map", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--input", required=True, metavar="OUT",
                 help="an output directory of pipelines.embed (local, gs://, s3://), a dt=... "
                      "partition, or a folder of dt=... partitions")
  p.add_argument("--model", default=None,
                 help="which model's clips to map (default: the run's first model, i.e. the "
                      "first of its --model list)")
  p.add_argument("--output", required=True, metavar="MAP.html", help="the HTML file to write")
  p.add_argument("--png", default=None, metavar="MAP.png",
                 help="also render a PNG (kaleido + a local Chromium)")
  p.add_argument("--method", default=DEFAULT_METHOD, choices=METHODS,
                 help="2-D projection (default %(default)s)")
  p.add_argument("--color_by", default=None, metavar="COLUMN",
                 help="colour points by: folder, label, <model>.top_labels, a clips column "
                      "(container, codec, sample_rate, duration_seconds, ...) or a --metadata column")
  p.add_argument("--metadata", default=None, metavar="FILE.csv",
                 help="a CSV with a uri column, joined on uri; its columns can be --color_by")
  p.add_argument("--sample", type=int, default=DEFAULT_SAMPLE, metavar="N",
                 help="map a deterministic sample of N clips when there are more "
                      "(default %(default)s; 0 maps all)")
  p.add_argument("--seed", type=int, default=0, help="seed of the sample and the projection")
  args, beam_flags = p.parse_known_args(argv)
  unknown = [f for f in beam_flags if not f.startswith("--")]
  if unknown:
    p.error(f"unexpected arguments: {' '.join(unknown)}")
  args.beam_flags = beam_flags  # e.g. --s3_endpoint_url=... for a remote --input
  return args


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_args(argv)
  from explore import mapview, outputs  # pylint: disable=import-outside-toplevel

  started = time.monotonic()
  try:
    outputs.set_filesystem_options(args.beam_flags)
    data = mapview.load_map_data(args.input, args.model, method=args.method,
                                 color_by=args.color_by, metadata=args.metadata,
                                 sample=args.sample, seed=args.seed)
    size_bytes = mapview.write_html(data, args.output)
    if args.png:
      mapview.write_png(data, args.png)
  except AudiobeamError as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  shown = (f"{len(data.uris):,} of {data.total_clips:,} clips (sample, seed {args.seed})"
           if data.sampled else f"{len(data.uris):,} clips")
  others = [m for m in data.models if m != data.model]
  print(f"wrote {args.output} ({size_bytes / 1e6:.1f} MB): {data.model}, {shown}, "
        f"{args.method}" + (f", PNG {args.png}" if args.png else "")
        + f", {time.monotonic() - started:.1f} s"
        + (f" (also in this output: {', '.join(others)}; pick with --model)"
           if others and args.model is None else ""))
  return 0


if __name__ == "__main__":
  sys.exit(main())
