"""Eclipse Sparkplug B 3.0 (SPEC 3.4): the monitor as a Sparkplug Host Application.

``decoder.py`` turns payloads into readings and keeps each edge node's state; ``host.py``
does the host's duties (its STATE, rebirth requests). The schema is ``monitor/schemas``.
"""
