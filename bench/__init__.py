"""Benchmarks of the scoring stage against the alternatives users would pick.

``python -m bench`` (``make bench``) measures end-to-end scoring throughput
and memory, inference alone (onnxruntime against Keras and ``tf.function``),
cold start, the Lambda package size and training wall time, and writes
``bench/results.json`` and ``BENCHMARKS.md``. Every figure is the min,
median and max of repeated runs, and every comparison is a ratio taken
within one run, because the machines it runs on are shared and noisy.
"""
