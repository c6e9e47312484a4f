"""What the server sends, shown: events, and the replies to typed commands.

Events (``R``, ``C``, ``DLV``, presence) go through one dispatch table.
Everything shown waits in arrival order until the sender's display name is
known (one ``WHOIS`` per unknown name), so a line never appears with a bare
user name and then again with a display name.  These methods are part of
:class:`~messenger.client.session.ClientSession`; they live here because
they change for one reason: how server lines are rendered.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from messenger import wire
from messenger.client import render
from messenger.client.protocol import Reply, ServerConnection

if TYPE_CHECKING:
    from messenger.client.commands import SendText
    from messenger.client.state import ClientState, DisplayQueue


class ServerLines:
    """The rendering part of :class:`~messenger.client.session.ClientSession`."""

    if TYPE_CHECKING:
        # What the rendering uses of the session it is part of.
        connection: ServerConnection | None
        done: bool
        one_shot: SendText | None
        state: ClientState
        style: render.Style
        token: str | None
        _display: DisplayQueue[Callable[[], None]]
        _lookups: set[str]
        _queued_ids: set[int]

        def now(self) -> datetime: ...
        def show(self, text: str) -> None: ...
        def notice(self, text: str) -> None: ...
        def error(self, text: str) -> None: ...
        def _maybe_finish(self) -> None: ...
        def _got_token(self, reply: Reply) -> None: ...

    def event(self, connection: ServerConnection, event: wire.ServerMessage) -> None:
        if self.done or connection is not self.connection:
            return
        if self.one_shot is not None:
            # A script that sends one message must not take the person's
            # messages: not shown, so not acknowledged; the server keeps them.
            return
        handler = _EVENT_HANDLERS.get(type(event))
        if handler is not None:  # BYE is handled when the connection closes, right after
            handler(self, event)

    def _delivered(self, event: wire.Delivered) -> None:
        when = render.parse_timestamp(event.timestamp)
        self._queue_display(
            lambda: self.show(render.delivered(event.msgid, event.recipient, when, self.style))
        )

    def _online(self, event: wire.UserOnline) -> None:
        text = render.online(event.username, self.now(), self.style)
        self._queue_display(lambda: self.show(text))

    def _offline(self, event: wire.UserOffline) -> None:
        text = render.offline(event.username, self.now(), self.style)
        self._queue_display(lambda: self.show(text))

    def _joined(self, event: wire.MemberJoined) -> None:
        if event.username == self.state.username:
            self.state.join(event.room)
        text = render.joined(event.room, event.username, self.now(), self.style)
        self._queue_display(lambda: self.show(text))

    def _parted(self, event: wire.MemberParted) -> None:
        if event.username == self.state.username:
            self.state.part(event.room)
        text = render.parted(event.room, event.username, self.now(), self.style)
        self._queue_display(lambda: self.show(text))

    def _direct_message(self, message: wire.DirectMessage) -> None:
        connection = self.connection
        if message.msgid in self.state.seen:
            # A redelivery: the ACK was lost or is on its way.  Acknowledge
            # again (unless it is still waiting to be shown), never show twice.
            if message.msgid not in self._queued_ids and connection is not None:
                connection.send_ack(message.msgid)
            return
        self.state.seen.add(message.msgid)
        self._queued_ids.add(message.msgid)
        when = self.now()

        def show() -> None:
            self._show_message(message.sender, message.sender, message.text, when)
            self._queued_ids.discard(message.msgid)
            # Acknowledged only now that it has been shown.
            if self.connection is not None:
                self.connection.send_ack(message.msgid)

        self._queue_display(show, waits_for=message.sender)

    def _room_message(self, message: wire.RoomMessage) -> None:
        self.state.note_room_message(message.room, message.msgid)
        if not self.state.seen.add(message.msgid):
            return
        self._queue_message(message.room, message.sender, message.text, self.now())

    def _queue_message(self, conversation: str, sender: str, text: str, when: datetime) -> None:
        self._queue_display(
            lambda: self._show_message(conversation, sender, text, when), waits_for=sender
        )

    def _show_message(self, conversation: str, sender: str, text: str, when: datetime) -> None:
        focused = self.state.count_unread(conversation)
        self.show(
            render.message(
                self.style,
                when,
                conversation,
                self._sender(sender),
                text,
                focused=focused,
                now=self.now(),
            )
        )

    def _sender(self, username: str) -> str:
        return render.sender_label(username, self.state.name_of(username))

    def _queue_display(self, show: Callable[[], None], waits_for: str | None = None) -> None:
        """Show ``show`` in arrival order, once ``waits_for``'s name is known."""
        if waits_for is not None and not self.state.knows_name(waits_for):
            self._look_up(waits_for)
        else:
            waits_for = None
        self._display.add(show, waits_for)
        self._release_display()

    def _release_display(self) -> None:
        for show in self._display.release(self.state.knows_name):
            show()
        self._maybe_finish()

    def _look_up(self, username: str) -> None:
        """Ask for a display name once; until then, messages from them wait."""
        if username in self._lookups:
            return
        connection = self.connection
        if connection is None:
            self.state.learn_name(username, None)
            return
        self._lookups.add(username)

        def got(reply: Reply) -> None:
            self._lookups.discard(username)
            if reply.ok and len(reply.fields) >= 4:
                self.state.learn_name(username, reply.fields[3])
            else:
                self.state.learn_name(username, None)
            self._release_display()

        connection.request(wire.LookUpUser(username), got)

    def _failed(self, reply: Reply, what: str) -> bool:
        if reply.ok:
            return False
        self.show(render.server_error(reply.error.code, reply.error.reason, self.style, what))
        return True

    def _rooms_listed(self, reply: Reply) -> None:
        if self._failed(reply, "/rooms"):
            return
        rooms = list(reply.fields)
        self.state.set_rooms(rooms)
        self.show(render.word_list("Your rooms:", rooms, self.style))

    def _members_listed(self, reply: Reply) -> None:
        if self._failed(reply, "/members"):
            return
        room, *members = reply.fields or ("?",)
        self.show(render.word_list(f"Members of {render.clean_line(room)}:", members, self.style))

    def _who_listed(self, reply: Reply) -> None:
        if self._failed(reply, "/who"):
            return
        self.show(render.word_list("Online:", reply.fields, self.style, empty="nobody"))

    def _whois_shown(self, reply: Reply) -> None:
        if self._failed(reply, "/whois"):
            return
        fields = reply.fields
        if len(fields) < 4:
            self.error(f"unexpected WHOIS reply: {fields}")
            return
        username, status, last_seen, display_name = fields[:4]
        self.state.learn_name(username, display_name)
        self.show(render.whois(username, status, last_seen, display_name, self.style, self.now()))

    def _history_shown(self, target: str, reply: Reply) -> None:
        if self._failed(reply, f"/history {target}"):
            return
        label = render.conversation_label(target)
        if not reply.history:
            self.notice(f"no messages in {label}")
            return
        self._queue_display(lambda: self.notice(f"history of {label}:"))
        for line in reply.history:
            self.state.seen.add(line.msgid)
            if wire.is_room(target):
                self.state.note_room_message(target, line.msgid)
            when = render.parse_timestamp(line.timestamp) or self.now()
            # Shown as asked for, without touching the unread counts.
            self._queue_display(
                partial(self._show_history_line, target, line, when), waits_for=line.sender
            )
        self._queue_display(lambda: self.notice(f"end of history ({len(reply.history)})"))

    def _show_history_line(self, target: str, line: wire.HistoryLine, when: datetime) -> None:
        self.show(
            render.message(
                self.style, when, target, self._sender(line.sender), line.text, now=self.now()
            )
        )

    def _renamed(self, reply: Reply) -> None:
        if self._failed(reply, "/name"):
            return
        name = reply.fields[0] if reply.fields else ""
        self.state.display_name = name
        if self.state.username:
            self.state.learn_name(self.state.username, name)
        self.notice(f"your display name is now {render.clean_line(name)}")

    def _password_changed(self, reply: Reply) -> None:
        if self._failed(reply, "/passwd"):
            return
        self.notice("password changed")
        # PASSWD revokes every token, ours included: ask for a fresh one.
        self.token = None
        if self.connection is not None and self.one_shot is None:
            self.connection.request(wire.NewToken(), self._got_token)


#: What each event does; events not listed (BYE) are not shown.
_EVENT_HANDLERS: dict[type[wire.ServerMessage], Callable[[Any, Any], None]] = {
    wire.DirectMessage: ServerLines._direct_message,
    wire.RoomMessage: ServerLines._room_message,
    wire.Delivered: ServerLines._delivered,
    wire.UserOnline: ServerLines._online,
    wire.UserOffline: ServerLines._offline,
    wire.MemberJoined: ServerLines._joined,
    wire.MemberParted: ServerLines._parted,
}
