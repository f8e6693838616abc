"""The cyberark-ops benchmark suite; run it with ``bash benchmarks/run`` (see ``__main__``)."""

import os

# Airflow reads its log level when it is imported: console lines for every fetch and operator run
# would measure the terminal, not the code. Set before any figure imports Airflow.
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
