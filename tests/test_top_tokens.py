"""metrics.top_tokens: the tokens a language-model feature is largest on, and the site's labels."""

import pandas as pd
import pytest
import torch

from interbasis.basis.types import Graph, NodeLayer, load_graph
from interbasis.metrics.positions import POSITIONS_FILE, position_shares
from interbasis.metrics.top_tokens import (
    TOP_TOKENS_FILE,
    TokenMagnitudes,
    count_floor,
    read_table,
    top_tokens,
    write_table,
)
from interbasis.models.tiny_gpt import TinyGPT, TinyGPTConfig
from interbasis.results.stored import rerooted, stored_graph
from interbasis.site.collect import load_store
from interbasis.site.labels import feature_labels
from site_store import write_run

VOCABULARY = "ab\n cxyz"  # a newline and a space among the characters
TOKEN = 5  # 'x': the token the constructed feature indicates
D_MODEL = 8
MARKED = 3  # the residual coordinate only TOKEN's embedding has


def test_an_indicator_ranks_its_token_first_and_one_off_tokens_never():
    g = torch.Generator().manual_seed(0)
    inputs = torch.randint(0, 6, (40, 10), generator=g)
    inputs[0, 0] = 9  # seen once
    indicator = (inputs == 2).double()
    features = torch.stack([indicator + 0.1 * torch.randn(inputs.shape, generator=g),
                            -3.0 * (inputs == 4).double(),  # the sign does not matter
                            torch.where(inputs == 9, 100.0, 0.0)], dim=-1)
    magnitudes = TokenMagnitudes(inputs)
    for rows, values in zip(inputs.split(7), features.split(7)):  # batch by batch
        magnitudes.update(rows, values)
    ids, scores, counts = magnitudes.top(k=3, min_count=5)
    assert ids.shape == (3, 3)
    assert ids[0, 0].item() == 2 and ids[1, 0].item() == 4
    assert scores[1, 0].item() == 3.0 and counts[1, 0].item() == (inputs == 4).sum().item()
    assert 9 not in ids.flatten().tolist()  # 100 at one position is not a top token
    assert (scores[:, :-1] >= scores[:, 1:]).all()
    with pytest.raises(ValueError, match="not given"):
        magnitudes.update(torch.full((1, 10), 7), features[:1])
    assert magnitudes.top(k=3, min_count=10_000)[0].shape == (3, 0)
    assert count_floor(64 * 64) == 21 and count_floor(8 * 32) == 5  # 0.5% of positions, >= 5


def indicator_gpt() -> tuple[TinyGPT, Graph]:
    """A tiny GPT whose residual coordinate MARKED before block 0 is 1 at TOKEN and 0 elsewhere,
    and a graph whose feature 1 reads that coordinate (feature 2 a random direction)."""
    model = TinyGPT(TinyGPTConfig(d_vocab=len(VOCABULARY), n_ctx=12, d_model=D_MODEL,
                                  n_layers=1, n_heads=2, d_mlp=16), seed=0)
    with torch.no_grad():
        model.W_E[:, MARKED] = 0.0
        model.W_E[TOKEN, MARKED] = 1.0
        model.W_pos[:, MARKED] = 0.0
    width = D_MODEL + 1  # the folded model's constant coordinate comes last
    C = torch.zeros(width, 3, dtype=torch.float64)
    C[-1, 0] = 1.0  # the constant feature
    C[MARKED, 1] = 1.0
    C[:-1, 2] = torch.randn(D_MODEL, generator=torch.Generator().manual_seed(1)).double()
    layer = NodeLayer(name="blocks.0.hook_resid_pre", C=C, C_pinv=torch.linalg.pinv(C),
                      eigenvalues=torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64),
                      mean=torch.zeros(width, dtype=torch.float64),
                      gram_eigenvalues=torch.ones(width, dtype=torch.float64), has_constant=True)
    return model, Graph(layers=[layer], edges=[], method="lib")


def test_a_token_indicator_feature_of_a_gpt_gets_that_token_first_and_round_trips(tmp_path):
    model, graph = indicator_gpt()
    inputs = torch.randint(0, len(VOCABULARY), (24, 12), generator=torch.Generator().manual_seed(2))
    table = top_tokens(model, graph, inputs, VOCABULARY.__getitem__, k=4, min_count=3)
    first = table[table["feature"] == 1].sort_values("rank")
    assert first["token"].iloc[0] == "x" and first["score"].iloc[0] == pytest.approx(1.0)
    assert first["score"].iloc[1:].abs().max() < 1e-9  # every other token reads 0 there
    assert sorted(table["feature"].unique()) == [1, 2] and table["rank"].max() == 4
    assert set(table["token"]) <= set(VOCABULARY)  # decoded: characters, not ids
    write_table(tmp_path, table)
    back = read_table(tmp_path)
    pd.testing.assert_frame_equal(back, table, check_exact=False, rtol=1e-5)
    assert not (tmp_path / (TOP_TOKENS_FILE + ".tmp")).exists()


def test_position_shares_read_the_same_features():
    model, graph = indicator_gpt()
    inputs = torch.randint(0, len(VOCABULARY), (48, 12), generator=torch.Generator().manual_seed(3))
    table = position_shares(model, graph, inputs, batch_size=5)
    assert table["feature"].tolist() == [1, 2]
    assert table["position_share"].iloc[0] < 0.1  # a token indicator on random tokens
    inputs[:, 0] = TOKEN  # now the indicator is 1 at position 0, 1 in 8 elsewhere
    share = position_shares(model, graph, inputs)["position_share"].iloc[0]
    means = torch.tensor([1.0] + [1 / len(VOCABULARY)] * 11)
    between = ((means - means.mean()) ** 2).mean()
    expected = between / (between + (means * (1 - means)).mean())
    assert abs(share - expected.item()) < 0.1


def test_a_token_named_na_reads_back_as_text(tmp_path):
    table = pd.DataFrame({"layer": ["0", "0"], "feature": [1, 1], "rank": [1, 2],
                          "token": ["NA", ""], "score": [2.0, 1.0], "count": [5, 6]})
    write_table(tmp_path, table)
    assert read_table(tmp_path)["token"].tolist() == ["NA", ""]
    (tmp_path / TOP_TOKENS_FILE).write_text("layer,feature\n0,1\n")
    with pytest.raises(ValueError, match="no column"):
        read_table(tmp_path)


def lm_run(tmp_path, tokens: bool, positions: bool):
    layers = ["blocks.0.hook_resid_pre", "ln_final", "output"]
    directory = write_run(tmp_path, "lm_toy", "lib", 0, "tiny_gpt", layers)
    graph = load_graph(next(directory.path.glob("graph_*.pt")))
    rank = graph.layer("blocks.0.hook_resid_pre").rank
    if tokens:
        write_table(directory.path, pd.DataFrame(
            [{"layer": "blocks.0.hook_resid_pre", "feature": f, "rank": r + 1,
              "token": ["\n", "e", " "][(f + r) % 3], "score": 3.0 - r, "count": 9}
             for f in range(1, rank) for r in range(2)]))
    if positions:
        pd.DataFrame({"layer": "blocks.0.hook_resid_pre", "feature": range(1, rank),
                      "position_share": 0.25, "eigenvalue": 1.0}).to_csv(
            directory.path / POSITIONS_FILE, index=False)
    (run,) = load_store(tmp_path)
    return feature_labels(run, graph)


def test_lm_labels_show_top_tokens_beside_the_position_share(tmp_path):
    labels = lm_run(tmp_path, tokens=True, positions=True)
    assert labels.label("blocks.0.hook_resid_pre", 1) == \
        "top tokens 'e' ' '; position share 0.25"
    assert labels.label("blocks.0.hook_resid_pre", 2) == \
        "top tokens ' ' '\\n'; position share 0.25"
    assert labels.label("blocks.0.hook_resid_pre", 0) == "constant"
    assert labels.source == f"{TOP_TOKENS_FILE} and {POSITIONS_FILE}"
    assert not any("no top tokens" in note or "no position" in note for note in labels.notes)
    assert f"{TOP_TOKENS_FILE} and {POSITIONS_FILE} have no labels for layer(s) ln_final, " \
        "output" in labels.notes


@pytest.mark.parametrize("tokens,positions,note", [
    (True, False, "no position shares are stored"),
    (False, True, "no top tokens are stored"),
    (False, False, "no top tokens or position shares are stored")])
def test_lm_labels_say_which_file_is_missing(tmp_path, tokens, positions, note):
    labels = lm_run(tmp_path, tokens=tokens, positions=positions)
    assert sum(note in line for line in labels.notes) == 1
    label = labels.label("blocks.0.hook_resid_pre", 1)
    assert (label is not None and "top tokens 'e'" in label) == tokens
    assert (label is not None and "position share" in label) == positions


def test_a_stored_data_path_under_the_old_checkout_moves_to_this_one_when_missing(tmp_path):
    new = str(tmp_path / "new")
    assert rerooted("/old/data/kjv.txt", "/old", new) == f"{new}/data/kjv.txt"
    existing = tmp_path / "corpus.txt"
    existing.write_text("text")
    assert rerooted(str(existing), str(tmp_path), new) == str(existing)  # found where it was
    assert rerooted("/elsewhere/kjv.txt", "/old", new) == "/elsewhere/kjv.txt"  # not the root's
    assert rerooted("/old/kjv.txt", None, new) == "/old/kjv.txt"


def test_a_run_without_a_stored_graph_is_one_line_naming_it(tmp_path):
    # the commands that add a measure to stored runs (positions, top_tokens, edge_curve) read
    # the graph through stored_graph: a run with none says so instead of a StopIteration
    with pytest.raises(ValueError, match=r"no graph file \(graph_\*\.pt\) is stored") as caught:
        stored_graph(tmp_path)
    assert len(str(caught.value).splitlines()) == 1
