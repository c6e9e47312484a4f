"""The Messenger wire protocol, version 1, without any I/O.

This package turns one decoded line into a typed, frozen message (or a
:class:`RemoteProtocolError` saying what the peer got wrong) and turns
messages back into lines.  It imports nothing from Twisted, so the server,
the client and the tests all share one parser.  Its parts:

- :mod:`~messenger.wire.values`: limits, names and the check of each value;
- :mod:`~messenger.wire.lines`: the errors, and the one generic path from a
  line to a message and back, driven by each class's declared fields;
- :mod:`~messenger.wire.commands`: what a client may send;
- :mod:`~messenger.wire.server`: what a server may send, and the fixed
  replies.

The shape follows Synapse's ``replication/tcp/commands.py`` (one class per
verb with ``NAME``, a command map per direction) and h11's error split.
Import from here: ``from messenger import wire``.
"""

from messenger.wire.commands import (
    CLIENT_COMMANDS as CLIENT_COMMANDS,
)
from messenger.wire.commands import (
    HELP_TEXT as HELP_TEXT,
)
from messenger.wire.commands import (
    Ack as Ack,
)
from messenger.wire.commands import (
    Bcst as Bcst,
)
from messenger.wire.commands import (
    Command as Command,
)
from messenger.wire.commands import (
    Help as Help,
)
from messenger.wire.commands import (
    History as History,
)
from messenger.wire.commands import (
    Join as Join,
)
from messenger.wire.commands import (
    Login as Login,
)
from messenger.wire.commands import (
    Members as Members,
)
from messenger.wire.commands import (
    Msg as Msg,
)
from messenger.wire.commands import (
    Name as Name,
)
from messenger.wire.commands import (
    Part as Part,
)
from messenger.wire.commands import (
    Passwd as Passwd,
)
from messenger.wire.commands import (
    Ping as Ping,
)
from messenger.wire.commands import (
    Quit as Quit,
)
from messenger.wire.commands import (
    Resume as Resume,
)
from messenger.wire.commands import (
    Rooms as Rooms,
)
from messenger.wire.commands import (
    Send as Send,
)
from messenger.wire.commands import (
    Token as Token,
)
from messenger.wire.commands import (
    Usr as Usr,
)
from messenger.wire.commands import (
    Who as Who,
)
from messenger.wire.commands import (
    Whois as Whois,
)
from messenger.wire.commands import (
    parse_command as parse_command,
)
from messenger.wire.commands import (
    parse_command_declared as parse_command_declared,
)
from messenger.wire.lines import (
    InvalidUtf8 as InvalidUtf8,
)
from messenger.wire.lines import (
    InvalidValue as InvalidValue,
)
from messenger.wire.lines import (
    Line as Line,
)
from messenger.wire.lines import (
    LocalProtocolError as LocalProtocolError,
)
from messenger.wire.lines import (
    MalformedLine as MalformedLine,
)
from messenger.wire.lines import (
    RemoteProtocolError as RemoteProtocolError,
)
from messenger.wire.server import (
    BYE_GOODBYE as BYE_GOODBYE,
)
from messenger.wire.server import (
    BYE_IDLE as BYE_IDLE,
)
from messenger.wire.server import (
    BYE_LINE_TOO_LONG as BYE_LINE_TOO_LONG,
)
from messenger.wire.server import (
    BYE_SERVER_FULL as BYE_SERVER_FULL,
)
from messenger.wire.server import (
    BYE_SHUTDOWN as BYE_SHUTDOWN,
)
from messenger.wire.server import (
    BYE_STARTING as BYE_STARTING,
)
from messenger.wire.server import (
    BYE_TAKEOVER as BYE_TAKEOVER,
)
from messenger.wire.server import (
    BYE_TOO_MANY_FAILURES as BYE_TOO_MANY_FAILURES,
)
from messenger.wire.server import (
    BYE_TOO_SLOW as BYE_TOO_SLOW,
)
from messenger.wire.server import (
    ERR_LINE_TOO_LONG as ERR_LINE_TOO_LONG,
)
from messenger.wire.server import (
    SERVER_MESSAGES as SERVER_MESSAGES,
)
from messenger.wire.server import (
    Bye as Bye,
)
from messenger.wire.server import (
    C as C,
)
from messenger.wire.server import (
    Dlv as Dlv,
)
from messenger.wire.server import (
    Err as Err,
)
from messenger.wire.server import (
    H as H,
)
from messenger.wire.server import (
    Hello as Hello,
)
from messenger.wire.server import (
    Joined as Joined,
)
from messenger.wire.server import (
    Off as Off,
)
from messenger.wire.server import (
    Ok as Ok,
)
from messenger.wire.server import (
    On as On,
)
from messenger.wire.server import (
    Parted as Parted,
)
from messenger.wire.server import (
    R as R,
)
from messenger.wire.server import (
    ServerMessage as ServerMessage,
)
from messenger.wire.server import (
    err as err,
)
from messenger.wire.server import (
    log_in_first as log_in_first,
)
from messenger.wire.server import (
    ok as ok,
)
from messenger.wire.server import (
    parse_server_line as parse_server_line,
)
from messenger.wire.server import (
    parse_server_line_declared as parse_server_line_declared,
)
from messenger.wire.server import (
    rate_limited as rate_limited,
)
from messenger.wire.server import (
    server_error as server_error,
)
from messenger.wire.server import (
    too_many_failed_logins as too_many_failed_logins,
)
from messenger.wire.values import (
    AFTER as AFTER,
)
from messenger.wire.values import (
    BEFORE as BEFORE,
)
from messenger.wire.values import (
    CLIENT_ID_MAX as CLIENT_ID_MAX,
)
from messenger.wire.values import (
    DELIMITER as DELIMITER,
)
from messenger.wire.values import (
    DISPLAY_NAME_MAX as DISPLAY_NAME_MAX,
)
from messenger.wire.values import (
    GENERAL_ROOM as GENERAL_ROOM,
)
from messenger.wire.values import (
    HISTORY_LIMIT_MAX as HISTORY_LIMIT_MAX,
)
from messenger.wire.values import (
    PASSWORD_MAX as PASSWORD_MAX,
)
from messenger.wire.values import (
    PROTOCOL_VERSION as PROTOCOL_VERSION,
)
from messenger.wire.values import (
    ROOM_NAME_MAX as ROOM_NAME_MAX,
)
from messenger.wire.values import (
    TOKEN_MAX as TOKEN_MAX,
)
from messenger.wire.values import (
    TOKEN_MIN as TOKEN_MIN,
)
from messenger.wire.values import (
    USERNAME_MAX as USERNAME_MAX,
)
from messenger.wire.values import (
    WHITE_SPACE as WHITE_SPACE,
)
from messenger.wire.values import (
    as_is as as_is,
)
from messenger.wire.values import (
    canonical_room as canonical_room,
)
from messenger.wire.values import (
    canonical_target as canonical_target,
)
from messenger.wire.values import (
    canonical_username as canonical_username,
)
from messenger.wire.values import (
    check_body as check_body,
)
from messenger.wire.values import (
    check_client_id as check_client_id,
)
from messenger.wire.values import (
    check_direction as check_direction,
)
from messenger.wire.values import (
    check_password as check_password,
)
from messenger.wire.values import (
    check_token as check_token,
)
from messenger.wire.values import (
    clean_display_name as clean_display_name,
)
from messenger.wire.values import (
    escape_body as escape_body,
)
from messenger.wire.values import (
    is_room as is_room,
)
from messenger.wire.values import (
    parse_code as parse_code,
)
from messenger.wire.values import (
    parse_history_cursor as parse_history_cursor,
)
from messenger.wire.values import (
    parse_history_limit as parse_history_limit,
)
from messenger.wire.values import (
    parse_msgid as parse_msgid,
)
from messenger.wire.values import (
    parse_version as parse_version,
)
from messenger.wire.values import (
    unescape_body as unescape_body,
)
