# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
REQS   := requirements.txt requirements-dev.txt requirements-nodeps.txt requirements-dev-nodeps.txt pyproject.toml

# From npm, into build/ (never committed), in one install (a second --no-save install would
# prune the first): axe-core (accessibility rules) for the browser tests, and s3rver (a real
# S3-compatible server) for the S3 blob store's tests.
AXE_VERSION := 4.14.1
S3RVER_VERSION := 3.7.1
# (tests/web/test_pages_fit_and_access.py and tests/s3server.py find them there.)
NODE_TOOLS := build/node_modules/.vidfarm-$(AXE_VERSION)-$(S3RVER_VERSION)

.PHONY: install run test fuzz chart-check security-check bench eval clean screenshots

$(STAMP): $(REQS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt -r requirements-dev-nodeps.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m workers.analytics.mask_convert
	$(PY) -m workers.analytics.mask_train
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/vidfarm up

# The suite mostly waits (on real workers, cameras paced in real time, clocks), so it runs on
# TEST_PROCESSES pytest processes (pytest-xdist); --dist loadfile keeps each test file in one
# process, in order, with its module fixtures (a file's private farm, say). Each process starts
# its own session farm on free ports. --no-loadscope-reorder hands the files out in the order
# a single process runs them (xdist would start with the files of most tests): each process then
# runs them in that order too (tests/web/ after tests/, say). Two processes (12.5 min on 2
# cores against 19-22 for one): earlier two-process runs had Chromium's exit spin for minutes on
# both cores, because SVT-AV1 (the AV1 clips some tests make) had left pytest on SCHED_FIFO 99,
# which every child inherits; conftest now puts the process back after such a test. Which
# files share a process changes from run to run, so a test must leave no state behind:
# conftest re-reads settings a test left cached from its own environment.
# Four were tried on the 8 slowest files (2026-12-07, A B B A then B A, load 4-24 of others'
# work): not clearly faster (4: 625, 822, 696 s; 2: 714, 719, 550 s), every test about twice as
# long (these files' commands and farms are CPU on the same 2 cores, not only waiting), and
# real-time tests failed in 2 of the 3 runs at 4, in none at 2: docs/benchmarks.md, "The
# suite's process count".
TEST_PROCESSES ?= 2
test: install chart-check security-check $(NODE_TOOLS)
	$(PY) -m pytest -n $(TEST_PROCESSES) --dist loadfile --no-loadscope-reorder

# The API fuzz test explores: random seeds, FUZZ_EXAMPLES requests per operation, schema-violating
# ones too (`make test` runs it derandomized, 30 valid requests per operation, so that a failure
# reproduces on every run and CI cannot flake).
FUZZ_EXAMPLES ?= 300
fuzz: install
	VIDFARM_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest tests/web/test_openapi.py::test_api_matches_its_openapi_document

$(NODE_TOOLS):
	npm install --no-save --no-audit --no-fund --prefix build axe-core@$(AXE_VERSION) s3rver@$(S3RVER_VERSION)
	touch $@

# The browser tests write every page at desktop and phone width to build/screenshots/; these
# are the README's.
screenshots:
	mkdir -p docs/screenshots
	cp build/screenshots/*-desktop.png build/screenshots/*-phone.png docs/screenshots/

# Bandit over the product code (not tests or bench); accepted findings, each with its reason,
# are listed in pyproject.toml [tool.vidfarm.bandit].
security-check: install
	$(PY) -m tests.bandit_check

# The Helm chart, offline: render (default, GPU and live values), lint, kubernetes-validate --strict
# for 1.30, and the autoscaler Role against what its code calls. helm-python-sdk and
# kubernetes-validate are pip packages (requirements-dev.txt): no helm binary, no cluster.
chart-check: install
	$(PY) -m tests.chart_check

bench: install $(NODE_TOOLS)
	$(PY) -m bench

# MEDIA: the test media folder (../shared/media beside the checkout by default).
MEDIA ?= ../shared/media
eval: install
	$(PY) -m bench.eval $(MEDIA)

clean:
	rm -rf $(VENV) build *.egg-info
