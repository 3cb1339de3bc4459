# Everyday commands; the README's set-up lines are the source of truth for a fresh machine.
.PHONY: install check test test-unit test-integration test-all bench demo figures train-modadd

install:
	pip install -q torch==2.13.0 && pip install -q -e '.[dev]'

# ruff, then mypy on every module of src/ ([tool.mypy] in pyproject.toml)
check:
	ruff check src tests benchmarks
	python -m mypy

test:
	python -m pytest -q -m "not slow"

# the tiers of the fast suite (pyproject.toml [tool.pytest.ini_options] markers)
test-unit:
	python -m pytest -q -m unit

test-integration:
	python -m pytest -q -m "integration and not slow"

test-all:
	python -m pytest -q

bench:
	python benchmarks/bench_build_graph.py

demo:
	python -m interbasis.demo

figures:
	python -m interbasis.figures

# The 5 paper seeds of E1 (60,000 steps each), two at a time with one torch thread each (two
# 2-thread jobs on 2 cores crawl); each resumes from its cached checkpoint if one exists.
SEEDS ?= 0 1 2 3 4
JOBS ?= 2
train-modadd:
	printf '%s\n' $(SEEDS) | xargs -P $(JOBS) -I{} python -m interbasis.training.modadd \
		--seed {} --steps 60000 --threads 1 --checkpoint-dir results/checkpoints/modadd
