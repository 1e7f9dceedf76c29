"""Wire schemas that the monitor and its tools share (the shared ground).

``sparkplug_b.proto`` is the official Eclipse Tahu Sparkplug B schema (EPL-2.0, unchanged, as
published in the pysparkplug 0.6.1 sdist on PyPI); ``sparkplug_b_pb2.py`` and ``.pyi`` are
generated from it by ``make proto`` and committed, so neither the image nor a pip install
needs protoc. The decoder (normalize/sparkplug/) and the simulator's edge node use them.
"""
