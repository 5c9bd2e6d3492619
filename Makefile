# The two commands a new user needs: `make demo` and `make test`.
# Both set up .venv/ the first time (and again whenever a requirements file changes).
PY := .venv/bin/python
STAMP := .venv/.installed

export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt scripts/setup.sh pyproject.toml
	bash scripts/setup.sh
	touch $(STAMP)

demo: setup
	$(PY) app.py

test: setup
	$(PY) -m pytest -q tests

bench: setup
	$(PY) -m vasa_core bench

clean:
	rm -rf .venv
