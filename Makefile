# Parley: `make demo` places a real voice call on the embedded defaults; `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export DJANGO_SETTINGS_MODULE ?= parley.platform.settings.local

# The test suite runs against the real servers (override to point elsewhere).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/parley
TEST_REDIS_URL    ?= redis://127.0.0.1:6379/0

.PHONY: setup system-deps browser-deps demo serve test lint services

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@if $(BIN)/pip show torch >/dev/null 2>&1; then echo "error: torch got installed" >&2; exit 1; fi
	touch $@

system-deps:
	@bash scripts/system-deps.sh

# Debian's Chromium for the browser tests (tests/browser).
browser-deps:
	@bash scripts/system-deps.sh --browser

setup: system-deps $(VENV)/.installed

demo: setup
	$(BIN)/python manage.py migrate --noinput -v 0
	$(BIN)/python manage.py demo_setup
	$(BIN)/python manage.py call --agent hospital-receptionist \
	    --audio parley/agents/demo/ms_my_voice_is_my_passport.wav --out var/demo
	@echo ""
	@echo "The call's files are in var/demo/ (transcript.jsonl, agent.wav, latency.json)."
	@echo "Open the admin: make serve, then http://127.0.0.1:8000/admin/ (login admin / parley-demo)."

serve: setup
	$(BIN)/python manage.py migrate --noinput -v 0
	$(BIN)/python manage.py demo_setup
	$(BIN)/python manage.py runserver 127.0.0.1:8000

services:
	@bash scripts/services-check.sh

test: setup browser-deps services
	DJANGO_SETTINGS_MODULE=parley.platform.settings.test \
	    DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
	    $(BIN)/python -m pytest -p no:cacheprovider

lint: setup
	$(BIN)/ruff check parley tests bench
	$(BIN)/mypy
