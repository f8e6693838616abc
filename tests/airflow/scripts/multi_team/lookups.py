"""Run in a process configured as an Airflow 3.2+ API server with ``[core] multi_team`` on: asks
the Execution API's own route functions (what a task's ``GET /execution/connections/{id}`` runs
once the route has resolved the task's team) for each (team, id), and prints what each answered,
as SHA-256 digests (never a value)."""

from __future__ import annotations

import hashlib
import json
import sys

from airflow.api_fastapi.execution_api.routes import connections, variables
from fastapi import HTTPException


def _digest(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


def main() -> None:
    asks = json.loads(sys.argv[1])
    answers = []
    for team, kind, item in asks:
        try:
            if kind == "connections":
                response = connections.get_connection(item, team)
                answer = _digest(response.password)
            else:
                answer = _digest(str(variables.get_variable(item, team).val))
        except HTTPException as exc:
            answer = f"HTTP {exc.status_code}"
        answers.append([team, kind, item, answer])
    print("ANSWERS " + json.dumps(answers))


if __name__ == "__main__":
    main()
