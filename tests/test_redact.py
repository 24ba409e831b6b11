"""audiobeam.redact: credentials in URIs never survive into logs, errors rows or run records."""

from __future__ import annotations

import pytest

from audiobeam.redact import REDACTED, redact_text, redact_uri

SECRET = "s3cr3t-SECRET"


@pytest.mark.parametrize("uri, expected", [
    (f"https://alice:{SECRET}@example.com/a.wav", f"https://{REDACTED}@example.com/a.wav"),
    (f"gs://bucket/a.wav?X-Goog-Algorithm=GOOG4&X-Goog-Credential=sa%40p&X-Goog-Signature={SECRET}",
     f"gs://bucket/a.wav?X-Goog-Algorithm={REDACTED}&X-Goog-Credential={REDACTED}"
     f"&X-Goog-Signature={REDACTED}"),
    (f"https://b.s3.amazonaws.com/k.wav?X-Amz-Security-Token={SECRET}&X-Amz-Signature={SECRET}",
     f"https://b.s3.amazonaws.com/k.wav?X-Amz-Security-Token={REDACTED}&X-Amz-Signature={REDACTED}"),
    (f"https://acct.blob.core.windows.net/c/a.wav?sv=2020&sig={SECRET}",
     f"https://acct.blob.core.windows.net/c/a.wav?sv={REDACTED}&sig={REDACTED}"),
    (f"https://u:{SECRET}@h/p?access_token={SECRET}#frag",
     f"https://{REDACTED}@h/p?access_token={REDACTED}#frag"),
])
def test_redact_uri_removes_userinfo_and_query_values(uri, expected):
  assert redact_uri(uri) == expected
  assert SECRET not in redact_uri(uri)


@pytest.mark.parametrize("uri", [
    "gs://bucket/audio/a.wav",
    "s3://bucket/dir/b c.flac",
    "/local/path/with?question.wav",
    "relative/h\u00e9llo @ home.wav",
    "gs://bucket/a.wav?generation=1712345",
])
def test_redact_uri_leaves_uris_without_secrets_unchanged(uri):
  assert redact_uri(uri) == uri


def test_redact_uri_is_idempotent():
  uri = f"https://alice:{SECRET}@example.com/a.wav?sig={SECRET}"
  once = redact_uri(uri)
  assert redact_uri(once) == once


def test_redact_text_redacts_every_uri_inside_a_message():
  message = (f"ValueError: Unable to get filesystem from specified path. Path specified: "
             f"'https://bob:{SECRET}@example.com/x.wav?X-Goog-Signature={SECRET}' and "
             f"gs://b/y.wav?token={SECRET}.")
  redacted = redact_text(message)
  assert SECRET not in redacted
  assert "https://REDACTED@example.com/x.wav" in redacted
  assert "Unable to get filesystem" in redacted
