# fitwire: one command to run, one to test. Each installs what it needs first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the web client's sources, and its build output (gitignored)
WEB := android_client_api/web
WEB_BUNDLE := android_client_api/static/app.js
export FITWIRE_DATA_DIR ?= $(CURDIR)/.fitwire

.PHONY: install web run test bench lint broker-up broker-down clean

install: $(STAMP) $(WEB_BUNDLE)

# The web client (android_client_api/web, npm + esbuild) built into android_client_api/static;
# rebuilt whenever one of its sources changes.
$(WEB_BUNDLE): $(WEB)/package.json $(WEB)/package-lock.json $(WEB)/build.mjs $(wildcard $(WEB)/src/*)
	@command -v npm >/dev/null || { echo "fitwire: building the web client needs Node.js 18+ and npm (Debian: apt-get install nodejs npm)" >&2; exit 1; }
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build

web: $(WEB_BUNDLE)

# setuptools prints an informational notice (a UserWarning) on every editable install; silenced.
$(STAMP): setup.cfg pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	PYTHONWARNINGS=ignore::UserWarning $(BIN)/pip install -q -e '.[all,dev]'
	touch $(STAMP)

run: install
	$(BIN)/python scripts/run_demo.py

# Test files run in 2 parallel workers (pytest-xdist), each file whole in one worker: its
# module fixtures (a private broker node, trained models) are set up once.
PYTEST_ARGS ?= -n 2 --dist loadfile

test: install
	$(BIN)/python scripts/with_broker.py $(BIN)/pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python scripts/with_broker.py $(BIN)/python -m bench

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy fitwire contract broker_config callback webhook trainer_agent cli android_client_api

broker-up: install
	$(BIN)/fitwire dev broker up

broker-down: install
	$(BIN)/fitwire dev broker down

clean:
	rm -rf $(VENV) build *.egg-info
