# Two commands: `make run` and `make test`. Everything else is a helper for them.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: run test test-sqlite test-postgres install demo bench clean chromium

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## make run: migrate, load demo data, print the admin login, start web + dispatcher + cluster.
# The demo's external system (extsys) speaks plain http on loopback, hence the insecure-transport
# switch; and it is the installation's default OAuth client for job types without their own.
run: export OAUTH_ALLOW_INSECURE_TRANSPORT ?= true
run: export OAUTH_TOKEN_URL ?= http://127.0.0.1:$(PORT)/extsys/oauth/token
run: export OAUTH_CLIENT_ID ?= batchdesk-demo
run: export OAUTH_CLIENT_SECRET ?= demo-secret
run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py load_demo --port $(PORT)
	$(BIN)/python manage.py load_schedule fixtures/batch_schedule_example.xlsx
	@exec $(BIN)/python manage.py run_all --port $(PORT)

## make test: the layers contract, then the suite on SQLite, then again on PostgreSQL + Redis where TEST_DATABASE_URL/TEST_REDIS_URL are set.
test: $(STAMP) chromium
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -p no:cacheprovider
	@if [ -n "$$TEST_DATABASE_URL" ]; then \
		echo "== again on PostgreSQL$${TEST_REDIS_URL:+ + Redis} =="; \
		DATABASE_URL="$$TEST_DATABASE_URL" REDIS_URL="$$TEST_REDIS_URL" $(BIN)/python -m pytest -p no:cacheprovider; \
	else echo "TEST_DATABASE_URL not set: PostgreSQL run skipped"; fi

# The browser tests drive Debian's Chromium (Playwright never downloads a browser).
chromium:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		{ echo "Debian's chromium is needed by the browser tests: sudo apt-get install chromium"; exit 1; }

bench: $(STAMP)
	$(BIN)/python bench/trigger_latency.py

clean:
	rm -rf $(VENV) var
