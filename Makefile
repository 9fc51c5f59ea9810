# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The real tus-js-client, run under Node by the e2e tier (pinned in its package-lock.json).
TUS_JS := tests/support/tus/node_modules/.installed

.PHONY: run test lint deploy build invoke events k8s clean

run: $(STAMP)  ## start the whole system locally (foreground; Ctrl-C stops it)
	@$(PY) -m infra run

test: $(STAMP) $(TUS_JS) lint  ## lint, types, then every test tier (unit, integration, e2e)
	@infra/system/packages.sh
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

deploy: $(STAMP)  ## rebuild and redeploy into a running `make run`
	@$(PY) -m infra deploy

build: $(STAMP)
	@$(PY) -m infra build

# Run one function once from the built artifact, as `sam local invoke` does (the result on stdout,
# logs on stderr): make invoke FN=ConvertFunction EVENT=event.json [ARGS="--parameter-overrides K=V ..."]
invoke: $(STAMP)
	@test -n "$(FN)" || { echo "usage: make invoke FN=<function logical id> [EVENT=event.json] [ARGS=...]" >&2; exit 2; }
	@$(PY) -m infra build 1>&2
	@$(PY) -m infra invoke $(FN) $(if $(EVENT),-e $(EVENT)) $(ARGS)

k8s: $(STAMP)  ## regenerate deploy/k8s/base/functions.generated.yaml from the template, then validate
	@$(PY) -m infra.k8s
	@$(PY) -m infra.k8s --check

# A benchmark, from a fresh clone: make bench-e2e, bench-load, bench-convert, bench-upload, bench-probe ...
# (bench/<name>.py; ARGS="..." passes its options). Each prints its goals beside the measured ratios.
bench-%: $(STAMP)
	@test -f bench/$*.py || { echo "no benchmark bench/$*.py" >&2; exit 2; }
	$(PY) bench/$*.py $(ARGS)

events: $(STAMP)  ## write a sample event of every function to events/ (python -m infra generate-event)
	@$(PY) -m infra generate-event --out events

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing dependencies into $(VENV) ..." >&2
	@$(PY) -m pip install -qq --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

$(TUS_JS): tests/support/tus/package-lock.json
	@echo "installing tus-js-client for the e2e tier (npm ci) ..."
	@npm ci --silent --no-audit --no-fund --prefix tests/support/tus
	@touch $(TUS_JS)

clean:  ## remove built artifacts (keeps data under .vid2mp3/)
	rm -rf .vid2mp3/build
