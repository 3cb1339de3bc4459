"""Family-specific analyses of a finished graph that need the model or the data (not pure metrics).

Each returns pandas tables for the run directory (``Prepared.analyse``); figures read them back.
"""
