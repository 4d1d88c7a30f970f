# The two commands that do everything on a fresh machine:
#   make demo   - local Kafka + Elasticsearch, a worker, seeds ingested, search results and alerts,
#                 then the web page (newspipe api in the background; the address is printed last)
#   make test   - unit and integration tests (the harness starts and stops the servers itself)
# NEWS_SPACY_MODEL selects the spaCy model (default en_core_web_sm; a .whl path works too).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test unit test-faults down clean check fmt mutation-deps mutation mutation-sample bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)
	$(BIN)/newspipe setup-model

demo: install
	$(BIN)/newspipe demo

test: install
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit

# kills and restarts the harness's own servers and workers (docs/faults.md): its own step
test-faults: install
	$(BIN)/pytest tests/faults -m faults

down: $(STAMP)
	$(BIN)/newspipe down

clean: down
	rm -rf .newspipe

# static checks, as CI runs them before the tests (docs/checks.md)
check: $(STAMP)
	VENV=$(VENV) .ci/checks

# what ruff can fix by itself: lint fixes, then the formatter
fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# mutmut 3.8 pins click>=8.4.2, faust-streaming click<8.4: installed without its pins
# (docs/testing.md), so not in the test extra
mutation-deps: $(STAMP)
	$(BIN)/pip install --quiet 'libcst>=1.9' 'setproctitle>=1.3.7' 'textual>=1' 'coverage>=7.3'
	$(BIN)/pip install --quiet --no-deps 'mutmut==3.8.1'

# mutation testing of the pure modules (docs/testing.md): the full run, outside CI
mutation: mutation-deps
	VENV=$(VENV) .ci/mutation-sample --all

# the bounded, fixed-seed sample CI runs
mutation-sample: mutation-deps
	VENV=$(VENV) .ci/mutation-sample

# quick profile of every benchmark, one JSON summary (docs/benchmarks.md)
bench: install
	$(BIN)/python -m benchmarks --quick
