# The two commands a new user needs: `make demo` and `make test`.
# Both set up .venv/ the first time (and again whenever a requirements file changes): `make demo` installs the
# runtime only; `make test` adds the test, training and evaluation packages.
PY := .venv/bin/python
RUNTIME := .venv/.installed-runtime
ALL := .venv/.installed-all
REQ := requirements.txt requirements-nodeps.txt scripts/setup.sh pyproject.toml

export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: setup setup-all demo test test-fast bench clean

setup: $(RUNTIME)
setup-all: $(ALL)

$(RUNTIME): $(REQ)
	bash scripts/setup.sh runtime
	touch $(RUNTIME)

$(ALL): $(REQ) requirements-dev.txt requirements-eval.txt requirements-eval-nodeps.txt
	bash scripts/setup.sh all
	touch $(RUNTIME) $(ALL)

demo: setup
	$(PY) app.py

# everything, the slow lane (real browser, servers, Ray, renders) included: what CI runs
test: setup-all
	$(PY) -m pytest -q tests

# the development loop: the tests not marked slow (a few minutes)
test-fast: setup-all
	$(PY) -m pytest -q -m "not slow" tests

bench: setup-all
	$(PY) -m vasa_core bench

clean:
	rm -rf .venv
