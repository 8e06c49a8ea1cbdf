# Two commands on a fresh Debian machine, as root: `make demo` and `make test`.
# Both create .venv and install pinned dependencies (and the few Debian packages
# the lab needs) on first use; scripts/bootstrap.sh does that work.

VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.bootstrapped

.PHONY: demo test lint unit lab bench fuzz clean wheel deb

$(STAMP): pyproject.toml requirements.lock scripts/bootstrap.sh
	scripts/bootstrap.sh $(VENV)
	touch $@

demo: $(STAMP)
	$(BIN)/ipkeeper lab demo

lint: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit

bench: $(STAMP)
	$(BIN)/python bench/ip_kit.py

# schemathesis against a lab daemon with many examples (make test runs a few); builds the
# lab: run it under the lab lock like make test.
FUZZ_EXAMPLES ?= 200
fuzz: $(STAMP)
	$(BIN)/python -m ipkeeper.testing.api_fuzz --examples $(FUZZ_EXAMPLES)

# The wheel (run-time dependencies only) and the Debian package, into dist/.
wheel: $(STAMP)
	$(BIN)/python -m pip wheel -q --no-deps -w dist .

deb:
	dpkg-checkbuilddeps
	mkdir -p dist
	dpkg-buildpackage -b -us -uc -tc --buildinfo-option=-udist --buildinfo-option=-Odist/ipkeeper.buildinfo \
		--changes-option=-udist --changes-option=-Odist/ipkeeper.changes
	lintian --fail-on warning --display-info dist/ipkeeper_*.deb

clean:
	-$(BIN)/ipkeeper lab down
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache dist build
