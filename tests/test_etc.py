"""etc/: the example configuration, the systemd unit and the example users file."""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import tempfile

from twisted.trial.unittest import TestCase

from messenger.config import ServerConfig
from messenger.tap import Options

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ETC = os.path.join(REPO_ROOT, "etc")
#: Every option of the server, as the issue names them.
SERVER_OPTIONS = (
    "listen",
    "db",
    "name",
    "max-clients",
    "idle-timeout",
    "retry-initial",
    "retry-max",
    "window",
    "rate",
    "burst",
    "min-password-length",
    "max-line",
    "max-pending",
    "max-outbuf",
    "presence-room-limit",
    "token-ttl",
    "argon2-time-cost",
    "argon2-memory-cost",
    "metrics",
    "log-format",
)
COMMENTED_OPTION = re.compile(r"^# ([a-z0-9-]+) = (.*)$")


def read(name: str) -> str:
    with open(os.path.join(ETC, name), encoding="utf-8") as f:
        return f.read()


class ConfigFileTests(TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="messenger-etc-test-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)

    def options_from(self, text: str) -> Options:
        path = os.path.join(self.dir, "messenger.ini")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        options = Options()
        options.parseOptions(["--config", path])
        return options

    def test_ini_lists_every_server_option(self):
        """etc/messenger.ini names every server option, each with a 'Default:' comment."""
        text = read("messenger.ini")
        present = {m.group(1) for m in map(COMMENTED_OPTION.match, text.splitlines()) if m}
        parser = configparser.ConfigParser()
        parser.read_string(text)
        present |= set(parser["messenger"])
        self.assertEqual(sorted(set(SERVER_OPTIONS) - present), [])
        self.assertGreaterEqual(text.count("Default:"), 15)

    def test_ini_as_shipped_is_accepted_by_the_server(self):
        """The server's --config reads etc/messenger.ini: default settings, the database under /var/lib."""
        options = self.options_from(read("messenger.ini"))
        self.assertEqual(options["server-config"], ServerConfig())
        self.assertEqual(options["listen"], ["tcp:10000"])
        self.assertEqual(options["db"], "/var/lib/messenger/messenger.sqlite3")
        self.assertIsNone(options["metrics"])
        self.assertEqual(options["log-format"], "text")

    def test_commented_defaults_are_the_real_defaults(self):
        """Un-commenting every option line changes nothing: each shows the server's actual default."""
        lines = []
        for line in read("messenger.ini").splitlines():
            m = COMMENTED_OPTION.match(line)
            lines.append(f"{m.group(1)} = {m.group(2)}" if m else line)
        options = self.options_from("\n".join(lines) + "\n")
        self.assertEqual(options["server-config"], ServerConfig())
        self.assertEqual(options["listen"], ["tcp:10000"])
        self.assertEqual(options["log-format"], "text")
        self.assertEqual(options["metrics"], "tcp:9100:interface=127.0.0.1")


class SystemdUnitTests(TestCase):
    def setUp(self):
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str
        parser.read_string(read("messenger.service"))
        self.unit = parser

    def test_unit_runs_twistd_in_the_foreground_with_the_config(self):
        """ExecStart runs twistd --nodaemon messenger --config /etc/messenger/messenger.ini."""
        exec_start = self.unit["Service"]["ExecStart"]
        self.assertRegex(
            exec_start, r"twistd --nodaemon .*messenger --config /etc/messenger/messenger.ini$"
        )

    def test_unit_runs_unprivileged_and_hardened(self):
        """The unit runs as an unprivileged user with the usual sandboxing settings."""
        service = self.unit["Service"]
        self.assertEqual(service["User"], "messenger")
        for key, expected in (
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ProtectHome", "yes"),
            ("PrivateTmp", "yes"),
            ("PrivateDevices", "yes"),
            ("CapabilityBoundingSet", ""),
            ("StateDirectory", "messenger"),
            ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ):
            self.assertEqual(service[key], expected, key)
        self.assertEqual(self.unit["Install"]["WantedBy"], "multi-user.target")


class ExampleFilesTests(TestCase):
    def test_example_users_file_holds_hashes_only(self):
        """etc/users.example.json is Messenger's export layout with Argon2id hashes, no clear text."""
        import argon2

        document = json.loads(read("users.example.json"))
        self.assertEqual((document["format"], document["version"]), ("messenger-export", 1))
        for user in document["users"]:
            self.assertNotIn("password", user)
            self.assertEqual(argon2.extract_parameters(user["password_hash"]).type, argon2.Type.ID)

    def test_tls_readme_shows_both_certificates_and_the_listen_endpoint(self):
        """etc/README.md covers a self-signed certificate, a CA's, and --listen ssl:..."""
        text = read("README.md")
        for needle in (
            "openssl req -x509",
            "certbot",
            "listen = ssl:",
            "privateKey=",
            "certKey=",
            "extraCertChain=",
        ):
            self.assertIn(needle, text)
