"""Notification routes and their channels: Apprise URLs or webhooks, secrets put in
only to send, URLs masked wherever they are shown."""

import os
import re
import urllib.parse
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
)

from monitor.config.alerts import Severity
from monitor.config.values import Duration, Interval, Language, Section

SECRET_PLACEHOLDER = re.compile(r"\{(env|file):([^{}\s]+)\}")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def expand_channel(url: str) -> str:
    """The channel URL with its secrets put in, from the environment or their files, as
    they are now (a rotated file is read anew). ``ValueError`` names what is missing,
    never a secret. The result is for the channel alone: never logged, never stored."""

    def secret(m: re.Match[str]) -> str:
        source, name = m.groups()
        if source == "env":
            if not ENV_NAME.match(name):
                raise ValueError(f"{{env:{name}}}: not an environment variable name")
            value = os.environ.get(name)
            if value is None:
                raise ValueError(f"{{env:{name}}}: the environment variable is not set")
            return value.strip()
        try:
            return Path(name).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
            raise ValueError(f"{{file:{name}}}: cannot read the file: {why}") from None

    return SECRET_PLACEHOLDER.sub(secret, url)


def _check_channel(url: str) -> str:
    # The shape is checked with each secret's place standing for it; the secrets are read
    # now (a missing variable or file is refused at load) but kept out of the URL kept.
    expand_channel(url)
    shape = SECRET_PLACEHOLDER.sub("secret", url)
    if shape.startswith("webhook:"):
        if not re.match(r"^webhook:https?://\S+$", shape):
            raise ValueError("webhook channel must be webhook:http(s)://...")
    elif not re.match(r"^[a-z][a-z0-9+.-]*://\S*$", shape):
        raise ValueError(f"channel {mask_url(url)!r} is neither an Apprise URL nor webhook:<url>")
    return url


# Where a channel URL written in the YAML carries a secret (SPEC 10: check-config warns).
# Apprise services whose URL's first part is a token (tgram://BOTTOKEN/CHAT_ID) rather
# than a server's name; a query parameter of these names; a password in the authority.
TOKEN_SCHEMES = {
    "tgram": "a Telegram bot token",
    "discord": "a Discord webhook",
    "slack": "Slack tokens",
    "msteams": "an MS Teams webhook",
    "pbul": "a Pushbullet token",
    "pover": "Pushover keys",
    "ifttt": "an IFTTT key",
    "join": "a Join API key",
    "signal": "a Signal account",
}
SECRET_PARAMETERS = frozenset(
    {"pass", "password", "pwd", "token", "key", "apikey", "api_key", "secret", "access_token"}
)


def channel_secret(url: str) -> str | None:
    """What secret a channel URL carries as written (a placeholder carries none), or None."""
    literal = SECRET_PLACEHOLDER.sub("", url).removeprefix("webhook:")
    m = re.match(r"^([a-z][a-z0-9+.-]*)://([^/?#]*)[^?#]*(?:\?([^#]*))?", literal, re.I)
    if m is None:
        return None
    scheme, authority, query = m.group(1).lower(), m.group(2), m.group(3) or ""
    userinfo = authority.rpartition("@")[0]
    if userinfo.partition(":")[2]:
        return "a password"
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if name.lower() in SECRET_PARAMETERS and value:
            return f"a {name.lower()}"
    service = scheme if scheme in TOKEN_SCHEMES else scheme.removesuffix("s")  # slacks://
    if service in TOKEN_SCHEMES and authority:
        return TOKEN_SCHEMES[service]
    return None


def yaml_channel_secrets(raw: Any) -> list[str]:
    """Warnings, by path, for channel URLs written in the YAML with a secret in them: the
    secret is in a file people share, copy and commit (SPEC 10)."""
    notify = raw.get("notify") if isinstance(raw, dict) else None
    routes = notify.get("routes") if isinstance(notify, dict) else None
    warnings: list[str] = []
    for i, route in enumerate(routes if isinstance(routes, list) else []):
        if not isinstance(route, dict):
            continue
        for key in ("channels", "escalate_to"):
            urls = route.get(key)
            for j, url in enumerate(urls if isinstance(urls, list) else []):
                if isinstance(url, str) and (what := channel_secret(url)) is not None:
                    warnings.append(
                        f"notify.routes[{i}].{key}[{j}]: {what} written in the config file;"
                        " put it in the environment or a file and write {env:NAME} or"
                        " {file:/path} in its place"
                    )
    return warnings


class ChannelURL(str):
    """A notification channel URL: it carries tokens and passwords, so its repr is masked
    (a config printed in a traceback or a debug line does not leak them)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(mask_url(self))


Channel = Annotated[
    str, BeforeValidator(lambda v: _check_channel(str(v))), AfterValidator(ChannelURL)
]


class RouteMatch(Section):
    severity: list[Severity] | None = None
    kind: list[str] | None = None
    site: list[str] | None = None
    area: list[str] | None = None


class Route(Section):
    name: str
    match: RouteMatch = RouteMatch()
    channels: list[Channel] = Field(min_length=1)
    repeat_interval: Interval = 3600.0
    escalate_after: Duration = 900.0
    escalate_to: list[Channel] = []
    # The crew's language (en, ru, kk): its messages in it; the webhook JSON adds
    # summary_localized. None: English, and the webhook JSON exactly as SPEC 5 has it.
    language: Language | None = None


class Notify(Section):
    routes: list[Route] = []


_HOST_SCHEMES = frozenset(
    {"http", "https", "json", "jsons", "xml", "xmls", "form", "forms", "mailto", "mailtos"}
)


def mask_url(url: str) -> str:
    """A channel URL safe to print: no user, password, token, path or query."""
    url = SECRET_PLACEHOLDER.sub("secret", url)  # {file:/a/b} would split the authority
    prefix = ""
    if url.startswith("webhook:"):
        prefix, url = "webhook:", url[len("webhook:") :]
    m = re.match(r"^([a-z][a-z0-9+.-]*)://([^/?#]*)(.*)$", url, re.I)
    if not m:
        return prefix + "***"
    scheme, authority, rest = m.groups()
    if "@" in authority:
        host = "***@" + authority.rsplit("@", 1)[1]
    elif scheme.lower() in _HOST_SCHEMES:
        host = authority
    else:
        return f"{prefix}{scheme}://***"
    return f"{prefix}{scheme}://{host}{'/***' if rest else ''}"
