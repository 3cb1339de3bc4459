"""benchmarks/gpu_check.sh, the one prepared script a session runs on a lent GPU machine, and
benchmarks/gpu_wheels.sh, which fetches the wheels it installs there. Its device time is scarce
(15 minutes a session), so what can be checked without a GPU is checked here: the scripts parse,
every file, flag and run override the GPU mode uses exists, the wheels cover every runtime
dependency the device image lacks, and (slow) ``--cpu`` runs every step end to end at tiny sizes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from interbasis.overrides import check_overrides
from interbasis.run import CONFIG_DIR

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "benchmarks" / "gpu_check.sh"
WHEELS = ROOT / "benchmarks" / "gpu_wheels.sh"
# the device tool's description of the machine's image (this workplace's; absent elsewhere)
KINDS = Path("/work/.library/device/KINDS.md")
TORCHRUN_FLAGS = {"--standalone", "--nproc-per-node"}


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def functions(script: str) -> dict[str, str]:
    """The script's shell functions: name -> body (comment lines dropped, continuations joined)."""
    script = re.sub(r"^\s*#.*\n", "", script, flags=re.M).replace("\\\n", " ")
    starts = list(re.finditer(r"^(\w+)\(\) \{", script, re.M))
    ends = [m.start() for m in starts[1:]] + [script.index("\nexport -f")]
    return {m.group(1): script[m.end():end] for m, end in zip(starts, ends)}


def wheel_lists() -> dict[str, set[str]]:
    text = WHEELS.read_text()
    lists = {key: set(map(normal, re.search(rf'^{key}="([^"]*)"', text, re.M).group(1).split()))
             for key in ("ON_DEVICE", "NOT_CARRIED")}
    for key in ("WHEELS", "SDIST_ONLY"):
        pins = re.search(rf"^{key}=\((.*?)\)", text, re.M | re.S).group(1)
        lists[key] = {normal(pin.split("==")[0]) for pin in re.findall(r"\S+==\S+", pins)}
    return lists


def device_packages() -> set[str]:
    """The device image's Python packages, KINDS.md's list (skips where that file is absent)."""
    if not KINDS.is_file():
        pytest.skip(f"{KINDS} (the device's package list) is not on this machine")
    listed = re.search(r"^nvidia-h200: their image.*?Packages: (.*?)\.\s*$", KINDS.read_text(),
                       re.M).group(1)
    return {normal(name) for name in listed.split(", ")}


def test_both_scripts_parse():
    for script in (CHECK, WHEELS):
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def test_every_file_and_flag_the_check_calls_exists():
    checked = set()
    for name, body in functions(CHECK.read_text()).items():
        targets = [ROOT / "benchmarks" / f for f in re.findall(r"benchmarks/(\w+\.py)", body)]
        targets += [ROOT / "src" / f"{m.replace('.', '/')}.py"
                    for m in re.findall(r"-m (interbasis\.[\w.]+)", body)]
        for test in re.findall(r"tests/\w+\.py", body):
            assert (ROOT / test).is_file(), f"{name}: {test}"
        if not targets:
            continue
        for target in targets:
            assert target.is_file(), f"{name}: {target}"
        sources = " ".join(target.read_text() for target in targets)
        for flag in set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", body)) - TORCHRUN_FLAGS:
            assert f'"{flag}"' in sources, f"{name}: {flag} is not an option of {targets}"
            checked.add(flag)
    assert {"--tf32", "--budget-s", "--fallback-memory", "--samples", "--json"} <= checked


def test_the_gpu_runs_overrides_are_known():
    text = CHECK.read_text()
    common = re.search(r'export COMMON="([^"]*)"', text).group(1)
    common = common.replace("$THREADS", "8").replace("$WORK", "/tmp/work")
    paper = re.search(r'local what="([^"]*)"', text).group(1)
    for run in (paper, "family=tiny_gpt debug=tiny data.path=/tmp/text.txt",
                "experiment=tinystories_paper model.name=/tmp/m data.path=/tmp/m/text.txt"):
        overrides = [*run.split(), *common.split(), "device=cuda", "paths.runs=/tmp/work/runs"]
        assert check_overrides(overrides, CONFIG_DIR) is None, overrides


def test_every_runtime_dependency_is_on_the_device_carried_or_named_as_left_out():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = {normal(re.match(r"[A-Za-z0-9._-]+", dep).group(0))
              for dep in project["dependencies"]}
    lists = wheel_lists()
    for dependency in needed:
        owners = [key for key, names in lists.items() if dependency in names]
        assert len(owners) == 1, f"{dependency} is in {owners or 'no list'} of gpu_wheels.sh"
    assert not (lists["ON_DEVICE"] - needed) and not (lists["NOT_CARRIED"] - needed)
    missing = lists["ON_DEVICE"] - device_packages()
    assert not missing, f"gpu_wheels.sh says the device has {missing}; KINDS.md does not list it"


def test_downloaded_wheels_need_nothing_the_device_lacks():
    from packaging.requirements import Requirement

    wheels = sorted((ROOT / ".whl").glob("*.whl"))
    if not wheels:
        pytest.skip("no .whl/ here: bash benchmarks/gpu_wheels.sh")
    names = [normal(wheel.name.split("-")[0]) for wheel in wheels]
    assert len(names) == len(set(names)), "two versions of one package stop the install"
    lists = wheel_lists()
    assert set(names) == lists["WHEELS"] | lists["SDIST_ONLY"]
    available = device_packages() | set(names)
    environment = {"python_version": "3.12", "python_full_version": "3.12.3", "extra": ""}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            lines = archive.read(metadata).decode().splitlines()
        for line in lines:
            if line.startswith("Requires-Dist: "):
                requirement = Requirement(line.removeprefix("Requires-Dist: "))
                if requirement.marker is None or requirement.marker.evaluate(environment):
                    assert normal(requirement.name) in available, f"{wheel.name}: {line}"


def test_carried_wheels_stay_out_of_git():
    done = subprocess.run(["git", "check-ignore", "-q", ".whl/x.whl"], cwd=ROOT)
    assert done.returncode == 0


@pytest.mark.slow
def test_cpu_mode_runs_every_step(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1",
           "GPU_CHECK_WORK": str(tmp_path / "work")}
    done = subprocess.run(["bash", str(CHECK), "--cpu"], env=env, capture_output=True,
                          text=True, timeout=900)
    log = (out / "steps.log").read_text()
    assert done.returncode == 0, done.stdout + log[-4000:]
    rows = [line.split("\t") for line in (out / "summary.tsv").read_text().splitlines()]
    assert [row[0] for row in rows] == [
        "environment", "wheels", "cuda_tests", "devices_cpu", "devices_dev", "devices_compare",
        "gpt2_block", "tinystories", "nccl", "lm_basis"]
    assert [row[0] for row in rows if row[1] == "skip"] == ["wheels"]
    assert "torch" in (out / "env.txt").read_text()
    for name in ("devices.json", "nccl.json"):  # one pair each, equal
        (pair,) = json.loads((out / name).read_text())
        assert pair["problems"] == [] and pair["summary_keys"] > 10
    cases = json.loads((out / "gpt2_block.json").read_text())["cases"]
    assert cases and all("per_section" in case for case in cases)
    assert "predicted: build" in log  # the TinyStories estimate
    assert "1 passed" in log  # the no-CUDA branch of tests/test_engine.py -k cuda
    assert "step rc seconds" in done.stdout
