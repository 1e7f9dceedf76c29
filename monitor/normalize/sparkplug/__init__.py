"""Eclipse Sparkplug B 3.0 (SPEC 3.4): the monitor as a Sparkplug Host Application.

``sparkplug_b.proto`` is the official Tahu schema (EPL-2.0, unchanged, as published in the
pysparkplug 0.6.1 sdist on PyPI); ``sparkplug_b_pb2.py`` and ``.pyi`` are generated from it
by ``make proto`` and committed, so neither the image nor a pip install needs protoc.
"""
