"""Hydra composition and the schema: the schema is the one source of defaults (no YAML file restates
one), every experiment composes with and without ``debug=tiny`` (the compose matrix), and bad
values get one clear line. The Hydra grids are expanded in test_sweeps.py."""

import shutil
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from hydra_runs import composed, group_options
from interbasis.config import ConfigError, RunConfig, schema_defaults, validate
from interbasis.families import FAMILIES
from interbasis.run import CONFIG_DIR

pytestmark = pytest.mark.integration  # every test here composes through Hydra

SECTIONS = ["model", "data", "method", "train", "ablation", "analysis", "logger", "paths"]
EXPERIMENTS = group_options("experiment")


def plain(value):
    """Tuples as lists and nested models as dicts, as YAML holds them."""
    if isinstance(value, tuple | list):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


def leaves(node: dict, prefix: str = "") -> dict:
    """``{"model.d_mlp": 512, ...}``: the leaf values of a nested dict (lists are leaves)."""
    out = {}
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            out.update(leaves(value, path))
        else:
            out[path] = value
    return out


def at(cfg: RunConfig, path: str):
    node = cfg.model_dump()
    for part in path.split("."):
        node = node[part]
    return plain(node)


def section_in_context(group: str, option: str) -> type:
    """The schema class that ``conf/<group>/<option>.yaml`` fills (found by composing it into
    the first family it belongs to)."""
    for family in FAMILIES:
        try:
            cfg = validate(composed([f"family={family}", f"{group}={option}"]))
        except ConfigError:
            continue
        return type(getattr(cfg, group))
    raise AssertionError(f"conf/{group}/{option}.yaml composes into no family")


def test_defaults_compose_and_validate():
    cfg = validate(composed([]))
    assert cfg.model.family == "modadd" and cfg.method.name == "lib"
    assert cfg.model.node_layers[-1] == "output"
    assert Path(cfg.paths.runs).is_absolute() and cfg.paths.runs.startswith(cfg.paths.results)


def test_the_schema_feeds_hydra_every_default():
    # model/modadd.yaml does not say d_mlp: 512; the schema does, so Hydra has the key (and a
    # plain override finds it, no `+` needed) and every run's config.yaml records it
    assert "d_mlp" not in yaml.safe_load((CONFIG_DIR / "model" / "modadd.yaml").read_text())
    assert composed([])["model"]["d_mlp"] == 512
    assert validate(composed(["model.d_mlp=64"])).model.d_mlp == 64
    for family in FAMILIES:
        resolved = leaves(composed([f"family={family}"]))
        assert leaves(schema_defaults(family)).keys() <= resolved.keys(), family


@pytest.mark.parametrize("group", SECTIONS)
def test_no_group_file_restates_a_schema_default(group):
    restated = []
    for option in group_options(group):
        raw = yaml.safe_load((CONFIG_DIR / group / f"{option}.yaml").read_text()) or {}
        schema = section_in_context(group, option)
        for key, value in raw.items():
            field = schema.model_fields.get(key)
            if key != "defaults" and field is not None and not field.is_required() and (
                    value == plain(field.get_default(call_default_factory=True))):
                restated.append(f"conf/{group}/{option}.yaml: {key}: {value!r}")
    assert not restated, "these restate the schema's default (delete them):\n" + "\n".join(
        restated)


def test_config_yaml_restates_no_top_level_default():
    raw = yaml.safe_load((CONFIG_DIR / "config.yaml").read_text())
    assert set(raw) <= {"defaults", "hydra"}, sorted(set(raw) - {"defaults", "hydra"})


def test_method_files_differ_only_in_the_name():
    for option in group_options("method"):
        assert yaml.safe_load((CONFIG_DIR / "method" / f"{option}.yaml").read_text()) == {
            "name": option}


def preset_files() -> list[tuple[str, list[str]]]:
    """(file under conf/, the overrides that select it) of every file that holds deltas."""
    files = [(f"experiment/{name}.yaml", [f"experiment={name}"]) for name in EXPERIMENTS]
    files += [(f"sweep/{name}.yaml", [f"sweep={name}"]) for name in group_options("sweep")]
    files += [("debug/tiny.yaml", ["debug=tiny"])]
    files += [(f"shrink_experiment/{name}.yaml",
               [f"experiment={name.removeprefix('tiny_')}", "debug=tiny"])
              for name in group_options("shrink_experiment")]
    return files


@pytest.mark.parametrize(("path", "overrides"), preset_files(), ids=lambda v: str(v))
def test_no_preset_restates_what_it_would_get_anyway(path, overrides, tmp_path):
    """Every value a preset sets must change the composed config: the same composition with the
    file's body removed (its defaults list kept) validates to a different value."""
    text = (CONFIG_DIR / path).read_text()
    raw = yaml.safe_load(text) or {}
    body = {key: value for key, value in raw.items() if key not in ("defaults", "hydra")}
    if not body:
        return
    conf = tmp_path / "conf"
    shutil.copytree(CONFIG_DIR, conf)
    header = "# @package _global_\n" if text.startswith("# @package _global_") else ""
    stripped = {key: raw[key] for key in ("defaults", "hydra") if key in raw}
    (conf / path).write_text(header + yaml.safe_dump(stripped or {}))
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        without = validate(OmegaConf.to_container(compose("config", overrides=overrides),
                                                  resolve=True))
    with_body = validate(composed(overrides))
    restated = [f"{key}: {value!r}" for key, value in leaves(body).items()
                if at(without, key) == at(with_body, key)]
    assert not restated, f"conf/{path} restates (delete these): " + ", ".join(restated)


def compose_matrix() -> list[tuple[str, str, str, str]]:
    """(experiment, debug, family, experiment_name) of every experiment x {no debug, tiny}."""
    rows = []
    for experiment in EXPERIMENTS:
        for debug in (None, "tiny"):
            overrides = [f"experiment={experiment}"] + ([f"debug={debug}"] if debug else [])
            cfg = validate(composed(overrides))
            rows.append((experiment, debug or "-", cfg.model.family, cfg.experiment_name))
    return rows


def test_every_experiment_composes_with_and_without_debug_tiny():
    rows = compose_matrix()
    print("\nexperiment           debug  family    experiment_name")
    for row in rows:
        print(f"{row[0]:<20} {row[1]:<6} {row[2]:<9} {row[3]}")
    by_experiment = {}
    for experiment, debug, family, name in rows:
        by_experiment.setdefault(experiment, {})[debug] = (family, name)
    for experiment, variants in by_experiment.items():
        # debug=tiny shrinks the experiment's own family (it never switches to another)
        assert variants["-"][0] == variants["tiny"][0], experiment
        assert variants["-"][1] == experiment and variants["tiny"][1] == "debug"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_debug_tiny_shrinks_every_family(family):
    """The family's own shrink (``Family.tiny``, Hydra's ``shrink/tiny_<family>``) is what
    debug=tiny changes beyond debug/tiny.yaml, and every value it sets is a change."""
    full = validate(composed([f"family={family}"]))
    tiny = validate(composed([f"family={family}", "debug=tiny"]))
    assert tiny.model.family == family and tiny.logger.kind == "none" and tiny.threads == 1
    shrink = leaves(FAMILIES[family].tiny)
    assert shrink, f"{family}: no debug=tiny shrink"
    assert {key: at(tiny, key) for key in shrink} == {key: plain(v) for key, v in shrink.items()}
    restated = [key for key, value in shrink.items() if at(full, key) == plain(value)]
    assert not restated, f"{family}'s tiny shrink restates (delete these): {restated}"
    changed = {key for key, value in leaves(tiny.model_dump()).items()
               if leaves(full.model_dump())[key] != value}
    assert changed - {"experiment_name", "threads", "logger.kind"} == set(shrink)


def test_a_model_of_another_family_alone_names_the_family_choice():
    with pytest.raises(ConfigError, match=r"^config error: model.family = 'tiny_gpt' but "
                       r"data.name = 'modadd' .*choose family=tiny_gpt") as caught:
        validate(composed(["model=tiny_gpt"]))
    assert len(str(caught.value).splitlines()) == 1
    assert validate(composed(["family=tiny_gpt"])).data.name == "text"


@pytest.mark.parametrize("group", ["method", "logger", "debug", "family"])
def test_every_group_option_composes(group):
    for option in group_options(group):
        validate(composed([f"{group}={option}"]))


def test_paper_preset_matches_the_spec():
    cfg = validate(composed(["experiment=modadd_paper"]))
    assert (cfg.train.steps, cfg.train.lr, cfg.train.weight_decay) == (60000, 1e-3, 1.0)
    assert cfg.train.betas == (0.9, 0.98) and cfg.train.warmup_steps == 10
    assert (cfg.data.p, cfg.data.train_fraction) == (113, 0.3)
    assert (cfg.model.d_model, cfg.model.n_heads, cfg.model.d_head, cfg.model.d_mlp) == (
        128, 4, 32, 512)
    assert cfg.method.truncation_threshold == 1e-15 and cfg.method.basis_split == "train"
    assert cfg.ablation.split == "test" and cfg.ablation.edge_delta == 0.001
    assert cfg.ablation.max_samples is None  # the paper scores the whole test split
    assert validate(composed([])).ablation.max_samples == 2000  # the quick default run


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_presets_score_the_whole_split(experiment):
    """Only the bare default run ablates on a subset; a preset reproduces a paper setting."""
    assert validate(composed([f"experiment={experiment}"])).ablation.max_samples is None


def test_results_path_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("INTERBASIS_RESULTS", str(tmp_path))
    cfg = validate(composed([]))
    assert cfg.paths.runs == f"{tmp_path}/runs"


@pytest.mark.parametrize(("override", "message"), [
    ("seed=-1", r"seed = -1: Input should be greater than or equal to 0"),
    ("threads=abc", r"threads = 'abc': Input should be a valid integer"),
    ("method.integration=simpson", r"method.integration = 'simpson'.*'gradient'"),
    ("data.train_fraction=1.5", r"data.train_fraction = 1.5: Input should be less than 1"),
    ("+model.d_modle=3", r"unknown key 'model.d_modle'"),
    ("method.n_intervals=4", r"method.n_intervals = 4: only integrated gradients use intervals"),
    ("analysis.graph=false", r"analysis.graph = False and analysis.llc = False: .*nothing"),
    ("method.rank_split=features method.n_probes=4",
     r"method.rank_split = 'features' with method.n_probes = 4: .*cannot be split"),
    ("model.node_layers=[blocks.0.hook_resid_pre,blocks.1.hook_resid_pre,output]",
     r"'blocks.1.hook_resid_pre' is in block 1 but the model has 1 block"),
])
def test_bad_values_give_one_line_naming_the_field(override, message):
    with pytest.raises(ConfigError, match=message) as caught:
        validate(composed(override.split()))
    assert len(str(caught.value).splitlines()) == 1


@pytest.mark.parametrize(("overrides", "message"), [
    (["family=tiny_gpt", "model.n_layers=1"], r"'blocks.1.hook_resid_pre' is in block 1 but the "
     r"model has 1 block"),
    (["family=vision", "model.hidden=[16]"], r"the model has no layer '4' \(it has 0, 2 and "
     r"output\)"),
    (["family=vision", "model=vision_cnn", "model.node_layers=[conv0,head,fc,output]"],
     r"the model has no layer 'fc'"),
])
def test_node_layers_must_exist_in_the_configured_model(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(composed(overrides))
