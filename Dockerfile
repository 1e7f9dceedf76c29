# The monitor as a container: non-root, state in a volume, health checked on /health.
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
# The dependencies exactly as locked (versions and hashes), then the monitor itself.
COPY requirements.lock /tmp/requirements.lock
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock \
    && pip install --no-cache-dir --no-deps /wheels/*.whl \
    && rm -rf /wheels /tmp/requirements.lock
COPY config/monitor.yaml /etc/monitor/monitor.yaml
USER monitor
ENV MONITOR_CONFIG=/etc/monitor/monitor.yaml \
    MONITOR_STATE_DIR=/var/lib/monitor \
    MONITOR_HTTP__HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
VOLUME ["/var/lib/monitor"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/health', timeout=4)" || exit 1
ENTRYPOINT ["monitor"]
CMD ["run"]
