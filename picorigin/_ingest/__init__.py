"""Turning sources into signals: analysis of one source (``analyse``) and the executors that run
it for many (this process, or a local process pool)."""
