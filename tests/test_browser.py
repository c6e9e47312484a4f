"""The web client end to end: a real ``twistd messenger --web`` and Debian's
headless Chromium driven with Playwright.

Each test starts its own server on free 127.0.0.1 ports with a temporary
database.  Screenshots of the main screens go to the folder named by
``MESSENGER_SCREENSHOTS`` (a temporary folder otherwise, printed on
failure).  Without Chromium these tests skip, unless
``MESSENGER_REQUIRE_SERVICES=1`` (then they fail).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # skipped in setUp
    expect = None  # type: ignore[assignment]

from tests.support.server import HOST, LineClient, ServerProcess, free_port, is_reply

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "password1"
WAIT_MS = 15_000
if expect is not None:
    # expect(...) waits 5 s unless told: too short on a loaded machine.
    expect.set_options(timeout=WAIT_MS)
SCREENSHOTS = os.environ.get("MESSENGER_SCREENSHOTS") or tempfile.mkdtemp(
    prefix="messenger-screens-"
)
DESKTOP: Any = {"width": 1280, "height": 780}


class BrowserTestCase(unittest.TestCase):
    """A server with a web endpoint, and a Chromium to open it with."""

    server_args: tuple[str, ...] = ()

    def setUp(self) -> None:
        if not os.path.exists(CHROMIUM):
            message = f"{CHROMIUM} is not installed"
            if os.environ.get("MESSENGER_REQUIRE_SERVICES") == "1":
                self.fail(message)
            self.skipTest(message)
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            if os.environ.get("MESSENGER_REQUIRE_SERVICES") == "1":
                raise
            self.skipTest("playwright is not installed")
        self.web_port = free_port()
        self.server = ServerProcess(
            self, "--web", f"tcp:{self.web_port}:interface={HOST}", *self.server_args
        )
        self.url = f"http://{HOST}:{self.web_port}/"
        self.playwright = sync_playwright().start()
        self.addCleanup(self.playwright.stop)
        self.browser = self.playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        self.addCleanup(self.browser.close)
        self.page_errors: list[str] = []

    # -- pages -------------------------------------------------------------

    def new_context(self, viewport=DESKTOP, **options):
        """A browser profile of its own: its own storage, worker and session
        (``options``: Playwright's, such as ``timezone_id``)."""
        context = self.browser.new_context(viewport=viewport, **options)
        context.set_default_timeout(WAIT_MS)
        self.addCleanup(context.close)
        return context

    def open(self, context=None, viewport=DESKTOP):
        page = (context or self.new_context(viewport)).new_page()
        page.set_viewport_size(viewport)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.goto(self.url)
        return page

    def sign_up(self, page, username: str, display: str, remember: bool = False) -> None:
        page.click("#tab-signup")
        page.fill("#auth-username", username)
        page.fill("#auth-display", display)
        page.fill("#auth-password", PASSWORD)
        if remember:
            page.check("#auth-remember")
        page.click("#auth-submit")
        self.wait_signed_in(page)

    def sign_in(self, page, username: str, remember: bool = False) -> None:
        page.fill("#auth-username", username)
        page.fill("#auth-password", PASSWORD)
        if remember:
            page.check("#auth-remember")
        page.click("#auth-submit")
        self.wait_signed_in(page)

    def wait_signed_in(self, page) -> None:
        page.wait_for_selector("#app:not([hidden])")
        page.wait_for_selector("#connection[data-status=online]", state="attached")
        page.wait_for_selector("#sidebar a[aria-current=page]", state="attached")

    def wait_true(self, page, expression: str) -> None:
        """Wait until a JavaScript expression is true.

        Not ``page.wait_for_function``: its polling evaluates the expression
        inside the page, which the page's CSP (no ``unsafe-eval``) forbids.
        ``page.evaluate`` goes through the DevTools protocol, which CSP does
        not govern."""
        for _ in range(WAIT_MS // 50):
            if page.evaluate(expression):
                return
            page.wait_for_timeout(50)
        self.fail(f"still false after {WAIT_MS} ms: {expression}")

    def say(self, page, text: str) -> None:
        page.fill("#composer-text", text)
        page.press("#composer-text", "Enter")

    def open_conversation(self, page, target: str) -> None:
        page.click(f"a[data-target='{target}']")
        page.wait_for_selector(f"a[data-target='{target}'][aria-current=page]", state="attached")

    def start_direct(self, page, username: str) -> None:
        page.click("#add-dm")
        page.fill("#dm-name", username)
        page.press("#dm-name", "Enter")
        page.wait_for_selector(f"a[data-target='{username}'][aria-current=page]")

    def message(self, page, text: str):
        return page.locator("#messages .message .text", has_text=text)

    def wait_message(self, page, text: str) -> None:
        self.message(page, text).first.wait_for()

    def texts(self, page) -> list[str]:
        return page.locator("#messages .message .text").all_inner_texts()

    def screenshot(self, page, name: str) -> None:
        os.makedirs(SCREENSHOTS, exist_ok=True)
        page.screenshot(path=os.path.join(SCREENSHOTS, f"web-{name}.png"))

    def tcp_user(self, username: str, display: str | None = None) -> LineClient:
        """A terminal user (raw TCP), signed up and logged in."""
        client = self.server.client()
        self.addCleanup(client.close)
        self.assertEqual(
            client.command(f"USR|{username}|{PASSWORD}|{display or username}"),
            f"OK|USR|{username}",
        )
        self.assertTrue(client.command(f"LOGIN|{username}|{PASSWORD}").startswith("OK|LOGIN|"))
        return client

    def tearDown(self) -> None:
        self.assertEqual(self.page_errors, [], "JavaScript errors in the page")


class TwoPeople(BrowserTestCase):
    def test_two_browser_users_chat_in_a_room_and_directly(self) -> None:
        """Alice and Bob sign up in their own browsers, talk in #general,
        then directly; Bob's direct message is marked delivered once
        Alice's browser has it."""
        alice = self.open()
        self.screenshot(alice, "sign-in")
        self.sign_up(alice, "alice", "Alice Liddell")
        bob = self.open()
        self.sign_up(bob, "bob", "Bob Builder")

        self.say(alice, "Morning all! The release notes are at https://example.org/notes.")
        self.wait_message(bob, "Morning all!")
        self.say(bob, "Thanks Alice, reading them now.")
        self.wait_message(alice, "reading them now")
        link = bob.locator("#messages a[href='https://example.org/notes']")
        self.assertEqual(link.get_attribute("rel"), "noopener noreferrer")

        self.start_direct(bob, "alice")
        self.say(bob, "Got a minute for a quick review?")
        bob.wait_for_selector(
            "#messages .status-mark[data-status=sent], "
            "#messages .status-mark[data-status=delivered]"
        )
        unread = alice.locator("a[data-target='bob'] .badge")
        unread.wait_for()
        self.assertEqual(unread.inner_text(), "1")
        alice.locator("a[data-target='bob'] .presence.online").wait_for()
        self.open_conversation(alice, "bob")
        self.wait_message(alice, "quick review")
        self.say(alice, "Sure, send it over.\nI am free until noon.")
        self.wait_message(bob, "I am free until noon")
        bob.wait_for_selector("#messages .status-mark[data-status=delivered]")
        self.assertEqual(alice.locator("a[data-target='bob'] .badge").count(), 0)
        self.screenshot(bob, "chat-direct")
        self.open_conversation(alice, "#general")
        self.screenshot(alice, "chat-room")


class Sessions(BrowserTestCase):
    def test_a_reload_keeps_the_user_signed_in_with_history(self) -> None:
        """With "stay signed in" a reload resumes with the stored token and
        shows the history; the password is stored nowhere."""
        page = self.open()
        self.sign_up(page, "alice", "Alice", remember=True)
        for n in range(3):
            self.say(page, f"note {n}")
        expect(page.locator("#messages .status-mark")).to_have_count(0)
        page.reload()
        self.wait_signed_in(page)
        self.wait_message(page, "note 2")
        self.assertEqual(self.texts(page), ["note 0", "note 1", "note 2"])
        saved = json.loads(page.evaluate("localStorage.getItem('messenger.session')"))
        self.assertEqual(saved["username"], "alice")
        self.assertRegex(saved["token"], r"^[A-Za-z0-9_-]{32,128}$")
        everything = page.evaluate("JSON.stringify([localStorage, sessionStorage])")
        self.assertNotIn(PASSWORD, everything)

    def test_without_stay_signed_in_the_token_is_kept_for_the_tab_only(self) -> None:
        """Unticked, the token goes to sessionStorage, not localStorage."""
        page = self.open()
        self.sign_up(page, "alice", "Alice")
        self.wait_true(page, "sessionStorage.getItem('messenger.session') !== null")
        self.assertIsNone(page.evaluate("localStorage.getItem('messenger.session')"))
        page.reload()
        self.wait_signed_in(page)

    def test_two_tabs_of_one_user_stay_connected(self) -> None:
        """Tabs share one connection: neither takes the other over."""
        context = self.new_context()
        first = self.open(context)
        self.sign_up(first, "alice", "Alice")
        second = self.open(context)
        self.wait_signed_in(second)
        bob = self.tcp_user("bob")
        bob.command("MSG|alice|hello both tabs")
        self.open_conversation(first, "bob")
        self.open_conversation(second, "bob")
        self.wait_message(first, "hello both tabs")
        self.wait_message(second, "hello both tabs")
        self.say(second, "from the second tab")
        self.wait_message(first, "from the second tab")
        self.assertIn("R|alice|", bob.expect_event("R|alice|"))
        first.wait_for_timeout(1000)
        for page in (first, second):
            self.assertEqual(page.locator("#connection").get_attribute("data-status"), "online")
            self.assertTrue(page.locator("#banner").is_hidden())

    def test_a_takeover_from_another_device_shows_a_notice_and_stays_put(self) -> None:
        """A login elsewhere (BYE 409) is explained; the page does not
        reconnect by itself and take the session back."""
        page = self.open()
        self.sign_up(page, "alice", "Alice")
        other = self.server.client()
        self.addCleanup(other.close)
        self.assertTrue(other.command(f"LOGIN|alice|{PASSWORD}").startswith("OK|LOGIN|alice|"))
        page.wait_for_selector("#banner[data-kind=warning]")
        self.assertIn("another place", page.inner_text("#banner-text"))
        self.screenshot(page, "taken-over")
        with self.assertRaises(TimeoutError):
            other.read_line(timeout=4)  # no BYE 409 back: no reconnect loop
        page.click("#banner-action")
        self.wait_signed_in(page)
        self.assertEqual(other.read_line(), "BYE|409|logged in elsewhere")


class History(BrowserTestCase):
    server_args = ("--rate", "1000", "--burst", "1000")

    def test_history_loads_as_you_scroll_up(self) -> None:
        """Older messages come page by page (HISTORY before) when scrolling up."""
        bob = self.tcp_user("bob")
        page = self.open()
        self.sign_up(page, "alice", "Alice")
        bob.send(*(f"MSG|#general|old message {n:03}" for n in range(120)))
        replies = 0
        while replies < 120:
            replies += bob.read_line(timeout=20).startswith("OK|MSG|")
        page.reload()
        self.wait_signed_in(page)
        self.wait_message(page, "old message 119")
        self.assertNotIn("old message 000", self.texts(page))
        for _ in range(10):
            page.locator("#messages").evaluate("box => { box.scrollTop = 0; }")
            page.wait_for_timeout(300)
            if "old message 000" in self.texts(page):
                break
        texts = [t for t in self.texts(page) if t.startswith("old message")]
        self.assertEqual(texts, [f"old message {n:03}" for n in range(120)])
        self.assertEqual(page.locator("#messages .beginning").count(), 1)


#: Central European time: summer time (UTC+2) ends on 2024-10-27 at 03:00,
#: so that day is 25 hours long.
BERLIN_SUMMER = timezone(timedelta(hours=2))
BERLIN_WINTER = timezone(timedelta(hours=1))


class DaySeparators(BrowserTestCase):
    def import_history(self, messages: list[tuple[str, datetime]]) -> None:
        """Store bob's messages in #general with these times, through
        ``messenger-admin import`` (the server stamps what it is sent with
        its own clock)."""
        entries = [
            {
                "id": n,
                "sender": "bob",
                "recipient": None,
                "room": "#general",
                "body": body,
                "created_at": moment.timestamp(),
            }
            for n, (body, moment) in enumerate(messages, 1)
        ]
        export = {"format": "messenger-export", "version": 1, "users": [], "messages": entries}
        path = os.path.join(self.server.directory, "history.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(export, f)
        result = subprocess.run(
            [sys.executable, "-m", "messenger.admin", "--db", self.server.db, "import", path],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_each_day_of_the_reader_s_calendar_gets_one_separator(self) -> None:
        """Messages are grouped by the reader's local day: "Today",
        "Yesterday", else the date, with the year only when it is not this
        year.  Late on the 25-hour day summer time ends, a message of the
        day before is still "Yesterday"."""
        for username in ("alice", "bob"):
            with self.server.client() as client:
                self.assertEqual(
                    client.command(f"USR|{username}|{PASSWORD}|{username.title()}"),
                    f"OK|USR|{username}",
                )
        self.import_history(
            [
                ("last Christmas", datetime(2023, 12, 25, 10, 0, tzinfo=BERLIN_WINTER)),
                ("on Thursday evening", datetime(2024, 10, 24, 18, 0, tzinfo=BERLIN_SUMMER)),
                ("just before midnight", datetime(2024, 10, 26, 23, 50, tzinfo=BERLIN_SUMMER)),
                # Still the 26th in UTC: the reader's day is what counts.
                ("just after midnight", datetime(2024, 10, 27, 0, 10, tzinfo=BERLIN_SUMMER)),
                ("late tonight", datetime(2024, 10, 27, 23, 0, tzinfo=BERLIN_WINTER)),
            ]
        )
        context = self.new_context(timezone_id="Europe/Berlin", locale="en-US")
        # The page's clock only (timers run): 23:30 on the day summer time ends.
        context.clock.set_fixed_time(datetime(2024, 10, 27, 23, 30, tzinfo=BERLIN_WINTER))
        page = self.open(context)
        self.sign_in(page, "alice")
        expect(page.locator("#messages .day, #messages .message .text")).to_have_text(
            [
                "Monday, December 25, 2023",
                "last Christmas",
                "Thursday, October 24",
                "on Thursday evening",
                "Yesterday",
                "just before midnight",
                "Today",
                "just after midnight",
                "late tonight",
            ]
        )
        expect(page.locator("#messages [role=separator]")).to_have_count(4)
        self.screenshot(page, "day-separators")


class Terminal(BrowserTestCase):
    def test_a_terminal_user_and_a_browser_user_talk_both_ways(self) -> None:
        """Raw TCP and WebSocket users share one server."""
        bob = self.tcp_user("bob", "Bob on a terminal")
        page = self.open()
        self.sign_up(page, "alice", "Alice")
        self.assertTrue(bob.command("MSG|alice|hi from the terminal").startswith("OK|MSG|"))
        page.locator("a[data-target='bob']").wait_for()
        self.open_conversation(page, "bob")
        self.wait_message(page, "hi from the terminal")
        self.say(page, "hi from the browser")
        line = bob.expect_event("R|alice|")
        self.assertTrue(line.endswith("|hi from the browser"), line)
        bob.send(f"ACK|{line.split('|')[2]}")
        page.wait_for_selector("#messages .status-mark[data-status=delivered]")
        bob.command("JOIN|#general")
        self.open_conversation(page, "#general")
        self.say(page, "<b>not bold</b> & <img src=x>")
        room_line = bob.expect_event("C|#general|alice|")
        self.assertTrue(room_line.endswith("|<b>not bold</b> & <img src=x>"))
        self.wait_message(page, "<b>not bold</b>")
        self.assertEqual(page.locator("#messages img, #messages b").count(), 0)
        page.fill("#composer-text", "é" * 4500)
        page.press("#composer-text", "Enter")
        page.locator("#composer-error", has_text="too long").wait_for()
        self.assertEqual(len(self.texts(page)), 1)


class Restart(BrowserTestCase):
    def test_kill_9_and_restart_while_sending_loses_and_doubles_nothing(self) -> None:
        """Messages typed before, during and after a kill -9 and restart
        are each stored and delivered exactly once."""
        page = self.open()
        self.sign_up(page, "alice", "Alice", remember=True)
        bob = self.tcp_user("bob")
        bob.close()
        self.start_direct(page, "bob")
        sent = [f"message {n}" for n in range(12)]
        for text in sent[:4]:
            self.say(page, text)
        self.server.kill()
        for text in sent[4:8]:
            self.say(page, text)
        page.wait_for_selector("#banner[data-kind=info]")
        self.screenshot(page, "reconnecting")
        self.server.restart()
        self.wait_signed_in(page)
        for text in sent[8:]:
            self.say(page, text)
        expect(page.locator("#messages .message")).to_have_count(len(sent), timeout=30_000)
        expect(page.locator("#messages .status-mark[data-status=pending]")).to_have_count(
            0, timeout=30_000
        )
        self.assertEqual(self.texts(page), sent)

        reader = self.server.client()
        self.addCleanup(reader.close)
        self.assertTrue(reader.command(f"LOGIN|bob|{PASSWORD}").startswith("OK|LOGIN|bob|"))
        reader.send("HISTORY|alice|100")
        lines = reader.read_until(lambda line: is_reply(line, "HISTORY"))
        stored = [line.split("|", 5)[5] for line in lines if line.startswith("H|")]
        self.assertEqual(stored, sent)
        delivered = [line for line in reader.events + lines if line.startswith("R|alice|")]
        while len(delivered) < len(sent):
            delivered.append(reader.expect_event("R|alice|"))
        self.assertEqual(sorted(line.split("|", 3)[3] for line in delivered), sorted(sent))
        with self.assertRaises(TimeoutError):
            reader.read_line(timeout=1)  # and nothing more


#: Makes the page believe it is in the background, and records the
#: notifications it shows (headless Chromium displays none).
BACKGROUND_TAB = """
Object.defineProperty(document, "visibilityState", { get: () => window.__visibility || "visible" });
window.__notifications = [];
window.Notification = class {
  static permission = "granted";
  static requestPermission() { return Promise.resolve("granted"); }
  constructor(title, options) { window.__notifications.push([title, options.body]); }
  close() {}
};
"""


class Settings(BrowserTestCase):
    def test_changing_name_and_password(self) -> None:
        """A new display name shows at once; a new password revokes the old
        tokens, yet this page keeps a fresh one and resumes after a reload."""
        page = self.open()
        self.sign_up(page, "alice", "Alice", remember=True)
        page.click("#open-settings")
        page.fill("#settings-display", "Alice Liddell")
        page.click("#form-name button[type=submit]")
        page.locator("#name-status", has_text="Saved").wait_for()
        page.locator("#me-display", has_text="Alice Liddell").wait_for()
        page.fill("#settings-old", "wrong password")
        page.fill("#settings-new", "a new password")
        page.click("#form-password button[type=submit]")
        page.locator("#password-status", has_text="wrong").wait_for()
        page.fill("#settings-old", PASSWORD)
        page.fill("#settings-new", "a new password")
        page.click("#form-password button[type=submit]")
        page.locator("#password-status", has_text="Password changed").wait_for()
        page.keyboard.press("Escape")
        terminal = self.server.client()
        self.addCleanup(terminal.close)
        self.assertTrue(terminal.command(f"LOGIN|alice|{PASSWORD}").startswith("ERR|LOGIN|401"))
        page.reload()
        self.wait_signed_in(page)
        self.assertEqual(page.inner_text("#me-display"), "Alice Liddell")


class Notifications(BrowserTestCase):
    def test_a_direct_message_notifies_only_while_the_page_is_hidden(self) -> None:
        """A desktop notification (sender's name, text) for a direct
        message while the page is in the background, none otherwise."""
        context = self.browser.new_context(viewport=DESKTOP, bypass_csp=True)
        self.addCleanup(context.close)
        context.add_init_script(BACKGROUND_TAB)
        page = context.new_page()
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.goto(self.url)
        self.sign_up(page, "alice", "Alice")
        bob = self.tcp_user("bob", "Bob Martin")
        self.assertTrue(bob.command("MSG|alice|seen while visible").startswith("OK|MSG|"))
        page.locator("a[data-target='bob']").wait_for()
        page.evaluate(
            "window.__visibility = 'hidden';document.dispatchEvent(new Event('visibilitychange'))"
        )
        page.wait_for_timeout(300)
        self.assertTrue(bob.command("MSG|alice|line one\\nline two").startswith("OK|MSG|"))
        self.assertTrue(bob.command("MSG|#general|a room message").startswith("OK|MSG|"))
        page.wait_for_timeout(1000)
        self.assertEqual(
            page.evaluate("window.__notifications"), [["Bob Martin", "line one\nline two"]]
        )


class Fallback(BrowserTestCase):
    def test_without_a_shared_worker_the_tab_keeps_its_own_connection(self) -> None:
        """Without SharedWorker (?engine=tab) one tab works the same: sign
        up, talk both ways, reload and resume."""
        bob = self.tcp_user("bob")
        context = self.new_context()
        page = context.new_page()
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.goto(self.url + "?engine=tab")
        self.sign_up(page, "alice", "Alice", remember=True)
        self.assertTrue(bob.command("MSG|alice|fallback works?").startswith("OK|MSG|"))
        page.locator("a[data-target='bob']").wait_for()
        self.open_conversation(page, "bob")
        self.wait_message(page, "fallback works?")
        self.say(page, "it does")
        self.assertTrue(bob.expect_event("R|alice|").endswith("|it does"))
        page.reload()
        self.wait_signed_in(page)
        self.wait_message(page, "it does")


class Outbox(BrowserTestCase):
    def test_a_message_typed_while_offline_survives_closing_the_tab(self) -> None:
        """Unsent messages are kept in the browser until the server confirms
        them: typed while the server is down, the tab closed, the server
        back, the page opened again: each message is stored once."""
        page = self.open()
        self.sign_up(page, "alice", "Alice", remember=True)
        bob = self.tcp_user("bob")
        bob.close()
        self.start_direct(page, "bob")
        self.say(page, "sent before the crash")
        page.wait_for_selector("#messages .status-mark[data-status=sent]")
        self.server.kill()
        self.say(page, "typed while the server was down")
        page.wait_for_selector("#messages .status-mark[data-status=pending]")
        context = page.context
        page.close()  # the browser tab is gone before the server is back
        self.server.restart()
        page = self.open(context)
        self.wait_signed_in(page)
        self.open_conversation(page, "bob")
        expect(page.locator("#messages .status-mark[data-status=pending]")).to_have_count(
            0, timeout=30_000
        )
        reader = self.server.client()
        self.addCleanup(reader.close)
        self.assertTrue(reader.command(f"LOGIN|bob|{PASSWORD}").startswith("OK|LOGIN|bob|"))
        reader.send("HISTORY|alice|10")
        lines = reader.read_until(lambda line: is_reply(line, "HISTORY"))
        stored = [line.split("|", 5)[5] for line in lines if line.startswith("H|")]
        self.assertEqual(stored, ["sent before the crash", "typed while the server was down"])
        self.assertEqual(
            self.texts(page), ["sent before the crash", "typed while the server was down"]
        )


#: A browser without SharedWorker (Chrome on Android, say), made before the
#: page's scripts run.  Playwright's init scripts come through the DevTools
#: protocol, which the page's CSP (no inline script, no eval) does not
#: govern; the tests check that it ran.
NO_SHARED_WORKER = "delete globalThis.SharedWorker;"
#: The Web Lock the tabs hold to elect the one with the connection (tabs.js).
ENGINE_LOCK = "messenger-engine"
LOCKS = "navigator.locks.query().then(s => [s.held.map(l => l.name), s.pending.map(l => l.name)])"


class TabsWithoutSharedWorker(BrowserTestCase):
    def setUp(self) -> None:
        super().setUp()
        #: Every WebSocket a tab opened, by tab, and every line received.
        self.sockets: list[tuple[Any, Any]] = []
        self.received: list[str] = []

    def context_without_shared_worker(self):
        context = self.new_context()
        context.add_init_script(NO_SHARED_WORKER)
        return context

    def open_tab(self, context):
        page = context.new_page()
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("websocket", lambda socket: self._watch(page, socket))
        page.goto(self.url)
        self.assertEqual(page.evaluate("typeof SharedWorker"), "undefined")
        return page

    def _watch(self, page, socket) -> None:
        self.sockets.append((page, socket))
        socket.on("framereceived", lambda payload: self.received.append(str(payload)))

    def assert_online_and_never_taken_over(self, *pages) -> None:
        for page in pages:
            expect(page.locator("#connection")).to_have_attribute("data-status", "online")
            expect(page.locator("#banner")).to_be_hidden()
        self.assertEqual([line for line in self.received if line.startswith("BYE|")], [])

    def test_two_tabs_share_one_connection_and_both_show_new_messages(self) -> None:
        """Without SharedWorker the tabs elect one of them (a Web Lock) to
        hold the only connection; the other reaches it, so neither takes
        the other over (no BYE 409), and both show what arrives."""
        bob = self.tcp_user("bob")
        context = self.context_without_shared_worker()
        first = self.open_tab(context)
        self.sign_up(first, "alice", "Alice")
        second = self.open_tab(context)
        self.wait_signed_in(second)
        # One tab holds the lock, the other waits for it.
        self.wait_true(second, f"{LOCKS}.then(l => l[1].length === 1)")
        self.assertEqual(second.evaluate(LOCKS), [[ENGINE_LOCK], [ENGINE_LOCK]])

        self.assertTrue(bob.command("MSG|alice|to both tabs").startswith("OK|MSG|"))
        for page in (first, second):
            page.locator("a[data-target='bob']").wait_for(state="attached")
            self.open_conversation(page, "bob")
            self.wait_message(page, "to both tabs")
        self.say(second, "from the tab without the connection")
        line = bob.expect_event("R|alice|", timeout=20)
        self.assertTrue(line.endswith("|from the tab without the connection"), line)
        self.wait_message(first, "from the tab without the connection")
        self.assertTrue(bob.command("MSG|alice|while both are open").startswith("OK|MSG|"))
        for page in (first, second):
            self.wait_message(page, "while both are open")
            expect(page.locator("#messages .message .text")).to_have_text(
                ["to both tabs", "from the tab without the connection", "while both are open"]
            )
        self.assert_online_and_never_taken_over(first, second)
        self.assertEqual([page for page, _ in self.sockets], [first])

    def test_when_the_tab_with_the_connection_closes_another_takes_it_over(self) -> None:
        """The lock passes to a remaining tab, which opens the connection
        and resumes the session: nothing is lost, nothing taken over."""
        bob = self.tcp_user("bob")
        context = self.context_without_shared_worker()
        first = self.open_tab(context)
        self.sign_up(first, "alice", "Alice")
        second = self.open_tab(context)
        self.wait_signed_in(second)
        self.assertTrue(bob.command("MSG|alice|to both tabs").startswith("OK|MSG|"))
        for page in (first, second):
            page.locator("a[data-target='bob']").wait_for(state="attached")
            self.open_conversation(page, "bob")
            self.wait_message(page, "to both tabs")
        self.assert_online_and_never_taken_over(first, second)
        first.close()
        # The lock is now the second tab's, and no tab waits for it.
        self.wait_true(second, f"{LOCKS}.then(l => l[0].length === 1 && l[1].length === 0)")
        self.say(second, "after the handover")
        line = bob.expect_event("R|alice|", timeout=20)
        self.assertTrue(line.endswith("|after the handover"), line)
        self.wait_signed_in(second)
        self.assertEqual(self.texts(second), ["to both tabs", "after the handover"])
        self.assertEqual([page for page, _ in self.sockets], [first, second])
        self.assert_online_and_never_taken_over(second)

    def test_a_message_typed_while_no_tab_holds_the_connection_goes_out_once(self) -> None:
        """Between the close of the tab with the connection and the next
        tab's election no engine listens: what a tab sends meanwhile waits
        in that tab, and goes to the next engine once, not into the void."""
        bob = self.tcp_user("bob")
        context = self.context_without_shared_worker()
        first = self.open_tab(context)
        self.sign_up(first, "alice", "Alice")
        # A page of the site that is not the app queues for the lock before
        # the second tab, so the lock goes to it, not to a tab, when the
        # first tab closes, and stays there until the test lets it go.
        blocker = context.new_page()
        blocker.goto(self.url + "icon.svg")
        blocker.evaluate(
            f"void navigator.locks.request('{ENGINE_LOCK}',"
            " () => new Promise(release => { window.releaseEngineLock = release; }))"
        )
        self.wait_true(blocker, f"{LOCKS}.then(l => l[1].length === 1)")
        second = self.open_tab(context)
        self.wait_signed_in(second)
        self.wait_true(blocker, f"{LOCKS}.then(l => l[1].length === 2)")
        self.assertTrue(bob.command("MSG|alice|are you there?").startswith("OK|MSG|"))
        second.locator("a[data-target='bob']").wait_for(state="attached")
        self.open_conversation(second, "bob")
        self.wait_message(second, "are you there?")
        first.close()
        self.wait_true(blocker, "typeof window.releaseEngineLock === 'function'")
        self.say(second, "typed while no tab leads")
        blocker.evaluate("window.releaseEngineLock()")
        line = bob.expect_event("R|alice|", timeout=30)
        self.assertTrue(line.endswith("|typed while no tab leads"), line)
        bob.send(f"ACK|{line.split('|')[2]}")
        self.wait_signed_in(second)
        expect(second.locator("#messages .message .text")).to_have_text(
            ["are you there?", "typed while no tab leads"]
        )
        expect(second.locator("#messages .status-mark[data-status=delivered]")).to_have_count(1)
        bob.send("HISTORY|alice|10")
        lines = bob.read_until(lambda line: is_reply(line, "HISTORY"))
        stored = [line.split("|", 5)[5] for line in lines if line.startswith("H|")]
        self.assertEqual(stored, ["are you there?", "typed while no tab leads"])
        self.assert_online_and_never_taken_over(second)


class Quality(BrowserTestCase):
    def test_keyboard_only_use(self) -> None:
        """Tab order reaches the form; Enter sends, Shift+Enter is a new line,
        Escape closes a dialog."""
        page = self.open()
        page.click("#tab-signup")
        page.focus("#auth-username")
        page.keyboard.type("alice")
        page.keyboard.press("Tab")
        page.keyboard.type("Alice")
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        self.wait_signed_in(page)
        page.focus("#composer-text")
        page.keyboard.type("first line")
        page.keyboard.press("Shift+Enter")
        page.keyboard.type("second line")
        page.keyboard.press("Enter")
        self.wait_message(page, "second line")
        self.assertEqual(self.texts(page), ["first line\nsecond line"])
        page.click("#add-room")
        self.assertTrue(page.locator("#dialog-room").is_visible())
        page.keyboard.press("Escape")
        self.assertFalse(page.locator("#dialog-room").is_visible())
        page.click("#add-room")
        page.keyboard.type("design")
        page.keyboard.press("Enter")
        page.wait_for_selector("a[data-target='#design'][aria-current=page]")
        self.assertEqual(page.evaluate("document.activeElement.id"), "composer-text")
        page.click("#leave-room")
        page.wait_for_selector("a[data-target='#design']", state="detached")
        page.wait_for_selector("a[data-target='#general'][aria-current=page]", state="attached")
        page.click("#add-dm")
        page.keyboard.type("nobody")
        page.keyboard.press("Enter")
        page.locator("#dm-error", has_text="No such user").wait_for()
        page.keyboard.press("Escape")
        self.assertEqual(page.locator("#dms a").count(), 0)

    def test_usable_at_360_pixels(self) -> None:
        """On a phone-sized screen the sidebar is a drawer."""
        page = self.open(viewport={"width": 360, "height": 740})
        self.screenshot(page, "mobile-sign-in")
        self.sign_up(page, "alice", "Alice")
        self.say(page, "Small screens work too.")
        self.wait_message(page, "Small screens")
        self.assertFalse(page.locator("#sidebar").is_visible())
        self.screenshot(page, "mobile")
        width = page.evaluate("document.documentElement.scrollWidth")
        self.assertLessEqual(width, 360)
        page.click("#open-sidebar")
        page.locator("#sidebar").wait_for(state="visible")
        page.wait_for_timeout(400)  # the drawer slides in
        self.screenshot(page, "mobile-sidebar")
        page.keyboard.press("Escape")
        page.locator("#sidebar").wait_for(state="hidden")

    def test_the_page_makes_no_request_elsewhere_and_obeys_its_csp(self) -> None:
        """Everything loads from the server itself; no CSP violation."""
        context = self.new_context()
        hosts: set[str] = set()
        context.on(
            "request", lambda request: hosts.add(re.sub(r"^\w+://([^/]+).*$", r"\1", request.url))
        )
        page = context.new_page()
        violations: list[str] = []
        page.on(
            "console",
            lambda message: (
                violations.append(message.text)
                if "Content Security Policy" in message.text
                else None
            ),
        )
        page.goto(self.url)
        self.sign_up(page, "alice", "Alice")
        self.say(page, "csp check")
        self.wait_message(page, "csp check")
        self.assertEqual(hosts, {f"{HOST}:{self.web_port}"})
        self.assertEqual(violations, [])
        shared = page.evaluate("typeof SharedWorker")
        self.assertEqual(shared, "function")


class Showcase(BrowserTestCase):
    server_args = ("--name", "Acme Team")

    def test_a_busy_workspace_reads_well(self) -> None:
        """A workspace with channels, people and unread messages: every
        message shown once, in order, under the right names (and the
        screenshots for the docs)."""
        bob = self.tcp_user("bob", "Bob Martin")
        carol = self.tcp_user("carol", "Carol Chen")
        page = self.open()
        self.sign_up(page, "alice", "Alice Liddell", remember=True)
        for client in (bob, carol):
            for room in ("#design", "#release"):
                self.assertEqual(client.command(f"JOIN|{room}"), f"OK|JOIN|{room}")
        page.click("#add-room")
        page.fill("#room-name", "release")
        page.press("#room-name", "Enter")
        page.wait_for_selector("a[data-target='#release'][aria-current=page]")
        page.click("#add-room")
        page.fill("#room-name", "design")
        page.press("#room-name", "Enter")
        page.wait_for_selector("a[data-target='#design'][aria-current=page]")
        self.open_conversation(page, "#release")
        script: list[tuple[LineClient | None, str, str]] = [
            (
                bob,
                "#release",
                "Release 2.4 is tagged. Changelog: https://example.org/changelog/2.4",
            ),
            (carol, "#release", "Nice! Staging looks good on my side."),
            (None, "#release", "Great work both. I will announce it after lunch."),
            (
                bob,
                "#release",
                "One more thing: the migration takes about 3 minutes,\\n"
                "so plan the window accordingly.",
            ),
            (carol, "#design", "New icons are in the shared folder."),
            (carol, "#design", "Feedback welcome before Friday."),
        ]
        for author, target, text in script:
            if author is None:
                self.say(page, text.replace("\\n", "\n"))
                self.wait_message(page, text.split("\\n")[0])
            else:
                self.assertTrue(author.command(f"MSG|{target}|{text}").startswith("OK|MSG|"))
        self.wait_message(page, "plan the window")
        self.assertTrue(
            carol.command("MSG|alice|Do you have time for a quick call?").startswith("OK|MSG|")
        )
        page.locator("a[data-target='carol'] .badge").wait_for()
        page.locator("a[data-target='#design'] .badge").wait_for()
        self.assertEqual(page.inner_text("a[data-target='#design'] .badge"), "2")
        self.assertEqual(
            self.texts(page),
            [
                "Release 2.4 is tagged. Changelog: https://example.org/changelog/2.4",
                "Nice! Staging looks good on my side.",
                "Great work both. I will announce it after lunch.",
                "One more thing: the migration takes about 3 minutes,\nso plan the window accordingly.",
            ],
        )
        page.locator("#messages .head strong", has_text="Carol Chen").wait_for()
        self.screenshot(page, "workspace")
        self.open_conversation(page, "carol")
        self.wait_message(page, "quick call")
        self.say(page, "Sure, in 10 minutes?")
        reply = carol.expect_event("R|alice|")
        self.assertTrue(reply.endswith("|Sure, in 10 minutes?"))
        carol.send(f"ACK|{reply.split('|')[2]}")
        page.wait_for_selector("#messages .status-mark[data-status=delivered]")
        self.assertTrue(
            carol.command("MSG|alice|Perfect, I will send you the link.").startswith("OK|MSG|")
        )
        self.wait_message(page, "send you the link")
        self.screenshot(page, "direct")
        page.click("#open-who")
        page.locator("#who-list .person").nth(2).wait_for()
        self.assertEqual(page.locator("#who-list .person").count(), 3)
        self.screenshot(page, "who")
        page.keyboard.press("Escape")
        mobile = self.open(page.context, viewport={"width": 360, "height": 740})
        self.wait_signed_in(mobile)
        self.open_conversation_narrow(mobile, "#release")
        self.wait_message(mobile, "plan the window")
        self.screenshot(mobile, "workspace-mobile")

    def open_conversation_narrow(self, page, target: str) -> None:
        page.click("#open-sidebar")
        page.locator("#sidebar").wait_for(state="visible")
        self.open_conversation(page, target)
        page.locator("#sidebar").wait_for(state="hidden")
