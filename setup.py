"""Packaging for audiobeam: the one source of dependencies for pip and Dataflow workers.

Dataflow stages this file with ``--setup_file ./setup.py``; workers run
``pip install .`` and so get exactly the pins below. Nothing here downloads model
weights or touches the network beyond pip itself.
"""

import setuptools

REQUIRED = [
    "apache-beam[gcp,aws]==2.77.0",
    "tensorflow==2.21.0",
    "numpy>=2.4,<2.5",
    "pyarrow==25.0.1",
    "protobuf>=6.33,<6.34",
    "resampy==0.4.3",
    "soundfile==0.14.0",
    "av==18.1.0",
    "soxr==1.1.0",
    "pyyaml>=6.0,<7",
    "h5py>=3.11,<4",  # YAMNet's yamnet.h5 (read directly; TensorFlow also depends on it)
]

# CLAP runs Hugging Face transformers' ClapModel on PyTorch (weights from safetensors).
CLAP = [
    "torch==2.13.0",
    "transformers==5.24.0",
    "safetensors==0.8.0",
]

EXTRAS = {
    "clap": CLAP,
    # --backend torch (YAMNet's PyTorch network; CPU wheel here, CUDA wheel on GPU workers).
    "torch": ["torch==2.13.0"],
    "test": [
        "pytest>=8,<10",
        "hypothesis>=6.100,<7",
        "gcp-storage-emulator==2026.7.19",
        "moto[server]>=5.2,<6",
        *CLAP,
        "librosa==0.11.0",  # test oracle: CLAP's reference resampling (soxr_hq)
    ],
}

setuptools.setup(
    name="audiobeam",
    version="0.1.0",
    description="VGGish audio embeddings at scale with Apache Beam, exact to Google's reference.",
    python_requires=">=3.11,<3.12",
    packages=setuptools.find_packages(include=[
        "audiobeam", "audiobeam.*", "vggish", "vggish.*", "models", "models.*", "transforms",
        "transforms.*", "pipelines", "pipelines.*"]),
    package_data={"": ["*.yaml"]},
    install_requires=REQUIRED,
    extras_require=EXTRAS,
)
