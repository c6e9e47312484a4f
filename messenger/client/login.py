"""Logging in: credentials, sign-up, and the session token.

The first login asks for (or reads) a user name and password, signs up
first when asked to, and asks for a session token right after; every later
login on a new connection uses ``RESUME`` with that token, so the password
is never kept.  These methods are part of
:class:`~messenger.client.session.ClientSession`; they live here because
they change for one reason: how a client proves who it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twisted.internet import defer
from twisted.python.failure import Failure

from messenger import wire
from messenger.client import render
from messenger.client.protocol import Reply, ServerConnection

if TYPE_CHECKING:
    from collections.abc import Sequence

    from messenger.client.session import Terminal
    from messenger.client.state import ClientState

EXIT_OK = 0


@dataclass
class LoginSettings:
    """Where the credentials come from.

    ``password`` is called each time a password is needed (it reads the
    file or the environment afresh, so the session never holds it); None
    means ask the person.
    """

    username: str | None = None
    password: Callable[[], str] | None = None
    signup: bool = False
    display_name: str | None = None


class InputEnded(Exception):
    """The input ended while a question was waiting for its answer."""


class LoginFlow:
    """The login part of :class:`~messenger.client.session.ClientSession`."""

    if TYPE_CHECKING:
        # What the login flow uses of the session it is part of.
        connection: ServerConnection | None
        done: bool
        ever_ready: bool
        login: LoginSettings
        state: ClientState
        style: render.Style
        terminal: Terminal
        token: str | None
        _logging_in: bool
        _signup_failed: bool

        def show(self, text: str) -> None: ...
        def notice(self, text: str) -> None: ...
        def error(self, text: str) -> None: ...
        def fatal(self, text: str) -> None: ...
        def _ask(self, question: str, secret: bool = False) -> defer.Deferred[str]: ...
        def _finish(self, status: int) -> None: ...
        def _logged_in(
            self, connection: ServerConnection, fields: Sequence[str], resumed: bool
        ) -> None: ...

    def _log_in(self, connection: ServerConnection) -> None:
        if self.token is not None and self.state.username is not None:
            connection.request(
                wire.Resume(self.state.username, self.token),
                lambda reply: self._resumed(connection, reply),
            )
            return
        if self._logging_in:
            return
        self._logging_in = True
        d = defer.ensureDeferred(self._ask_credentials())
        d.addCallback(self._send_credentials)
        d.addErrback(self._credentials_failed)

    async def _ask_credentials(self) -> tuple:
        """(username, password, display name or None for plain login)."""
        username = self.login.username
        # Signing up is for the first login only; later ones just log in.
        signup = self.login.signup and not self.ever_ready
        if username is None:
            while True:
                answer = (await self._ask("Username (or /signup): ")).strip()
                if answer.lower() == "/signup":
                    signup = True
                    answer = (await self._ask("New username: ")).strip()
                try:
                    username = wire.canonical_username(answer)
                    break
                except ValueError:
                    self.error("a user name is 1-32 letters, digits, '_', '.' or '-'")
        display_name = None
        if signup:
            display_name = self.login.display_name
            if display_name is None and self.login.password is None:
                answer = (await self._ask(f"Display name [{username}]: ")).strip()
                display_name = answer or None
            display_name = display_name or username
        if self.login.password is not None:
            password = self.login.password()
        else:
            password = await self._ask("Password: ", secret=True)
            if signup:
                again = await self._ask("Password again: ", secret=True)
                if again != password:
                    self.error("the passwords differ")
                    return await self._ask_credentials()
        return username, password, display_name

    def _send_credentials(self, credentials: tuple) -> None:
        self._logging_in = False
        username, password, display_name = credentials
        connection = self.connection
        if connection is None or self.done:
            return  # asked again on the next connection
        try:
            if display_name is not None:
                usr = wire.CreateAccount(
                    username, wire.check_password(password), wire.clean_display_name(display_name)
                )
                connection.request(usr, lambda reply: self._signed_up(username, reply))
            # Pipelined right behind USR, so the password is dropped now: if
            # the sign-up failed, this LOGIN fails too and says nothing new.
            login = wire.Login(username, wire.check_password(password))
        except ValueError as e:
            self._login_refused(f"cannot log in: {e}", retry=True)
            return
        connection.request(login, lambda reply: self._logged_in_reply(connection, reply))

    def _credentials_failed(self, reason: Failure) -> None:
        self._logging_in = False
        if reason.check(InputEnded):
            if self.terminal.interactive:
                self._finish(EXIT_OK)
            else:
                self.fatal(
                    "the input ended before a user name and password were given "
                    "(use --user with --password-file or MESSENGER_PASSWORD)"
                )
        elif reason.check(OSError):
            self.fatal(f"cannot read the password: {reason.getErrorMessage()}")
        elif not self.done:
            self.fatal(f"cannot log in: {reason.getErrorMessage()}")

    def _signed_up(self, username: str, reply: Reply) -> None:
        if reply.ok:
            self.notice(f"account {username} created")
            return
        assert isinstance(reply.final, wire.Err)
        if reply.error.code == 409 and self.login.signup:
            # --signup for scripts is idempotent: the account exists, so the
            # LOGIN right behind decides whether the password is right.
            self.notice(f"account {username} exists; logging in")
            return
        self.show(
            render.server_error(reply.error.code, reply.error.reason, self.style, "sign-up failed")
        )
        self._signup_failed = True

    def _logged_in_reply(self, connection: ServerConnection, reply: Reply) -> None:
        if reply.ok:
            self._logged_in(connection, reply.fields, resumed=False)
            return
        err = reply.final
        assert isinstance(err, wire.Err)
        signup_failed, self._signup_failed = self._signup_failed, False
        if err.code == 401:
            text = None if signup_failed else "login failed: wrong user name or password"
            self._login_refused(text, retry=True)
        elif err.code == 429:
            text = f"login refused: {render.clean_line(err.reason)}; wait a minute and try again"
            if self.ever_ready:
                self.error(text)
                connection.close()  # try again after the backoff
            else:
                self.fatal(text)
        else:
            self.fatal(f"login failed: {render.clean_line(err.reason)} ({err.code})")

    def _login_refused(self, text: str | None, retry: bool) -> None:
        """Bad credentials: ask again if a person is typing, else give up."""
        asked = self.login.password is None
        if retry and asked and self.connection is not None:
            if text:
                self.error(text)
            self._log_in(self.connection)
        else:
            self.fatal(text or "sign-up failed")

    def _resumed(self, connection: ServerConnection, reply: Reply) -> None:
        if reply.ok:
            self._logged_in(connection, reply.fields, resumed=True)
            return
        err = reply.final
        assert isinstance(err, wire.Err)
        if err.code == 401:
            # Expired, or revoked by a password change elsewhere.
            self.token = None
            self.notice("the session expired; log in again")
            self._log_in(connection)
        elif err.code == 429:
            self.error(f"login refused: {render.clean_line(err.reason)}")
            connection.close()
        else:
            self.fatal(f"login failed: {render.clean_line(err.reason)} ({err.code})")

    def _got_token(self, reply: Reply) -> None:
        if reply.ok and reply.fields:
            try:
                self.token = wire.check_token(reply.fields[0])
            except ValueError:
                self.error(
                    "the server sent an unusable session token; "
                    "a reconnect will ask for the password"
                )
