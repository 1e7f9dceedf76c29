"""Configuration: YAML file + ``MONITOR_<SECTION>__<KEY>`` environment overrides.

Validated once at start-up; every problem is reported with its path. Secrets (broker
password, InfluxDB token/password, API token, the store's URL, channels' tokens) come
only from the environment or from a file; the YAML may not hold them.

A module per part of the file: ``values`` (the value types and the sections' base),
``connections`` (mqtt, influx, http, store), ``inputs`` (ingest, passages, profiles,
sparkplug, devices), ``alerts`` (rules, windows), ``notify`` (routes, channels), ``ha``
(ha, heartbeat), ``root`` (``Config``, the checks across sections, ``load_config``).
Everything is imported from here.
"""

from monitor.config.alerts import (
    RULE_DEFAULTS as RULE_DEFAULTS,
)
from monitor.config.alerts import (
    RULE_SETTINGS as RULE_SETTINGS,
)
from monitor.config.alerts import (
    Alerts as Alerts,
)
from monitor.config.alerts import (
    KindRules as KindRules,
)
from monitor.config.alerts import (
    MaintenanceWindow as MaintenanceWindow,
)
from monitor.config.alerts import (
    RuleOverrides as RuleOverrides,
)
from monitor.config.alerts import (
    Severity as Severity,
)
from monitor.config.alerts import (
    ThresholdRule as ThresholdRule,
)
from monitor.config.connections import (
    HTTP as HTTP,
)
from monitor.config.connections import (
    MQTT as MQTT,
)
from monitor.config.connections import (
    TLS as TLS,
)
from monitor.config.connections import (
    Backoff as Backoff,
)
from monitor.config.connections import (
    CanarySettings as CanarySettings,
)
from monitor.config.connections import (
    Influx as Influx,
)
from monitor.config.connections import (
    StoreSettings as StoreSettings,
)
from monitor.config.connections import (
    store_session as store_session,
)
from monitor.config.connections import (
    store_where as store_where,
)
from monitor.config.connections import (
    tls_context as tls_context,
)
from monitor.config.ha import (
    HA as HA,
)
from monitor.config.ha import (
    Heartbeat as Heartbeat,
)
from monitor.config.inputs import (
    DeviceEntry as DeviceEntry,
)
from monitor.config.inputs import (
    FieldMap as FieldMap,
)
from monitor.config.inputs import (
    Ingest as Ingest,
)
from monitor.config.inputs import (
    Passages as Passages,
)
from monitor.config.inputs import (
    Profile as Profile,
)
from monitor.config.inputs import (
    Sparkplug as Sparkplug,
)
from monitor.config.inputs import (
    SparkplugGroup as SparkplugGroup,
)
from monitor.config.inputs import (
    StateMap as StateMap,
)
from monitor.config.inputs import (
    Timestamp as Timestamp,
)
from monitor.config.inputs import (
    ValueMap as ValueMap,
)
from monitor.config.notify import (
    ENV_NAME as ENV_NAME,
)
from monitor.config.notify import (
    SECRET_PARAMETERS as SECRET_PARAMETERS,
)
from monitor.config.notify import (
    SECRET_PLACEHOLDER as SECRET_PLACEHOLDER,
)
from monitor.config.notify import (
    TOKEN_SCHEMES as TOKEN_SCHEMES,
)
from monitor.config.notify import (
    Channel as Channel,
)
from monitor.config.notify import (
    ChannelURL as ChannelURL,
)
from monitor.config.notify import (
    Notify as Notify,
)
from monitor.config.notify import (
    Route as Route,
)
from monitor.config.notify import (
    RouteMatch as RouteMatch,
)
from monitor.config.notify import (
    channel_secret as channel_secret,
)
from monitor.config.notify import (
    expand_channel as expand_channel,
)
from monitor.config.notify import (
    mask_url as mask_url,
)
from monitor.config.notify import (
    yaml_channel_secrets as yaml_channel_secrets,
)
from monitor.config.root import (
    ALERT_KINDS as ALERT_KINDS,
)
from monitor.config.root import (
    CANONICAL_ROOT as CANONICAL_ROOT,
)
from monitor.config.root import (
    CANONICAL_ROUTE as CANONICAL_ROUTE,
)
from monitor.config.root import (
    SECRET_KEYS as SECRET_KEYS,
)
from monitor.config.root import (
    SHOWN_KNOWN as SHOWN_KNOWN,
)
from monitor.config.root import (
    SPARKPLUG_ROUTE as SPARKPLUG_ROUTE,
)
from monitor.config.root import (
    Config as Config,
)
from monitor.config.root import (
    KnownNames as KnownNames,
)
from monitor.config.root import (
    _from_yaml as _from_yaml,
)
from monitor.config.root import (
    load_config as load_config,
)
from monitor.config.root import (
    registry_problems as registry_problems,
)
from monitor.config.root import (
    scope_problems as scope_problems,
)
from monitor.config.values import (
    DEFAULT_CONFIG_PATH as DEFAULT_CONFIG_PATH,
)
from monitor.config.values import (
    MAX_MQTT_PACKET as MAX_MQTT_PACKET,
)
from monitor.config.values import (
    SPARKPLUG_ID_RE as SPARKPLUG_ID_RE,
)
from monitor.config.values import (
    Duration as Duration,
)
from monitor.config.values import (
    Interval as Interval,
)
from monitor.config.values import (
    Kind as Kind,
)
from monitor.config.values import (
    Language as Language,
)
from monitor.config.values import (
    Name as Name,
)
from monitor.config.values import (
    Section as Section,
)
from monitor.config.values import (
    TopicFilter as TopicFilter,
)
