"""Zero-shot labels: parsing ``--clap_labels`` / ``--clap_labels_file`` / ``--clap_label_template``, and
scoring a clip embedding against the label text embeddings.

Scoring follows transformers' ``zero-shot-audio-classification`` pipeline, which takes
``ClapModel.logits_per_audio = exp(logit_scale_a) * cos(audio, text)`` for the texts
``template.format(label)`` and a softmax over the labels. Here the audio embedding is
the clip's (windows pooled and re-normalised); for a clip of at most 10 s it is the
pipeline's own audio embedding. Numpy only (float64 arithmetic).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from audiobeam.errors import ConfigError

__all__ = [
    "parse_labels",
    "parse_labels_text",
    "check_template",
    "label_texts",
    "zero_shot",
]


def _check_unique(labels: Sequence[str], where: str, line_numbers: Sequence[int] | None = None):
  seen: dict[str, int] = {}
  for i, label in enumerate(labels):
    if label in seen:
      if line_numbers is not None:
        raise ConfigError(
            f"expected each label once in {where}, found {label!r} on line "
            f"{line_numbers[i]} again (first on line {line_numbers[seen[label]]}); remove the "
            "duplicate.")
      raise ConfigError(f"expected each label once in {where}, found {label!r} twice (labels "
                        f"{seen[label] + 1} and {i + 1}); remove the duplicate.")
    seen[label] = i


def parse_labels(value: Any) -> tuple[str, ...]:
  """``--clap_labels`` value -> labels. A string is split on commas; a list (YAML) is taken item
  by item. Items are stripped; empty items and duplicates are ConfigErrors."""
  if isinstance(value, str):
    items = value.split(",")
  elif isinstance(value, (list, tuple)):
    items = list(value)
  else:
    raise ConfigError(f"expected --clap_labels as 'label,label,...' or a list of strings, found {value!r}")
  labels = []
  for i, item in enumerate(items):
    if not isinstance(item, str):
      raise ConfigError(f"expected label {i + 1} of --clap_labels to be a string, found {item!r}")
    label = item.strip()
    if not label:
      raise ConfigError(f"expected label {i + 1} of --clap_labels to be non-empty, found "
                        f"{item!r} in {value!r}; remove the empty entry (stray comma?).")
    labels.append(label)
  if not labels:
    raise ConfigError("expected at least one label in --clap_labels, found none.")
  _check_unique(labels, "--clap_labels")
  return tuple(labels)


def parse_labels_text(text: str, where: str = "--clap_labels_file") -> tuple[str, ...]:
  """Contents of a labels file (one label per line, UTF-8; a final newline is fine) ->
  labels. Blank lines and duplicates are ConfigErrors naming the line."""
  if text.startswith("\ufeff"):
    text = text[1:]  # A UTF-8 byte-order mark written by some editors.
  lines = text.splitlines()
  labels, numbers = [], []
  for number, line in enumerate(lines, start=1):
    label = line.strip()
    if not label:
      raise ConfigError(f"expected one label per line in {where}, found a blank line "
                        f"{number}; remove it.")
    labels.append(label)
    numbers.append(number)
  if not labels:
    raise ConfigError(f"expected at least one label in {where}, found an empty file.")
  _check_unique(labels, where, numbers)
  return tuple(labels)


def check_template(template: Any) -> str:
  """``--clap_label_template``: a string with exactly one ``{}`` that ``str.format`` fills."""
  if not isinstance(template, str) or "{}" not in template:
    raise ConfigError(f"expected --clap_label_template to contain '{{}}' where the label goes "
                      f"(e.g. 'This is a sound of {{}}.'), found {template!r}")
  try:
    filled = template.format("\x00")
  except (IndexError, KeyError, ValueError) as error:
    raise ConfigError(f"expected --clap_label_template with a single '{{}}' and no other braces "
                      f"(write a literal brace as '{{{{' or '}}}}'), found {template!r}: "
                      f"{type(error).__name__}: {error}") from None
  if filled.count("\x00") != 1:
    raise ConfigError(f"expected --clap_label_template to place the label once, found {template!r}")
  return template


def label_texts(labels: Sequence[str], template: str) -> list[str]:
  """The texts the text encoder sees: ``template.format(label)`` (the pipeline's rule)."""
  return [template.format(label) for label in labels]


def zero_shot(clip_embedding: np.ndarray, label_embeddings: np.ndarray, logit_scale: float
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Scores one clip against L labels.

  clip_embedding: [D] (unit norm); label_embeddings: [L, D] (unit norm); logit_scale:
  ``exp(logit_scale_a)``. Returns (score float32 [L] = softmax(logit_scale * cos),
  cosine_similarity float32 [L], rank int32 [L]: 1 for the highest score, ties broken
  by label order).
  """
  clip = np.asarray(clip_embedding, dtype=np.float64).reshape(-1)
  text = np.asarray(label_embeddings, dtype=np.float64)
  cosine = text @ clip                                        # [L]
  logits = logit_scale * cosine
  exp = np.exp(logits - logits.max())
  scores = exp / exp.sum()
  order = np.argsort(-scores, kind="stable")
  rank = np.empty(order.shape[0], dtype=np.int32)
  rank[order] = np.arange(1, order.shape[0] + 1, dtype=np.int32)
  return scores.astype(np.float32), cosine.astype(np.float32), rank
