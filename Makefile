# make test: set up .venv if needed, then run the tests.
# make demo: set up .venv if needed, then run the demo experiment on the built-in dataset.
PYTHON ?= python3
VENV := .venv
READY := $(VENV)/.noisy-mask-ready
DEMO_OUTPUT ?= output/demo

.PHONY: setup test test-fast demo demo-quick clean gpu-wheels

$(READY): setup.py scripts/setup_env.py
	$(PYTHON) scripts/setup_env.py

setup: $(READY)

test: $(READY)
	$(VENV)/bin/python -m pytest -q

test-fast: $(READY)
	$(VENV)/bin/python -m pytest -q -m "not slow"

demo: $(READY)
	$(VENV)/bin/python -m noisy_mask demo --output $(DEMO_OUTPUT)

# Reuses the full demo's pretrained detector when `make demo` has made it.
DEMO_DETECTOR := $(DEMO_OUTPUT)/pretrain/model_final.pth
demo-quick: $(READY)
	$(VENV)/bin/python -m noisy_mask demo --output $(DEMO_OUTPUT)-quick --quick \
		$(if $(wildcard $(DEMO_DETECTOR)),--pretrained $(DEMO_DETECTOR))

# The wheels scripts/gpu_check.sh installs on a CUDA machine without network (run it here).
gpu-wheels:
	$(PYTHON) scripts/gpu_wheels.py

clean:
	rm -rf output
