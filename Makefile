# Developer entry points. `make test` is what CI runs (.ci/run); everything runs natively, no Docker.
VENV := .venv
DEEP := $(VENV)/bin/deep
PACKAGES := settings models infra streams vault memory gateways processors inference sinks api jobs ops demo deep emulator

.PHONY: bootstrap stack test test-fast lint demo down

bootstrap:
	infra/bootstrap.sh

stack: bootstrap
	$(DEEP) stack up
	$(DEEP) db migrate
	$(DEEP) topics apply

# Lint first: a red lint fails the run before the slower suite starts. The slowest tests are listed at the
# end, so that what makes the suite long is seen in every run.
test: lint stack
	$(VENV)/bin/pytest --durations=25

# The in-process tests alone (no Kafka, PostgreSQL, Redis or servers): about a minute.
test-fast: bootstrap
	$(VENV)/bin/pytest -m "not stack"

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(PACKAGES) tests
	$(VENV)/bin/lint-imports

demo: stack
	$(DEEP) demo

down:
	$(DEEP) stack down
