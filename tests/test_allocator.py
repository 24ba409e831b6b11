"""Front-end workers keep freed memory for reuse instead of faulting in fresh pages."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="glibc's mallopt: Linux only")

# A streamed front end's pattern: per file, a few-MB array per block, freed when it ends.
_LOOP = """
import json, resource
import numpy as np

def faults_of_blocks():
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  for _ in range(40):                   # files
    blocks = [np.ones(350_000) for _ in range(6)]   # 2.8 MB each: 4 s of stereo float64
    mono = [b[::2] + b[1::2] for b in blocks]       # kept until the file ends
    del blocks, mono
  return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults_of_blocks()                      # first pass: the heap grows once
"""


def _faults(setup: str) -> int:
  code = textwrap.dedent(setup) + _LOOP + "print(json.dumps(faults_of_blocks()))\n"
  out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                       text=True, timeout=120)
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_reuse_freed_memory_stops_the_page_fault_churn_of_repeated_blocks():
  default = _faults("")
  tuned = _faults("from audiobeam.allocator import reuse_freed_memory\n"
                  "assert reuse_freed_memory()\n")
  # With glibc's defaults the heap's free top (the file's blocks, freed together) exceeds
  # the trim threshold and goes back to the kernel after every file, to be faulted in
  # again by the next one (~245,000 faults for the 40 files here); kept, it is faulted in
  # once, in the first pass.
  assert default > 1000 * 40, default
  assert tuned < default / 20, (tuned, default)


def test_the_pipelines_decode_stage_sets_it_up_in_each_worker():
  tuned = _faults("""
      from transforms.extract import _ExtractInputsFn
      _ExtractInputsFn([]).setup()        # what Beam calls once per DoFn instance
      """)
  assert tuned < 100, tuned
