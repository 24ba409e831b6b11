"""Local GCS and S3 emulators for tests: real HTTP servers on loopback, ephemeral ports.

Fixtures (module scope, so the environment they set never outlives the test module that
asked for them; import them with
``from cloud_emulators import gcs_emulator, s3_emulator  # noqa: F401``):

* ``gcs_emulator`` -> ``GcsEmulator``: gcp-storage-emulator (in memory) in a child
  process, plus a fake OAuth token endpoint. The google-cloud-storage client that Beam's
  GcsIO builds honours ``STORAGE_EMULATOR_HOST`` (it switches its endpoint to the
  emulator); we verified that in Beam 2.77 with google-cloud-storage 3.x. What Beam
  does *before* that is ``google.auth.default()`` with 4 retries and exponential back-off
  (~30 s per process when no credentials exist), so the fixture writes a throw-away
  service-account JSON (a fresh RSA key, never valid anywhere) whose ``token_uri`` is
  the fake token endpoint: ``google.auth.default()`` succeeds at once, and token
  refreshes stay on loopback.
* ``s3_emulator`` -> ``S3Emulator``: moto's server (``ThreadedMotoServer``) in a child
  process. Beam's S3 filesystem builds its boto3 client from the ``S3Options``
  (``--s3_endpoint_url``, ``--s3_access_key_id``, ``--s3_secret_access_key``,
  ``--s3_region_name``); ``S3Emulator.beam_flags`` gives them. boto3 also reads the
  standard ``AWS_*`` variables, which the fixture sets to fake values, so nothing on
  this machine (``~/.aws``, instance metadata) is consulted.

Both emulators run in their own process (no GIL contention with the pipeline under
test, and a clean stop: the child exits when its stdin closes, even if pytest dies).
While a fixture is active ``HTTPS_PROXY`` points at a closed loopback port and
``NO_PROXY`` covers 127.0.0.1: any accidental HTTPS request to a real cloud fails
immediately instead of leaving the machine.

``python tests/cloud_emulators.py gcs|s3`` is the child entry point: it prints one
JSON line with the ports, then serves until stdin is closed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import http.server
import json
import os
import pathlib
import socket
import subprocess
import sys
import threading
from typing import Iterator

import pytest

__all__ = [
    "GcsEmulator",
    "S3Emulator",
    "gcs_emulator",
    "s3_emulator",
    "start_emulator",
    "fake_service_account_json",
    "serve_directory",
    "closed_port_url",
]

_PROJECT = "audiobeam-test"
_S3_REGION = "us-east-1"
_S3_KEY = "testing"
_STARTUP_TIMEOUT_SECONDS = 60.0


@dataclasses.dataclass(frozen=True)
class GcsEmulator:
  """A running gcp-storage-emulator. ``endpoint`` is ``http://127.0.0.1:PORT``."""
  endpoint: str
  project: str

  def client(self):
    """A google-cloud-storage client talking to the emulator (anonymous)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage
    return storage.Client(project=self.project, credentials=AnonymousCredentials(),
                          client_options={"api_endpoint": self.endpoint})

  def create_bucket(self, name: str) -> str:
    """Creates bucket ``name``; returns ``gs://name``."""
    self.client().create_bucket(name)
    return f"gs://{name}"

  def upload(self, local_path: str | os.PathLike, uri: str) -> str:
    """Copies a local file to ``gs://bucket/key`` with the storage client (not Beam)."""
    bucket, key = _split(uri, "gs://")
    self.client().bucket(bucket).blob(key).upload_from_filename(str(local_path))
    return uri

  def list(self, prefix_uri: str) -> list[str]:
    bucket, prefix = _split(prefix_uri, "gs://")
    return sorted(f"gs://{bucket}/{b.name}" for b in self.client().list_blobs(bucket, prefix=prefix))

  def read(self, uri: str) -> bytes:
    bucket, key = _split(uri, "gs://")
    return self.client().bucket(bucket).blob(key).download_as_bytes()


@dataclasses.dataclass(frozen=True)
class S3Emulator:
  """A running moto S3 server. ``endpoint`` is ``http://127.0.0.1:PORT``."""
  endpoint: str
  region: str = _S3_REGION
  access_key_id: str = _S3_KEY
  secret_access_key: str = _S3_KEY

  @property
  def beam_flags(self) -> list[str]:
    """Beam ``S3Options`` flags that point Beam's S3 filesystem at this server."""
    return [f"--s3_endpoint_url={self.endpoint}", f"--s3_region_name={self.region}",
            f"--s3_access_key_id={self.access_key_id}",
            f"--s3_secret_access_key={self.secret_access_key}"]

  def client(self):
    """A boto3 S3 client for this server (independent of Beam)."""
    import boto3
    return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                        aws_access_key_id=self.access_key_id,
                        aws_secret_access_key=self.secret_access_key)

  def create_bucket(self, name: str) -> str:
    self.client().create_bucket(Bucket=name)
    return f"s3://{name}"

  def upload(self, local_path: str | os.PathLike, uri: str) -> str:
    bucket, key = _split(uri, "s3://")
    self.client().upload_file(str(local_path), bucket, key)
    return uri

  def list(self, prefix_uri: str) -> list[str]:
    bucket, prefix = _split(prefix_uri, "s3://")
    pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(f"s3://{bucket}/{o['Key']}" for page in pages for o in page.get("Contents", []))

  def read(self, uri: str) -> bytes:
    bucket, key = _split(uri, "s3://")
    return self.client().get_object(Bucket=bucket, Key=key)["Body"].read()


def _split(uri: str, scheme: str) -> tuple[str, str]:
  if not uri.startswith(scheme):
    raise ValueError(f"expected a {scheme} URI, found {uri!r}")
  bucket, _, key = uri[len(scheme):].partition("/")
  return bucket, key


# --- child processes -------------------------------------------------------------------


@contextlib.contextmanager
def start_emulator(kind: str) -> Iterator[dict]:
  """Starts ``python cloud_emulators.py KIND`` and yields its ports; stops it on exit."""
  process = subprocess.Popen(
      [sys.executable, str(pathlib.Path(__file__).resolve()), kind],
      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
  try:
    ready: dict = {}
    reader = threading.Thread(target=lambda: ready.update(json.loads(process.stdout.readline() or "{}")),
                              daemon=True)
    reader.start()
    reader.join(_STARTUP_TIMEOUT_SECONDS)
    if not ready:
      raise RuntimeError(f"expected the {kind} emulator to report its port within "
                         f"{_STARTUP_TIMEOUT_SECONDS:.0f} s, found exit code {process.poll()}; "
                         f"run `python {__file__} {kind}` to see why")
    yield ready
  finally:
    with contextlib.suppress(Exception):
      process.stdin.close()  # the child serves until its stdin closes
    try:
      process.wait(timeout=10)
    except subprocess.TimeoutExpired:
      process.kill()
      process.wait()


def _closed_loopback_port() -> int:
  """A port nothing listens on (bound, then released)."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def closed_port_url(path: str = "") -> str:
  """``http://127.0.0.1:<port>/<path>`` where nothing listens: a server that is down."""
  return f"http://127.0.0.1:{_closed_loopback_port()}/{path}"


@contextlib.contextmanager
def serve_directory(directory, path: str = "") -> Iterator[tuple[str, list[str]]]:
  """Yields (``http://127.0.0.1:<port>/<path>``, request log) of a loopback HTTP server over
  ``directory``; it stops when the block ends."""
  log: list[str] = []

  class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (stdlib name)
      log.append(self.path)
      super().do_GET()

    def log_message(self, *args):
      pass

  server = http.server.ThreadingHTTPServer(
      ("127.0.0.1", 0), functools.partial(Handler, directory=str(directory)))
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    yield f"http://127.0.0.1:{server.server_address[1]}/{path}", log
  finally:
    server.shutdown()
    server.server_close()


def _no_internet_env() -> dict[str, str]:
  dead_proxy = f"http://127.0.0.1:{_closed_loopback_port()}"
  return {"HTTPS_PROXY": dead_proxy, "https_proxy": dead_proxy,
          "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def fake_service_account_json(path: str | os.PathLike, token_uri: str) -> str:
  """Writes a throw-away service-account key file (fresh RSA key) that refreshes at ``token_uri``."""
  from cryptography.hazmat.primitives import serialization
  from cryptography.hazmat.primitives.asymmetric import rsa
  key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
  pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()).decode("ascii")
  info = {
      "type": "service_account", "project_id": _PROJECT, "private_key_id": "emulator",
      "private_key": pem, "client_email": f"emulator@{_PROJECT}.iam.gserviceaccount.com",
      "client_id": "0", "token_uri": token_uri,
  }
  pathlib.Path(path).write_text(json.dumps(info))
  return str(path)


@pytest.fixture(scope="module")
def gcs_emulator(tmp_path_factory) -> Iterator[GcsEmulator]:
  """gcp-storage-emulator on 127.0.0.1:ephemeral with env set for Beam's GcsIO."""
  with start_emulator("gcs") as ports, pytest.MonkeyPatch.context() as env:
    endpoint = f"http://127.0.0.1:{ports['port']}"
    credentials = fake_service_account_json(
        tmp_path_factory.mktemp("gcs_credentials") / "service_account.json",
        f"http://127.0.0.1:{ports['token_port']}/token")
    for name, value in {
        **_no_internet_env(),
        "STORAGE_EMULATOR_HOST": endpoint,
        "GOOGLE_APPLICATION_CREDENTIALS": credentials,
        "GOOGLE_CLOUD_PROJECT": _PROJECT,
        "GCE_METADATA_HOST": f"127.0.0.1:{_closed_loopback_port()}",
        "GCE_METADATA_IP": f"127.0.0.1:{_closed_loopback_port()}",
    }.items():
      env.setenv(name, value)
    yield GcsEmulator(endpoint=endpoint, project=_PROJECT)


@pytest.fixture(scope="module")
def s3_emulator() -> Iterator[S3Emulator]:
  """moto S3 server on 127.0.0.1:ephemeral with fake AWS credentials in the env."""
  with start_emulator("s3") as ports, pytest.MonkeyPatch.context() as env:
    emulator = S3Emulator(endpoint=f"http://127.0.0.1:{ports['port']}")
    for name, value in {
        **_no_internet_env(),
        "AWS_ACCESS_KEY_ID": emulator.access_key_id,
        "AWS_SECRET_ACCESS_KEY": emulator.secret_access_key,
        "AWS_DEFAULT_REGION": emulator.region,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }.items():
      env.setenv(name, value)
    yield emulator


# --- child entry point -------------------------------------------------------------------


def _serve_token_endpoint() -> int:
  """A loopback OAuth token endpoint that hands out a dummy bearer token."""
  from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

  class _TokenHandler(BaseHTTPRequestHandler):

    def do_POST(self):  # noqa: N802 (http.server naming)
      self.rfile.read(int(self.headers.get("Content-Length") or 0))
      body = json.dumps({"access_token": "emulator-token", "expires_in": 3600,
                         "token_type": "Bearer"}).encode("utf-8")
      self.send_response(200)
      self.send_header("Content-Type", "application/json")
      self.send_header("Content-Length", str(len(body)))
      self.end_headers()
      self.wfile.write(body)

    def log_message(self, *args):
      pass

  server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenHandler)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  return server.server_address[1]


def _serve_gcs() -> dict:
  from http.server import ThreadingHTTPServer

  from gcp_storage_emulator import server as emulator_server

  # The emulator's API thread uses a single-threaded HTTPServer: one client holding a
  # keep-alive connection would block every other. Threaded serving, same handler.
  emulator_server.server.HTTPServer = ThreadingHTTPServer
  instance = emulator_server.create_server("127.0.0.1", 0, in_memory=True)
  instance.start()
  return {"port": instance._api._httpd.server_address[1], "token_port": _serve_token_endpoint()}  # pylint: disable=protected-access


def _serve_s3() -> dict:
  from moto.server import ThreadedMotoServer
  instance = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
  instance.start()
  return {"port": instance.get_host_and_port()[1]}


def _main(kind: str) -> None:
  import logging
  logging.disable(logging.CRITICAL)  # the emulators log every request
  ports = {"gcs": _serve_gcs, "s3": _serve_s3}[kind]()
  print(json.dumps(ports), flush=True)
  sys.stdin.read()  # serve until the parent closes our stdin (or dies)
  os._exit(0)  # the servers' threads are not daemons: leave without joining them


if __name__ == "__main__":
  _main(sys.argv[1])
