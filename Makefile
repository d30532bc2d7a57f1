# The two commands of the README. Both install into .venv first (torch 2.13.0 CPU before anything else, so no
# dependency can pull a CUDA build), then run.
VENV ?= .venv
PY := $(VENV)/bin/python
BASE := $(VENV)/.retain-base-installed
STAMP := $(VENV)/.retain-installed

.PHONY: demo test test-fast install clean

# The package alone: all `retain demo` needs (the test extras add lm-eval, about 40 s of a clean install).
# --no-compile: compiling every installed file took ~25 s of the demo's install; Python compiles what it imports
# (and, unless PYTHONDONTWRITEBYTECODE is set, keeps it).
$(BASE): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile torch==2.13.0
	$(PY) -m pip install -q --no-compile -e .
	touch $(BASE)

# The tests start hundreds of processes: compile everything once (34 s on 2 cores), or under
# PYTHONDONTWRITEBYTECODE each would compile torch and transformers again (the suite took 26 min, not 19).
# compileall exits 1 on the few files written for other Python versions, which pip's own compile ignores too.
$(STAMP): $(BASE)
	$(PY) -m pip install -q --no-compile -e ".[test]"
	$(PY) -m compileall -q -j 2 $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') >/dev/null 2>&1 || true
	touch $(STAMP)

install: $(STAMP)

demo: $(BASE)
	$(VENV)/bin/retain demo

# Two pytest workers on two cores, one torch thread each: threads that spin-wait on a shared core are slower.
test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --durations=15 -q

# The unit tests only (no end-to-end CLI runs, nothing marked slow): the check to run before every commit,
# under 3 minutes on 2 cores. `make test` runs everything.
test-fast: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --durations=10 -q -m "not slow" tests/unit

clean:
	rm -rf $(VENV) .pytest_cache
