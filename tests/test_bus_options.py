"""The options of a node of several: --bus and --node-id."""

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from messenger.bus.local import AloneBus
from messenger.metrics import Metrics
from messenger.service import default_node_id
from messenger.tap import Options
from tests.support.harness import Harness


class BusOptionTests(SynchronousTestCase):
    def parse(self, *args: str) -> Options:
        options = Options()
        options.parseOptions(list(args))
        return options

    def test_bus_takes_a_redis_url(self):
        """--bus redis://host:port/N is accepted as given."""
        options = self.parse("--bus", "redis://127.0.0.1:6380/3")
        self.assertEqual(options["bus"], "redis://127.0.0.1:6380/3")

    def test_bus_that_is_not_redis_is_refused(self):
        """--bus with anything but redis://host:port/N is a usage error."""
        self.assertRaises(usage.UsageError, self.parse, "--bus", "amqp://x")

    def test_without_bus_the_node_works_alone(self):
        """Without --bus the service routes in-process and publishes nothing."""
        self.assertIsNone(Harness().service.cluster)
        self.assertIsNone(Harness(bus=AloneBus()).service.cluster)

    def test_node_id_defaults_to_host_and_pid(self):
        """--node-id defaults to host:pid."""
        self.assertIsNone(self.parse()["node-id"])
        host, pid = default_node_id().rsplit(":", 1)
        self.assertTrue(host)
        self.assertTrue(pid.isdigit())
        self.assertEqual(Harness(node_id="n7").service.node_id, "n7")

    def test_node_id_is_in_the_metrics(self):
        """The metrics name the node they count for."""
        text = Metrics(node_id="n7").text().decode()
        self.assertIn('messenger_node_info{node="n7"} 1.0', text)
