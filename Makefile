# make test : everything a fresh Debian/Ubuntu machine needs, then the whole test suite
# make demo : the local demo (broker, InfluxDB, simulator, monitor, status page)
# make lint : ruff + mypy
# make install : the production install on this machine (docs/deploy.md), as root
# make lock : refresh requirements.lock / requirements-dev.lock from pyproject.toml's ranges

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBS   := python3-venv mosquitto mosquitto-clients influxdb influxdb-client victoria-metrics postgresql chromium docker-compose openssl faketime systemd
# Of DEBS, those whose packages start a service on install: tests and the demo run their
# own, on other ports, so Debian's are neither started nor enabled (deps, below)
DAEMONS := mosquitto influxdb victoria-metrics postgresql

.PHONY: test lint deps venv demo bench soak clean mqtt-passwords lock proto i18n install wheel

# Installs are reproducible: exact versions and hashes from the lock files; pyproject.toml
# keeps the ranges (what the code supports), the locks what was tested.
LOCK     := requirements.lock
DEV_LOCK := requirements-dev.lock
UV       := uv==0.13.9
COMPILE   = .venv-lock/bin/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes --quiet

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml $(DEV_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# The newest versions pyproject.toml allows, pinned with hashes: the service's (the Docker
# image installs these) and, constrained by them, the service's plus the test tools'.
lock:
	$(PYTHON) -m venv .venv-lock && .venv-lock/bin/pip install --quiet $(UV)
	$(COMPILE) -o $(LOCK)
	$(COMPILE) --extra test -c $(LOCK) -o $(DEV_LOCK)

# The Sparkplug B message classes from the official Tahu proto (EPL-2.0, as published in the
# pysparkplug 0.6.1 sdist on PyPI), committed: the image and a plain pip install need no
# protoc. tests/test_schemas.py checks they are what this makes.
SPB := monitor/schemas
proto: venv
	$(BIN)/python -m grpc_tools.protoc --proto_path=$(SPB) --python_out=$(SPB) --pyi_out=$(SPB) $(SPB)/sparkplug_b.proto

# The texts people read, in Russian and Kazakh: extract what the code marks, update the
# catalogs (new texts appear untranslated: tests/test_i18n.py fails until they are), compile.
I18N := monitor/i18n
# N_: a text kept in a table; NP_: a counted noun in one case (context), monitor/i18n
I18N_KEYWORDS := -k N_ -k NP_:1c,2,3
i18n: venv
	$(BIN)/pybabel -q extract -F babel.cfg $(I18N_KEYWORDS) --no-location --sort-output \
		--add-comments=TRANSLATORS: --project=customs-telemetry-monitor -o $(I18N)/monitor.pot .
	$(BIN)/pybabel -q update -i $(I18N)/monitor.pot -d $(I18N)/locale -D monitor --no-fuzzy-matching --ignore-obsolete
	$(BIN)/pybabel -q compile -d $(I18N)/locale -D monitor --statistics

# Debian's mosquitto, influxdb and postgresql, installed only when missing, and never left
# running: tests and the demo run private servers on loopback (the packages' own would hold
# :1883, :8086 and :5432). While installing, a policy-rc.d refuses every service start (one
# that is there already is left alone); afterwards the services of the packages installed
# here are disabled, so a reboot does not start them either. postgresql's install creates a
# cluster, <major>/main, and starts it through invoke-rc.d, which the policy refuses: the
# cluster stays, stopped. Disabling postgresql.service, which starts every cluster at boot,
# is enough; systemctl edits the unit links without a running systemd too (a container) and
# hands the init script to update-rc.d. The private servers take only the binaries and make
# clusters of their own (monitor/sim/devservers.py). Node.js and npm (Debian's nodejs and
# npm, unless a node and an npm are there already) for the Eclipse Tahu edge node the
# Sparkplug tests drive (tests/tahu: npm ci from its lock, again only when the lock changed).
TAHU := tests/tahu
POLICY := /usr/sbin/policy-rc.d
deps: $(TAHU)/node_modules/.installed
	@missing=""; \
	for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		own_policy=""; \
		if [ ! -e $(POLICY) ]; then \
			printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee $(POLICY) >/dev/null && \
			$(SUDO) chmod 755 $(POLICY) && own_policy=1; \
		fi; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
		status=$$?; \
		if [ -n "$$own_policy" ]; then $(SUDO) rm -f $(POLICY); fi; \
		[ $$status = 0 ] || exit $$status; \
		for d in $(DAEMONS); do \
			case " $$missing " in *" $$d "*) \
				$(SUDO) systemctl disable --quiet $$d 2>/dev/null || \
				$(SUDO) update-rc.d $$d disable >/dev/null 2>&1 || true;; \
			esac; \
		done; \
	fi

$(TAHU)/node_modules/.installed: $(TAHU)/package.json $(TAHU)/package-lock.json
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
		echo "installing: nodejs npm"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends nodejs npm; \
	fi
	cd $(TAHU) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

lint: venv
	$(BIN)/ruff check monitor tests bench
	$(BIN)/ruff format --check monitor tests bench
	$(BIN)/mypy

test: deps venv lint
	$(BIN)/pytest -q -ra

# The local demo: private broker + InfluxDB under var/demo, the monitor, the simulator with a
# scripted incident. Ctrl-C stops everything.
demo: deps venv
	$(BIN)/python -m monitor.sim.demo

# The randomized fault soak, long: ten minutes for each of three seeds (make test runs a
# short one). A failure prints its seed; SOAK_SEEDS=<seed> make soak replays it.
SOAK_SECONDS ?= 600
SOAK_SEEDS   ?= 101,202,303
soak: deps venv
	SOAK_SECONDS=$(SOAK_SECONDS) SOAK_SEEDS=$(SOAK_SEEDS) $(BIN)/pytest -q -s -m soak -p no:cacheprovider -o timeout=0

# Measured, never asserted: prints a table and writes bench/results.json (see bench/README.md)
# Bytecode compiled first, as an installed package has it (pip and the Docker image compile;
# an editable install under PYTHONDONTWRITEBYTECODE would recompile at every start).
bench: deps venv
	$(BIN)/python -m compileall -q monitor
	$(BIN)/python -m bench

# config/mosquitto/passwords for the compose stack, from the passwords in .env: each account
# added or updated, every other one (the devices') kept. mosquitto_passwd from this machine
# (Debian's mosquitto package) or else from the stack's mosquitto image; nothing installed
# or started here. The broker reads the file again on SIGHUP.
MQTT_ACCOUNTS := monitor-aktau-1:MONITOR_MQTT__PASSWORD plc-gateway-aktau:PLC_GATEWAY_MQTT_PASSWORD simulator:SIMULATOR_MQTT_PASSWORD
mqtt-passwords:
	@set -eu; set -a; . ./.env; set +a; file=config/mosquitto/passwords; \
	if command -v mosquitto_passwd >/dev/null; then passwd() { mosquitto_passwd "$$@"; }; dir=config/mosquitto; \
	else passwd() { docker-compose run --rm --no-deps -v "$$PWD/config/mosquitto:/work" --entrypoint mosquitto_passwd mosquitto "$$@"; }; dir=/work; fi; \
	[ -e $$file ] || { touch $$file; chmod 644 $$file; }; \
	for account in $(MQTT_ACCOUNTS); do \
		user=$${account%%:*}; var=$${account#*:}; eval "secret=\$${$$var:-}"; \
		if [ -n "$$secret" ]; then passwd -b $$dir/passwords "$$user" "$$secret"; echo "$$file: $$user"; \
		else echo "$$file: $$user left as it is ($$var not set in .env)"; fi; \
	done; \
	echo "the broker reads it on SIGHUP: docker-compose kill -s HUP mosquitto"

# The monitor's wheel (dist/), built in a venv of its own: Debian's python3 has no pip.
wheel:
	rm -rf dist
	$(PYTHON) -m venv .venv-build
	.venv-build/bin/pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir dist .

# The production install on this machine (docs/deploy.md): the wheel into a venv at
# /opt/customs-monitor from requirements.lock (no test tools), the service user, the
# config and secrets in /etc/customs-monitor (kept if there), the systemd unit.
install: wheel
	$(SUDO) deploy/install.sh dist/*.whl

clean:
	rm -rf $(VENV) .venv-lock .venv-build dist var .pytest_cache .mypy_cache .ruff_cache
