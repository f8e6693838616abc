"""The cyberark-ops benchmark suite; run it with ``bash benchmarks/run`` (see ``__main__``)."""
