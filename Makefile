# Two commands do everything on a fresh clone: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.treeplay-installed
export TOKENIZERS_PARALLELISM := false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup demo test lint typecheck bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/install.sh tools/js/package.json
	bash scripts/install.sh $(VENV)
	touch $(STAMP)

demo: setup
	$(VENV)/bin/treeplay run configs/embedded.yaml

test: lint  # CI runs `make test`: lint and types first, so they fail fast
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy src

clean:
	rm -rf $(VENV) .treeplay-cache
