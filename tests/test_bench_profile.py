"""The stage profile (``bench/profile.py``) times the pipeline's own streamed path.

Not a timed test: it checks that the instrumented run yields exactly what
``vggish.stream.iter_patches`` yields, that every stage is accounted for (the stages add
up to the total), that the instrumentation is removed afterwards, and that every
format is written and profiled. It asserts no speed.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench import profile
from bench.corpus import CorpusSpec, build_corpus


@pytest.fixture(scope="module")
def source_wav(tmp_path_factory):
  spec = CorpusSpec(long_files=1, long_minutes=0.1, clips=0)
  return build_corpus(spec, str(tmp_path_factory.mktemp("corpus")), log=lambda *_: None).files[0].path


def test_streamed_profile_times_the_pipelines_own_path(source_wav):
  from audiobeam import stream as driver
  from audiobeam.audio import open_audio
  from vggish import features
  from vggish.params import DEFAULT_PARAMS
  from vggish.stream import iter_patches

  originals = (driver.to_mono, driver.StreamingResampler, features.log_mel_spectrogram)
  result = profile.profile_streamed(source_wav, block_seconds=1.0)  # Several blocks.
  assert (driver.to_mono, driver.StreamingResampler,
          features.log_mel_spectrogram) == originals  # Instrumentation removed.
  with open_audio(source_wav) as s:
    expected = sum(b.patches.shape[0] for b in iter_patches(s, DEFAULT_PARAMS))
  assert result["patches"] == expected == 6 and result["audio_seconds"] == pytest.approx(6.0)
  stages = result["stages"]
  assert set(stages) == set(profile.STREAMED_STAGES)
  for name in ("decode", "mono", "resample", "log_mel"):
    assert stages[name]["cpu_seconds"] > 0 and stages[name]["wall_seconds"] > 0, name
  assert sum(s["wall_seconds"] for s in stages.values()) == pytest.approx(
      result["wall_seconds"], rel=1e-6)


def test_every_format_is_written_and_profiled(source_wav, tmp_path):
  paths = profile.make_format_files(source_wav, 3.0, str(tmp_path))
  assert sorted(paths) == sorted(profile.FORMATS)
  results = profile.profile_formats(paths, repeats=1)
  codecs = {fmt: r["streamed"]["codec"] for fmt, r in results.items()}
  assert codecs == {"wav": "PCM_16", "flac": "PCM_16", "mp3": "mp3float",  # MP3: FFmpeg
                    "ogg": "VORBIS", "m4a": "aac"}
  for fmt, r in results.items():
    assert r["streamed"]["patches"] == r["whole_file"]["patches"] >= 2, fmt
    assert r["streamed_uninstrumented"]["patches"] == r["streamed"]["patches"]
  table = profile.format_table(results)
  assert table.count("\n") == 1 + len(profile.FORMATS)
  assert np.isfinite(results["wav"]["streamed"]["audio_seconds_per_cpu_second"])
