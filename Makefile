# `make demo` and `make test` set everything up on a fresh Debian/Ubuntu machine, idempotently.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
SK := $(VENV)/bin/sandbox-kernel
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
HOST_TOOLS := qemu-system-x86_64 mkfs.erofs lz4 dpkg-deb apt-get ldconfig pgrep
# The builder takes Debian's packages from Debian's archive whatever the host is (an Ubuntu
# host too), and checks them with Debian's keyring.
KEYRING := /usr/share/keyrings/debian-archive-keyring.gpg
APT_PACKAGES := qemu-system-x86 erofs-utils lz4 procps python3-venv debian-archive-keyring
# What the tests use besides: strace shows that the builder never reads the host's apt set-up;
# Debian's chromium and its driver run the browser test (JupyterLab, through selenium).
TEST_TOOLS := strace chromium chromedriver
TEST_PACKAGES := strace chromium chromium-driver
PYTEST_ARGS ?=

.PHONY: setup host-tools test-tools venv image kernelspec scientific demo test fuzz lint clean-cache

setup: host-tools venv image kernelspec

host-tools:
	@missing=""; for t in $(HOST_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	python3 -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	[ -f $(KEYRING) ] || missing="$$missing debian-archive-keyring"; \
	if [ -n "$$missing" ]; then \
	  echo "Installing host tools (missing:$$missing)"; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	fi

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

image: venv host-tools
	$(SK) image build

kernelspec: venv
	$(SK) install --sys-prefix

# The scientific image (pandas, SciPy, scikit-learn, seaborn...) and its kernelspec,
# sandbox-scientific: not part of setup, since it doubles the download and the disk.
scientific: venv host-tools
	$(SK) image build --recipe scientific
	$(SK) install --sys-prefix --image scientific

test-tools:
	@missing=""; for t in $(TEST_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing test tools (missing:$$missing)"; \
	  $(SUDO) apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $(TEST_PACKAGES); \
	fi

demo: setup
	$(SK) doctor
	$(PY) examples/demo.py

test: setup test-tools
	$(PY) -m pytest $(PYTEST_ARGS)

# The property-based tests of what the host takes from outside, with far more inputs.
FUZZ_EXAMPLES ?= 100000
fuzz: venv
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest tests/unit/test_fuzz.py -p no:cacheprovider

lint: venv
	$(VENV)/bin/ruff check sandbox_kernel tests bench examples/demo.py
	$(VENV)/bin/mypy sandbox_kernel

clean-cache:
	rm -rf ~/.cache/sandbox-kernel
