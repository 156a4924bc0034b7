# Shortcuts; the scripts do the real work (and install what is missing).
.PHONY: test test-browser screenshot demo lint format bench tox clean

test:
	scripts/test

# The browser tests alone (needs Debian's chromium: apt-get install chromium).
test-browser:
	.venv/bin/python -m pip install --quiet -e ".[test,browser]"
	.venv/bin/python -m pytest --browser tests/browser

# The README's dashboard screenshot, as the browser test takes it.
screenshot:
	.venv/bin/python -m pip install --quiet -e ".[test,browser]"
	.venv/bin/python -m pytest --browser tests/browser -k updates_live
	cp .artifacts/screenshots/dashboard.png docs/img/dashboard.png

demo:
	scripts/demo

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck:
	.venv/bin/python -m pip install --quiet -e ".[typecheck]"
	.venv/bin/python scripts/typecheck

format:
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

# Side-by-side benchmarks against the peer libraries (results: docs/benchmarks.md).
bench:
	.venv/bin/python -m pip install --quiet -e ".[bench]"
	for b in benchmarks/[a-z]*.py; do [ "$$b" = benchmarks/compare.py ] && continue; PYTHONPATH=. .venv/bin/python -m benchmarks.$$(basename $$b .py) || exit 1; done

tox:
	.venv/bin/python -m pip install --quiet tox
	.venv/bin/tox

clean:
	rm -rf .venv .tox .cache .demo .ci-logs .artifacts build dist *.egg-info
