"""audiobeam.redact: credentials in URIs never survive into logs, errors rows or run records."""

from __future__ import annotations

import pytest

from audiobeam.redact import REDACTED, redact_text, redact_uri

SECRET = "s3cr3t-SECRET"


@pytest.mark.parametrize("uri, expected", [
    (f"https://alice:{SECRET}@example.com/a.wav", f"https://{REDACTED}@example.com/a.wav"),
    (f"gs://bucket/a.wav?X-Goog-Algorithm=GOOG4&X-Goog-Credential=sa%40p&X-Goog-Signature={SECRET}",
     f"gs://bucket/a.wav?X-Goog-Algorithm=GOOG4&X-Goog-Credential={REDACTED}"
     f"&X-Goog-Signature={REDACTED}"),
    (f"https://b.s3.amazonaws.com/k.wav?X-Amz-Security-Token={SECRET}&X-Amz-Signature={SECRET}",
     f"https://b.s3.amazonaws.com/k.wav?X-Amz-Security-Token={REDACTED}&X-Amz-Signature={REDACTED}"),
    (f"https://acct.blob.core.windows.net/c/a.wav?sv=2020&sig={SECRET}",
     f"https://acct.blob.core.windows.net/c/a.wav?sv=2020&sig={REDACTED}"),
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
    "http://127.0.0.1:4443/storage/v1/b/b/o/a.wav?projection=noAcl&prettyPrint=false",
    "https://storage.googleapis.com/download/storage/v1/b/b/o/a.wav?alt=media&generation=17",
    "s3://bucket/k.wav?versionId=3HL4kqtJlcpXroDTDmJ&response-content-type=audio%2Fwav",
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


# Real signed-URL layouts (GCS V4 and V2, S3 SigV4 with STS token and SigV2, Azure SAS with a
# user-delegation key): what describes the URL is kept, what proves or identifies is masked.
_SIGNED = {
    "gcs_v4": ("https://storage.googleapis.com/b/a.wav?X-Goog-Algorithm=GOOG4-RSA-SHA256"
               "&X-Goog-Credential=svc%40proj.iam.gserviceaccount.com%2F20240501%2Fauto%2Fstorage"
               "%2Fgoog4_request&X-Goog-Date=20240501T000000Z&X-Goog-Expires=900"
               f"&X-Goog-SignedHeaders=host&X-Goog-Signature={SECRET}"),
    "gcs_v2": (f"https://storage.googleapis.com/b/a.wav?GoogleAccessId=svc%40proj.iam"
               f"&Expires=1714521600&Signature={SECRET}"),
    "s3_v4": ("https://b.s3.amazonaws.com/a.wav?X-Amz-Algorithm=AWS4-HMAC-SHA256"
              "&X-Amz-Credential=AKIAEXAMPLE%2F20240501%2Fus-east-1%2Fs3%2Faws4_request"
              "&X-Amz-Date=20240501T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
              f"&X-Amz-Security-Token={SECRET}&X-Amz-Signature={SECRET}"),
    "s3_v2": f"https://b.s3.amazonaws.com/a.wav?AWSAccessKeyId=AKIAEXAMPLE&Expires=1&Signature={SECRET}",
    "azure": ("https://acct.blob.core.windows.net/c/a.wav?sv=2022-11-02&sr=b&sp=r"
              "&st=2024-05-01T00:00:00Z&se=2024-05-02T00:00:00Z&spr=https&skoid=0000-oid"
              f"&sktid=0000-tenant&skt=2024&ske=2024&sks=b&skv=2022&sig={SECRET}"),
}
_KEPT = {
    "gcs_v4": {"X-Goog-Algorithm", "X-Goog-Date", "X-Goog-Expires", "X-Goog-SignedHeaders"},
    "gcs_v2": {"Expires"},
    "s3_v4": {"X-Amz-Algorithm", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders"},
    "s3_v2": {"Expires"},
    "azure": {"sv", "sr", "sp", "st", "se", "spr"},
}


@pytest.mark.parametrize("name", sorted(_SIGNED))
def test_signed_urls_keep_their_description_and_mask_their_proof_and_identity(name):
  uri = _SIGNED[name]
  redacted = redact_uri(uri)
  assert SECRET not in redacted and "AKIAEXAMPLE" not in redacted
  assert "svc%40proj" not in redacted and "0000-" not in redacted
  original = dict(item.split("=", 1) for item in uri.split("?", 1)[1].split("&"))
  after = dict(item.split("=", 1) for item in redacted.split("?", 1)[1].split("&"))
  assert list(after) == list(original)  # every key kept, in order
  for key, value in after.items():
    assert value == (original[key] if key in _KEPT[name] else REDACTED), key


@pytest.mark.parametrize("key", ["access_token", "token", "key", "api_key", "password",
                                 "client_secret", "code", "session", "unknown_parameter",
                                 "X-Goog-Signature", "x-amz-signature", "SIG"])
def test_secret_and_unknown_keys_are_masked_whatever_their_case(key):
  assert redact_uri(f"https://h/a.wav?{key}={SECRET}") == f"https://h/a.wav?{key}={REDACTED}"


def test_harmless_values_survive_in_storage_error_messages():
  """The message a GCS 404 carries: before, projection=noAcl became REDACTED."""
  message = ("NotFound: 404 GET http://127.0.0.1:4443/storage/v1/b/b/o/missing.wav"
             "?projection=noAcl&prettyPrint=false: No such object")
  assert redact_text(message) == message
