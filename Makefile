# eca-mmdet: `make demo` runs the built-in demo, `make test` the test suite.
# Both create ./.venv and install the pinned stack on first use (idempotent).
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.eca_mmdet_installed
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: install test demo benchmark clean-venv

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@echo "==> [1/4] torch 2.13 and mmcv's build tools"
	$(PIP) install torch==2.13.0 'setuptools>=77.0.3,<81' ninja wheel
	@echo "==> [2/4] mmengine (mmcv's build needs it)"
	$(PIP) install mmengine==0.10.7 numpy
	@echo "==> [3/4] mmcv 2.1.0 with compiled ops. FIRST BUILD FROM SOURCE TAKES 20-30 MINUTES"
	@echo "          on 2 cores (pip prints 'still running...'); later installs reuse pip's wheel cache."
	MAX_JOBS=$(JOBS) $(PIP) install --no-build-isolation mmcv==2.1.0
	@echo "==> [4/4] mmdet 3.3.0, pycocotools, test tools and eca_mmdet itself"
	$(PIP) install -r requirements.txt
	$(PIP) install --no-build-isolation --no-deps -e .
	$(PY) -c "import mmcv.ops, mmdet, eca_mmdet; print('eca_mmdet', eca_mmdet.__version__, 'ready: mmcv', mmcv.__version__, 'mmdet', mmdet.__version__)"
	@touch $(STAMP)

test: install
	$(PY) -m pytest -q tests

demo: install
	$(PY) tools/demo.py $(ARGS)

benchmark: install
	$(PY) tools/analysis/benchmark.py $(ARGS)

clean-venv:
	rm -rf $(VENV)
