"""The Messenger benchmark harness: ``python -m bench`` (see README.md).

Load comes from a separate process (:mod:`bench.loadgen`) driving a real
``twistd -n messenger`` on 127.0.0.1, and the same traffic is run against a
bare relay (:mod:`bench.relay`) as a baseline.
"""
