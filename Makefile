# The developer's tasks, one command each (see CONTRIBUTING.md). Run from the repository root in the dev environment
# (pip install -e ".[dev]"). `make` alone lists them.
.PHONY: help export lint format test test-nbs test-fast run-nbs readme bench ci

help:
	@echo "make export     notebooks -> gpt2_edu/ (nbdev-export), then strip notebook metadata (nbdev-clean)"
	@echo "make lint       ruff check (library, tests, benchmarks, tools) and ruff format --check (tests, benchmarks, tools)"
	@echo "make format     ruff format tests, benchmarks and tools; ruff check --fix everywhere it runs"
	@echo "make test       the whole suite: pytest, every chapter run in JupyterLab included (README command 2)"
	@echo "make test-fast  pytest without the browser test (a minute or three)"
	@echo "make test-nbs   every chapter under nbdev-test, every cell (slow and cuda ones too), no browser"
	@echo "make run-nbs    every chapter at the sizes a learner gets, as JupyterLab's Run All does (long)"
	@echo "make readme     README.md from nbs/index.ipynb"
	@echo "make bench      the speed benchmarks, each a ratio against its peer"
	@echo "make ci         what CI runs: .ci/run"

export:
	nbdev-export
	nbdev-clean

lint:
	ruff check gpt2_edu tests benchmarks tools
	ruff format --check tests benchmarks tools

format:
	ruff format tests benchmarks tools
	ruff check --fix gpt2_edu tests benchmarks tools

test:
	pytest

test-fast:
	pytest --ignore=tests/test_browser.py

test-nbs:
	nbdev-test --n-workers 0 --flags "slow cuda"

run-nbs:
	python tools/run_notebooks.py

readme:
	python tools/make_readme.py

bench:
	python benchmarks/tokenizer.py
	python benchmarks/model.py
	python benchmarks/train.py
	python benchmarks/evaluate.py

ci:
	.ci/run
