"""Analyses of a finished graph that figures need and the pipeline stores with each run.

- ``fourier``: Fourier purity of modular-addition features (the modadd family's analysis hook).
- ``partition``: the Leiden partition and Q at several resolutions (``modularity.json``).
- ``backfill``: compute both for runs that finished before they existed.
"""
