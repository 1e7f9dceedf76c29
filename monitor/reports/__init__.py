"""Reports from the InfluxDB history (availability)."""
