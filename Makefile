# The two commands a newcomer needs: `make run` and `make test`. See README.md.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/ris
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
DICOM_TESTS ?= tests/dicom tests/worklist/test_dicom_mpps.py tests/imaging/test_transfer_syntaxes.py tests/imaging/test_node_faults.py

.PHONY: run test contract venv venv-dev messages lint typecheck migrate-check services bench clean lock audit viewer

# The typed domain layer: each app's services and selectors, as a module or a package.
TYPED := $(sort $(patsubst %/__init__.py,%,$(wildcard */services.py */selectors.py \
	*/services/__init__.py */selectors/__init__.py)) ris/lifecycle.py)

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# requirements*.txt: the top-level pins; requirements*.lock: the full trees with hashes (`make lock`).
$(VENV)/.installed: requirements.lock | $(BIN)/python
	bash scripts/check_lock.sh
	$(BIN)/pip install -q --require-hashes -r requirements.lock
	touch $@

$(VENV)/.installed-dev: requirements.lock requirements-dev.lock | $(BIN)/python
	bash scripts/check_lock.sh
	$(BIN)/pip install -q --require-hashes -r requirements-dev.lock
	touch $(VENV)/.installed $@

venv: $(VENV)/.installed
venv-dev: $(VENV)/.installed-dev

messages:
	@if ! find . -path ./.venv -prune -o -name '*.po' -print | grep -q .; then exit 0; \
	elif command -v msgfmt >/dev/null; then $(BIN)/python manage.py compilemessages -v0 --ignore=.venv; \
	else echo "msgfmt (gettext) not found: the UI falls back to English"; fi

## make run: install, migrate, load demo data and start web + DICOM node + HL7 listener (+ worker with a broker).
run: venv messages
	bash scripts/ensure_system_packages.sh run
	$(BIN)/python manage.py migrate --no-input -v0
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py seed_department
	$(BIN)/python manage.py seed_reports
	$(BIN)/python manage.py seed_viewer_demo
	$(BIN)/python manage.py department_milestones
	$(BIN)/python manage.py runsystem

## make test: install, make sure PostgreSQL/Redis/DCMTK/Chromium are there, run the whole suite.
test: venv-dev messages
	bash scripts/ensure_system_packages.sh test
	bash scripts/ensure_services.sh
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	BIN=$(BIN) bash scripts/audit_dependencies.sh
	$(BIN)/lint-imports
	$(BIN)/mypy $(TYPED)
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/python manage.py makemigrations --check --dry-run -v0
	DATABASE_URL=$(TEST_DATABASE_URL) RIS_TEST_REDIS_URL=$(TEST_REDIS_URL) \
		$(BIN)/pytest $(PYTEST_ARGS)
	@# The DICOM node's tests again with the speed-only pynetdicom paths off (ris/dicom/patches.py).
	DATABASE_URL=$(TEST_DATABASE_URL) RIS_TEST_REDIS_URL=$(TEST_REDIS_URL) RIS_DICOM_ACCELERATED=false \
		$(BIN)/pytest -q -m "dicom and not browser" $(DICOM_TESTS)

## make contract: just the bounded, seeded schemathesis run of the REST API against its OpenAPI
## schema (no 5xx, documented statuses, conforming bodies); `make test` runs it with the suite.
contract: venv-dev
	bash scripts/ensure_services.sh
	DATABASE_URL=$(TEST_DATABASE_URL) RIS_TEST_REDIS_URL=$(TEST_REDIS_URL) \
		$(BIN)/pytest tests/api/test_schemathesis.py $(PYTEST_ARGS)

## make viewer: rebuild the committed viewer bundle (static/viewer/) with Node/npm; see docs/viewer.md.
viewer:
	cd viewer/frontend && npm ci --no-audit --no-fund && node build.mjs

lint: venv-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

## make typecheck: mypy (django-stubs, djangorestframework-stubs) on services and selectors.
typecheck: venv-dev
	$(BIN)/mypy $(TYPED)

## make bench: the benchmarks (not tests), each side by side with its peer; see README.
bench: venv-dev
	bash scripts/ensure_system_packages.sh test
	bash scripts/ensure_services.sh
	$(BIN)/python bench/mwl.py --sizes 10000,100000 --wlmscpfs-sizes 10000,100000 --runs 20
	$(BIN)/python bench/ingest.py
	$(BIN)/python -m bench.dashboard
	$(BIN)/python bench/web.py --sizes 100000,1000000 --runs 20

## make lock: re-resolve requirements*.txt into the hash-locked requirements*.lock (pip-tools).
lock: | $(BIN)/python
	test -x $(BIN)/pip-compile || $(BIN)/pip install -q pip-tools==7.7.0
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras -o requirements.lock requirements.txt
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras -o requirements-dev.lock requirements-dev.txt

## make audit: known vulnerabilities in the locked set (pip-audit; skipped when offline).
audit: venv-dev
	BIN=$(BIN) bash scripts/audit_dependencies.sh

clean:
	rm -rf var/ris.sqlite3 var/storage var/staticfiles
