# Two commands for a newcomer: `make demo` and `make test`. Both install what they need first
# (a virtualenv with the project, and the Kafka broker's jars from Maven Central).
PY := .venv/bin/python

.PHONY: demo test lint install jars chromium

demo: install jars
	$(PY) -m streams.cli demo

test: install jars chromium lint
	$(PY) -m pytest -q

# ruff's lint rules and its formatting (pyproject.toml [tool.ruff]).
lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

install: .venv/.installed

.venv/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

jars: install
	$(PY) -m deploy.broker resolve

# The ops page is tested in a real headless browser: Debian's chromium (needs root; once).
chromium:
	test -x /usr/bin/chromium || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; }
