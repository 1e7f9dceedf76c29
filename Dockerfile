# The monitor as a container: non-root, state in a volume, health checked on /health. The
# install is make install's (deploy/install-venv.sh): the locked dependencies, then the
# wheel. The config is not in the image: mount it (docker-compose.yml does), with the
# secrets in the environment.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY monitor ./monitor
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
# tzdata: alert messages are in Aktau local time
RUN apt-get update \
    && apt-get install -y --no-install-recommends tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/monitor monitor \
    && mkdir -p /var/lib/monitor /etc/monitor \
    && chown monitor /var/lib/monitor
COPY requirements.lock deploy/install-venv.sh /tmp/install/
COPY --from=build /wheels /wheels
RUN PIP_NO_CACHE_DIR=1 /tmp/install/install-venv.sh /opt/customs-monitor /wheels/*.whl \
        /tmp/install/requirements.lock \
    && rm -rf /wheels /tmp/install
USER monitor
ENV PATH=/opt/customs-monitor/bin:$PATH \
    MONITOR_CONFIG=/etc/monitor/monitor.yaml \
    MONITOR_STATE_DIR=/var/lib/monitor \
    MONITOR_HTTP__HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
WORKDIR /var/lib/monitor
VOLUME ["/var/lib/monitor"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)" || exit 1
# SIGTERM: the monitor writes what it holds and exits 0 within stop_timeout (compose gives
# it stop_grace_period: 30s)
ENTRYPOINT ["monitor"]
CMD ["run"]
