"""--log-format json: one JSON object per event and per line, nothing secret."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile

from twisted.logger import Logger, eventsFromJSONLogFile
from twisted.trial.unittest import TestCase

from messenger.logs import REDACTED, json_logger, json_logger_factory, json_observer


class JsonLogTests(TestCase):
    def setUp(self):
        self.stream = io.StringIO()
        self.log = Logger(namespace="messenger.test", observer=json_observer(self.stream))

    def lines(self):
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def test_each_event_is_one_json_object_on_one_line(self):
        """Every event is a single line holding one JSON object (JSON Lines, no record separator)."""
        self.log.info("{user} logged in from {address}", user="alice", address="127.0.0.1")
        self.log.warn("second\nevent with a newline")
        text = self.stream.getvalue()
        self.assertEqual(text.count("\n"), 2)
        self.assertNotIn("\x1e", text)
        first, second = self.lines()
        self.assertEqual(first["user"], "alice")
        self.assertEqual(first["log_format"], "{user} logged in from {address}")
        self.assertEqual(first["log_namespace"], "messenger.test")
        self.assertEqual(first["log_level"]["name"], "info")
        self.assertIsInstance(first["log_time"], float)
        self.assertEqual(second["log_level"]["name"], "warn")

    def test_output_reads_back_as_twisted_log_events(self):
        """twisted.logger can read the file back (eventsFromJSONLogFile)."""
        self.log.info("{count} rooms", count=3)
        events = list(eventsFromJSONLogFile(io.StringIO(self.stream.getvalue())))
        self.assertEqual(len(events), 1)
        self.assertEqual(events[0]["count"], 3)

    def test_failures_are_logged_with_their_traceback(self):
        """log.failure writes the exception as part of the same JSON object."""
        try:
            1 / 0
        except ZeroDivisionError:
            self.log.failure("handling {verb} failed", verb="MSG")
        (event,) = self.lines()
        self.assertEqual(event["verb"], "MSG")
        self.assertIn("ZeroDivisionError", json.dumps(event["log_failure"]))

    def test_password_token_and_body_fields_are_never_written(self):
        """Fields named password, token or body are replaced by a marker, also in the flattened values."""
        secrets = {
            "password": "hunter2 pw",
            "token": "T" * 40,
            "body": "private message text",
            "text": "another body",
            "password_hash": "$argon2id$x",
        }
        # Another observer may have flattened the event first (flattenEvent
        # stores the formatted values in it): they must not leak either.
        from twisted.logger import formatEvent
        from twisted.logger._flatten import flattenEvent

        inner = json_observer(self.stream)

        def flatten_first(event):
            flattenEvent(event)
            inner(event)

        log = Logger(namespace="messenger.test", observer=flatten_first)
        log.info("login {password} {token} {body} {text} {password_hash}", **secrets)
        text = self.stream.getvalue()
        for secret in secrets.values():
            self.assertNotIn(secret, text)
        (event,) = self.lines()
        for key in secrets:
            self.assertEqual(event[key], REDACTED)
        self.assertIn(REDACTED, formatEvent(event))

    def test_logger_factories_for_twistd(self):
        """json_logger and json_logger_factory give observers for twistd's --logger (stdout or a file)."""
        self.assertTrue(callable(json_logger()))
        directory = tempfile.mkdtemp(prefix="messenger-logs-test-")
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        path = os.path.join(directory, "messenger.log")
        observer = json_logger_factory(path)()
        Logger(namespace="messenger.test", observer=observer).info("to {where}", where="a file")
        with open(path, encoding="utf-8") as f:
            (event,) = [json.loads(line) for line in f]
        self.assertEqual(event["where"], "a file")
