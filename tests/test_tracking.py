"""W&B tracking: offline runs land under the run directory, resume keeps the id, failures only warn.

Everything runs offline (no network): WANDB_MODE=offline and every W&B folder in tmp_path.
"""

import subprocess
import sys
import warnings

import pytest

from interbasis.basis.types import EdgeAblationResult, NodeAblationCurve
from interbasis.results import curves_frame
from interbasis.tracking import Tracker, WandbTracker, make_tracker, wandb_api_key_configured

wandb = pytest.importorskip("wandb")


@pytest.fixture(autouse=True)
def offline_wandb(tmp_path, monkeypatch):
    """No network, no key, and no W&B file outside tmp_path (not even in the cwd)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    for name in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name.lower()))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    yield
    assert not (cwd / "wandb").exists(), "W&B wrote into the working directory"


def curves():
    node = [NodeAblationCurve(layer="0", ks=[1, 2, 3], scores=[0.3, 0.8, 1.0], base_score=1.0),
            NodeAblationCurve(layer="output", ks=[1, 2], scores=[0.6, 1.0], base_score=1.0)]
    edges = [EdgeAblationResult(transition="0->output", n_required=2, n_possible=6, eps=0.2,
                                base_score=1.0, score_at_required=0.999, delta=0.001,
                                evaluations={6: 1.0, 1: 0.5, 2: 0.999})]
    return curves_frame(node, edges)


def start(tracker, run_dir, run_id=None):
    tracker.start({"seed": 0, "method": "lib", "model": {"d": 8}}, name="method=lib,seed=0",
                  group="modadd", tags=["modadd", "lib", "seed=0"], run_dir=run_dir,
                  run_id=run_id)


def w_and_b_warnings(record) -> list[str]:
    return [str(item.message) for item in record if str(item.message).startswith("W&B")]


# -- no-op tracker -----------------------------------------------------------------------------


def test_none_tracker_is_a_no_op(tmp_path):
    tracker = make_tracker("none", project="ignored")
    assert type(tracker) is Tracker
    start(tracker, tmp_path / "run")
    tracker.log_metrics({"loss": 1.0}, step=1)
    tracker.log_curves(curves())
    tracker.set_summary({"x": 1})
    tracker.finish()
    tracker.finish(exit_code=1)
    assert tracker.run_id is None and tracker.run_path is None
    assert not (tmp_path / "run").exists()


@pytest.mark.integration
def test_importing_tracking_does_not_import_wandb():
    code = "import sys, interbasis.tracking; print('wandb' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


# -- choosing the mode -------------------------------------------------------------------------


def test_make_tracker_kinds(monkeypatch, tmp_path):
    assert make_tracker("offline", project="p").mode == "offline"
    monkeypatch.delenv("WANDB_MODE")
    with pytest.warns(UserWarning, match="no API key"):
        assert make_tracker("wandb").mode == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_api_key_configured() and make_tracker("wandb").mode == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")  # an explicit environment choice wins
    assert make_tracker("wandb").mode == "disabled"
    with pytest.raises(ValueError):
        make_tracker("tensorboard")
    with pytest.raises(ValueError):
        WandbTracker(mode="sometimes")


def test_api_key_from_netrc(monkeypatch, tmp_path):
    netrc_path = tmp_path / "netrc"
    netrc_path.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    netrc_path.chmod(0o600)
    assert not wandb_api_key_configured()
    monkeypatch.setenv("NETRC", str(netrc_path))
    assert wandb_api_key_configured()


# -- offline runs ------------------------------------------------------------------------------


def test_offline_run_lands_under_run_dir(tmp_path):
    run_dir = tmp_path / "runs" / "modadd" / "method=lib,seed=0"
    tracker = make_tracker("offline", project="interbasis-test")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        start(tracker, run_dir)
        assert tracker.active and tracker.run_id
        tracker.log_metrics({"train/loss": 0.5}, step=1)
        tracker.log_metrics({"train/loss": 0.25}, step=2)
        tracker.log_curves(curves())
        tracker.set_summary({"rank/basis/0": 3, "modularity/q": float("nan")})
        tracker.finish()
        tracker.finish()  # twice is fine
    assert w_and_b_warnings(record) == []
    offline_dirs = list((run_dir / "wandb").glob(f"offline-run-*-{tracker.run_id}"))
    assert len(offline_dirs) == 1
    assert tracker.run_path == str(offline_dirs[0])
    assert (offline_dirs[0] / f"run-{tracker.run_id}.wandb").stat().st_size > 0
    assert list(offline_dirs[0].rglob("*.table.json")), "the curves table was not logged"
    assert not tracker.active


def test_resume_keeps_the_run_id(tmp_path):
    first = WandbTracker(mode="offline", project="interbasis-test", dir=tmp_path / "wandb-files")
    start(first, tmp_path / "run", run_id="resumeid01")
    first.log_metrics({"loss": 1.0}, step=1)
    first.finish(exit_code=1)  # e.g. killed

    second = WandbTracker(mode="offline", project="interbasis-test", dir=tmp_path / "wandb-files")
    start(second, tmp_path / "run", run_id=first.run_id)
    second.log_metrics({"loss": 0.5}, step=2)
    second.finish()
    assert first.run_id == second.run_id == "resumeid01"
    assert len(list((tmp_path / "wandb-files" / "wandb").glob("offline-run-*-resumeid01"))) >= 1
    assert not (tmp_path / "run").exists()  # a configured dir takes the files instead


# -- failures ----------------------------------------------------------------------------------


def test_failed_init_warns_and_degrades(tmp_path, monkeypatch):
    def broken_init(**kwargs):
        raise RuntimeError("no route to host\n(details)")

    monkeypatch.setattr(wandb, "init", broken_init)
    tracker = make_tracker("offline")
    with pytest.warns(RuntimeWarning) as record:
        start(tracker, tmp_path / "run")
    assert w_and_b_warnings(record) == [
        "W&B: wandb.init failed: RuntimeError: no route to host (details); continuing without W&B"
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a degraded tracker stays silent
        tracker.log_metrics({"loss": 1.0})
        tracker.log_curves(curves())
        tracker.set_summary({"x": 1})
        tracker.finish()
        tracker.finish()
    assert tracker.run_id is None and not tracker.active


class FakeRun:
    """Stands in for wandb.sdk.wandb_run.Run; ``fail`` names the method that raises."""

    def __init__(self, fail: str | None = None, **init_kwargs):
        self.fail, self.init_kwargs = fail, init_kwargs
        self.id, self.path = init_kwargs.get("id") or "fake01", "entity/project/fake01"
        self.logged, self.finished, self.summary_values, self.config_values = [], [], {}, {}
        self.summary = type("Summary", (), {"update": self._summary_update})()
        self.config = type("Config", (), {"update": self._config_update})()

    def _summary_update(self, values):
        self._maybe_fail("summary")
        self.summary_values.update(values)

    def _config_update(self, values, allow_val_change=False):
        assert allow_val_change
        self.config_values.update(values)

    def _maybe_fail(self, name):
        if self.fail == name:
            raise ConnectionError(f"{name} broke")

    def log(self, values, step=None):
        self._maybe_fail("log")
        self.logged.append((values, step))

    def finish(self, exit_code=0):
        self._maybe_fail("finish")
        self.finished.append(exit_code)


def fake_init(monkeypatch, fail=None) -> list[FakeRun]:
    runs: list[FakeRun] = []

    def init(**kwargs):
        runs.append(FakeRun(fail, **kwargs))
        return runs[-1]

    monkeypatch.setattr(wandb, "init", init)
    return runs


def test_calls_reach_wandb(tmp_path, monkeypatch):
    runs = fake_init(monkeypatch)
    tracker = WandbTracker(mode="online", project="proj", entity="team")
    start(tracker, tmp_path / "run", run_id="abc")
    tracker.log_metrics({"loss": 1.0}, step=3)
    tracker.log_curves(curves())
    tracker.set_summary({"rank/basis/0": 3})
    tracker.finish(exit_code=0)
    (run,) = runs
    assert run.init_kwargs["id"] == "abc" and run.init_kwargs["resume"] == "allow"
    assert run.init_kwargs["dir"] == str(tmp_path / "run")
    assert run.init_kwargs["mode"] == "online" and run.init_kwargs["entity"] == "team"
    assert run.init_kwargs["tags"] == ["modadd", "lib", "seed=0"]
    assert run.config_values["model"] == {"d": 8}
    assert tracker.run_id == "abc" and tracker.run_path == "entity/project/fake01"
    assert run.logged[0] == ({"loss": 1.0}, 3)
    curve_keys = set(run.logged[1][0])
    assert curve_keys == {"curves/table", "curves/node/0", "curves/node/output",
                          "curves/edge/0->output"}
    assert isinstance(run.logged[1][0]["curves/table"], wandb.Table)
    assert run.summary_values == {"rank/basis/0": 3} and run.finished == [0]
    # Without a run id nothing is resumed.
    start(tracker, tmp_path / "run")
    assert runs[-1].init_kwargs["id"] is None and runs[-1].init_kwargs["resume"] is None


@pytest.mark.parametrize("fail", ["log", "summary"])
def test_failure_mid_run_warns_once_and_closes_the_run(tmp_path, monkeypatch, fail):
    runs = fake_init(monkeypatch, fail=fail)
    tracker = WandbTracker(mode="offline")
    start(tracker, tmp_path / "run")
    with pytest.warns(RuntimeWarning) as record:
        tracker.log_metrics({"loss": 1.0})
        tracker.log_curves(curves())
        tracker.set_summary({"x": 1})
        tracker.finish()
    (message,) = w_and_b_warnings(record)
    assert message.startswith("W&B: ") and message.endswith("; continuing without W&B")
    assert f"{fail} broke" in message
    assert runs[0].finished == [1]  # closed as failed when degrading, not finished again
    assert not tracker.active and tracker.run_id == runs[0].id


def test_failing_finish_only_warns(tmp_path, monkeypatch):
    fake_init(monkeypatch, fail="finish")
    tracker = WandbTracker(mode="offline")
    start(tracker, tmp_path / "run")
    with pytest.warns(RuntimeWarning, match="W&B: finish: ConnectionError"):
        tracker.finish()
    tracker.finish()
