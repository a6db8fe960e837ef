# The two commands of the README. Both set up .venv/ first (idempotent, fast when done).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup study test

setup:
	bash scripts/install.sh

# The main job: every notebook of the study, quick profile (embedded data, CPU; ~1 h on 2 AVX2 cores);
# executed notebooks in runs/, figures and results.md in figures/.
study: setup
	$(PY) -m sedlib study --profile quick

# Both cores (pytest-xdist; TEST_JOBS=0 runs in one process); the 15 slowest tests are listed.
TEST_JOBS ?= 2
test: setup
	$(PY) -m pytest -q -n $(TEST_JOBS) --durations=15 tests
