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

# One resolver pass for torch and Lepton's own dependencies. pip's own byte-compiling is skipped and
# done once afterwards, in parallel (COMPILE_VENV): where PYTHONDONTWRITEBYTECODE=1 is set (our dev
# machines and CI), an import never writes .pyc files, so every `lepton` process would recompile torch
# and Lightning from source (measured: 25 s of CPU per process, 8 s with the .pyc files; compiling the
# whole venv once takes ~40 s on 2 cores). compileall exits non-zero for torch's few
# Python-3.12-only test files; that is not a failure here.
COMPILE_VENV := $(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null || true

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) $(TORCH_PINS) -e .
	$(COMPILE_VENV)
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PIP_INSTALL) -e ".[test]"
	$(COMPILE_VENV)
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
