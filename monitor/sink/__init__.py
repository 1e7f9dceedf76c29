"""The sink stage: line protocol, batches, the InfluxDB writer and its disk spool."""
