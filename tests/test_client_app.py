"""The client's program layer: command line, endpoints, password sources, stdin."""

import os
import shutil
import tempfile

from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial import unittest

from messenger.client import app, commands
from messenger.client.__main__ import parse_args
from tests.support.server import make_certificates


class ArgumentTests(unittest.TestCase):
    def test_defaults(self):
        """No arguments: the local server, ask for everything, colour when a terminal."""
        options = parse_args([], environ={})
        self.assertEqual(options.server, "tcp:localhost:10000")
        self.assertIsNone(options.user)
        self.assertIsNone(options.color)
        self.assertIsNone(options.one_shot)

    def test_one_shot_send(self):
        """--user alice send bob TEXT... is a one-shot message."""
        options = parse_args(["--user", "Alice", "send", "bob", "lunch?", "now"], environ={})
        self.assertEqual(options.user, "alice")
        self.assertEqual(options.one_shot, commands.SendText("bob", "lunch? now"))

    def test_send_needs_user(self):
        """send without --user is a usage error (exit 2)."""
        with self.assertRaises(SystemExit) as raised:
            parse_args(["send", "bob", "hi"], environ={})
        self.assertEqual(raised.exception.code, 2)

    def test_send_needs_text(self):
        """send without text is a usage error."""
        with self.assertRaises(SystemExit):
            parse_args(["--user", "alice", "send", "bob"], environ={})

    def test_signup_needs_user(self):
        """--signup without --user is a usage error."""
        with self.assertRaises(SystemExit):
            parse_args(["--signup"], environ={})

    def test_bad_user_name(self):
        """An impossible --user is refused before connecting."""
        with self.assertRaises(SystemExit):
            parse_args(["--user", "no spaces"], environ={})

    def test_unreadable_password_file(self):
        """A --password-file that cannot be read is refused at once."""
        with self.assertRaises(SystemExit):
            parse_args(["--password-file", "/nonexistent/pw"], environ={})

    def test_no_color(self):
        """--no-color and the NO_COLOR convention both turn colours off."""
        self.assertIs(parse_args(["--no-color"], environ={}).color, False)
        self.assertIs(parse_args([], environ={"NO_COLOR": "1"}).color, False)


class PasswordSourceTests(unittest.TestCase):
    def test_file_read_each_time(self):
        """The password file is read when needed, not kept."""
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        path = os.path.join(directory, "pw")
        with open(path, "w") as f:
            f.write("first-pass\n")
        read = app.password_reader(app.ClientOptions(password_file=path), environ={})
        self.assertEqual(read(), "first-pass")
        with open(path, "w") as f:
            f.write("second-pass\r\nignored\n")
        self.assertEqual(read(), "second-pass")

    def test_environment_variable(self):
        """MESSENGER_PASSWORD is used when there is no file."""
        read = app.password_reader(
            app.ClientOptions(password_env="MESSENGER_PASSWORD"),
            environ={"MESSENGER_PASSWORD": "from-env"},
        )
        self.assertEqual(read(), "from-env")

    def test_nothing_means_ask(self):
        """Neither file nor variable: the password is asked for."""
        self.assertIsNone(
            app.password_reader(app.ClientOptions(password_env="MESSENGER_PASSWORD"), environ={})
        )


class EndpointTests(unittest.TestCase):
    def setUp(self):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        self.paths = make_certificates(directory)
        self.directory = directory
        self.reactor = MemoryReactorClock()

    def test_tcp(self):
        """tcp:HOST:PORT is parsed by clientFromString."""
        self.assertIsNotNone(app.make_endpoint(self.reactor, "tcp:localhost:10000"))

    def test_ca_file_with_tls(self):
        """--ca FILE with tls:HOST:PORT builds a verifying TLS endpoint."""
        endpoint = app.make_endpoint(self.reactor, "tls:localhost:10443", self.paths["ca"])
        self.assertIsNotNone(endpoint)

    def test_ca_directory_with_tls(self):
        """--ca DIRECTORY is passed to clientFromString as trustRoots."""
        cas = os.path.join(self.directory, "cas")
        os.mkdir(cas)
        shutil.copy(self.paths["ca"], cas)
        self.assertIsNotNone(app.make_endpoint(self.reactor, "tls:localhost:10443", cas))

    def test_ca_with_tcp_is_refused(self):
        """--ca with a tcp: server is a usage error, not silently ignored."""
        with self.assertRaises(app.UsageError):
            app.make_endpoint(self.reactor, "tcp:localhost:10000", self.paths["ca"])

    def test_missing_ca_is_refused(self):
        """A --ca that does not exist is a usage error."""
        with self.assertRaises(app.UsageError):
            app.make_endpoint(self.reactor, "tls:localhost:10443", "/nonexistent/ca.pem")

    def test_ca_file_without_certificate_is_refused(self):
        """A --ca file holding no certificate is a usage error."""
        with self.assertRaises(app.UsageError):
            app.make_endpoint(self.reactor, "tls:localhost:10443", self.paths["key"])

    def test_bundle_with_several_certificates(self):
        """Every certificate in a CA bundle is loaded."""
        bundle = os.path.join(self.directory, "bundle.pem")
        with open(bundle, "wb") as out:
            for _ in range(2):
                with open(self.paths["ca"], "rb") as f:
                    out.write(f.read())
        self.assertEqual(len(app.load_certificates(bundle)), 2)


class FakeSession:
    def __init__(self):
        self.lines = []
        self.closed = False

    def line_typed(self, line):
        self.lines.append(line)

    def input_closed(self):
        self.closed = True

    def error(self, text):
        self.lines.append(("error", text))


class KeyboardInputTests(unittest.TestCase):
    def test_lines_decoded_and_cr_dropped(self):
        """Each stdin line reaches the session as text, without CR LF."""
        session = FakeSession()
        keyboard = app.KeyboardInput(session, lambda: None)
        keyboard.makeConnection(StringTransport())
        keyboard.dataReceived("héllo\r\nsecond\n".encode())
        self.assertEqual(session.lines, ["héllo", "second"])

    def test_last_line_without_newline_counts(self):
        """At the end of input a final line without newline is still used."""
        session = FakeSession()
        keyboard = app.KeyboardInput(session, lambda: None)
        keyboard.makeConnection(StringTransport())
        keyboard.dataReceived(b"one\ntwo")
        keyboard.readConnectionLost()
        self.assertEqual(session.lines, ["one", "two"])
        self.assertTrue(session.closed)


class PolicyTests(unittest.TestCase):
    def test_announcing_policy_reports_the_delay(self):
        """The retry policy passes its delay on, so the user is told."""
        told = []
        policy = app.announcing(lambda attempt: attempt * 1.5, told.append)
        self.assertEqual(policy(2), 3.0)
        self.assertEqual(told, [3.0])
