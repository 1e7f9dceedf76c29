# make test : everything a fresh Debian/Ubuntu machine needs, then the whole test suite
# make demo : the local demo (broker, InfluxDB, simulator, monitor, status page)
# make lint : ruff + mypy

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBS   := mosquitto mosquitto-clients influxdb influxdb-client victoria-metrics chromium docker-compose openssl

.PHONY: test lint deps venv demo bench clean mqtt-passwords

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# Debian's mosquitto and influxdb, installed only when missing. No service is started:
# tests and the demo run private servers on loopback.
deps:
	@missing=""; \
	for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

lint: venv
	$(BIN)/ruff check monitor tests bench
	$(BIN)/ruff format --check monitor tests bench
	$(BIN)/mypy

test: deps venv lint
	$(BIN)/pytest -q -ra

# The local demo: private broker + InfluxDB under var/demo, the monitor, the simulator with a
# scripted incident. Ctrl-C stops everything.
demo: deps venv
	$(BIN)/python -m monitor.demo

# Measured, never asserted: prints a table and writes bench/results.json (see bench/README.md)
bench: deps venv
	$(BIN)/python -m bench

# config/mosquitto/passwords for the compose stack, from the passwords in .env
mqtt-passwords: deps
	@set -a; . ./.env; set +a; \
	rm -f config/mosquitto/passwords; touch config/mosquitto/passwords; \
	mosquitto_passwd -b config/mosquitto/passwords monitor-aktau-1 "$$MONITOR_MQTT_PASSWORD"; \
	mosquitto_passwd -b config/mosquitto/passwords simulator "$$SIMULATOR_MQTT_PASSWORD"; \
	chmod 644 config/mosquitto/passwords; echo "wrote config/mosquitto/passwords"

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
