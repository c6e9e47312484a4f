"""The server's settings, with docs/protocol.md's defaults."""

from __future__ import annotations

from dataclasses import dataclass

from messenger.passwords import DEFAULT_MEMORY_COST, DEFAULT_TIME_COST


@dataclass(frozen=True)
class ServerConfig:
    name: str = "messenger"
    max_clients: int = 1000
    idle_timeout: float = 300.0
    retry_initial: float = 2.0
    retry_max: float = 60.0
    window: int = 100
    rate: float = 20.0
    burst: int = 100
    min_password_length: int = 8
    max_line: int = 8192
    max_pending: int = 10000
    max_outbuf: int = 1024 * 1024
    #: ON and OFF travel only through rooms of at most this many members
    #: (0: no presence at all); see docs/protocol.md, "Presence".
    presence_room_limit: int = 200
    token_ttl: float = 30 * 24 * 60 * 60.0
    argon2_time_cost: int = DEFAULT_TIME_COST
    argon2_memory_cost: int = DEFAULT_MEMORY_COST
    #: Failed logins from one address within ``login_failure_window``
    #: seconds before further attempts are refused (docs/protocol.md: 20 in 60 s).
    login_failure_limit: int = 20
    login_failure_window: float = 60.0
    #: Password checks run at once for one source address; more wait.
    login_checks_per_address: int = 4
    #: Failed logins on one connection before it is closed.
    connection_failure_limit: int = 5
