# Everyday commands; the README's set-up lines are the source of truth for a fresh machine.
.PHONY: install check test test-all bench demo figures

install:
	pip install -q torch==2.13.0 && pip install -q -e '.[dev]'

check:
	ruff check src tests benchmarks

test:
	python -m pytest -q -m "not slow"

test-all:
	python -m pytest -q

bench:
	python benchmarks/bench_build_graph.py

demo:
	python -m interbasis.demo

figures:
	python -m interbasis.figures
