"""``python -m pipelines.search``: find the clips (or frames) nearest to a query.

  python -m pipelines.search --index OUT [--model M]
      (--text "a train passing" | --audio QUERY_FILE | --like URI)
      [--top_k 10] [--frames] [--json] [--cache_dir DIR] [--rebuild]
      [--checkpoint PATH --pca_params PATH | --asset NAME=PATH ...]

Exact cosine top-k. The first query of an output builds its index into the cache
(``<cache>/search/``; never into OUT); later queries open it memory-mapped. ``--audio``
embeds the query with the index's own model, weights and settings (read from its
provenance; other weights are refused); ``--text`` needs a model with a text encoder
(CLAP); ``--like`` uses a clip already in the index. Prints a ranked table, or JSON with
``--json``. Bad input (no output there, a model the output does not have, --text for a
model without a text encoder, other weights than the index's) exits with status 2 and one
``error: expected ..., found ...`` line. Remote outputs: Beam's filesystem flags
(``--s3_endpoint_url=...``) are passed on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Sequence

from audiobeam.errors import AudiobeamError, ConfigError

__all__ = ["main", "parse_args", "format_table"]


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
  p = argparse.ArgumentParser(prog="python -m pipelines.search", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--index", required=True, metavar="OUT",
                 help="an output of pipelines.embed (local, gs://, s3://; or a folder of dt= partitions)")
  p.add_argument("--model", default=None,
                 help="which model's embeddings (default: clap for --text, else the run's "
                      "first model)")
  query = p.add_mutually_exclusive_group(required=True)
  query.add_argument("--text", help="a description (models with a text encoder: clap)")
  query.add_argument("--audio", metavar="QUERY_FILE", help="an audio file (local, gs://, s3://)")
  query.add_argument("--like", metavar="URI", help="a clip of the index: its nearest neighbours")
  p.add_argument("--top_k", type=int, default=10, help="how many results (default %(default)s)")
  p.add_argument("--frames", action="store_true",
                 help="search frames (with start times) instead of whole clips")
  p.add_argument("--json", action="store_true", help="print JSON instead of a table")
  p.add_argument("--cache_dir", default=None,
                 help="where indexes (and copied weights) are cached (default $AUDIOBEAM_CACHE_DIR "
                      "or ~/.cache/audiobeam)")
  p.add_argument("--rebuild", action="store_true", help="build the index again")
  p.add_argument("--checkpoint", default=None,
                 help="a local copy of the index's checkpoint (VGGish's file, CLAP's folder)")
  p.add_argument("--pca_params", default=None, help="VGGish: the index's PCA file (a local copy)")
  p.add_argument("--asset", action="append", default=[], metavar="NAME=PATH",
                 help="any model: a local copy of the index's weights, NAME a file option of "
                      "the model (yamnet_weights, yamnet_class_map, clap_checkpoint, ...) or "
                      "an asset name shown by pipelines.inspect (repeatable)")
  args, beam_flags = p.parse_known_args(argv)
  unknown = [f for f in beam_flags if not f.startswith("--")]
  if unknown:
    p.error(f"unexpected arguments: {' '.join(unknown)}")
  return args, beam_flags


def _overrides(args: argparse.Namespace) -> dict[str, str]:
  overrides = {}
  for item in args.asset:
    name, sep, path = item.partition("=")
    if not sep or not name or not path:
      raise ConfigError(f"expected --asset NAME=PATH, found {item!r}")
    overrides[name] = path
  if args.checkpoint:
    overrides["checkpoint"] = args.checkpoint
  if args.pca_params:
    overrides["pca_params"] = args.pca_params
  return overrides


def _choose_model(out, model: str | None, text: bool) -> str:
  from explore import outputs  # pylint: disable=import-outside-toplevel
  from explore.search import text_models  # pylint: disable=import-outside-toplevel

  if model is not None:
    return outputs.require_model(out, model)
  present = outputs.models(out)
  if text:
    capable = [name for name in text_models() if name in present]
    if capable:
      return capable[0]
    if len(present) != 1:  # one model: query_vector_from_text says what to do instead
      raise ConfigError(f"expected --text to search a model that embeds text and audio in one "
                        f"space ({', '.join(text_models())}), found only "
                        f"{', '.join(present) or 'no models'} in {out.path!r}: search them with "
                        "--audio QUERY_FILE or --like URI, or embed the collection with "
                        "--model clap")
  return outputs.default_model(out)


def format_table(hits, frames: bool) -> str:
  """The ranked hits as an aligned text table."""
  times = f"{'start_s':>8}  {'end_s':>8}  " if frames else ""
  header = f"{'rank':>4}  {'score':>7}  {times}uri"
  lines = [header]
  for hit in hits:
    times = (f"{hit.start_seconds:8.2f}  {hit.end_seconds:8.2f}  " if frames else "")
    lines.append(f"{hit.rank:>4}  {hit.score:7.4f}  {times}{hit.uri}")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  args, beam_flags = parse_args(argv)
  from explore import outputs, search  # pylint: disable=import-outside-toplevel

  level = "frames" if args.frames else "clips"
  try:
    if args.top_k < 1:
      raise ConfigError(f"expected --top_k >= 1, found {args.top_k}")
    overrides = _overrides(args)
    outputs.set_filesystem_options(beam_flags)
    out = outputs.open_output(args.index)
    model = _choose_model(out, args.model, args.text is not None)
    started = time.monotonic()
    if args.text is not None:  # the query first: a model without text fails before any build
      vector = search.query_vector_from_text(out, model, args.text, overrides=overrides,
                                             cache_dir=args.cache_dir)
      query = {"text": args.text}
    elif args.audio is not None:
      vector = search.query_vector_from_audio(out, model, args.audio, level=level,
                                              overrides=overrides, cache_dir=args.cache_dir)
      query = {"audio": args.audio}
    embed_seconds = time.monotonic() - started
    index = search.open_index(out, model, level, cache_dir=args.cache_dir, rebuild=args.rebuild,
                              progress=lambda m: print(m, file=sys.stderr))
    if args.like is not None:
      started = time.monotonic()
      vector = search.query_vector_from_row(index, args.like)
      query = {"like": args.like}
      embed_seconds = time.monotonic() - started
    started = time.monotonic()
    hits = index.query(vector, args.top_k)
    query_seconds = time.monotonic() - started
  except AudiobeamError as error:
    print(f"error: {error}", file=sys.stderr)
    return 2
  if args.json:
    print(json.dumps({
        "index": {"output": out.path, "model": model, "level": level, "rows": len(index),
                  "dim": index.dim, "built": index.built,
                  "build_seconds": round(index.build_seconds, 3), "directory": index.directory},
        "query": {**query, "embed_seconds": round(embed_seconds, 3),
                  "search_seconds": round(query_seconds, 4)},
        "results": [h.to_dict() for h in hits]}, indent=1, ensure_ascii=False))
  else:
    print(format_table(hits, args.frames))
    print(f"({model} {level}: {len(index):,} rows x {index.dim}; "
          f"search {query_seconds * 1e3:.1f} ms"
          + (f"; index built in {index.build_seconds:.1f} s" if index.built else "") + ")",
          file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
