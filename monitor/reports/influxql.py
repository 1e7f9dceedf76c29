"""A tiny InfluxQL client for the reports (v1 ``/query``, also served by the 1.x
compatibility APIs of InfluxDB 2.x and 3.x)."""

from __future__ import annotations

import base64
import json
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from monitor.config import Influx, tls_context
from monitor.errors import QueryError

# A query function: InfluxQL in, the result's series out (raises QueryError or OSError).
Query = Callable[[str], list[dict[str, object]]]


class InfluxQuery:
    """A tiny InfluxQL client (v1 /query, also served by 2.x/3.x compatibility APIs)."""

    def __init__(self, config: Influx) -> None:
        self._config = config

    def __call__(self, q: str) -> list[dict[str, object]]:
        cfg = self._config
        params = {
            "db": cfg.database if cfg.api == "v1" else (cfg.bucket or ""),
            "q": q,
            "epoch": "ms",
        }
        if cfg.retention_policy:
            params["rp"] = cfg.retention_policy
        req = urllib.request.Request(f"{cfg.url}/query?{urllib.parse.urlencode(params)}")
        if cfg.token is not None:
            req.add_header("Authorization", f"Token {cfg.token.get_secret_value()}")
        elif cfg.username and cfg.password is not None:
            creds = f"{cfg.username}:{cfg.password.get_secret_value()}".encode()
            req.add_header("Authorization", "Basic " + base64.b64encode(creds).decode())
        with urllib.request.urlopen(req, timeout=60, context=tls_context(cfg.ca_file)) as resp:
            body = json.load(resp)
        result = body["results"][0]
        if "error" in result:
            raise QueryError(f"InfluxDB: {result['error']}")
        return list(result.get("series", []))


def unpack(series: dict[str, object]) -> tuple[dict[str, str], list[str], list[list[Any]]]:
    """A result series' tags, columns and rows."""
    tags, columns, values = series.get("tags", {}), series["columns"], series["values"]
    if not (isinstance(tags, dict) and isinstance(columns, list) and isinstance(values, list)):
        raise QueryError("InfluxDB: a series without tags, columns or values")
    return tags, columns, values
