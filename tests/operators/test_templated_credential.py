"""A templated ``credential_ref`` that renders to something other than a string says which type it got."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator

from cyberark_ops import CyberArkHook, vaulted
from cyberark_ops.client import ConfigurationError
from tests.hooks.conftest import Connections


@pytest.mark.parametrize("rendered", [123, None, ["prod/db/password"], 1.5], ids=repr)
def test_a_credential_that_is_not_a_string_names_its_type_and_the_field(vault: Connections, rendered: Any) -> None:
    op = vaulted(SQLExecuteQueryOperator)(
        task_id="typed",
        vault_conn_id="cyberark_ccp",
        credential_ref=rendered,
        conn_type="postgres",
        conn_id="vop_typed",
        sql="select 1",
    )
    with pytest.raises(ConfigurationError) as raised:
        op.execute({})
    message = str(raised.value)
    assert raised.value.field == "credential_ref"
    assert f"got {type(rendered).__name__}" in message
    assert "is not for" not in message
    if rendered is not None:
        assert repr(rendered) not in message, "the rendered value may be a secret: never echoed"


@pytest.mark.parametrize("rendered", [123, None, ["x"]], ids=repr)
def test_the_hook_names_the_type_of_a_reference_that_is_not_a_string(vault: Connections, rendered: Any) -> None:
    with CyberArkHook("cyberark_ccp") as hook, pytest.raises(ConfigurationError) as raised:
        hook.get_secret(rendered)
    assert raised.value.field == "reference"
    assert f"got {type(rendered).__name__}" in str(raised.value)
