"""The Dataflow jobs in configs/dataflow_*.yaml build completely, offline, as configured.

Each test runs ``pipelines.embed.run(['--config', CONFIG, '--dry_run=True', ...])`` with
the real DataflowRunner: the pipeline is built, translated to the Dataflow job proto, and
its dependencies are computed (for ``setup_file`` that builds the sdist workers will
``pip install``). Then the same Dataflow client code that would submit the job stages
the files and builds the job's ``Environment`` (worker pools, container images, service
options, experiments): the staging bucket is the GCS emulator, so the files that would
be uploaded are really uploaded, and nothing reaches Google. Only the final
``projects.locations.jobs.create`` call is not made.

The Dockerfile cannot be built here (no registry access), so its invariants are checked
by reading it: the same Beam and Python as this launcher, Beam's boot entrypoint, CUDA
TensorFlow at the setup.py pin, the project installed.
"""

from __future__ import annotations

import contextlib
import io
import pathlib
import re
import sys
import tarfile

import pytest
import yaml

from cloud_emulators import gcs_emulator  # noqa: F401  (fixture)

__all__: list[str] = []

_REPO = pathlib.Path(__file__).resolve().parents[1]
_GPU_CONFIG = _REPO / "configs" / "dataflow_gpu.yaml"
_CPU_CONFIG = _REPO / "configs" / "dataflow_cpu.yaml"
_BUCKET = "audiobeam-dataflow-dry-run"
_T4_ACCELERATOR = "worker_accelerator=type:nvidia-tesla-t4;count:1;install-nvidia-driver"


@pytest.fixture(scope="module")
def weights_bucket(gcs_emulator, test_weights) -> str:
  """Test weights on gs:// (a Dataflow job refuses local weight paths)."""
  root = gcs_emulator.create_bucket(_BUCKET)
  gcs_emulator.upload(test_weights.checkpoint, f"{root}/weights/vggish_model.ckpt")
  gcs_emulator.upload(test_weights.pca_params, f"{root}/weights/vggish_pca_params.npz")
  return root


@contextlib.contextmanager
def _capture_dataflow_runner():
  """Records the DataflowRunner instance that ``run()`` builds (its ``job`` after a dry run)."""
  from apache_beam.runners.dataflow.dataflow_runner import DataflowRunner
  runners = []
  original = DataflowRunner.run_pipeline

  def run_pipeline(self, pipeline, options):
    runners.append(self)
    return original(self, pipeline, options)

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(DataflowRunner, "run_pipeline", run_pipeline)
    yield runners


def _build_job(config: pathlib.Path, root: str, tmp_path: pathlib.Path, *extra: str):
  """Dry-runs ``config``; returns (job, proto_pipeline) with the Environment filled in."""
  from apache_beam.runners.dataflow.internal import apiclient

  from pipelines import embed
  staging = f"{root}/{tmp_path.name}"
  with _capture_dataflow_runner() as runners:
    embed.run([
        "--config", str(config), "--dry_run=True",
        "--input", f"{root}/audio/**", "--output", f"{root}/{tmp_path.name}/out/",
        "--checkpoint", f"{root}/weights/vggish_model.ckpt",
        "--pca_params", f"{root}/weights/vggish_pca_params.npz",
        "--cache_dir", str(tmp_path / "cache"),
        # Staging goes to the emulator: the files a submission would upload get uploaded.
        f"--temp_location={staging}/temp", f"--staging_location={staging}/staging",
        *extra,
    ])
  assert len(runners) == 1, "expected run() to build exactly one Dataflow job"
  job = runners[0].job
  client = apiclient.DataflowApplicationClient(job.options, job.root_staging_location)
  client.create_job_description(job)  # stages files, builds job.proto.environment
  return job, runners[0].proto_pipeline


def _service_options(environment) -> list[str]:
  return list(environment.service_options)


def _staged_packages(environment) -> dict[str, str]:
  (pool,) = environment.worker_pools
  return {p.name: p.location for p in pool.packages}


def _sdk_images(environment) -> set[str]:
  (pool,) = environment.worker_pools
  return {image.container_image for image in pool.sdk_harness_container_images}


def _model_handlers(proto_pipeline) -> list:
  """The model handler of every RunInference in a job's pipeline (unpickled DoFns)."""
  from apache_beam.internal import pickler
  from apache_beam.ml.inference.base import _RunInferenceDoFn
  from apache_beam.portability import common_urns
  from apache_beam.portability.api import beam_runner_api_pb2

  handlers = []
  for transform in proto_pipeline.components.transforms.values():
    if transform.spec.urn != common_urns.primitives.PAR_DO.urn:
      continue
    payload = beam_runner_api_pb2.ParDoPayload.FromString(transform.spec.payload)
    fn = pickler.loads(payload.do_fn.payload)[0]
    while not isinstance(fn, _RunInferenceDoFn) and hasattr(fn, "_fn"):
      fn = fn._fn  # pylint: disable=protected-access  (RunInference's exception handling wraps it)
    if isinstance(fn, _RunInferenceDoFn):
      handlers.append(fn._model_handler)  # pylint: disable=protected-access
  return handlers


def _check_gpu_job(job, proto_pipeline, config: dict) -> None:
  """What a GPU job must have; raises AssertionError naming what is wrong."""
  environment = job.proto.environment
  (pool,) = environment.worker_pools
  assert _sdk_images(environment) == {config["sdk_container_image"]}, _sdk_images(environment)
  assert _T4_ACCELERATOR in _service_options(environment), _service_options(environment)
  # One model copy on the one GPU, fed by one SDK process per vCPU (Dataflow's default).
  assert "no_use_multiple_sdk_containers" not in environment.experiments, list(
      environment.experiments)
  handlers = _model_handlers(proto_pipeline)
  assert handlers, "expected a RunInference transform in the job"
  for handler in handlers:
    assert handler.share_model_across_processes() and handler.model_copies() == 1, (
        "expected each model loaded once per VM, shared by its SDK processes")
  assert pool.machine_type.startswith(("n1-", "g2-")), pool.machine_type  # T4: n1, L4: g2
  assert "workflow.tar.gz" not in _staged_packages(environment)  # the code is in the image
  assert pool.disk_size_gb >= 30, pool.disk_size_gb  # room for the ~8 GB CUDA image


def test_gpu_config_builds_job_with_worker_image_t4_and_one_shared_model_copy(weights_bucket,
                                                                             tmp_path):
  config = yaml.safe_load(_GPU_CONFIG.read_text())

  job, proto_pipeline = _build_job(_GPU_CONFIG, weights_bucket, tmp_path)

  _check_gpu_job(job, proto_pipeline, config)
  (pool,) = job.proto.environment.worker_pools
  assert (pool.machine_type, pool.disk_size_gb) == (config["machine_type"], config["disk_size_gb"])
  assert pool.autoscaling_settings.max_num_workers == config["max_num_workers"]
  assert "pickled_main_session" in _staged_packages(job.proto.environment)
  from apache_beam.options.pipeline_options import GoogleCloudOptions
  cloud = job.options.view_as(GoogleCloudOptions)
  assert (cloud.project, cloud.region) == (config["project"], config["region"])
  for key in ("temp_location", "staging_location"):
    assert config[key].startswith("gs://"), (key, config[key])


@pytest.mark.parametrize("mutation", ["drop_accelerator", "drop_model_copies"])
def test_gpu_job_check_rejects_broken_gpu_config(weights_bucket, tmp_path, mutation):
  config = yaml.safe_load(_GPU_CONFIG.read_text())
  if mutation == "drop_accelerator":
    del config["dataflow_service_options"]
  else:  # every SDK process of a VM would load its own copy onto the one GPU
    del config["model_copies"]
  broken = tmp_path / "broken_gpu.yaml"
  broken.write_text(yaml.safe_dump(config))

  job, proto_pipeline = _build_job(broken, weights_bucket, tmp_path)

  with pytest.raises(AssertionError):
    _check_gpu_job(job, proto_pipeline, config)


def test_config_with_misspelt_option_fails_before_building_a_job(tmp_path):
  from pipelines.options import parse_config
  from audiobeam.errors import ConfigError
  config = yaml.safe_load(_GPU_CONFIG.read_text())
  config["machine_typ"] = config.pop("machine_type")
  broken = tmp_path / "typo.yaml"
  broken.write_text(yaml.safe_dump(config))

  with pytest.raises(ConfigError, match="machine_typ"):
    parse_config(["--config", str(broken), "--input", "gs://b/a.wav", "--output", "gs://b/out/"])


def test_cpu_config_builds_job_that_pip_installs_the_project_from_setup_file(
    gcs_emulator, weights_bucket, tmp_path, monkeypatch):
  import apache_beam
  monkeypatch.chdir(_REPO)  # the config's setup_file is ./setup.py, as documented
  config = yaml.safe_load(_CPU_CONFIG.read_text())

  job, _ = _build_job(_CPU_CONFIG, weights_bucket, tmp_path)

  environment = job.proto.environment
  python = f"{sys.version_info.major}.{sys.version_info.minor}"
  assert _sdk_images(environment) == {
      f"gcr.io/cloud-dataflow/v1beta3/beam_python{python}_sdk:{apache_beam.__version__}"}
  assert not [o for o in _service_options(environment) if o.startswith("worker_accelerator")]
  (pool,) = environment.worker_pools
  assert pool.machine_type == config["machine_type"]
  # The staged sdist is what workers `pip install`: our setup.py and all our packages.
  location = _staged_packages(environment)["workflow.tar.gz"]
  uri = "gs://" + location.split("storage.googleapis.com/", 1)[1]
  with tarfile.open(fileobj=io.BytesIO(gcs_emulator.read(uri)), mode="r:gz") as sdist:
    names = sdist.getnames()
  for module in ("setup.py", "pipelines/embed.py", "transforms/embed.py", "vggish/model.py"):
    assert any(name.endswith("/" + module) for name in names), (module, names[:20])


# --- the worker image --------------------------------------------------------------------


def _dockerfile() -> str:
  return (_REPO / "Dockerfile").read_text()


def _instructions(text: str) -> list[tuple[str, str]]:
  """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
  logical = re.sub(r"\\\n", " ", "\n".join(l for l in text.splitlines() if not l.lstrip().startswith("#")))
  out = []
  for line in logical.splitlines():
    if line.strip():
      keyword, _, rest = line.strip().partition(" ")
      out.append((keyword.upper(), rest.strip()))
  return out


def test_dockerfile_base_image_matches_launcher_beam_and_python():
  import apache_beam
  froms = [args for keyword, args in _instructions(_dockerfile()) if keyword == "FROM"]
  python = f"{sys.version_info.major}.{sys.version_info.minor}"
  assert froms == [f"apache/beam_python{python}_sdk:{apache_beam.__version__}"]


def test_dockerfile_keeps_beam_boot_entrypoint_and_gpu_settings():
  instructions = _instructions(_dockerfile())
  entrypoints = [args for keyword, args in instructions if keyword == "ENTRYPOINT"]
  assert entrypoints[-1:] == ['["/opt/apache/beam/boot"]']
  env = " ".join(args for keyword, args in instructions if keyword == "ENV")
  assert re.search(r"\bTF_FORCE_GPU_ALLOW_GROWTH=true\b", env), env


def test_dockerfile_installs_cuda_tensorflow_at_setup_pin_and_the_project():
  setup_py = (_REPO / "setup.py").read_text()
  (tf_pin,) = re.findall(r'"tensorflow==([0-9.]+)"', setup_py)
  (beam_pin,) = re.findall(r'"apache-beam\[[a-z,]+\]==([0-9.]+)"', setup_py)
  runs = " ".join(args for keyword, args in _instructions(_dockerfile()) if keyword == "RUN")
  assert f"tensorflow[and-cuda]=={tf_pin}" in runs
  assert re.search(r"pip install ['\"]?\.\[models\]['\"]?(\s|$)", runs), runs  # every model's extra
  assert f"apache_beam.__version__ == '{beam_pin}'" in runs  # the build fails if Beam moved
  copied = {args.split()[0].rstrip("/") for keyword, args in _instructions(_dockerfile())
            if keyword == "COPY"}
  include = re.search(r"find_packages\(include=\[(.*?)\]\)", setup_py, re.S).group(1)
  packages = {name for name in re.findall(r'"([\w.*]+)"', include) if "." not in name}
  assert packages and packages | {"setup.py"} <= copied, (packages, copied)
  ignore = (_REPO / ".dockerignore").read_text().split()
  assert all(f"!{name}/" in ignore for name in packages) and "!setup.py" in ignore
