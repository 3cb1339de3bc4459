"""The Hydra entry point: compose, validate, run, record.

Usage::

    python -m interbasis.run                                  # the default run (cached model)
    python -m interbasis.run experiment=modadd_paper seed=3   # one paper run
    python -m interbasis.run method=pca debug=tiny            # seconds, no W&B
    python -m interbasis.run -m sweep=paper_modadd            # 5 seeds x {lib, pca}
    python -m interbasis.run --cfg job                        # print the composed config

Results go to ``<paths.runs>/<experiment_name>/<run_name>/`` (run_name from the overrides); W&B
runs are offline unless ``logger=wandb`` finds an API key. A bad config or a failing run ends with
one line naming the cause (the traceback is in the run directory's FAILED file).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from interbasis import pipeline
from interbasis.config import ConfigError, RunConfig, validate
from interbasis.results import (
    DEFAULT_IGNORED_OVERRIDES,
    RunDirectory,
    collect_meta,
    run_name_from_overrides,
    utc_now,
)
from interbasis.results.report import format_run_summary
from interbasis.tracking import make_tracker

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "conf"

if not OmegaConf.has_resolver("interbasis_root"):
    OmegaConf.register_new_resolver("interbasis_root", lambda: str(PROJECT_ROOT))


def execute(cfg: RunConfig, resolved: dict, overrides: list[str]) -> dict:
    """Run one validated config inside its run directory; always closes W&B."""
    # experiment/debug/sweep choose the folder above (experiment_name) or the grid, not the run
    run_name = run_name_from_overrides(
        overrides, ignore=(*DEFAULT_IGNORED_OVERRIDES, "experiment", "debug", "sweep"))
    run_dir = RunDirectory(Path(cfg.paths.runs) / cfg.experiment_name / run_name)
    run_dir.clear()
    run_dir.write_config(resolved)
    run_dir.write_meta(collect_meta())
    tracker = make_tracker(cfg.logger.kind, project=cfg.logger.project, entity=cfg.logger.entity,
                           dir=Path(cfg.paths.wandb))
    tags = [cfg.model.family, cfg.method.name, f"seed{cfg.seed}"]
    tracker.start(resolved, name=f"{cfg.experiment_name}/{run_name}", group=cfg.experiment_name,
                  tags=tags, run_dir=run_dir.path)
    run_dir.update_meta(wandb_run_id=tracker.run_id, wandb_run_path=tracker.run_path)
    exit_code = 1
    try:
        summary = pipeline.run(cfg, run_dir, tracker)
        run_dir.write_summary(summary)
        exit_code = 0
        print(format_run_summary(summary))
        print(f"run complete: {run_dir.path}")
        return summary
    except BaseException as error:
        run_dir.mark_failed(error)
        raise
    finally:
        run_dir.update_meta(end_time=utc_now(), exit_code=exit_code)
        tracker.finish(exit_code)


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def main(hydra_cfg: DictConfig) -> None:
    resolved = OmegaConf.to_container(hydra_cfg, resolve=True)
    try:
        cfg = validate(resolved)
    except ConfigError as error:
        print(error, file=sys.stderr)
        sys.exit(2)
    overrides = list(HydraConfig.get().overrides.task)
    try:
        execute(cfg, resolved, overrides)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as error:
        print(f"run failed: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
