# The two commands of the README. Both set up .venv/ first (idempotent, fast when done).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup study test

setup:
	bash scripts/install.sh

# The main job (later issues change what it runs, not how it is invoked).
study: setup
	$(PY) -m sedlib demo

test: setup
	$(PY) -m pytest -q tests
