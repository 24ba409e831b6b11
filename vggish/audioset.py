"""VGGish's extra output: one ``tf.train.SequenceExample`` per clip, AudioSet's layout.

Context ``video_id`` (bytes: the input URI), ``start_time_seconds`` (float: start of
the first frame, 0.0), ``end_time_seconds`` (float: the clip duration), ``labels``
(int64, empty); feature list ``audio_embedding``: one ``bytes_list`` feature per frame
holding the 128 uint8 values as 128 bytes. Existing AudioSet / YouTube-8M readers read
it. Only TensorFlow's protobuf classes are imported (lazily), not TensorFlow itself.
"""

from __future__ import annotations

import numpy as np

__all__ = ["sequence_example"]


def sequence_example(clip) -> bytes:
  """One clip (``transforms.records.EmbeddedClip`` of VGGish) -> serialized SequenceExample."""
  from audiobeam.quiet import import_tensorflow  # pylint: disable=import-outside-toplevel
  import_tensorflow()
  from tensorflow.core.example import example_pb2  # pylint: disable=import-outside-toplevel

  example = example_pb2.SequenceExample()
  context = example.context.feature
  context["video_id"].bytes_list.value.append(clip.uri.encode("utf-8"))
  context["start_time_seconds"].float_list.value.append(
      float(clip.start_seconds[0]) if len(clip.start_seconds) else 0.0)
  context["end_time_seconds"].float_list.value.append(float(clip.info.duration_seconds))
  context["labels"].int64_list.SetInParent()  # present, empty: no labels
  frames = example.feature_lists.feature_list["audio_embedding"].feature
  for row in np.asarray(clip.frame_columns["audio_embedding"], dtype=np.uint8):
    frames.add().bytes_list.value.append(row.tobytes())
  return example.SerializeToString()
