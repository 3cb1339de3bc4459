"""Analyses of a finished graph that figures need and the pipeline stores with each run.

Family-specific analyses need the model or the data (they are not pure metrics of the graph) and
come through ``Prepared.analyse``: tables for the run directory, scalars for the summary.

- ``fourier``: Fourier purity of modular-addition features (the modadd family's analysis hook).
- ``classes``: mean feature value per class and class-group separation (the vision family's).
- ``partition``: the Leiden partition and Q at several resolutions (``modularity.json``).
- ``backfill``: compute the stored analyses for runs that finished before they existed.
"""
