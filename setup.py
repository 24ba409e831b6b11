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
]

EXTRAS = {
    # The PyTorch VGGish backend (vggish.torch_model, --backend torch); pick the CUDA
    # build on GPU machines.
    "torch": ["torch==2.13.0"],
    "test": [
        "pytest>=8,<10",
        "hypothesis>=6.100,<7",
        "gcp-storage-emulator==2026.7.19",
        "moto[server]>=5.2,<6",
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
