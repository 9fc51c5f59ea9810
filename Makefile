# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The real tus-js-client, run under Node by the e2e tier (pinned in its package-lock.json).
TUS_JS := tests/support/tus/node_modules/.installed

.PHONY: run test lint deploy build bench clean

run: $(STAMP)  ## start the whole system locally (foreground; Ctrl-C stops it)
	@$(PY) -m infra run

test: $(STAMP) $(TUS_JS) lint  ## lint, types, then every test tier (unit, integration, e2e)
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

$(TUS_JS): tests/support/tus/package-lock.json
	@echo "installing tus-js-client for the e2e tier (npm ci) ..."
	@npm ci --silent --no-audit --no-fund --prefix tests/support/tus
	@touch $(TUS_JS)

clean:  ## remove built artifacts (keeps data under .vid2mp3/)
	rm -rf .vid2mp3/build
