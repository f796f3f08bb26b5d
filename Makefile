# `make run` brings the platform up; `make test` runs every test. Both install what they need.
SHELL := /bin/bash
PY := .venv/bin/python
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
TEST_POSTGRES_URL ?= postgres://rce:rce@127.0.0.1:5432/rce
TEST_POSTGRES_REDIS_URL ?= redis://127.0.0.1:6379/9

.PHONY: run test test-sqlite test-postgres test-postgres-and-stack test-stack stack-suite setup images lock burst bench bench-ingest bench-lifecycle bench-adversarial bench-soak bench-setup bench-reads bench-capacity

run:
	scripts/dev.sh packages services venv editor
	scripts/dev.sh run

setup:
	scripts/dev.sh packages-test services-postgres venv-test editor

# The sandbox images, and those docker-compose.yml runs on here (made from Debian's packages, as
# no registry may be reachable: scripts/dev.sh stack-images), whose Prometheus checks the alerts.
images: setup
	$(PY) manage.py build_sandbox_images
	scripts/dev.sh stack-images

# The lock files (requirements.txt, requirements-test.txt, bench/requirements.txt) pin every package
# with its hashes; after editing a .in file, `make lock` resolves them again (pip-tools, in a venv of
# its own). `make lock LOCK_ARGS=--upgrade` moves every pin to the newest release allowed.
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(CURDIR)/.venv-lock/bin/pip-compile --quiet --generate-hashes \
	--allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links --no-emit-trusted-host $(LOCK_ARGS)
lock:
	[ -x .venv-lock/bin/pip-compile ] || { python3 -m venv .venv-lock && .venv-lock/bin/pip install -q pip-tools==7.6.2; }
	$(PIP_COMPILE) -o requirements.txt requirements.in
	$(PIP_COMPILE) -o requirements-test.txt requirements-test.in
	cd bench && $(PIP_COMPILE) -o requirements.txt requirements.in

# Every test runs on SQLite and the database-backed ones again on PostgreSQL, both suites at once:
# most of a suite's time is spent waiting on sandboxes, not on the two cores. Each suite has its own
# Redis database, its own var directory and so its own sandbox instance (the janitor of one never
# touches the other's containers). Each suite's output is shown whole when it ends.
# The Compose stack's test (test-stack) follows the PostgreSQL suite, which ends first.
test: images
	$(MAKE) --no-print-directory -j2 --output-sync=target test-sqlite test-postgres-and-stack

test-postgres-and-stack:
	$(MAKE) --no-print-directory test-postgres stack-suite

test-sqlite:
	REDIS_URL=$(TEST_REDIS_URL) $(PY) -m pytest -m "not stack"

test-postgres:
	mkdir -p var/test-postgres
	REDIS_URL=$(TEST_POSTGRES_REDIS_URL) VAR_DIR=$(CURDIR)/var/test-postgres DATABASE_URL=$(TEST_POSTGRES_URL) \
		$(PY) -m pytest -m "not no_database"

# docker-compose.yml started for real on this engine, an execution run through it, then removed
# (about 75 s once the images exist); part of `make test`.
test-stack: images
	$(MAKE) --no-print-directory stack-suite

stack-suite:
	mkdir -p var/test-postgres
	REDIS_URL=$(TEST_POSTGRES_REDIS_URL) VAR_DIR=$(CURDIR)/var/test-postgres $(PY) -m pytest -m stack

# The burst test at full size on PostgreSQL (`make test` runs it with 500 submissions per backend).
burst: images
	BURST_SIZE=$${BURST_SIZE:-10000} REDIS_URL=$(TEST_REDIS_URL) DATABASE_URL=$(TEST_POSTGRES_URL) \
		$(PY) -m pytest tests/test_burst.py -s -p no:cacheprovider

# Benchmarks print figures and write bench/results/; they never fail on a number. Each takes a few
# minutes, uses Redis database 14 (emptied) and the PostgreSQL database rce_bench (dropped and
# recreated): BENCH_REDIS_URL and BENCH_POSTGRES_URL override them.
bench: bench-ingest bench-lifecycle bench-adversarial

bench-setup: setup
	scripts/dev.sh packages-bench venv-bench

bench-ingest: bench-setup
	$(PY) bench/ingest.py

bench-lifecycle: images bench-setup
	$(PY) bench/lifecycle.py

bench-adversarial: images bench-setup
	$(PY) bench/adversarial.py

bench-reads: images bench-setup
	$(PY) bench/reads.py

bench-capacity: images bench-setup
	$(PY) bench/capacity.py

# Memory over 10,000 executions (about 20 minutes): bench/results/soak.*; not part of `make bench`.
bench-soak: images bench-setup
	$(PY) bench/lifecycle.py --light 20 --saturation 10000 --name soak
