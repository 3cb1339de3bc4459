"""Do committed results survive a code change? Rerun committed runs from their cached models and
print every summary key that differs (timing keys aside), plus the other result files that differ.

    python benchmarks/rerun_committed.py            # modadd_paper, fashion_mlp, fashion_cnn
    python benchmarks/rerun_committed.py tiny_gpt --run method=pca,seed=1
    python benchmarks/rerun_committed.py --against /tmp/old/runs   # compare two reruns instead

The reruns go to a temporary store (``--out``); the committed models are read in place (nothing
is retrained: a run whose model is not committed at its target step trains it in ``--out``).
One thread per run, as the committed runs were made.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "results" / "runs"
FILES = ("fourier.csv", "class_means.csv", "class_separation.csv", "modularity.json",
         "curves.csv")


def rerun(experiment: str, run: str, out: Path) -> Path:
    overrides = [f"experiment={experiment}", *run.split(","), "threads=1", "logger=none",
                 "progress=false", f"paths.runs={out / 'runs'}", f"paths.cache={out / 'cache'}",
                 f"paths.checkpoints={ROOT / 'results' / 'checkpoints'}", "rerun=true"]
    done = subprocess.run([sys.executable, "-m", "interbasis.run", *overrides],
                          capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{experiment} {run} failed: {done.stderr.strip()[-500:]}")
    return out / "runs" / experiment / run


def differences(old: Path, new: Path) -> list[tuple[str, str, str]]:
    """(key or file, old, new) for every summary value or result file that differs."""
    a = json.loads((old / "summary.json").read_text())
    b = json.loads((new / "summary.json").read_text())
    rows = []
    for key in sorted(set(a) | set(b)):
        if key.startswith("time/") or key == "train/seconds":
            continue
        x, y = a.get(key, "<missing>"), b.get(key, "<missing>")
        same = x == y or (isinstance(x, float) and isinstance(y, float)
                          and math.isnan(x) and math.isnan(y))
        if not same:
            rows.append((key, str(x), str(y)))
    for name in FILES:
        if (old / name).is_file() != (new / name).is_file():
            rows.append((name, "present" if (old / name).is_file() else "absent",
                         "present" if (new / name).is_file() else "absent"))
        elif (old / name).is_file() and (old / name).read_bytes() != (new / name).read_bytes():
            rows.append((name, "", "differs"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="*",
                        default=["modadd_paper", "fashion_mlp", "fashion_cnn"])
    parser.add_argument("--run", default="method=lib,seed=0", help="the run folder's name")
    parser.add_argument("--out", type=Path, default=None, help="store for the reruns")
    parser.add_argument("--against", type=Path, default=RUNS,
                        help="runs folder to compare with (default: the committed results)")
    parser.add_argument("--no-rerun", action="store_true",
                        help="compare what --out holds already")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="rerun_committed_"))
    print(f"| experiment | key | {args.against} | rerun ({out}) |\n|---|---|---|---|")
    changed = 0
    for experiment in args.experiments:
        new = (out / "runs" / experiment / args.run if args.no_rerun
               else rerun(experiment, args.run, out))
        rows = differences(args.against / experiment / args.run, new)
        changed += len(rows)
        for key, old_value, new_value in rows or [("(none)", "", "")]:
            print(f"| {experiment} | {key} | {old_value} | {new_value} |")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
