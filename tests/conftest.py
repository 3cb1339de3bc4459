"""Shared fixtures: tiny float64 models and data for the invariant tests."""

import subprocess

import pandas as pd
import pytest
import torch
from torch import nn

from interbasis.basis.fold import fold_bias
from interbasis.basis.sections import capture

torch.set_num_threads(1)  # tests run beside other jobs on 2 cores


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Back to one torch thread after each test: a run in process (pipeline.run) or a stored run's
    config (results.stored) sets the config's threads, 2 by default, for the whole process, and
    every later test then ran two threads on two loaded cores (10 to 40 times the CPU time)."""
    yield
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


@pytest.fixture
def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 10), nn.ReLU(),
                         nn.Linear(10, 4)).double()


@pytest.fixture
def inputs() -> torch.Tensor:
    return torch.randn(400, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


MLP_LAYERS = ["0", "2", "4", "output"]


def activations(model: nn.Module, x: torch.Tensor, name: str) -> torch.Tensor:
    """The folded model's activation at node layer ``name`` for inputs x."""
    folded = fold_bias(model).double()
    with torch.no_grad():
        return capture(folded, x.double(), [name])[name]


def trained_blob_classifier(n_per_class: int = 100, seed: int = 0):
    """A small MLP trained to separate 4 balanced Gaussian blobs; returns (model, x, y)."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[3.0, 0, 0], [-3.0, 0, 0], [0, 3.0, 0], [0, -3.0, 0]])
    x = (centres.repeat_interleave(n_per_class, 0)
         + 0.5 * torch.randn(4 * n_per_class, 3, generator=generator))
    y = torch.arange(4).repeat_interleave(n_per_class)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model.double(), x.double(), y


# End-to-end tests in modules that are otherwise unit tests (measured at 5 s or more on 2 loaded
# cores: every figure drawn from a store, SGLD chains, a training epoch on the real images, a W&B
# offline run): integration, so that the unit tier stays under a minute. Listed here rather than
# marked in their modules, whose owners edit them in parallel.
INTEGRATION = {
    "test_figures.py": ["test_every_figure_is_drawn_from_a_synthetic_store",
                        "test_the_cross_architecture_table_holds_per_seed_ratios_of_every_model",
                        "test_lm_figure_panels_are_the_attention_and_mlp_sections",
                        "test_regenerating_unchanged_results_gives_identical_files",
                        "test_cross_architecture_compares_lib_with_neurons_where_neuron_runs_exist",
                        "test_cross_architecture_marks_censored_layers_and_missing_edges"],
    "test_figures_degeneracy.py": ["test_figure_8_draws_the_llc_rows_when_runs_stored_one",
                                   "test_figure_9_fits_the_stored_counts"],
    "test_llc.py": ["test_same_seed_same_estimate_and_the_model_is_left_alone",
                    "test_full_rank_linear_regression_gives_half_the_parameter_count",
                    "test_reduced_rank_regression_matches_aoyagi_watanabe",
                    "test_diverged_chains_store_no_llc_and_say_so_in_one_line"],
    "test_vision_training.py": ["test_one_epoch_on_real_fashion_mnist_beats_80_percent"],
    "test_vision_data.py": ["test_real_fashion_mnist_is_balanced"],
    "test_tracking.py": ["test_offline_run_lands_under_run_dir"],
    "test_poly_toy.py": ["test_training_settles_every_feature_on_a_neuron"],
    "test_masked.py": ["test_edge_ablation_result_is_the_same_on_both_paths"],
}


def pytest_collection_modifyitems(items):
    """The tiers (pyproject.toml): the tests listed in INTEGRATION are integration; a test that is
    neither integration nor slow is unit."""
    for item in items:
        if item.originalname in INTEGRATION.get(item.path.name, ()):
            item.add_marker(pytest.mark.integration)
        if not any(item.get_closest_marker(name) for name in ("integration", "slow")):
            item.add_marker(pytest.mark.unit)


@pytest.fixture
def reference(tmp_path):
    """A folder of the LIB authors' published CSVs (two seeds of lib and pca, made up here)."""
    folder = tmp_path / "authors"
    folder.mkdir()
    edges, nodes = [], []
    for method, offset in (("lib", 0), ("pca", 10)):
        for seed in (0, 1):
            for layer, n in (("ln1.0", 80), ("ln2.0", 60), ("unembed", 600)):
                edges.append([method, seed, layer, n + offset + seed, 0.999])
                # accuracy stays at 0.999 down to 20 + seed features, then drops
                for k in (129, 64, 32, 20, 19, 10, 0):
                    accuracy = 0.999 if k >= 20 + seed else 0.5
                    nodes.append([method, seed, layer, k, accuracy])
    edge_columns = ["method", "seed", "node_layer", "n_edges_required", "unablated_accuracy"]
    node_columns = ["method", "seed", "node_layer", "n_remaining", "accuracy"]
    pd.DataFrame(edges, columns=edge_columns).to_csv(folder / "authors_edges_required.csv",
                                                     index=False)
    pd.DataFrame(nodes, columns=node_columns).to_csv(folder / "authors_node_ablation.csv",
                                                     index=False)
    return folder


# How many `python -m interbasis.run` processes the tests start (printed at the end of a session):
# most tests run in process (tests/hydra_runs.py); this keeps the count in sight.
_RUN_PROCESSES: list[str] = []
_popen_init = subprocess.Popen.__init__


def _counting_popen_init(self, args, *rest, **kwargs):
    words = [str(word) for word in args] if isinstance(args, list | tuple) else [str(args)]
    if "interbasis.run" in words or any(word.endswith("interbasis-run") for word in words):
        _RUN_PROCESSES.append(" ".join(words[1:]))
    _popen_init(self, args, *rest, **kwargs)


subprocess.Popen.__init__ = _counting_popen_init


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"interbasis.run processes started by the tests: "
                                f"{len(_RUN_PROCESSES)}")
