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
Import from here: ``from messenger import wire``; the protocol's limits and
the checks of single values are in :mod:`messenger.wire.values`.
"""

from messenger.wire.commands import (
    CLIENT_COMMANDS as CLIENT_COMMANDS,
    HELP_TEXT as HELP_TEXT,
    Acknowledge as Acknowledge,
    Broadcast as Broadcast,
    Command as Command,
    CreateAccount as CreateAccount,
    Help as Help,
    History as History,
    Join as Join,
    Login as Login,
    LookUpUser as LookUpUser,
    MyRooms as MyRooms,
    NewToken as NewToken,
    Part as Part,
    Ping as Ping,
    Quit as Quit,
    Resume as Resume,
    RoomMembers as RoomMembers,
    SendMessage as SendMessage,
    SendMessageOnce as SendMessageOnce,
    SetDisplayName as SetDisplayName,
    SetPassword as SetPassword,
    WhoIsOnline as WhoIsOnline,
    parse_command as parse_command,
    parse_command_declared as parse_command_declared,
)
from messenger.wire.lines import (
    InvalidUtf8 as InvalidUtf8,
    InvalidValue as InvalidValue,
    LocalProtocolError as LocalProtocolError,
    MalformedLine as MalformedLine,
    RemoteProtocolError as RemoteProtocolError,
)
from messenger.wire.server import (
    BYE_GOODBYE as BYE_GOODBYE,
    BYE_IDLE as BYE_IDLE,
    BYE_LINE_TOO_LONG as BYE_LINE_TOO_LONG,
    BYE_SERVER_FULL as BYE_SERVER_FULL,
    BYE_SHUTDOWN as BYE_SHUTDOWN,
    BYE_STARTING as BYE_STARTING,
    BYE_TAKEOVER as BYE_TAKEOVER,
    BYE_TOO_MANY_FAILURES as BYE_TOO_MANY_FAILURES,
    BYE_TOO_SLOW as BYE_TOO_SLOW,
    ERR_LINE_TOO_LONG as ERR_LINE_TOO_LONG,
    SERVER_MESSAGES as SERVER_MESSAGES,
    Bye as Bye,
    Delivered as Delivered,
    DirectMessage as DirectMessage,
    Err as Err,
    Hello as Hello,
    HistoryLine as HistoryLine,
    MemberJoined as MemberJoined,
    MemberParted as MemberParted,
    Ok as Ok,
    RoomMessage as RoomMessage,
    ServerMessage as ServerMessage,
    UserOffline as UserOffline,
    UserOnline as UserOnline,
    err as err,
    log_in_first as log_in_first,
    ok as ok,
    parse_server_line as parse_server_line,
    parse_server_line_declared as parse_server_line_declared,
    rate_limited as rate_limited,
    server_error as server_error,
    storage_unavailable as storage_unavailable,
    too_many_failed_logins as too_many_failed_logins,
)
from messenger.wire.values import (
    AFTER as AFTER,
    BEFORE as BEFORE,
    GENERAL_ROOM as GENERAL_ROOM,
    HISTORY_LIMIT_MAX as HISTORY_LIMIT_MAX,
    PROTOCOL_VERSION as PROTOCOL_VERSION,
    WHITE_SPACE as WHITE_SPACE,
    canonical_room as canonical_room,
    canonical_target as canonical_target,
    canonical_username as canonical_username,
    check_body as check_body,
    check_password as check_password,
    check_token as check_token,
    clean_display_name as clean_display_name,
    escape_body as escape_body,
    is_room as is_room,
    parse_msgid as parse_msgid,
    unescape_body as unescape_body,
)
