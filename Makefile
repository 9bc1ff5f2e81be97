# Two commands do all set-up on a fresh machine (Debian, Python 3.11, root, no GPU, no display):
#   make run    set up .venv, then open the app on SynthFaces with the bundled model
#   make test   set up .venv and the headless-GUI system packages, then run the whole suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.facelab-installed
# torch 2.13.0 is a CPU build that installs from local files here; any other version pulls a
# multi-GB CUDA build, so it is installed first and the range in pyproject.toml is then satisfied.
TORCH_VERSION ?= 2.13.0
GUI_DEBS := xvfb xauth libxcb-icccm4 libxcb-keysyms1

.PHONY: run test setup system-deps bench clean

setup: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

# Debian packages the GUI tests need (a virtual X server and the xcb plugins Qt loads).
system-deps:
	@missing=""; for pkg in $(GUI_DEBS); do dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "warning: missing Debian packages$$missing (not root): GUI tests will be skipped"; \
	  fi; \
	fi

run: setup
	$(VENV)/bin/facelab --help

test: setup system-deps
	$(PY) -m pytest -q

bench: setup
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
