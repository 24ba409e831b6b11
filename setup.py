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

# Models on PyTorch. PyPI's Linux torch wheel is the CUDA build (what GPU workers want);
# this project's build machines resolve ==2.13.0 to their local 2.13.0+cpu wheel. Elsewhere,
# `make venv PIP_FLAGS='--extra-index-url https://download.pytorch.org/whl/cpu'` picks the
# CPU build of the same version.
TORCH = ["torch==2.13.0"]
# Hugging Face checkpoints (CLAP, AST): transformers' models, weights from safetensors only.
TRANSFORMERS = [*TORCH, "transformers==5.24.0", "safetensors==0.8.0"]
# Seeing and using outputs (python -m pipelines.map / search / inspect, explore.sql):
# the map (plotly; kaleido renders --png with a local Chromium), projections, DuckDB with
# the offline HNSW extension wheel, dataframes.
EXPLORE = [
    "plotly==7.1.0",
    "kaleido==1.5.0",
    "umap-learn==0.5.12",
    "scikit-learn==1.9.1",
    "duckdb==1.5.5",
    "duckdb-extension-vss==1.5.5",
    "polars==2.1.0",
    "pandas==3.1.1",
]

EXTRAS = {
    "torch": TORCH,          # --backend torch for VGGish and YAMNet
    "clap": TRANSFORMERS,    # --model clap
    "ast": TRANSFORMERS,     # --model ast
    "clmr": TORCH,           # --model clmr (our SampleCNN; torch.load(weights_only=True))
    "explore": EXPLORE,
}
EXTRAS["models"] = sorted({p for name in ("torch", "clap", "ast", "clmr") for p in EXTRAS[name]})
EXTRAS["test"] = [
    "pytest>=8,<10",
    "hypothesis>=6.100,<7",
    "gcp-storage-emulator==2026.7.19",
    "moto[server]>=5.2,<6",
    "librosa==0.11.0",   # test oracle: CLAP's reference resampling (soxr_hq)
    "selenium==4.51.0",  # the map's browser test (drives Debian's chromium + chromedriver)
    *EXTRAS["models"],
    *EXPLORE,
]

setuptools.setup(
    name="audiobeam",
    version="0.1.0",
    description="Audio embeddings (VGGish, YAMNet, CLAP, AST, CLMR) at scale with Apache Beam, "
    "exact to each model's reference.",
    python_requires=">=3.11,<3.12",
    packages=setuptools.find_packages(include=[
        "audiobeam", "audiobeam.*", "vggish", "vggish.*", "models", "models.*", "transforms",
        "transforms.*", "pipelines", "pipelines.*", "explore", "explore.*"]),
    package_data={"": ["*.yaml"]},
    install_requires=REQUIRED,
    extras_require=EXTRAS,
)
