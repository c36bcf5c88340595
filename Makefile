# Developer entry points. `make test` is what CI runs (.ci/run); everything runs natively, no Docker.
VENV := .venv
DEEP := $(VENV)/bin/deep
PACKAGES := $(wildcard deep models streams gateways processors sinks infra emulator api jobs demo)

.PHONY: bootstrap stack test lint demo down

bootstrap:
	infra/bootstrap.sh

stack: bootstrap
	$(DEEP) stack up
	$(DEEP) db migrate
	$(DEEP) topics apply

test: stack
	$(VENV)/bin/pytest

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy $(PACKAGES) tests

demo: stack
	$(DEEP) demo

down:
	$(DEEP) stack down
