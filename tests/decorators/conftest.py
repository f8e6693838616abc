from tests.hooks.conftest import Connections, conns

__all__ = ["Connections", "conns"]
