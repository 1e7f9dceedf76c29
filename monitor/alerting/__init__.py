"""The alerting stage: liveness -> rules -> the alert engine -> its runtime -> notify,
with their durable state in the store."""
