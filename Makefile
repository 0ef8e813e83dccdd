# make demo: install into .venv and run the default experiment (offline, CPU)
# make test: install (if needed) and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU machines we develop on carry this torch/torchvision pair locally; pip fetches it elsewhere.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --no-compile $(TORCH_PINS)
	$(BIN)/pip install --quiet --no-compile -e ".[test]"
	touch $@

demo: install
	$(BIN)/lepton train

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/pip install --quiet ruff
	$(BIN)/ruff check lepton_cli tests scripts

clean:
	rm -rf $(VENV) runs .pytest_cache
