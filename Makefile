# vidcurate: `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
DEMO   ?= demo

.PHONY: setup browser demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e ".[test]"
	$(BIN)/python scripts/check_env.py
	rm -f $(VENV)/.installed-* && touch $@

# Debian's Chromium for the dashboard's browser test (a test tool's own browser download is not used).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; \
	  else echo "chromium not installed and cannot install it (need root + apt): the browser test will be skipped"; fi; }

demo: setup
	rm -rf $(DEMO)
	$(BIN)/vidcurate sample-data $(DEMO)/input
	$(BIN)/vidcurate run $(DEMO)/input $(DEMO)/out
	$(BIN)/vidcurate dashboard $(DEMO)/out
	$(BIN)/python scripts/demo_tail.py $(DEMO)

test: setup browser
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(DEMO) .pytest_cache build *.egg-info
