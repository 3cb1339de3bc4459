"""Figure details that were defects in committed PNGs: crowded edge-count ticks (figure 6) and
count labels drawn over the markers (figure 10)."""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from interbasis.figures import fig06_lm_edges, fig10_cross_architecture  # noqa: E402


@pytest.mark.parametrize("value, text", [(1, "1"), (30, "30"), (1000, "1k"), (20000, "20k"),
                                         (300000, "300k"), (2_000_000, "2M")])
def test_edge_counts_are_compact_tick_labels(value, text):
    assert fig06_lm_edges._compact(value) == text


@pytest.mark.parametrize("chars", [5, 10, 15])  # "665880 / 573937" is 15
def test_count_labels_get_a_strip_clear_of_the_data(chars):
    fig, ax = plt.subplots(figsize=(3, 3))
    low, high = 1 / 256, 2.0
    text = "9" * chars
    top = fig10_cross_architecture._room_for_counts(ax, low, high, [text])
    ax.set_xscale("log", base=2)
    ax.set_xlim(low, top)
    label = ax.annotate(text, (1.0, 0.5), xycoords="axes fraction", xytext=(-2, 0),
                        textcoords="offset points", ha="right",
                        fontsize=fig10_cross_architecture.COUNT_FONT)
    fig.canvas.draw()
    left_of_label = label.get_window_extent().x0
    right_of_data = ax.transData.transform((high, 0.5))[0]
    assert right_of_data < left_of_label  # the largest marker ends before the label begins
    assert math.isclose(fig10_cross_architecture._room_for_counts(ax, low, high, []), high)
    plt.close(fig)


def test_lm_graph_labels_carry_the_top_token_and_the_position_share(tmp_path):
    """Figure 6b said top tokens and position shares were not stored; the runs now store them
    (metrics.top_tokens / metrics.positions) and the node labels show them."""
    from interbasis.figures import fig06b_lm_graph

    (tmp_path / "top_tokens.csv").write_text(
        '"layer","feature","rank","token","score","count"\n'
        '"blocks.0.hook_resid_pre",1,1," ",2.5,3\n"blocks.0.hook_resid_pre",1,2,"k",1.0,2\n')
    (tmp_path / "positions.csv").write_text(
        "layer,feature,position_share,eigenvalue\nblocks.0.hook_resid_pre,1,0.998,10.0\n"
        "blocks.0.hook_resid_pre,2,0.031,5.0\n")
    notes = fig06b_lm_graph._feature_notes(tmp_path)
    assert notes == {("blocks.0.hook_resid_pre", 1): "' ' pos 1.00",
                     ("blocks.0.hook_resid_pre", 2): "pos 0.03"}
    assert fig06b_lm_graph._feature_notes(tmp_path / "absent") == {}
