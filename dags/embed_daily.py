"""Airflow DAG ``audiobeam_embed_daily``: embed audio with ``python -m pipelines.embed`` daily.

One task, ``embed``: Apache Beam's ``BeamRunPythonPipelineOperator`` runs the pipeline with
the pipeline's own Python (``$AUDIOBEAM_PYTHON``, default: the repository's
``.venv/bin/python`` next to this file's folder), on Dataflow or locally, as the
``runner`` param says. Every run writes one date partition::

    {output_root}/dt=YYYY-MM-DD/{<model>/{frames,clips,...},errors}/ + run.json

``model`` lists the models to run (``["vggish", "yamnet"]``: each file is decoded once
for all); their weight flags come from the ``config`` YAML (``yamnet_weights: gs://...``;
keys of models not selected are ignored), VGGish's also from the ``checkpoint`` /
``pca_params`` params.

Re-running a date is idempotent: the pipeline replaces its own earlier outputs in
``--output`` (the new run is committed, then the older run's files are deleted by its
record), so a retried or cleared task leaves exactly one copy of the rows. With
``incremental`` on, inputs already embedded under the same weights and settings in any
partition of ``output_root`` are skipped (``--skip_existing``, judged by the partitions'
manifests; see transforms/manifest.py), so a daily run over a growing bucket only embeds
what is new.

Input patterns may contain ``{ds}`` (replaced by the run's date), for buckets that are
already partitioned by day. Everything else about the job (machine type, GPU, image,
batch size, ...) comes from the ``config`` YAML (configs/dataflow_gpu.yaml by default).

This file stays thin: it imports neither Beam nor TensorFlow (the DAG processor parses it
often); the pipeline runs in its own interpreter.
"""

from __future__ import annotations

import os
import pathlib

import pendulum
from airflow.providers.apache.beam.operators.beam import BeamRunPythonPipelineOperator
from airflow.sdk import DAG, Param

__all__ = ["dag", "REPO_ROOT", "PIPELINE_PYTHON"]

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
PIPELINE_PYTHON = os.environ.get("AUDIOBEAM_PYTHON") or str(REPO_ROOT / ".venv" / "bin" / "python")
"""Interpreter with audiobeam installed (the DAG never imports it)."""

_LOCAL_RUNNER = "FnApiRunner"  # Beam's local engine that never reaches for the network
_DATAFLOW_RUNNER = "DataflowRunner"

with DAG(
    dag_id="audiobeam_embed_daily",
    description="audio embeddings (VGGish, YAMNet, CLAP, ...) of new audio, one date partition per day",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # runs of one DAG share output_root (and its manifests)
    default_args={"retries": 1, "retry_delay": pendulum.duration(minutes=10)},
    render_template_as_native_obj=True,  # lists stay lists, None stays None
    tags=["audiobeam", "beam"],
    params={
        "input": Param(["gs://my-audiobeam-bucket/audio/**"], type="array",
                       description="file patterns (local, gs://, s3://; globs; {ds} = run date)"),
        "output_root": Param("gs://my-audiobeam-bucket/embeddings", type="string",
                             description="partitions are written to {output_root}/dt={ds}/"),
        "runner": Param(_DATAFLOW_RUNNER, enum=[_DATAFLOW_RUNNER, _LOCAL_RUNNER]),
        "model": Param(["vggish"], type="array", items={"type": "string"},
                       description="models to run on every file (vggish, yamnet, clap, ast, "
                       "clmr); their weights come from the config YAML"),
        "config": Param(str(REPO_ROOT / "configs" / "dataflow_gpu.yaml"), type="string",
                        description="run config YAML (configs/local.yaml for the local runner)"),
        "checkpoint": Param(None, type=["null", "string"],
                            description="vggish_model.ckpt (gs:// or s3:// for Dataflow); "
                            "null: the config's, else Google's download"),
        "pca_params": Param(None, type=["null", "string"]),
        "incremental": Param(True, type="boolean",
                             description="skip inputs already embedded in any partition"),
        "setup_file": Param(None, type=["null", "string"],
                            description="absolute setup.py for configs that stage it "
                            "(dataflow_cpu.yaml); the task's working directory is not the repo"),
        "gcp_project": Param(None, type=["null", "string"],
                             description="Dataflow project (null: the config's / connection's)"),
        "region": Param(None, type=["null", "string"], description="Dataflow region"),
    },
    doc_md=__doc__,
) as dag:
  embed = BeamRunPythonPipelineOperator(
      task_id="embed",
      runner="{{ params.runner }}",
      py_interpreter=PIPELINE_PYTHON,
      py_options=["-m"],
      py_file="pipelines.embed",
      pipeline_options={
          "config": "{{ params.config }}",
          "input": "{{ params.input | map('replace', '{ds}', ds) | list }}",
          "model": "{{ params.model | join(',') }}",
          "output": "{{ params.output_root.rstrip('/') }}/dt={{ ds }}/",
          "checkpoint": "{{ params.checkpoint }}",
          "pca_params": "{{ params.pca_params }}",
          "skip_existing": "{{ params.incremental }}",
          "existing_outputs": (
              "{{ [params.output_root.rstrip('/') ~ '/dt=*'] if params.incremental else None }}"),
          "setup_file": "{{ params.setup_file }}",
          "project": "{{ params.gcp_project }}",
          "region": "{{ params.region }}",
      },
      dataflow_config={
          "job_name": "audiobeam-embed-{{ ds_nodash }}",
          "project_id": "{{ params.gcp_project }}",
          "location": "{{ params.region }}",
          "wait_until_finished": True,
      },
  )
