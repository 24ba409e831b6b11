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

# Torch models (AST, CLMR). PyPI's Linux torch wheel is the CUDA build; where no GPU is
# used, `make venv PIP_FLAGS='--extra-index-url https://download.pytorch.org/whl/cpu'`
# picks the CPU build of the same version (2.13.0+cpu satisfies ==2.13.0).
TORCH = ["torch==2.13.0"]

EXTRAS = {
    # AST: transformers' ASTModel / ASTForAudioClassification, weights as safetensors.
    "ast": [*TORCH, "transformers==5.24.0", "safetensors==0.8.0"],
    # CLMR: our own SampleCNN in torch; checkpoints read with torch.load(weights_only=True).
    "clmr": [*TORCH],
}
EXTRAS["test"] = [
    "pytest>=8,<10",
    "hypothesis>=6.100,<7",
    "gcp-storage-emulator==2026.7.19",
    "moto[server]>=5.2,<6",
    *sorted(set(EXTRAS["ast"] + EXTRAS["clmr"])),
]

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
