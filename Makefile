# Two commands matter: `make run` (the app on the demo project) and `make test` (the whole suite).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := $(HOME)/.local/share/rlhf-studio/demo.rlhfproj
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

.PHONY: venv run lint test reliability screenshots bench demo-model clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned: this version's CPU wheel is on disk; a bare `torch` would pull a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/rlhf-studio gui --demo

# ruff (pyflakes + pycodestyle and the formatter's check, [tool.ruff]) and the layering contracts ([tool.importlinter]) in pyproject.toml
lint: $(STAMP)
	$(BIN)/ruff check
	$(BIN)/ruff format --check
	$(BIN)/lint-imports

# Two workers (pytest-xdist), a whole test file to one worker at a time (module-scoped windows are built
# once): the learning test (350-550 s on one thread) runs on one core while the rest share the other.
test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -p no:cacheprovider -m "not reliability" -n 2 --dist loadfile

# The reliability battery at full strength (SIGKILLs, fuzzed imports, disk full, whole-workflow canary
# and socket guard): the marked tests, then the script that prints every figure (docs/security.md).
reliability: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -p no:cacheprovider -m reliability
	QT_QPA_PLATFORM=offscreen $(BIN)/python bench/reliability.py

screenshots: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m desktop.screenshots docs/screenshots

demo-model: $(STAMP)
	$(BIN)/python -m core.demo.build_model resources/demo_model

bench: $(STAMP)
	for f in bench/*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) build dist
