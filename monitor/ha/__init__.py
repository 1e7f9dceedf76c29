"""More than one monitor for the same sites (SPEC 8.1): the leadership (``lease.py``)
and the dead man's switch (``heartbeat.py``); the wiring (``app.py``) runs a monitor as
the leader or as a standby by them."""
