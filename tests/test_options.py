"""The settings the server and messenger-admin share (messenger/options.py)."""

import os
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from messenger.config import ServerConfig
from messenger.options import (
    DEFAULT_MIN_PASSWORD_LENGTH,
    ConfigFileError,
    positive_float,
    positive_int,
    read_config_file,
)


class NumberOptionTests(SynchronousTestCase):
    def test_positive_float_is_above_zero(self):
        """A positive number option refuses 0, negatives, NaN and infinity."""
        for text in ("0", "0.0", "-0", "-1", "nan", "inf", "-inf", "soon", ""):
            self.assertRaises(ValueError, positive_float, text)
        self.assertEqual(positive_float("0.2"), 0.2)
        self.assertEqual(positive_float("30"), 30.0)

    def test_positive_float_says_what_is_wrong(self):
        """The error names the value and what it must be."""
        e = self.assertRaises(ValueError, positive_float, "0")
        self.assertEqual(str(e), "'0' must be a number above 0")
        e = self.assertRaises(ValueError, positive_float, "soon")
        self.assertEqual(str(e), "'soon' is not a number")

    def test_positive_int_is_one_or_more(self):
        """A whole-number option is at least 1 and has no fraction."""
        for text in ("0", "-3", "1.5", "x", ""):
            self.assertRaises(ValueError, positive_int, text)
        self.assertEqual(positive_int("1"), 1)

    def test_one_minimum_password_length(self):
        """The admin tool's default minimum is the server's."""
        self.assertEqual(DEFAULT_MIN_PASSWORD_LENGTH, ServerConfig().min_password_length)


class ConfigFileTests(SynchronousTestCase):
    def write(self, text):
        fd, path = tempfile.mkstemp(suffix=".ini")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        self.addCleanup(os.remove, path)
        return path

    def test_messenger_section_read(self):
        """The [messenger] section's keys and values, as strings; other sections ignored."""
        path = self.write("[other]\nx = 1\n[messenger]\ndb = /tmp/m.sqlite3\nrate = 5\n")
        self.assertEqual(read_config_file(path), {"db": "/tmp/m.sqlite3", "rate": "5"})

    def test_unusable_files_refused(self):
        """A missing file, a file that is not INI, and one without [messenger] are errors."""
        cases = [
            ("/nonexistent/messenger.ini", "cannot read"),
            (self.write("no section header\n"), "is not a valid INI file"),
            (self.write("[other]\nx = 1\n"), "has no [messenger] section"),
        ]
        for path, reason in cases:
            e = self.assertRaises(ConfigFileError, read_config_file, path)
            self.assertIn(reason, str(e))
            self.assertTrue(str(e).startswith("--config: "))
