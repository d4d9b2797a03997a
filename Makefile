# make run  - the whole service on this machine, in the background, with a demo dossier
# make test - every test (Temporal servers, web app and SQLite all run locally)

SHELL := /bin/bash
VENV := .venv
PYTHON := $(VENV)/bin/python
DOSSIER := $(VENV)/bin/dossier
INSTALLED := $(VENV)/.installed
DATA := .data
PIDFILE := $(DATA)/dev.pid
LOGFILE := $(DATA)/dev.log
WEB_URL := http://localhost:8000
# The demo provider (Leerhuis Schelde BV); intake records it from its first invoice.
DEMO_PROVIDER := 0412345614
DEMO_INVOICE := examples/invoices/training-open-1p.xml
DEMO_PARTICIPANT := An Peeters <an.peeters@bakkerij-peeters.example>

.PHONY: setup run stop test lint clean

# True when the pid file names a running `dossier dev` (after a reboot the
# number may belong to some other process, which must be neither reused nor
# killed).
STACK_RUNNING = [ -f $(PIDFILE) ] && \
  ps -p "$$(cat $(PIDFILE))" -o args= 2>/dev/null | grep -q 'dossier dev'

setup: $(INSTALLED)

$(PYTHON):
	python3 -m venv $(VENV)

# Reinstall only when pyproject.toml changed since the last install.
$(INSTALLED): pyproject.toml | $(PYTHON)
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $@

run: setup
	@mkdir -p $(DATA)
	@if $(STACK_RUNNING); then \
	  echo "The stack is already running (pid $$(cat $(PIDFILE))); reusing it."; \
	else \
	  echo "Starting Temporal, the worker and the web app; log in $(LOGFILE)"; \
	  setsid nohup $(DOSSIER) dev >>$(LOGFILE) 2>&1 </dev/null & echo $$! >$(PIDFILE); \
	fi
	@$(DOSSIER) ready --wait 120 || { tail -n 40 $(LOGFILE); exit 1; }
	@$(DOSSIER) upload $(DEMO_INVOICE) --provider $(DEMO_PROVIDER) \
	  --participant "$(DEMO_PARTICIPANT)"
	@echo
	@echo "Where to look:"
	@echo "  the workflow     the 'Temporal UI' link above (all: http://localhost:8233)"
	@echo "  mails sent       $(WEB_URL)/outbox"
	@echo "  archive          $(DATA)/archive"
	@echo "  log              $(LOGFILE)"
	@echo "  stop it all      make stop"

stop:
	@if $(STACK_RUNNING); then \
	  pid=$$(cat $(PIDFILE)); kill "$$pid"; \
	  for _ in $$(seq 1 30); do kill -0 "$$pid" 2>/dev/null || break; sleep 1; done; \
	  echo "Stopped (pid $$pid)."; \
	else \
	  echo "Not running."; \
	fi
	@rm -f $(PIDFILE)

# Browser tests skip themselves without /usr/bin/chromium; the rest need neither
# chromium nor Playwright's browser downloads.
test: setup
	$(PYTHON) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Removes the development data (Temporal history, database, archive, outbox).
clean: stop
	rm -rf $(DATA) .pytest_cache .ruff_cache .mypy_cache build *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

# make bench - measured speed on this machine (not part of `make test`), about
# 11 minutes on 2 cores; `make bench BENCH_ARGS=--quick` takes about 1.
.PHONY: bench
bench: setup
	@$(PYTHON) -c 'import psutil' 2>/dev/null || $(PYTHON) -m pip install --quiet psutil
	$(PYTHON) -m bench $(BENCH_ARGS)
