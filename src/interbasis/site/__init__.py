"""The results browser: static HTML pages over ``results/`` that open from disk with no server.

``python -m interbasis.site`` writes ``results/site/``:

- ``index.html``: the experiments, their sweep axes and a sortable table of runs;
- ``runs/<experiment>/<run>.html``: metrics, ablation curves, spectra, the interaction graph
  with a label per feature, and the feature table;
- ``compare/<experiment>/<run without method>.html``: LIB, PCA, neuron and NGF of one model and
  seed side by side;
- ``graphs/<experiment>/<run>.json``: the graph in the schema of ``docs/graph_schema.md``.

Everything is read from the results store through its readers; nothing is recomputed. Plots are
plotly's, whose JavaScript ships in its Python package: the site copies it once to
``results/site/plotly.min.js`` and every page loads it by a relative path.
"""

from interbasis.site.build import build_site

__all__ = ["build_site"]
