# The two commands of README: `make demo` runs the main job, `make test` every test.
# Each sets up what it needs: the virtualenv, the dependencies, the broker.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-offline test check lint venv bench-venv kafka-fetch clean

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11+ is needed (python3 not found)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

# NannyML for scripts/bench_cbpe.py only, in a virtualenv of its own: never a runtime
# dependency (it imports statsmodels without declaring it).
bench-venv:
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/pip install --quiet "nannyml==0.13.1" statsmodels

kafka-fetch:
	scripts/kafka fetch

demo: $(STAMP) kafka-fetch
	$(BIN)/driftwarden demo

demo-offline: $(STAMP)
	scripts/demo

lint: $(STAMP)
	$(BIN)/ruff check monitor simulation detectors tests scripts
	$(BIN)/ruff format --check monitor simulation detectors tests scripts
	$(BIN)/mypy

test: $(STAMP) kafka-fetch lint
	scripts/install-chromium
	scripts/install-prometheus
	scripts/run-tests

# The quick loop before a commit: lint, types and the unit tests that need no
# broker, no browser, no Prometheus and no long statistical runs.
check: lint
	$(BIN)/python -m pytest -x -q -p no:cacheprovider -m "not kafka and not browser and not prometheus and not slow"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
