# eca-mmdet: `make demo` runs the built-in demo, `make test` the test suite.
# Both create ./.venv and install the pinned stack on first use (idempotent):
# the index's torch 2.13 build (it runs on a CPU-only machine too) with its
# torchvision and timm, so that every test, timm's included, runs in one
# environment with one mmcv build. `make test-compat` runs the suite on the
# oldest supported stack (torch 2.1, numpy 1, the lowest timm we allow) in
# ./.venv-compat, with mmdeploy for the deployment test.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.eca_mmdet_installed
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
PYTAG  := $(shell python3 -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
ARCH   := $(shell uname -m)
# `torch==2.13.0` alone would take a local `+cpu` build where one lies in
# pip's find-links, and PyPI's torchvision 0.28 does not load beside that
TORCH_STACK := 'torch==2.13.0,!=2.13.0+cpu' torchvision==0.28.0
MMCV_WHEELS ?= $(HOME)/.cache/eca-mmdet/wheels/mmcv-2.1.0_torch-2.13.0_$(PYTAG)_$(ARCH)_cpuops

COMPAT_VENV  ?= .venv-compat
COMPAT_PY    := $(COMPAT_VENV)/bin/python
COMPAT_PIP   := $(COMPAT_PY) -m pip
COMPAT_STAMP := $(COMPAT_VENV)/.eca_mmdet_installed
COMPAT_WHEELS ?= $(HOME)/.cache/eca-mmdet/wheels/mmcv-2.1.0_torch-2.1.2_$(PYTAG)_$(ARCH)_cpuops
# mmdeploy 1.3.1 exports on torch 2.1 (not 2.13); its onnxruntime custom
# operators are built against onnxruntime 1.15.1
DEPLOY_STAMP := $(COMPAT_VENV)/.mmdeploy_installed
DEPLOY_DEPS  := mmdeploy==1.3.1 onnxruntime==1.15.1
# what most mmdet 3.3 users have: OpenMMLab's mmcv 2.1.0 wheels stop at 2.1
COMPAT_STACK := torch==2.1.2 'numpy<2'
# the lowest timm, filelock and gdown pyproject.toml allows (torchvision:
# the build of torch 2.1)
COMPAT_FLOORS := torchvision==0.16.2 timm==1.0.30 filelock==3.30.0 gdown==6.3.0
TEST_DEPS    := pytest pytest-xdist hypothesis gdown huggingface_hub onnx onnxscript onnxruntime faster-coco-eval

# mmcv is built with --no-cache-dir into a folder named for the torch, the
# Python and the CPU it is built for, and installed from there (replacing an
# mmcv built for another torch): pip's cache keys its wheel by name and
# version only, and a wheel built for another torch fails with undefined
# symbols. The build hides any GPU (CUDA_VISIBLE_DEVICES=), so these are CPU
# ops, the same on every machine; a GPU node builds its CUDA ops with
# tools/offline_install.py. The wheel is built in a private folder and moved
# in whole. $(1): the venv's python, $(2): the folder.
define install_mmcv
	test -n "$$(ls $(2)/mmcv-2.1.0-*.whl 2>/dev/null)" || { \
	  rm -rf $(2).tmp-$$$$ && \
	  CUDA_VISIBLE_DEVICES= MAX_JOBS=$(JOBS) $(1) -m pip wheel \
	    --no-build-isolation --no-deps --no-cache-dir -w $(2).tmp-$$$$ \
	    mmcv==2.1.0 && \
	  mkdir -p $(2) && mv $(2).tmp-$$$$/mmcv-2.1.0-*.whl $(2)/ && \
	  rm -rf $(2).tmp-$$$$; }
	$(1) -m pip install --no-deps --force-reinstall $(2)/mmcv-2.1.0-*.whl
endef

.PHONY: install test demo benchmark figures gpu-bundle test-compat fuzz fuzz-compat clean-venv

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@echo "==> [1/4] torch 2.13 with torchvision 0.28 and mmcv's build tools"
	$(PIP) install $(TORCH_STACK) 'setuptools>=77.0.3,<81' ninja wheel
	@echo "==> [2/4] mmengine (mmcv's build needs it)"
	$(PIP) install mmengine==0.10.7 numpy
	@echo "==> [3/4] mmcv 2.1.0 with compiled ops. FIRST BUILD FROM SOURCE TAKES 20-30 MINUTES"
	@echo "          on 2 cores; the wheel is kept in $(MMCV_WHEELS)"
	$(call install_mmcv,$(PY),$(MMCV_WHEELS))
	@echo "==> [4/4] mmdet 3.3.0, timm, pycocotools, test tools and eca_mmdet itself"
	$(PIP) install -r requirements.txt
	$(PIP) install --no-build-isolation --no-deps -e .
	$(PY) -c "import mmcv.ops, mmdet, timm, eca_mmdet; print('eca_mmdet', eca_mmdet.__version__, 'ready: mmcv', mmcv.__version__, 'mmdet', mmdet.__version__, 'timm', timm.__version__)"
	@touch $(STAMP)

# the suite in two processes (pytest-xdist, one test file per process at a
# time, so that module fixtures are built once); one torch thread each
PYTEST_ARGS ?= -n 2 --dist loadfile --durations=15

test: install
	$(PY) -m ruff check .
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

demo: install
	$(PY) tools/demo.py $(ARGS)

# the long fuzz run of the checkpoint and annotation readers (figures in
# docs/reliability.md); the suite runs a short one
fuzz: install
	$(PY) tests/fuzzing.py $(ARGS)

benchmark: install
	$(PY) tools/analysis/benchmark.py $(ARGS)

# ECA vs plain vs the straightforward plugin on a device
# (docs/gpu_and_offline.md, "Device figures")
figures: install
	$(PY) tools/analysis/device_figures.py $(ARGS)

# the folder for an offline GPU node, e.g. ARGS='--python 3.12 --glibc 2.28'
gpu-bundle: install
	$(PY) tools/offline_install.py gather gpu-bundle $(ARGS)

# eca_mmdet goes in as a user would add it (--no-deps: it must not touch the
# stack)
$(COMPAT_STAMP): pyproject.toml
	@test -x $(COMPAT_PY) || python3 -m venv $(COMPAT_VENV)
	@echo "==> [1/4] $(COMPAT_STACK) and mmcv's build tools"
	$(COMPAT_PIP) install $(COMPAT_STACK) 'setuptools>=77.0.3,<81' ninja wheel
	@echo "==> [2/4] mmengine"
	$(COMPAT_PIP) install mmengine==0.10.7 $(COMPAT_STACK)
	@echo "==> [3/4] mmcv 2.1.0 built against torch 2.1: 20-30 minutes the first time;"
	@echo "          the wheel is kept in $(COMPAT_WHEELS)"
	$(call install_mmcv,$(COMPAT_PY),$(COMPAT_WHEELS))
	@echo "==> [4/4] mmdet 3.3.0, pycocotools, test tools, timm and eca_mmdet"
	$(COMPAT_PIP) install mmdet==3.3.0 pycocotools safetensors matplotlib tqdm $(TEST_DEPS) $(COMPAT_FLOORS) $(COMPAT_STACK)
	$(COMPAT_PIP) install --no-deps -e .
	$(COMPAT_PY) -c "import torch, numpy, mmcv.ops, mmdet, timm, eca_mmdet; print('compat stack: torch', torch.__version__, 'numpy', numpy.__version__, 'mmcv', mmcv.__version__, 'mmdet', mmdet.__version__, 'timm', timm.__version__)"
	@touch $(COMPAT_STAMP)

$(DEPLOY_STAMP): $(COMPAT_STAMP)
	$(COMPAT_PIP) install $(DEPLOY_DEPS) $(COMPAT_STACK)
	@touch $(DEPLOY_STAMP)

test-compat: $(COMPAT_STAMP) $(DEPLOY_STAMP)
	$(COMPAT_PY) -m pytest -q $(PYTEST_ARGS) tests

fuzz-compat: $(COMPAT_STAMP)
	$(COMPAT_PY) tests/fuzzing.py $(ARGS)

clean-venv:
	rm -rf $(VENV) $(COMPAT_VENV)
