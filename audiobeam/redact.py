"""Redaction of credentials in URIs before they reach logs, errors rows or run records.

Users pass URIs that can carry secrets: ``https://user:password@host/a.wav``, signed URLs
(``?X-Goog-Signature=...``, ``?X-Amz-Signature=...&X-Amz-Security-Token=...``, Azure
``?sig=...``), or tokens in a query (``?access_token=...``). audiobeam never writes such a
secret anywhere it can be read back: every URI that goes into the ``errors/`` output, a
log line, the printed summary or ``run.json`` passes through ``redact_uri`` (one URI) or
``redact_text`` (free text such as an exception message that quotes a URI).

Rules: the user-info part (``user:password@``) becomes ``REDACTED@``; every query
parameter keeps its name, and its value becomes ``REDACTED`` unless the key is one of
``SAFE_QUERY_KEYS``: an allowlist of keys whose values select an object or a
representation (``generation``, ``versionId``, ``alt=media``, ``projection=noAcl``,
``fields``), or describe a signed URL without granting anything (its algorithm, date,
expiry, signed header names; Azure SAS version, permissions, start/expiry, resource).
Everything that authenticates or identifies -- signatures (``X-Goog-Signature``,
``X-Amz-Signature``, ``Signature``, ``sig``), tokens (``X-Amz-Security-Token``,
``access_token``, ``token``), credentials and key ids (``X-Goog-Credential``,
``X-Amz-Credential``, ``GoogleAccessId``, ``AWSAccessKeyId``, Azure ``sk*``), API keys
(``key``), passwords, client secrets, OAuth codes -- and every key not on the list is
masked: unknown means masked. Local paths (no ``scheme://``) are returned unchanged.
Redaction is idempotent.
"""

from __future__ import annotations

import re
import urllib.parse

__all__ = ["REDACTED", "redact_uri", "redact_text", "SAFE_QUERY_KEYS"]

REDACTED = "REDACTED"

SAFE_QUERY_KEYS = frozenset({
    # object / representation selectors (GCS JSON API, S3, Azure)
    "generation", "versionid", "alt", "projection", "fields", "prettyprint", "snapshot",
    "partnumber", "restype", "comp", "timeout", "x-id",
    # preconditions (GCS)
    "ifgenerationmatch", "ifgenerationnotmatch", "ifmetagenerationmatch",
    "ifmetagenerationnotmatch",
    # response header overrides (S3 response-*, Azure rsc*)
    "response-content-type", "response-content-disposition", "response-content-encoding",
    "response-content-language", "response-cache-control", "response-expires",
    "rscc", "rscd", "rsce", "rscl", "rsct",
    # what a signed URL is, not what proves it (GCS V2/V4, S3 SigV2/V4)
    "x-goog-algorithm", "x-goog-date", "x-goog-expires", "x-goog-signedheaders",
    "x-amz-algorithm", "x-amz-date", "x-amz-expires", "x-amz-signedheaders", "expires",
    # Azure SAS fields other than the signature and the signing key's identity
    "sv", "ss", "srt", "sp", "se", "st", "spr", "sr",
})
"""Query keys whose values are kept (compared case-insensitively); all others are masked."""

_URI_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>\\]+")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def _redact_query(query: str) -> str:
  parts = []
  for item in query.split("&"):
    if not item:
      parts.append(item)
      continue
    key, sep, _ = item.partition("=")
    if urllib.parse.unquote(key).lower() in SAFE_QUERY_KEYS:
      parts.append(item)
    else:
      parts.append(f"{key}={REDACTED}" if sep else item)
  return "&".join(parts)


def redact_uri(uri: str) -> str:
  """``uri`` with user-info and query values replaced by ``REDACTED`` (see module doc).

  Not a URL (a local path, no ``scheme://``): returned unchanged.
  """
  if not isinstance(uri, str) or not _SCHEME_RE.match(uri):
    return uri
  scheme, rest = uri.split("://", 1)
  # Authority ends at the first '/', '?' or '#'.
  end = len(rest)
  for mark in "/?#":
    index = rest.find(mark)
    if index != -1:
      end = min(end, index)
  authority, tail = rest[:end], rest[end:]
  if "@" in authority:
    authority = REDACTED + "@" + authority.rsplit("@", 1)[1]
  path, hash_mark, fragment = tail.partition("#")
  path, question, query = path.partition("?")
  if question:
    query = _redact_query(query)
  if hash_mark and "=" in fragment:  # tokens in a fragment (OAuth implicit flow style)
    fragment = _redact_query(fragment)
  return f"{scheme}://{authority}{path}{question}{query}{hash_mark}{fragment}"


def redact_text(text: str) -> str:
  """``text`` with every ``scheme://...`` URI in it passed through ``redact_uri``."""
  if not isinstance(text, str) or "://" not in text:
    return text
  return _URI_RE.sub(lambda m: redact_uri(m.group(0)), text)
