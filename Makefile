# The README's two commands: `make demo` and `make test`. Each creates the virtualenv if missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is pinned to 2.13.0; set TORCH_INDEX=https://download.pytorch.org/whl/cpu on a machine whose
# package index would otherwise pick a CUDA build.
TORCH_INDEX ?=
PIP_TORCH_ARGS := $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)
DEMO_CONFIG := examples/groundwire.toml
export ANONYMIZED_TELEMETRY := False
export HF_HUB_OFFLINE := 1

.PHONY: browser demo test bench bench-quality lint typecheck clean venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(PIP_TORCH_ARGS) "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev]" -e examples/plugin
	@touch $@

demo: venv
	@echo "== indexing examples/corpus (offline model, embedded Chroma) =="
	$(VENV)/bin/groundwire sync --config $(DEMO_CONFIG)
	@echo "== the same question as a regular user and as an HR user =="
	$(VENV)/bin/groundwire ask "When do salary increases take effect and how big is the budget?" \
		--user sam@example.com --config $(DEMO_CONFIG)
	$(VENV)/bin/groundwire ask "When do salary increases take effect and how big is the budget?" \
		--user hana@example.com --groups hr --config $(DEMO_CONFIG)
	@echo "== the trust controls, each with a live self-check (encryption at rest is on by default) =="
	$(VENV)/bin/groundwire trust-report --config $(DEMO_CONFIG)

# The reviewer page's browser tests drive Debian's headless Chromium (never a browser download); installed
# here when missing and we are root with apt (CI), otherwise those tests skip with the reason.
browser:
	@if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "== installing Debian's chromium for the browser tests =="; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

test: venv browser
	$(PY) -m pytest tests -q -p no:cacheprovider

bench: venv
	$(PY) -m pytest benchmarks -q -p no:cacheprovider --benchmark-only

lint: venv
	$(VENV)/bin/ruff check framework plugins connectors tests benchmarks examples

typecheck: venv
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .groundwire
