# hostfw.nftables: developer and CI entry points.
#
#   make demo    the end-to-end demo (scripts/demo.sh)
#   make test    every test stage in order (scripts/test.sh); CI runs exactly this
#
# Individual stages: test-unit test-dataplane test-molecule test-sanity test-ansible-units test-lint test-build
# Helpers: venv lint sanity changelog bench clean
#
# Stages that need root, nft or podman skip with a reason outside CI and FAIL when CI=true.

SHELL       := /bin/bash
.SHELLFLAGS := -euo pipefail -c
PYTHON      ?= python3
VENV        := .venv
STAMP       := $(VENV)/.installed
LINK        := .collections/ansible_collections/hostfw/nftables

.DEFAULT_GOAL := help

.PHONY: help venv collections-link test test-unit test-dataplane test-molecule test-sanity \
        test-ansible-units test-lint test-build demo bench lint sanity changelog clean

help:
	@sed -n 's/^#   //p;s/^# Individual/Individual/p;s/^# Helpers/Helpers/p' $(firstword $(MAKEFILE_LIST))

# --- environment -----------------------------------------------------------------------------
venv: $(STAMP) collections-link

# Rebuilt when a requirements file is newer than the stamp.
$(STAMP): requirements.txt requirements-test.txt bench/requirements.txt
	@if [ ! -x $(VENV)/bin/python ]; then \
	    echo "creating $(VENV) with $$($(PYTHON) --version 2>&1)"; \
	    $(PYTHON) -m venv $(VENV); \
	fi
	$(VENV)/bin/python -m pip install --disable-pip-version-check -q -r requirements.txt -r requirements-test.txt
	@touch $@

# Ansible and Python import the checkout as ansible_collections.hostfw.nftables through this link
# (tests/conftest.py creates it too).  Relative, so it survives moving the checkout.
collections-link:
	@if [ ! -e $(LINK) ]; then \
	    mkdir -p $(dir $(LINK)); rm -f $(LINK); ln -s ../../.. $(LINK); \
	fi

# --- the test suite --------------------------------------------------------------------------
test: venv
	scripts/test.sh

test-unit test-dataplane test-molecule test-sanity test-ansible-units test-lint test-build: venv
	scripts/test.sh $(patsubst test-%,%,$@)

# --- other entry points ----------------------------------------------------------------------
demo: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

bench: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/bench.sh

lint: test-lint

sanity: test-sanity

# Lint the fragments and (re)build the entry of galaxy.yml's version in changelogs/changelog.yaml
# and CHANGELOG.md (re-running it for the same version merges new fragments and new plugins).
changelog: venv
	$(VENV)/bin/antsibull-changelog lint
	$(VENV)/bin/antsibull-changelog release --reload-plugins

clean:
	rm -rf .cache tests/output .pytest_cache .hypothesis build out hostfw-nftables-*.tar.gz
	find . -path ./.venv -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
