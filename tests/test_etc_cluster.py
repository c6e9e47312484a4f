"""etc/ for a cluster: the haproxy example and the systemd template unit.

Static checks of both files (as tests/test_etc.py does for the single
server's), and one run of the haproxy example for real, in front of two
nodes, when haproxy is installed.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time

import pytest
from twisted.trial.unittest import SkipTest, TestCase

from messenger.config import ServerConfig
from messenger.tap import Options
from tests.support.server import HOST, ConnectionClosed, LineClient, free_port

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ETC = os.path.join(REPO_ROOT, "etc")
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def read(name: str) -> str:
    with open(os.path.join(ETC, name), encoding="utf-8") as f:
        return f.read()


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(read(name))
    return parser


def haproxy_sections(text: str) -> dict[str, list[str]]:
    """{"defaults": [...], "backend messenger_nodes": [...], ...}: the
    directives of each section, comments and blank lines dropped."""
    sections: dict[str, list[str]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not line[0].isspace():
            current = line.strip()
            sections[current] = []
        elif current is not None:
            sections[current].append(" ".join(line.split()))
    return sections


def seconds(value: str) -> float:
    number, unit_ = re.fullmatch(r"(\d+)(ms|s|m|h)?", value).groups()  # type: ignore[union-attr]
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 0.001}[unit_]


class HaproxyConfigTests(TestCase):
    def setUp(self):
        self.sections = haproxy_sections(read("haproxy.cfg"))

    def directive(self, section: str, name: str) -> list[str]:
        return [d for d in self.sections[section] if d.split()[0] == name]

    def test_tcp_mode_round_robin_over_several_nodes(self):
        """haproxy.cfg: TCP mode, round robin, two or more nodes, each health-checked by its HELLO."""
        self.assertIn("mode tcp", self.sections["defaults"])
        backend = "backend messenger_nodes"
        self.assertIn("balance roundrobin", self.sections[backend])
        servers = self.directive(backend, "server")
        self.assertGreaterEqual(len(servers), 2)
        self.assertEqual(len({s.split()[2] for s in servers}), len(servers), "one address each")
        self.assertTrue(any("check" in d for d in self.directive(backend, "default-server")))
        self.assertIn("tcp-check expect rstring ^HELLO\\|1\\|", self.sections[backend])

    def test_timeouts_outlast_the_servers_idle_timeout(self):
        """Client and server timeouts are longer than --idle-timeout: the node says BYE|408 first."""
        timeouts = {
            d.split()[1]: seconds(d.split()[2]) for d in self.directive("defaults", "timeout")
        }
        for side in ("client", "server"):
            self.assertGreater(timeouts[side], ServerConfig().idle_timeout, side)

    def test_haproxy_accepts_the_file(self):
        """haproxy -c finds the file valid (when haproxy is installed)."""
        if not os.path.exists(HAPROXY):
            raise SkipTest("haproxy is not installed")
        result = subprocess.run(
            [HAPROXY, "-c", "-f", os.path.join(ETC, "haproxy.cfg")],
            capture_output=True,
            text=True,
            timeout=30,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)


class TemplateUnitTests(TestCase):
    def setUp(self):
        self.template = unit("messenger@.service")

    def exec_start(self) -> list[str]:
        return shlex.split(self.template["Service"]["ExecStart"])

    def test_instance_is_the_port_and_names_the_node(self):
        """ExecStart: twistd --nodaemon messenger, listening on tcp:%i, --node-id with %i."""
        args = self.exec_start()
        self.assertEqual(args[:2], ["/opt/messenger/bin/twistd", "--nodaemon"])
        options = dict(zip(args, args[1:]))
        self.assertEqual(options["--listen"], "tcp:%i")
        self.assertIn("%i", options["--node-id"])
        self.assertEqual(options["--db"], "${MESSENGER_DB}")
        self.assertEqual(options["--bus"], "${MESSENGER_BUS}")
        self.assertEqual(options["--config"], "/etc/messenger/messenger.ini")
        self.assertEqual(self.template["Service"]["EnvironmentFile"], "/etc/messenger/cluster.env")

    def test_the_server_accepts_the_command_line(self):
        """The options of ExecStart, with an instance and an environment filled in, parse."""
        args = self.exec_start()
        messenger = args.index("messenger")
        directory = tempfile.mkdtemp(prefix="messenger-etc-test-")
        self.addCleanup(shutil.rmtree, directory, True)
        config = os.path.join(directory, "messenger.ini")
        with open(config, "w", encoding="utf-8") as f:
            f.write(read("messenger.ini"))
        values = {
            "%i": "10001",
            "%H": "host1",
            "${MESSENGER_DB}": "postgresql://messenger@127.0.0.1/messenger",
            "${MESSENGER_BUS}": "redis://127.0.0.1:6379/0",
            "/etc/messenger/messenger.ini": config,
        }
        filled = []
        for arg in args[messenger + 1 :]:
            for key, value in values.items():
                arg = arg.replace(key, value)
            filled.append(arg)
        options = Options()
        options.parseOptions(filled)
        self.assertEqual(options["listen"], ["tcp:10001"])
        self.assertEqual(options["db"], "postgresql://messenger@127.0.0.1/messenger")
        self.assertEqual(options["bus"], "redis://127.0.0.1:6379/0")
        self.assertEqual(options["node-id"], "host1:10001")

    def test_same_hardening_as_the_single_server_unit(self):
        """Every [Service] setting of etc/messenger.service but the command is the same here."""
        single = unit("messenger.service")["Service"]
        template = self.template["Service"]
        for key, value in single.items():
            if key == "ExecStart":
                continue
            self.assertIn(key, template)
            self.assertEqual(template[key], value, key)
        self.assertEqual(self.template["Install"]["WantedBy"], "multi-user.target")


@pytest.mark.services
@pytest.mark.slow
class HaproxyInFrontOfNodesTests(TestCase):
    """etc/haproxy.cfg as shipped (addresses changed to free loopback
    ports), run in front of a 2-node cluster."""

    def test_clients_through_haproxy_land_on_different_nodes_and_talk(self):
        """Two clients through haproxy go to different nodes and exchange a message."""
        if not os.path.exists(HAPROXY):
            raise SkipTest("haproxy is not installed")
        from tests.support.cluster import ClusterProcess
        from tests.test_integration import login, msgid_of, signup

        cluster = ClusterProcess(self, nodes=2, start=False)
        for node in cluster.nodes:  # HELLO tells which node a client reached
            node.extra_args = ["--name", node.name]
        cluster.start()
        port = free_port()
        text = read("haproxy.cfg")
        text = re.sub(r"^\s*(log|user|group|daemon)\b.*$", "", text, flags=re.M)
        text = re.sub(r"^\s*option (tcplog|dontlognull)$", "", text, flags=re.M)
        text = text.replace("bind :10000", f"bind {HOST}:{port}")
        # A test may not raise the file limit that 100,000 connections need.
        text = re.sub(r"maxconn \d+", "maxconn 1000", text)
        servers = [f"    server {n.name} {HOST}:{n.port}" for n in cluster.nodes]
        text = re.sub(r"^\s*server .*$\n?", "", text, flags=re.M) + "\n".join(servers) + "\n"
        config = os.path.join(cluster.directory, "haproxy.cfg")
        with open(config, "w", encoding="utf-8") as f:
            f.write(text)
        proxy = subprocess.Popen(
            [HAPROXY, "-db", "-f", config],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(proxy.wait, 10)
        self.addCleanup(proxy.terminate)

        deadline = time.monotonic() + 30
        clients = []
        while len(clients) < 2:
            self.assertLess(time.monotonic(), deadline, "haproxy never passed HELLO on")
            try:
                client = LineClient(port, timeout=5)
            except (OSError, ConnectionClosed):  # not listening yet, or no node up yet
                time.sleep(0.2)
                continue
            self.addCleanup(client.close)
            clients.append(client)
        alice, bob = clients
        self.assertEqual({alice.hello, bob.hello}, {"HELLO|1|node1", "HELLO|1|node2"})
        signup(alice, "alice")
        signup(bob, "bob")
        login(alice, "alice")
        login(bob, "bob")
        msgid = msgid_of(alice.command("MSG|bob|through haproxy"))
        self.assertEqual(bob.expect_event("R|"), f"R|alice|{msgid}|through haproxy")
