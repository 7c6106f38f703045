"""picorigin's benchmarks (``make bench``): copy detection against anchors, and speed.

Not part of the test suite. See ``bench/README.md``.
"""
