# audiobeam Dataflow worker image: Beam SDK harness + CUDA TensorFlow + CUDA PyTorch + audiobeam.
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/audiobeam/worker:$(git rev-parse --short HEAD) .
#   docker push  REGION-docker.pkg.dev/PROJECT/audiobeam/worker:$(git rev-parse --short HEAD)
#
# Invariants (tests/test_dataflow_job.py checks them):
# * The base is Beam's own Python SDK image with the SAME Beam version and Python
#   minor version as the launcher (setup.py pins apache-beam==2.77.0, Python 3.11): the
#   launcher pickles the pipeline and the harness in here unpickles it.
# * The entrypoint stays Beam's boot binary (/opt/apache/beam/boot): Dataflow starts the
#   SDK harness through it.
# * The project is installed into the image (not staged with --setup_file): workers
#   start without a pip install of TensorFlow. Build the image from the same commit as
#   the launcher and tag it with that commit.
#
# GPU: TensorFlow's CUDA libraries come from pip (tensorflow[and-cuda]); the NVIDIA
# driver comes from the Dataflow host (dataflow_service_options
# worker_accelerator=...;install-nvidia-driver) and is mounted at /usr/local/nvidia.
# Memory growth is on so TensorFlow takes the GPU memory VGGish needs, not all of it.
# One BLAS thread per process: the numpy front end (resampling, log-mel matmuls) runs in
# one SDK process per vCPU already; OpenBLAS's own threads only contend with them (measured:
# 177 -> 369 audio-s of front end per CPU-second, bench/profile.py).
# One model copy per GPU: see configs/dataflow_gpu.yaml (model_copies: 1, shared by the
# VM's SDK processes).
FROM apache/beam_python3.11_sdk:2.77.0

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_FORCE_GPU_ALLOW_GROWTH=true \
    TF_CPP_MIN_LOG_LEVEL=1 \
    OPENBLAS_NUM_THREADS=1 \
    LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/nvidia/lib \
    AUDIOBEAM_CACHE_DIR=/var/cache/audiobeam

# The heavy layer first (changes only with the TensorFlow pin): CUDA-enabled TensorFlow.
RUN pip install 'tensorflow[and-cuda]==2.21.0'

WORKDIR /opt/audiobeam
COPY setup.py ./
COPY audiobeam/ audiobeam/
COPY vggish/ vggish/
COPY models/ models/
COPY transforms/ transforms/
COPY pipelines/ pipelines/
COPY explore/ explore/

# Install audiobeam with every model (the `models` extra: torch, transformers, safetensors;
# PyPI's torch wheel is the CUDA build) and the pins from setup.py; fail the build if that
# moved Beam or TensorFlow away from the versions the launcher and this file expect, or if
# a model's bundle does not import.
RUN pip install '.[models]' \
 && mkdir -p "${AUDIOBEAM_CACHE_DIR}" \
 && python -c "import sys, apache_beam, tensorflow, torch; \
assert sys.version_info[:2] == (3, 11), sys.version; \
assert apache_beam.__version__ == '2.77.0', apache_beam.__version__; \
assert tensorflow.__version__ == '2.21.0', tensorflow.__version__; \
assert tensorflow.test.is_built_with_cuda(), 'tensorflow without CUDA'; \
assert torch.version.cuda, 'torch without CUDA'; \
import pipelines.embed, transforms.embed, vggish.model; \
from audiobeam import registry; [registry.bundle_class(m) for m in registry.MODELS]"

ENTRYPOINT ["/opt/apache/beam/boot"]
