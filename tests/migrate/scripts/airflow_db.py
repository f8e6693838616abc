"""Run inside an Airflow environment: ``populate`` (JSON on stdin) or ``dump`` (JSON on stdout) the
metadata DB's connections and variables, through Airflow's ORM (Fernet-decrypted)."""

from __future__ import annotations

import json
import sys

from airflow.models.connection import Connection
from airflow.models.variable import Variable
from airflow.utils.session import create_session
from sqlalchemy import select


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


def dump() -> None:
    with create_session() as session:
        conns = {
            c.conn_id: {
                "conn_type": c.conn_type,
                "host": c.host,
                "login": c.login,
                "password": c.password,
                "schema": c.schema,
                "port": c.port,
                "extra": c.extra,
            }
            for c in session.scalars(select(Connection))
        }
        variables = {v.key: v.val for v in session.scalars(select(Variable))}
    print(json.dumps({"connections": conns, "variables": variables}))


{"populate": populate, "dump": dump}[sys.argv[1]]()
