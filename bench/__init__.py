"""audiobeam's benchmark: our pipeline against the reference-style chain, side by side.

``python -m bench`` (or ``make bench``) builds a synthetic corpus, runs the baseline
(``bench.baseline``: soundfile + resampy + numpy log-mel + a TF1 session, one file at a
time, as a whole process) and our pipeline (``python -m pipelines.embed`` on the local
runner, as a whole process), checks parity of the outputs and prints a report. See
``bench/README.md``. Not a test: nothing here asserts a speed.
"""

from __future__ import annotations

__all__: list[str] = []
