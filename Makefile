# The same commands in README, CI and here.
SHELL := /bin/bash
export PATH := $(CURDIR)/.venv/bin:$(HOME)/.local/bin:$(PATH):/usr/sbin
PYTEST := .venv/bin/pytest

.PHONY: setup run test test-slow lint bench

setup:
	@deploy/bootstrap.sh

run: setup
	@deploy/run-local.sh

lint: setup
	.venv/bin/lint-imports

test: lint
	@deploy/bootstrap.sh --test
	$(PYTEST) -m "not slow" --durations=20

test-slow: setup
	$(PYTEST) -m slow --durations=20 || [ $$? = 5 ]  # 5: no slow suite selected

bench: setup
	.venv/bin/python -m bench
