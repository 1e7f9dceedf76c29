"""The source stage: the MQTT 5 client (``mqtt.py``) and its wire codec (``wire.py``)."""
