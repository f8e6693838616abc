"""The guarantee suite: no credential leaves a trace in Airflow, and vault trouble never turns into a
mystery failure. Every test records what it measured (``report.record``); ``docs/guarantees.md`` is
rendered from those records at the end of the session."""
