# The two commands a new machine needs: `make run` and `make test`.
# Both install what they need (uv is bootstrapped with pip when missing).

SHELL := /bin/bash
PYTHON ?= python3
UV_BIN := $(shell command -v uv 2>/dev/null)
ifeq ($(UV_BIN),)
UV := $(PYTHON) -m uv
else
UV := $(UV_BIN)
endif
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: help bootstrap install browser wrk deploy-tools manifests catalog-doc reports-doc run test test-reliability test-unit lint format jsonschema bench bench-collector bench-aggregator bench-interaction bench-erasure bench-console bench-reports bench-assistant clean

help:
	@echo "make run         start the whole pipeline on the embedded default (Ctrl-C stops it)"
	@echo "make test        run the test suite (starts its own broker, ClickHouse, SMTP, PostgreSQL)"
	@echo "make test-reliability  the long suite: 15-minute soak, faults under load, ~16k fuzzed requests"
	@echo "make test-unit   only the tests that need no running component"
	@echo "make lint        ruff and mypy"
	@echo "make jsonschema  regenerate schemas/jsonschema from the models"
	@echo "make catalog-doc regenerate docs/catalog.md (events, survey fields, provider events, computed traits)"
	@echo "make reports-doc regenerate the report definitions in docs/reports.md (from the reports' code)"
	@echo "make manifests   regenerate deploy/k8s/base/generated from the registry, migrations and alerts"
	@echo "make bench       every stage against its ceiling, one report with plots (BENCH_ARGS=--full: the long run)"
	@echo "make bench-collector  the collector's benchmark (BENCH_ARGS=--quick for a short run)"
	@echo "make bench-erasure    erasing a customer with 1M events stored (BENCH_ARGS=\"--events N\")"
	@echo "make bench-aggregator the aggregator against a raw consume→insert loop (BENCH_ARGS=\"--events N\")"
	@echo "make bench-interaction the interaction consumer against a consume→bulk-upsert loop (BENCH_ARGS=\"--changes N\")"
	@echo "make bench-console   every console page < 300 ms p95 with 100k customers, 10M events (BENCH_ARGS=--quick: 10k, 1M)"
	@echo "make bench-assistant the website assistant: top-1 per language, off-topic refusal, answer p99, model memory"
	@echo "make bench-reports   every report < 1 s p95 with 100k customers, 10M events, beside a bare scan (BENCH_ARGS=--quick: 10k, 1M)"

bootstrap:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv

# Bytecode compiled at install: with PYTHONDONTWRITEBYTECODE set (as on CI machines) every
# process would compile its libraries again (the CLI started in 5.9 s instead of 2.4 s).
install: bootstrap
	$(UV) sync --frozen --all-packages --compile-bytecode

# The browser-tracker tests drive Debian's Chromium (headless); installed here when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { echo "installing chromium (apt)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# What the deployment tests check the compose file and the alerts with (Debian packages), and
# kubectl (its kustomize renders the Kubernetes manifests).
deploy-tools:
	@command -v docker-compose >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || \
	  { echo "installing docker-compose and promtool (apt)"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose prometheus >/dev/null; }
	@command -v kubectl >/dev/null 2>&1 || echo "warning: kubectl is missing; the Kubernetes manifest tests will fail"

# Regenerate the deployment files that come from the registry, the migrations and the alerts.
manifests: install
	$(UV) run --frozen python -m ecrm_embedded.deploy_artifacts

# The benchmarks' load generator.
wrk:
	@command -v wrk >/dev/null 2>&1 || \
	  { echo "installing wrk (apt)"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

run: install
	$(UV) run --frozen ecrm-dev run

test: install browser deploy-tools
	$(UV) run --frozen pytest $(PYTEST_ARGS)

# The long suite: a 15-minute soak, faults under load, and the API fuzzing at ~16k requests
# (ECRM_SOAK_S, ECRM_SOAK_RATE and ECRM_FUZZ_EXAMPLES change its size).
test-reliability: install browser deploy-tools
	ECRM_RELIABILITY=1 ECRM_FUZZ_EXAMPLES=$${ECRM_FUZZ_EXAMPLES:-400} $(UV) run --frozen pytest -m "reliability or fuzz" --timeout 3600 $(PYTEST_ARGS)

test-unit: install
	$(UV) run --frozen pytest -m "not kafka and not clickhouse and not smtp and not postgres and not e2e and not browser" $(PYTEST_ARGS)

lint: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy schemas/ecrm_schemas services/*/ecrm_* deploy/embedded/ecrm_embedded

format: install
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

# The collector against its ceilings (no-op handler, raw produce loop); BENCH_ARGS=--quick for about a minute.
bench: install wrk
	$(UV) run --frozen python -m bench.suite $(BENCH_ARGS)

# Erasing one customer (GDPR/CCPA) with 1M events stored: seconds and the parts it writes.
bench-erasure: install
	$(UV) run --frozen python -m bench.erasure_bench $(BENCH_ARGS)

bench-collector: install wrk
	$(UV) run --frozen python -m bench.collector_bench run $(BENCH_ARGS)

# The aggregator (1 and 2 workers) against a raw confluent-kafka → clickhouse-connect loop, same data.
bench-aggregator: install
	$(UV) run --frozen python -m bench.aggregator_bench $(BENCH_ARGS)

bench-interaction: install
	$(UV) run --frozen python -m bench.interaction_bench run $(BENCH_ARGS)

# Every console page against 300 ms p95 on a seeded store (kept in .ecrm/bench-console/ per size); exit 1 when one misses.
bench-console: install
	$(UV) run --frozen python -m bench.console_bench run $(BENCH_ARGS)

# Every report against 1 s p95 beside a bare ClickHouse scan of its columns, on the console bench's seeded store; exit 1 when one misses.
bench-reports: install
	$(UV) run --frozen python -m bench.reports_bench run $(BENCH_ARGS)

# The website assistant: accuracy per language on the held-out questions, off-topic refusal, answer latency, memory.
bench-assistant: install
	$(UV) run --frozen python -m bench.assistant_bench run $(BENCH_ARGS)

jsonschema: install
	$(UV) run --frozen python -m ecrm_schemas jsonschema

# The user-facing catalog, generated from the registry and the code that owns each part.
catalog-doc: install
	$(UV) run --frozen python -m ecrm_embedded.catalog_doc

# The report definitions in docs/reports.md (between its markers), generated from the reports.
reports-doc: install
	$(UV) run --frozen python -m ecrm_embedded.reports_doc

clean:
	rm -rf .ecrm .pytest_cache .mypy_cache .ruff_cache
