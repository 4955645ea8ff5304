VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench soak lint format clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

## Run the main job end to end on the offline model: a headless tech-article run, exported to Markdown.
run: $(STAMP)
	WRITEIT_HOME=$${WRITEIT_HOME:-$(CURDIR)/.writeit-demo} $(VENV)/bin/writeit run tech-article \
		--input source_material=@examples/sample-source.md \
		--model markov --model markov --headless --pick best --export md

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/run.py

## Reliability figures: runs killed with SIGKILL and resumed, random provider faults.
soak: $(STAMP)
	$(PY) benchmarks/soak.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) .writeit-demo
