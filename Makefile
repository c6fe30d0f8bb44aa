# The README's commands. Everything installs into ./.venv, so a fresh machine needs only python3 (>= 3.11).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test typecheck docs bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)  ## run the demo server (examples/tiny) on http://127.0.0.1:8080
	$(PY) -m examples.tiny --port 8080 --workers 2

test: $(STAMP) docs  ## type-check, build the docs (strict), then run every test (installs headless Chromium first if it can)
	scripts/system-deps
	$(PY) -m mypy
	$(PY) -m pytest -n 2  # two processes: most of the suite waits on sockets and timers, not the CPU

DOCS_STAMP := $(VENV)/.installed-docs

$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[test,docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)  ## build the documentation site into ./site; any warning is an error
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --quiet

typecheck: $(STAMP)
	$(PY) -m mypy

bench: $(STAMP)  ## benchmarks against peer servers (not part of the tests; several minutes)
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache site
