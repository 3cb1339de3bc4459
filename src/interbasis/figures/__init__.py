"""Paper figures regenerated from the results store alone (``python -m interbasis.figures``).

One module per figure (``figNN_<name>.py`` with ``make(results, out) -> [paths]``), a shared
``style`` (LIB and PCA look the same everywhere), ``data`` (what figures read, and the one-line
reasons they skip), and the ``registry`` of every figure in docs/experiments.md. Figures never
import training code or compute a basis: they read ``results/``.
"""
