# The two commands a new user needs: `make up` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEB_PACKAGES := iproute2 util-linux

.PHONY: setup debs up down status reset test unit clean

setup: $(STAMP) debs

debs:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing Debian packages:$$missing"; \
	  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi
	@sh scripts/install-node-deps.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | grep -v "^WARNING: Location" || true
	@$(BIN)/python -c "import pyk8s, aiohttp, kubernetes" && test -x $(BIN)/kubectl
	@touch $(STAMP)

up: setup
	@$(BIN)/pyk8s up $(UP_ARGS)

down:
	@$(BIN)/pyk8s down

# pyk8s says whether it runs; its exit code (for scripts: `pyk8s status`) is not make's error.
status:
	@$(BIN)/pyk8s status || true

# Asks on a terminal; `make reset YES=1` for scripts.
reset:
	@$(BIN)/pyk8s reset $(if $(YES),--yes)

test: setup
	@$(BIN)/python -m pytest -q $(TEST_ARGS)

unit: setup
	@$(BIN)/python -m pytest -q tests/unit $(TEST_ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info
