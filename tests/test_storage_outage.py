"""Remote inputs when storage misbehaves: bounded time, typed outcomes, a run that stops.

Real servers on loopback (``cloud_emulators``): gcp-storage-emulator and moto's S3
server, each in a child process that the tests stop to make the storage "go away"
before or in the middle of a read. Objects are uploaded and deleted with the storage
clients; matching uses Beam's FileSystems, opening ``audiobeam.inputs.open_input``.

Before (Beam 2.77 ``FileSystems.open`` on gs://, measured with this emulator stopped):
97 s, 99 s and 68 s for three files, each ending in ``google.api_core.RetryError``
(google-cloud-storage's 120 s ``DEFAULT_RETRY`` deadline per file), and an object deleted
after matching raised ``NotFound`` (an ``unexpected_NotFound`` errors row).
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import time

import numpy as np
import pytest
import soundfile as sf

import cloud_emulators
from audiobeam import audio, inputs
from audiobeam.errors import InputError

_PROJECT = "audiobeam-test"
_EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples" / "audio"
# Small enough that a test of an outage takes seconds; the defaults are 4 attempts in 20 s.
_FAST = inputs.RetryPolicy(max_attempts=3, first_delay_seconds=0.1, max_delay_seconds=0.2,
                           budget_seconds=1.0, connect_timeout_seconds=2.0,
                           read_timeout_seconds=5.0, read_chunk_bytes=64 << 10)


def _wav_bytes(seconds: float = 2.0, rate_hz: int = 16000) -> bytes:
  t = np.arange(int(seconds * rate_hz)) / rate_hz
  buffer = io.BytesIO()
  sf.write(buffer, np.stack([0.3 * np.sin(2 * np.pi * 440 * t)] * 2, 1), rate_hz,
           format="WAV", subtype="PCM_16")
  return buffer.getvalue()


@contextlib.contextmanager
def _gcs(tmp_path):
  """A private gcp-storage-emulator (stop it with ``.stop()``) and the env Beam needs."""
  stack = contextlib.ExitStack()
  ports = stack.enter_context(cloud_emulators.start_emulator("gcs"))
  env = stack.enter_context(pytest.MonkeyPatch.context())
  credentials = cloud_emulators.fake_service_account_json(
      tmp_path / "service_account.json", f"http://127.0.0.1:{ports['token_port']}/token")
  endpoint = f"http://127.0.0.1:{ports['port']}"
  for name, value in {
      "HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
      "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
      "STORAGE_EMULATOR_HOST": endpoint, "GOOGLE_APPLICATION_CREDENTIALS": credentials,
      "GOOGLE_CLOUD_PROJECT": _PROJECT, "GCE_METADATA_HOST": "127.0.0.1:9",
      "GCE_METADATA_IP": "127.0.0.1:9"}.items():
    env.setenv(name, value)
  emulator = cloud_emulators.GcsEmulator(endpoint=endpoint, project=_PROJECT)
  try:
    yield _Handle(emulator, stack)
  finally:
    stack.close()


class _Handle:
  """An emulator and the stack that owns its process and environment."""

  def __init__(self, emulator, stack: contextlib.ExitStack):
    self.emulator = emulator
    self._stack = stack

  def stop_server(self):
    """Stops the emulator's process (its env stays set): the storage is gone."""
    self._stack.close()


@pytest.fixture(scope="module")
def beam_options():
  from apache_beam.options.pipeline_options import PipelineOptions
  return PipelineOptions([f"--project={_PROJECT}"])


def _upload(emulator, uri: str, data: bytes) -> str:
  bucket, key = uri[len("gs://"):].split("/", 1)
  emulator.client().bucket(bucket).blob(key).upload_from_string(data)
  return uri


def test_gcs_reads_match_the_object_and_a_missing_object_is_not_found(tmp_path, beam_options):
  data = _wav_bytes()
  with _gcs(tmp_path) as gcs:
    gcs.emulator.create_bucket("ok")
    uri = _upload(gcs.emulator, "gs://ok/a.wav", data)
    with inputs.open_input(uri, retry=_FAST, pipeline_options=beam_options) as f:
      assert f.seekable() and f.read() == data
    with inputs.open_input(uri, retry=_FAST, pipeline_options=beam_options) as f:
      samples = audio.decode_audio(f)[0]
    np.testing.assert_array_equal(samples, audio.decode_audio(io.BytesIO(data))[0])
    started = time.monotonic()
    with pytest.raises(InputError) as info:
      with inputs.open_input("gs://ok/missing.wav", retry=_FAST, pipeline_options=beam_options):
        pass
    assert info.value.error_type == "not_found" and time.monotonic() - started < 2


@pytest.mark.parametrize("name", sorted(p.name for p in _EXAMPLES.iterdir()))
def test_decoding_from_gcs_downloads_each_byte_once(tmp_path, beam_options, monkeypatch, name):
  # Decoders seek back to bytes they have read (header probes, end-of-file peeks); those
  # must not be downloaded again (each was fetched 3-6 times before).
  from google.cloud.storage import Blob

  ranges = []
  download = Blob.download_as_bytes

  def counted(self, *args, **kwargs):
    data = download(self, *args, **kwargs)
    ranges.append((kwargs.get("start"), len(data)))
    return data

  monkeypatch.setattr(Blob, "download_as_bytes", counted)
  data = (_EXAMPLES / name).read_bytes()
  with _gcs(tmp_path) as gcs:
    gcs.emulator.create_bucket("ok")
    uri = _upload(gcs.emulator, f"gs://ok/{name}", data)
    with inputs.open_input(uri, retry=_FAST, pipeline_options=beam_options) as f:
      samples, rate_hz = audio.decode_audio(f)
  local, local_rate_hz = audio.decode_audio(_EXAMPLES / name)
  assert rate_hz == local_rate_hz
  np.testing.assert_array_equal(samples, local)
  assert sum(size for _, size in ranges) == len(data), ranges


def test_gcs_object_deleted_after_match_is_not_found(tmp_path, beam_options):
  from apache_beam.io.filesystems import FileSystems
  with _gcs(tmp_path) as gcs:
    gcs.emulator.create_bucket("del")
    _upload(gcs.emulator, "gs://del/a.wav", _wav_bytes())
    FileSystems.set_options(beam_options)
    matched = [m.path for r in FileSystems.match(["gs://del/*.wav"]) for m in r.metadata_list]
    assert matched == ["gs://del/a.wav"]
    gcs.emulator.client().bucket("del").blob("a.wav").delete()
    with pytest.raises(InputError) as info:
      with inputs.open_input(matched[0], retry=_FAST, pipeline_options=beam_options):
        pass
    assert info.value.error_type == "not_found"


def test_gcs_outage_mid_read_and_before_reads_is_bounded_typed_and_stops_the_run(
    tmp_path, beam_options):
  """The emulator stops after the first 64 KiB of a file were read: the rest of that
  read, and every later file, fail as storage_unavailable within the 1 s budget; the
  third file in a row trips the health check, and from then on every open fails at
  once with StorageDownError (the job fails with its message)."""
  data = _wav_bytes(seconds=8.0)  # 512 KB: several 64 KiB ranged reads
  health = inputs.StorageHealth(max_consecutive_failures=3, max_outage_seconds=600)
  with _gcs(tmp_path) as gcs:
    gcs.emulator.create_bucket("out")
    uris = [_upload(gcs.emulator, f"gs://out/{i}.wav", data) for i in range(5)]
    outcomes = []
    with inputs.open_input(uris[0], retry=_FAST, health=health,
                           pipeline_options=beam_options) as f:
      assert f.read(1000) == data[:1000]
      gcs.stop_server()
      started = time.monotonic()
      with pytest.raises(InputError) as info:
        audio.decode_audio(f)  # the decoder must see the error, not a truncated file
      outcomes.append((info.value.error_type, time.monotonic() - started))
    for uri in uris[1:3]:
      started = time.monotonic()
      with pytest.raises((InputError, inputs.StorageDownError)) as info:
        with inputs.open_input(uri, retry=_FAST, health=health, pipeline_options=beam_options):
          pass
      outcomes.append((getattr(info.value, "error_type", "StorageDownError"),
                       time.monotonic() - started))
    started = time.monotonic()
    with pytest.raises(inputs.StorageDownError, match="gs://out .*3 files in a row"):
      with inputs.open_input(uris[3], retry=_FAST, health=health, pipeline_options=beam_options):
        pass
    assert time.monotonic() - started < 0.1  # no more network: fails at once
  assert [o[0] for o in outcomes] == ["storage_unavailable", "storage_unavailable",
                                      "StorageDownError"], outcomes
  assert all(seconds < 3.0 for _, seconds in outcomes), outcomes


# --- S3 (moto) --------------------------------------------------------------------------------


@contextlib.contextmanager
def _s3():
  stack = contextlib.ExitStack()
  ports = stack.enter_context(cloud_emulators.start_emulator("s3"))
  env = stack.enter_context(pytest.MonkeyPatch.context())
  emulator = cloud_emulators.S3Emulator(endpoint=f"http://127.0.0.1:{ports['port']}")
  for name, value in {
      "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost",
      "AWS_ACCESS_KEY_ID": emulator.access_key_id,
      "AWS_SECRET_ACCESS_KEY": emulator.secret_access_key,
      "AWS_DEFAULT_REGION": emulator.region, "AWS_EC2_METADATA_DISABLED": "true",
      "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}.items():
    env.setenv(name, value)
  try:
    yield _Handle(emulator, stack)
  finally:
    stack.close()


def test_s3_not_found_then_outage_is_bounded_and_typed():
  """Before: s3io's ``S3Downloader`` retried ``head_object`` with Beam's
  ``with_exponential_backoff`` (7 retries from 5 s) on top of botocore's own retries."""
  from apache_beam.options.pipeline_options import PipelineOptions
  data = _wav_bytes()
  with _s3() as s3:
    options = PipelineOptions(s3.emulator.beam_flags)
    s3.emulator.create_bucket("audio-in")
    s3.emulator.client().put_object(Bucket="audio-in", Key="a.wav", Body=data)
    s3.emulator.client().put_object(Bucket="audio-in", Key="c.wav", Body=data)
    with inputs.open_input("s3://audio-in/a.wav", retry=_FAST, pipeline_options=options) as f:
      assert f.read() == data
    with pytest.raises(InputError) as info:
      with inputs.open_input("s3://audio-in/missing.wav", retry=_FAST, pipeline_options=options):
        pass
    assert info.value.error_type == "not_found"
    s3.stop_server()
    started = time.monotonic()
    with pytest.raises(InputError) as info:
      with inputs.open_input("s3://audio-in/c.wav", retry=_FAST, pipeline_options=options,
                             health=inputs.StorageHealth()):
        pass
    assert info.value.error_type == "storage_unavailable"
    assert time.monotonic() - started < 3.0
