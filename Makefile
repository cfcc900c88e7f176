# The two commands a new user runs: `make demo` and `make test`. Everything installs itself.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true
export AWS_EC2_METADATA_DISABLED := true
export PYTHONPATH := $(CURDIR)/lambda:$(CURDIR)

.PHONY: setup test lint typecheck unit chaos demo bench synth clean

# pip byte-compiles what it installs on one core (90 of its 160 s here: aws-cdk-lib is 183 MB of Python);
# compileall does the same on every core (50 s). The modules must be compiled at install: where
# PYTHONDONTWRITEBYTECODE is set, every process would compile them again at import. A few files of
# localstack use Python 3.12 syntax and fail to compile, as they do under pip (which ignores it too).
$(STAMP): requirements.txt requirements-dev.txt package.json package-lock.json
	test -x $(PY) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --no-compile -r requirements-dev.txt
	$(PY) -m compileall -q -j 0 $(VENV)/lib > /dev/null 2>&1 || true
	npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

# Unit, infra (synth + cdk-nag + cfn-lint), local multi-region and chaos tests, and the type check.
# mypy (about 2 minutes on a fresh clone: it reads all of aws_cdk) and the synthesis of every app the
# local and chaos tests run (tests/presynth.py) run beside the unit and infra tests, which nothing
# times; the local, tools and chaos tests, which wait on clocks, run after them, alone.
test: lint
	@$(BIN)/mypy > $(VENV)/mypy.log 2>&1 & typecheck=$$!; \
	$(BIN)/python -m tests.presynth > $(VENV)/presynth.log 2>&1 & presynth=$$!; \
	$(BIN)/pytest -q tests/unit tests/infra; first=$$?; \
	wait $$typecheck; typed=$$?; echo "$(BIN)/mypy"; cat $(VENV)/mypy.log; \
	wait $$presynth; synthesized=$$?; cat $(VENV)/presynth.log; \
	if [ $$first -ne 0 ] || [ $$typed -ne 0 ] || [ $$synthesized -ne 0 ]; then exit 1; fi; \
	$(BIN)/pytest -q tests --ignore=tests/unit --ignore=tests/infra

unit: setup
	$(BIN)/pytest -q tests/unit

# The soak: 10,000 seeded operations over 3 regions under faults (5-15 min). SOAK_OPERATIONS, SOAK_SEED,
# SOAK_KEYS and SOAK_RATE (operations per second) change the run; the seed is printed at start.
chaos: setup
	$(BIN)/pytest -q -s -m soak tests/soak

synth: setup
	npx --no-install cdk synth --quiet

demo: setup
	$(PY) -m ddbrep demo

bench: setup
	$(PY) -m ddbrep bench

clean:
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache .hypothesis
