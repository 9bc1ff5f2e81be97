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

# The app needs a display. Without one (a server, CI, this container) `make run` does not hang on an
# invisible window: it starts the app under a virtual X server (xvfb-run), lets it open SynthFaces
# with the bundled model, saves a screenshot to $(APP_SHOT) and quits, so the set-up is still proven;
# without xvfb-run it says what to install. On a desktop it simply opens the app.
APP_SHOT ?= /tmp/facelab-app.png

run: setup system-deps
	@if [ -n "$$DISPLAY" ] || [ -n "$$WAYLAND_DISPLAY" ]; then \
	  $(VENV)/bin/facelab gui; \
	elif command -v xvfb-run >/dev/null 2>&1; then \
	  echo "no display: running the app under xvfb-run; it saves a screenshot to $(APP_SHOT) and quits"; \
	  xvfb-run -a -s "-screen 0 1920x1200x24" $(VENV)/bin/facelab gui --screenshot $(APP_SHOT); \
	else \
	  echo "facelab gui needs a display: run 'make run' on a desktop, or install xvfb (make system-deps, as root)" \
	       "to run it under a virtual X server"; exit 1; \
	fi

test: setup system-deps
	$(PY) -m pytest -q

# The benchmark suite (benchmarks/__init__.py): writes docs/results/benchmarks.{json,md} in about 20 minutes
# on 2 cores (the time-to-quality judgement has its own command, python -m benchmarks.time_to_quality);
# the app benchmarks run under xvfb-run, hence system-deps.
bench: setup system-deps
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
