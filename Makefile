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

# The whole-loop learning test (about 11 minutes on one core) runs in its own process on one core while
# the rest of the suite (about 5 minutes of one core) runs beside it: under one pytest-xdist session
# the file scheduler queued other files behind it, and the suite took 13.5 minutes.
PYTEST := QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -p no:cacheprovider
test: lint
	@log=$$(mktemp); \
	RLHF_TEST_TORCH_THREADS=1 $(PYTEST) -m "loop and not reliability" > $$log 2>&1 & loop=$$!; \
	trap 'kill $$loop 2>/dev/null' INT TERM; \
	$(PYTEST) -m "not loop and not reliability"; rest=$$?; \
	wait $$loop; loop_rc=$$?; \
	echo "--- the whole-loop learning test (tests/test_policy_demo_loop.py):"; cat $$log; rm -f $$log; \
	exit $$(( rest || loop_rc ))

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
