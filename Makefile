# make demo: install into .venv and run the default experiment (offline, CPU)
# make test: install (if needed) and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU machines we develop on carry this torch/torchvision pair locally; pip fetches it elsewhere.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
PIP_INSTALL := $(BIN)/pip install --quiet --no-compile

.PHONY: install demo test lint clean

install: $(VENV)/.installed

# One resolver pass for torch and Lepton's own dependencies; --no-compile skips writing .pyc files
# for torch's thousands of modules (they are compiled on first import instead).
$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) $(TORCH_PINS) -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PIP_INSTALL) -e ".[test]"
	touch $@

demo: install
	$(BIN)/lepton train

# The layers contract (pyproject.toml [tool.importlinter]) first: a wrong-way import fails in seconds.
test: $(VENV)/.installed-test
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

lint: install
	$(PIP_INSTALL) ruff
	$(BIN)/ruff check lepton_cli tests scripts

clean:
	rm -rf $(VENV) runs .pytest_cache build *.egg-info
