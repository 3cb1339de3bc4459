#!/usr/bin/env bash
# Downloads, here (where pip reaches the registry), the wheels that benchmarks/gpu_check.sh
# installs on the lent GPU machine, which has python 3.12 on x86-64 and no registry: the runtime
# dependencies of pyproject.toml that its image lacks (/work/.library/device/KINDS.md's package
# list), and theirs, pinned to the versions the CPU venv runs. .whl/ is git-ignored; the device
# call carries it (carry [".whl"]).
#   bash benchmarks/gpu_wheels.sh && du -sh .whl
# tests/test_gpu_check.py checks that every runtime dependency is in exactly one of the lists.
set -euo pipefail
cd "$(dirname "$0")/.."

# pyproject.toml's runtime dependencies the device image already has (KINDS.md)
ON_DEVICE="torch numpy jaxtyping pandas matplotlib tqdm filelock pyyaml"
# Not carried: wandb (gpu_check.sh runs logger=none, interbasis imports wandb only to log, and it
# pulls a dozen more packages), plotly (9.7 MB; only the results browser, interbasis.site).
NOT_CARRIED="wandb plotly"
# typing-extensions is on the device too, but pydantic 2.14 needs >= 4.16, a version not known there
WHEELS=(
  hydra-core==1.3.8 omegaconf==2.3.1 hydra-joblib-launcher==1.2.0 hydra-submitit-launcher==1.2.0
  submitit==1.5.4
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  typing-extensions==4.16.0
  leidenalg==0.12.0 igraph==1.0.0 texttable==1.7.2
)
# hydra-core and omegaconf need antlr4-python3-runtime 4.9.*, published as a source archive
# only: built here into a pure-Python wheel (py3-none-any)
SDIST_ONLY=(antlr4-python3-runtime==4.9.3)

mkdir -p .whl && rm -f .whl/*.whl  # one version of each: two stop the install there
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1; do
  platforms+=(--platform "${tag}_x86_64")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${platforms[@]}" -d .whl "${WHEELS[@]}"
python3 -m pip wheel -q --no-deps -w .whl "${SDIST_ONLY[@]}"
echo "$ON_DEVICE are on the device; not carried: $NOT_CARRIED"
ls -l .whl/*.whl && du -ch .whl/*.whl | tail -1
