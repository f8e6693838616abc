"""Run inside an Airflow environment: ``populate`` the metadata DB's connections and variables (JSON on
stdin) through Airflow's ORM, which encrypts them and parses URIs as Airflow does (the tests read
them back from the file themselves: ``tests/migrate/airflow_home.dump``)."""

from __future__ import annotations

import json
import sys

from airflow.models.connection import Connection
from airflow.models.variable import Variable
from airflow.utils.session import create_session


def populate() -> None:
    spec = json.load(sys.stdin)
    with create_session() as session:
        for conn_id, fields in spec["connections"].items():
            if "uri" in fields:
                conn = Connection(conn_id=conn_id, uri=fields["uri"])
            else:
                conn = Connection(conn_id=conn_id, **fields)
            session.add(conn)
        for key, value in spec["variables"].items():
            session.add(Variable(key=key, val=value))


{"populate": populate}[sys.argv[1]]()
