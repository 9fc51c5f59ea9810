# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint deploy build bench clean

run: $(STAMP)  ## start the whole system locally (foreground; Ctrl-C stops it)
	@$(PY) -m infra run

test: $(STAMP) lint  ## lint, types, then every test tier (unit, integration, e2e)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

deploy: $(STAMP)  ## rebuild and redeploy into a running `make run`
	@$(PY) -m infra deploy

build: $(STAMP)
	@$(PY) -m infra build

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing dependencies into $(VENV) ..."
	@$(PY) -m pip install -qq --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

clean:  ## remove built artifacts (keeps data under .vid2mp3/)
	rm -rf .vid2mp3/build
