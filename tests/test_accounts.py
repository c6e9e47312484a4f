"""docs/protocol.md: USR, LOGIN, TOKEN, RESUME, NAME, PASSWD and the failed-login limits."""

import gc
import re

import argon2
from twisted.trial.unittest import SynchronousTestCase

from messenger.store.sqlite import ImmediateSqliteStore
from tests.support.harness import PASSWORD, Harness
from tests.support.probes import LoggedFailures, count_argon2

BAD_CREDENTIALS = "ERR|LOGIN|401|bad credentials"
ADDRESS_BLOCKED = "ERR|LOGIN|429|too many failed logins"
ATTACKER = "203.0.113.66"
A_TOKEN = "T" * 43  # well formed, never issued


def err_prefix(line):
    return "|".join(line.split("|")[:3])


class UsrTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness()
        self.client = self.h.connect()

    def test_usr_creates_the_account_and_does_not_log_in(self):
        """USR -> OK|USR|username: creates the account; does not log in."""
        self.assertEqual(self.client.command("USR|alice|password1|Alice"), ["OK|USR|alice"])
        self.assertEqual(self.client.command("WHO"), ["ERR|WHO|401|log in first"])
        self.assertEqual(self.client.command("LOGIN|alice|password1"), ["OK|LOGIN|alice|Alice"])

    def test_usr_replies_with_the_canonical_lower_case_username(self):
        """The server's canonical form of a username is lower case."""
        self.assertEqual(self.client.command("USR|AliCe|password1|Alice"), ["OK|USR|alice"])

    def test_new_account_is_a_member_of_general(self):
        """Every new account is a member of #general."""
        self.client.command("USR|alice|password1|Alice", "LOGIN|alice|password1")
        self.assertEqual(self.client.command("ROOMS"), ["OK|ROOMS|#general"])
        self.assertEqual(self.client.command("MEMBERS|#general"), ["OK|MEMBERS|#general|alice"])

    def test_usr_with_invalid_username_is_400(self):
        """USR: 400 invalid name (1-32 of A-Z a-z 0-9 _ . -)."""
        for name in ["a b", "a" * 33, "al|ce", "al/ce", "#alice", "élise"]:
            reply = self.client.command(f"USR|{name}|password1|Name")
            self.assertEqual(len(reply), 1, name)
            self.assertEqual(err_prefix(reply[0]), "ERR|USR|400", name)

    def test_usr_with_32_character_username_is_accepted(self):
        """A username may be 32 characters long."""
        self.assertEqual(self.client.command(f"USR|{'a' * 32}|password1|A"), [f"OK|USR|{'a' * 32}"])

    def test_usr_with_password_shorter_than_the_minimum_is_400(self):
        """USR: 400 password too short (--min-password-length, 8 by default)."""
        reply = self.client.command("USR|alice|passwd7|Alice")
        self.assertEqual(err_prefix(reply[0]), "ERR|USR|400")
        self.assertEqual(self.client.command("USR|alice|pass8chr|Alice"), ["OK|USR|alice"])

    def test_min_password_length_is_an_option(self):
        """The minimum is --min-password-length."""
        h = Harness(min_password_length=12)
        client = h.connect()
        self.assertEqual(err_prefix(client.command("USR|alice|elevenchars|A")[0]), "ERR|USR|400")
        self.assertEqual(client.command("USR|alice|twelve chars|A"), ["OK|USR|alice"])

    def test_usr_with_invalid_password_is_400(self):
        """A password is at most 128 characters with no control character."""
        for password in ["p" * 129, "pass\tword1", "password\x7f"]:
            reply = self.client.command(f"USR|alice|{password}|Alice")
            self.assertEqual(err_prefix(reply[0]), "ERR|USR|400", repr(password))
        self.assertEqual(self.client.command(f"USR|alice|{'p' * 128}|Alice"), ["OK|USR|alice"])

    def test_usr_with_invalid_display_name_is_400(self):
        """A display name is 1-64 characters after stripping, with no control character."""
        for name in ["", "   ", "x" * 65, "tab\there", "nul\x00", "c1\x85"]:
            reply = self.client.command(f"USR|alice|password1|{name}")
            self.assertEqual(err_prefix(reply[0]), "ERR|USR|400", repr(name))

    def test_usr_display_name_is_stripped(self):
        """Leading and trailing spaces of a display name are stripped."""
        self.client.command("USR|alice|password1|   Alice L.  ")
        self.assertEqual(self.client.command("LOGIN|alice|password1"), ["OK|LOGIN|alice|Alice L."])

    def test_usr_with_taken_username_is_409(self):
        """USR: 409 username taken, whatever its case."""
        self.client.command("USR|alice|password1|Alice")
        self.assertEqual(
            err_prefix(self.client.command("USR|alice|password2|Other")[0]), "ERR|USR|409"
        )
        self.assertEqual(
            err_prefix(self.client.command("USR|ALICE|password2|Other")[0]), "ERR|USR|409"
        )
        self.assertEqual(self.client.command("LOGIN|alice|password1"), ["OK|LOGIN|alice|Alice"])

    def test_concurrent_sign_ups_for_one_name_only_one_wins(self):
        """USR: 409 username taken, also when two sign-ups for one name overlap."""
        h = Harness(hash_delay=1.0)
        first, second = h.connect(), h.connect()
        first.send("USR|alice|password1|First")
        second.send("USR|ALICE|password2|Second")
        h.advance(1.0)
        self.assertEqual(first.lines(), ["OK|USR|alice"])
        self.assertEqual(err_prefix(second.lines()[0]), "ERR|USR|409")
        first.send("LOGIN|alice|password1")
        h.advance(1.0)
        self.assertEqual(first.lines(), ["OK|LOGIN|alice|First"])

    def test_usr_on_a_logged_in_connection_is_403(self):
        """USR: 403 this connection is logged in."""
        self.h.register("alice")
        alice = self.h.login("alice")
        self.assertEqual(
            alice.command("USR|carol|password1|Carol"), ["ERR|USR|403|this connection is logged in"]
        )
        self.assertEqual(alice.command("WHOIS|carol"), ["ERR|WHOIS|404|no such user"])


class LoginTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness()
        self.h.register("alice", display_name="Alice Liddell")
        self.argon2 = count_argon2(self.h)

    def test_login_replies_username_and_display_name(self):
        """LOGIN -> OK|LOGIN|username|display_name."""
        client = self.h.connect()
        self.assertEqual(client.command("LOGIN|alice|password1"), ["OK|LOGIN|alice|Alice Liddell"])

    def test_login_username_is_case_insensitive(self):
        """Usernames are case-insensitive at login."""
        client = self.h.connect()
        self.assertEqual(client.command("LOGIN|ALICE|password1"), ["OK|LOGIN|alice|Alice Liddell"])

    def test_password_is_case_sensitive(self):
        """A password differing in case is a wrong password."""
        self.assertEqual(self.h.connect().command("LOGIN|alice|PASSWORD1"), [BAD_CREDENTIALS])

    def test_unknown_user_and_wrong_password_get_byte_identical_replies(self):
        """LOGIN: 401 bad credentials, the same reason text whether the user exists or not
        (everything the connection sees is byte-identical, the BYE after the fifth included)."""
        outputs = []
        for user in ("alice", "mallory"):
            client = self.h.connect(greet=False)
            for n in range(5):
                client.send(f"LOGIN|{user}|wrong-password-{n}")
                self.h.settle()
            outputs.append(client.transport.value())
        self.assertEqual(outputs[0], outputs[1])
        self.assertIn(b"ERR|LOGIN|401|bad credentials\n", outputs[0])

    def test_unknown_user_and_wrong_password_each_run_exactly_one_argon2_verification(self):
        """LOGIN: about the same time whether the user exists or not -- each
        runs exactly one Argon2 verification, the unknown user's against a
        real dummy hash with the same cost parameters as real ones."""
        client = self.h.connect()
        self.assertEqual(client.command("LOGIN|alice|wrong-password"), [BAD_CREDENTIALS])
        (real,) = self.argon2.verifications()
        self.assertEqual(client.command("LOGIN|mallory|wrong-password"), [BAD_CREDENTIALS])
        (dummy,) = self.argon2.verifications()
        self.assertEqual(
            client.command(f"LOGIN|alice|{PASSWORD}"), ["OK|LOGIN|alice|Alice Liddell"]
        )
        (good,) = self.argon2.verifications()
        self.assertEqual(good, real)
        self.assertNotEqual(dummy, real)
        self.assertTrue(dummy.startswith("$argon2id$"))
        self.assertEqual(argon2.extract_parameters(dummy), argon2.extract_parameters(real))

    def test_login_twice_on_one_connection_is_409(self):
        """LOGIN: 409 already logged in on this connection."""
        self.h.register("bob")
        client = self.h.login("alice")
        self.assertEqual(err_prefix(client.command("LOGIN|alice|password1")[0]), "ERR|LOGIN|409")
        self.assertEqual(err_prefix(client.command("LOGIN|bob|password1")[0]), "ERR|LOGIN|409")
        self.assertEqual(client.command("WHO"), ["OK|WHO|alice"])

    def test_failed_login_leaves_the_connection_logged_out(self):
        """After a 401 the connection is still not logged in."""
        client = self.h.connect()
        client.command("LOGIN|alice|wrongpass")
        self.assertEqual(client.command("WHO"), ["ERR|WHO|401|log in first"])


class FailedLoginLimitTests(SynchronousTestCase):
    """20 failures per address in 60 s; 5 per connection."""

    ADDRESS = "192.0.2.7"

    def setUp(self):
        self.h = Harness()
        self.h.register("alice")

    def fail_logins(self, count, address=ADDRESS):
        """``count`` failed LOGINs from ``address``, four per connection."""
        done = 0
        while done < count:
            client = self.h.connect(address)
            for _ in range(min(4, count - done)):
                self.assertEqual(client.command("LOGIN|alice|wrongpass"), [BAD_CREDENTIALS])
                done += 1
            client.disconnect()
            self.h.settle()

    def test_after_20_failures_from_one_address_login_gets_429_without_checking_the_password(self):
        """After 20 failures from one address within 60 s further attempts get ERR|LOGIN|429|too many failed logins, even with the right password."""
        self.fail_logins(20)
        client = self.h.connect(self.ADDRESS)
        self.assertEqual(
            client.command("LOGIN|alice|password1"), ["ERR|LOGIN|429|too many failed logins"]
        )
        self.assertEqual(client.command("WHO"), ["ERR|WHO|401|log in first"])

    def test_19_failures_do_not_block(self):
        """The limit is 20: the 20th attempt is still checked."""
        self.fail_logins(19)
        client = self.h.connect(self.ADDRESS)
        self.assertEqual(client.command("LOGIN|alice|password1"), ["OK|LOGIN|alice|Alice"])

    def test_resume_from_a_blocked_address_gets_429(self):
        """RESUME from a blocked address gets ERR|RESUME|429|..."""
        self.fail_logins(20)
        client = self.h.connect(self.ADDRESS)
        self.assertEqual(err_prefix(client.command(f"RESUME|alice|{A_TOKEN}")[0]), "ERR|RESUME|429")

    def test_failures_from_another_address_do_not_block(self):
        """The limit is per source address."""
        self.fail_logins(20)
        client = self.h.connect("198.51.100.1")
        self.assertEqual(client.command("LOGIN|alice|password1"), ["OK|LOGIN|alice|Alice"])

    def test_failures_older_than_60_seconds_do_not_count(self):
        """Only failures within the last 60 s count."""
        self.fail_logins(10)
        self.h.advance(31)
        self.fail_logins(10)
        self.h.advance(30)  # the first ten are now 61 s old
        client = self.h.connect(self.ADDRESS)
        self.assertEqual(client.command("LOGIN|alice|password1"), ["OK|LOGIN|alice|Alice"])

    def test_login_works_again_after_the_minute_has_passed(self):
        """Refused until the minute has passed; then the password is checked again."""
        self.fail_logins(20)
        self.h.advance(59)
        client = self.h.connect(self.ADDRESS)
        self.assertEqual(err_prefix(client.command("LOGIN|alice|password1")[0]), "ERR|LOGIN|429")
        self.h.advance(2)
        self.assertEqual(client.command("LOGIN|alice|password1"), ["OK|LOGIN|alice|Alice"])

    def test_refused_attempt_is_answered_without_hashing_the_password(self):
        """A refused attempt gets its 429 without checking the password (no hash cost)."""
        h = Harness(hash_delay=1.0)
        h.register("alice")
        for _ in range(5):
            client = h.connect(self.ADDRESS)
            for _ in range(4):
                client.send("LOGIN|alice|wrongpass")
                h.advance(1.0)
                self.assertEqual(client.lines(), [BAD_CREDENTIALS])
        client = h.connect(self.ADDRESS)
        client.send("LOGIN|alice|password1")
        h.settle()
        self.assertEqual(client.lines(), ["ERR|LOGIN|429|too many failed logins"])

    def test_attempts_sent_at_once_are_checked_in_turn_against_the_limit(self):
        """Attempts sent at once on many connections are checked a few at a time, each against the count when its turn comes.

        At most 20 failures, plus the checks already running when the 20th
        is counted (``login_checks_per_address`` - 1), per address per minute.
        """
        h = Harness(hash_delay=1.0)
        h.register("alice")
        clients = [h.connect(self.ADDRESS) for _ in range(25)]
        for client in clients:
            client.send("LOGIN|alice|wrongpass")
        for _ in range(10):
            h.advance(1.0)
        replies = [c.lines() for c in clients]
        checked = replies.count([BAD_CREDENTIALS])
        self.assertGreaterEqual(checked, 20)
        self.assertLessEqual(checked, 20 + h.config.login_checks_per_address - 1)
        self.assertEqual(replies.count(["ERR|LOGIN|429|too many failed logins"]), 25 - checked)

    def test_logins_at_once_from_one_address_all_succeed(self):
        """Many good logins at once from one address (a NAT, a reconnect storm) are not refused."""
        h = Harness(hash_delay=1.0)
        names = [f"user{i}" for i in range(30)]
        for name in names:
            h.register(name)
        clients = [h.connect(self.ADDRESS) for _ in names]
        for name, client in zip(names, clients):
            client.send(f"LOGIN|{name}|password1")
        for _ in range(10):
            h.advance(1.0)
        self.assertEqual(
            [c.lines()[0] for c in clients],
            [f"OK|LOGIN|{name}|{name.capitalize()}" for name in names],
        )

    def test_refused_attempts_do_not_count_as_failures(self):
        """Attempts refused with 429 do not count as failures themselves."""
        self.fail_logins(20)
        self.h.advance(30)
        for _ in range(10):
            client = self.h.connect(self.ADDRESS)
            for _ in range(4):
                self.assertEqual(
                    err_prefix(client.command("LOGIN|alice|wrongpass")[0]), "ERR|LOGIN|429"
                )
            client.disconnect()
        self.h.advance(31)  # 61 s after the 20 failures, 31 s after the refusals
        client = self.h.connect(self.ADDRESS)
        self.assertEqual(client.command("LOGIN|alice|password1"), ["OK|LOGIN|alice|Alice"])

    def test_refused_attempts_do_not_close_the_connection(self):
        """A 429 refusal is not a failed login on the connection either."""
        self.fail_logins(20)
        client = self.h.connect(self.ADDRESS)
        for _ in range(6):
            self.assertEqual(
                err_prefix(client.command("LOGIN|alice|wrongpass")[0]), "ERR|LOGIN|429"
            )
        self.assertFalse(client.closed)

    def test_failed_resumes_count_towards_the_address_limit(self):
        """Failures are LOGIN or RESUME."""
        for _ in range(5):
            client = self.h.connect(self.ADDRESS)
            for _ in range(4):
                self.assertEqual(
                    err_prefix(client.command(f"RESUME|alice|{A_TOKEN}")[0]), "ERR|RESUME|401"
                )
            client.disconnect()
        client = self.h.connect(self.ADDRESS)
        self.assertEqual(
            client.command("LOGIN|alice|password1"), ["ERR|LOGIN|429|too many failed logins"]
        )

    def test_fifth_failure_on_one_connection_gets_bye_429_and_close(self):
        """Each failed login gets ERR|LOGIN|401; the fifth on one connection is followed by BYE|429|too many failed logins and a close."""
        client = self.h.connect()
        for _ in range(4):
            self.assertEqual(client.command("LOGIN|alice|wrongpass"), [BAD_CREDENTIALS])
        self.assertFalse(client.closed)
        self.assertEqual(
            client.command("LOGIN|alice|wrongpass", "PING"),
            [BAD_CREDENTIALS, "BYE|429|too many failed logins"],
        )
        self.assertTrue(client.closed)

    def test_failed_resumes_count_towards_the_connection_limit(self):
        """A failed RESUME is a failed login on the connection too."""
        client = self.h.connect()
        for _ in range(2):
            client.command("LOGIN|mallory|wrongpass")
            client.command(f"RESUME|alice|{A_TOKEN}")
        self.assertFalse(client.closed)
        self.assertEqual(
            client.command(f"RESUME|alice|{A_TOKEN}"),
            ["ERR|RESUME|401|bad credentials", "BYE|429|too many failed logins"],
        )
        self.assertTrue(client.closed)


class FailedLoginBurstTests(SynchronousTestCase):
    """The failed-login limits under bursts: many connections from one
    address guessing at once, with password checks that take time."""

    def setUp(self):
        self.h = Harness()
        self.h.register("alice")

    def burst(self, h: Harness, size: int) -> list[list[str]]:
        """``size`` connections from ATTACKER each send one wrong LOGIN at
        once; the answers once every password check is done."""
        clients = [h.connect(ATTACKER) for _ in range(size)]
        for n, client in enumerate(clients):
            client.send(f"LOGIN|alice|guess{n}guess")
        for _ in range(size + 10):
            h.advance(0.5)
            if all(client.peek() for client in clients):
                break
        self.burst_clients = clients
        return [client.lines() for client in clients]

    def slow_hashing(self) -> Harness:
        # Errors a failing burst leaves in garbage Deferreds are this test's,
        # not whichever test happens to run when they are collected.
        self.addCleanup(lambda: (gc.collect(), self.flushLoggedErrors()))
        h = Harness(hash_delay=0.5, max_clients=5000)
        h.register("alice")
        self.argon2 = count_argon2(h, delay=0.5)
        return h

    def test_parallel_guesses_from_one_address_are_capped_near_the_limit(self):
        """Limits: about 20 password checks per address per minute, however
        many connections the guesses come on at once: attempts that start
        before the first failure is counted must not each get a check (a
        few already being checked may finish; the rest get 429, unchecked)."""
        h = self.slow_hashing()
        answers = self.burst(h, 40)
        checked = len(self.argon2.verifications())
        self.assertEqual(sum(a == [BAD_CREDENTIALS] for a in answers), checked)
        self.assertEqual(sum(a == [ADDRESS_BLOCKED] for a in answers), 40 - checked)
        self.assertGreaterEqual(checked, 20)
        self.assertLessEqual(checked, 25, "password checks per address are not bounded")

    def test_every_login_of_a_large_burst_from_one_address_gets_one_reply(self):
        """Rule 2: every command gets exactly one reply -- also each of 300
        LOGINs arriving at once from one address (most refused with 429),
        and every one of those connections stays usable."""
        errors = LoggedFailures(self)
        h = self.slow_hashing()
        answers = self.burst(h, 300)
        odd = [
            (n, a) for n, a in enumerate(answers) if a not in ([BAD_CREDENTIALS], [ADDRESS_BLOCKED])
        ]
        self.assertEqual(odd, [], "LOGINs without exactly one reply")
        for client in self.burst_clients:
            self.assertEqual(client.command("PING"), ["OK|PING"])
        self.assertEqual([f.getErrorMessage() for f in errors.take()], [])

    def test_login_bursts_from_one_address_do_not_lock_it_out_for_good(self):
        """Limits: the address limit lasts until the minute has passed -- after
        bursts of failed logins from an address (a NAT, say), a right password
        from it works again a minute later."""
        h = self.slow_hashing()
        for _ in range(2):
            self.burst(h, 300)
            for client in self.burst_clients:
                client.disconnect()
            h.advance(61)
        client = h.connect(ATTACKER)
        client.send(f"LOGIN|alice|{PASSWORD}")
        for _ in range(10):
            h.advance(0.5)
        self.assertEqual(client.lines(), ["OK|LOGIN|alice|Alice"])


class TokenTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness(idle_timeout=10**9)
        self.h.register("alice", display_name="Alice L.")
        self.alice = self.h.login("alice")

    def token(self, client=None):
        reply = (client or self.alice).command("TOKEN")
        self.assertEqual(len(reply), 1)
        self.assertTrue(reply[0].startswith("OK|TOKEN|"), reply)
        return reply[0].split("|")[2]

    def resume(self, token, username="alice", address=None):
        return self.h.connect(address).command(f"RESUME|{username}|{token}")

    def test_token_is_32_to_128_url_safe_characters(self):
        """OK|TOKEN|token: 32-128 characters of A-Z a-z 0-9 _ -."""
        reply = self.alice.command("TOKEN")
        self.assertEqual(len(reply), 1)
        fields = reply[0].split("|")
        self.assertEqual(fields[:2], ["OK", "TOKEN"])
        self.assertEqual(len(fields), 3)
        self.assertRegex(fields[2], re.compile(r"\A[A-Za-z0-9_-]{32,128}\Z"))

    def test_malformed_token_is_a_bad_token_and_a_failed_login(self):
        """RESUME: 401 bad or expired token (counts as a failed login), whatever the token looks like."""
        client = self.h.connect()
        for _ in range(4):
            self.assertEqual(
                client.command("RESUME|alice|short"), ["ERR|RESUME|401|bad credentials"]
            )
        self.assertEqual(
            client.command("RESUME|alice|not a token at all!"),
            ["ERR|RESUME|401|bad credentials", "BYE|429|too many failed logins"],
        )

    def test_resume_logs_in_with_a_token(self):
        """RESUME|username|token -> OK|RESUME|username|display_name."""
        token = self.token()
        self.assertEqual(self.resume(token), ["OK|RESUME|alice|Alice L."])

    def test_resume_username_is_case_insensitive(self):
        """RESUME takes the username in any case and answers in lower case."""
        self.assertEqual(self.resume(self.token(), "ALICE"), ["OK|RESUME|alice|Alice L."])

    def test_every_token_is_new_and_each_is_reusable_until_it_expires(self):
        """A user may hold several tokens, each reusable until it expires."""
        first, second = self.token(), self.token()
        self.assertNotEqual(first, second)
        for token in (first, second, first, second):
            self.assertEqual(self.resume(token), ["OK|RESUME|alice|Alice L."])

    def test_resume_with_bad_token_is_401(self):
        """RESUME: 401 bad token."""
        self.token()
        reply = self.resume(A_TOKEN)
        self.assertEqual(err_prefix(reply[0]), "ERR|RESUME|401")
        self.assertEqual(len(reply), 1)

    def test_resume_with_another_users_token_is_401(self):
        """A token is good only for the user it was issued to."""
        token = self.token()
        self.h.register("bob")
        self.assertEqual(err_prefix(self.resume(token, "bob")[0]), "ERR|RESUME|401")

    def test_unknown_user_and_bad_token_get_identical_resume_replies(self):
        """RESUME: 401 bad or expired token, the same for a user who does not exist."""
        out = []
        for user in ("alice", "mallory"):
            client = self.h.connect()
            out.append(client.command(f"RESUME|{user}|{'x' * 43}"))
        self.assertEqual(out, [["ERR|RESUME|401|bad credentials"]] * 2)

    def test_token_expires_after_token_ttl(self):
        """A token is valid for --token-ttl from issue; after that RESUME gets 401."""
        h = Harness(token_ttl=100, idle_timeout=10**9)
        h.register("alice")
        alice = h.login("alice")
        token = self.token(alice)
        h.advance(99)
        self.assertEqual(h.connect().command(f"RESUME|alice|{token}"), ["OK|RESUME|alice|Alice"])
        h.advance(2)
        self.assertEqual(
            err_prefix(h.connect().command(f"RESUME|alice|{token}")[0]), "ERR|RESUME|401"
        )

    def test_default_token_ttl_is_30_days(self):
        """Tokens are valid for 30 days by default."""
        token = self.token()
        self.h.advance(30 * 86400 - 1)
        self.assertEqual(self.resume(token), ["OK|RESUME|alice|Alice L."])
        self.h.advance(2)
        self.assertEqual(err_prefix(self.resume(token)[0]), "ERR|RESUME|401")

    def test_passwd_revokes_every_token(self):
        """PASSWD revokes every token of the user."""
        first, second = self.token(), self.token()
        self.assertEqual(self.alice.command("PASSWD|password1|password2"), ["OK|PASSWD"])
        self.assertEqual(err_prefix(self.resume(first)[0]), "ERR|RESUME|401")
        self.assertEqual(err_prefix(self.resume(second)[0]), "ERR|RESUME|401")
        third = self.token()
        self.assertEqual(self.resume(third), ["OK|RESUME|alice|Alice L."])

    def test_resume_on_a_logged_in_connection_is_409(self):
        """RESUME: 409 as for LOGIN."""
        token = self.token()
        self.assertEqual(
            err_prefix(self.alice.command(f"RESUME|alice|{token}")[0]), "ERR|RESUME|409"
        )

    def test_resume_is_followed_by_pending_events(self):
        """RESUME is followed by the pending events, as for LOGIN."""
        token = self.token()
        self.h.register("bob")
        bob = self.h.login("bob")
        self.alice.disconnect()
        self.h.settle()
        bob.command("MSG|alice|while you were away")
        client = self.h.connect()
        self.assertEqual(
            client.command(f"RESUME|alice|{token}"),
            ["OK|RESUME|alice|Alice L.", "R|bob|1|while you were away"],
        )

    def test_resume_needs_no_password_hash(self):
        """RESUME answers without the cost of a password hash."""
        h = Harness(hash_delay=5.0)
        h.register("alice")
        alice = h.login("alice")
        token = self.token(alice)
        self.assertEqual(h.connect().command(f"RESUME|alice|{token}"), ["OK|RESUME|alice|Alice"])


class SecretStorageTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness()
        self.events = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def test_passwords_are_stored_only_as_argon2id_hashes(self):
        """Passwords are stored only as slow salted hashes (Argon2id), never in clear text."""
        self.h.register("alice", password="secret password one")
        self.h.register("bob", password="secret password one")
        rows = dict(self.h.store._conn.execute("SELECT username, password_hash FROM users"))
        for stored in rows.values():
            self.assertTrue(stored.startswith("$argon2id$"), stored)
            self.assertNotIn("secret password one", stored)
        self.assertNotEqual(rows["alice"], rows["bob"])  # salted

    def test_tokens_are_stored_only_as_hashes(self):
        """The server stores only a hash of each token."""
        self.h.register("alice")
        token = self.h.login("alice").command("TOKEN")[0].split("|")[2]
        dump = "\n".join(self.h.store._conn.iterdump())
        self.assertNotIn(token, dump)

    def test_passwords_and_tokens_are_never_written_to_the_log(self):
        """Neither a password nor a token is ever written to a log."""
        from twisted.logger import formatEvent

        password, new_password = "Hunter2-very-secret", "Swordfish-also-secret"
        self.h.register("alice", password=password)
        alice = self.h.login("alice", password=password)
        token = alice.command("TOKEN")[0].split("|")[2]
        self.h.connect().command(f"LOGIN|alice|{password}x")
        self.h.connect().command(f"RESUME|alice|{token}")
        self.h.connect().command(f"RESUME|alice|{token[:-1]}Z")
        alice.command(f"PASSWD|{password}|{new_password}")
        self.h.connect().command(f"RESUME|alice|{token}")
        self.assertTrue(self.events)  # the server does log these
        text = "\n".join(formatEvent(e) + repr(e) for e in self.events)
        for secret in (password, new_password, token):
            self.assertNotIn(secret, text)


class NameAndPasswdTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness()
        self.h.register("alice")
        self.alice = self.h.login("alice")

    def test_name_strips_spaces_and_echoes_the_stripped_name(self):
        """NAME|display_name -> OK|NAME|display_name, spaces stripped; replies echo the stripped name."""
        self.assertEqual(
            self.alice.command("NAME|  Alice in Wonderland  "), ["OK|NAME|Alice in Wonderland"]
        )
        self.assertEqual(
            self.alice.command("WHOIS|alice"), ["OK|WHOIS|alice|online|-|Alice in Wonderland"]
        )
        self.alice.disconnect()
        self.h.settle()
        self.assertEqual(
            self.h.connect().command("LOGIN|alice|password1"),
            ["OK|LOGIN|alice|Alice in Wonderland"],
        )

    def test_name_may_be_64_characters(self):
        """A display name may be 64 characters long."""
        self.assertEqual(self.alice.command("NAME|" + "n" * 64), ["OK|NAME|" + "n" * 64])

    def test_invalid_name_is_400(self):
        """NAME: 400 for an empty, too long or control-character name."""
        for name in ["", "    ", "n" * 65, "a\tb", "a\x1bb", "del\x7f", "c1\x9f"]:
            reply = self.alice.command(f"NAME|{name}")
            self.assertEqual(len(reply), 1, repr(name))
            self.assertEqual(err_prefix(reply[0]), "ERR|NAME|400", repr(name))
        self.assertEqual(self.alice.command("WHOIS|alice"), ["OK|WHOIS|alice|online|-|Alice"])

    def test_passwd_changes_the_password(self):
        """PASSWD|old|new -> OK|PASSWD; the new password logs in, the old one no longer does."""
        self.assertEqual(self.alice.command("PASSWD|password1|new password"), ["OK|PASSWD"])
        self.assertEqual(self.h.connect().command("LOGIN|alice|password1"), [BAD_CREDENTIALS])
        self.assertEqual(
            self.h.connect().command("LOGIN|alice|new password"), ["OK|LOGIN|alice|Alice"]
        )

    def test_passwd_with_wrong_old_password_is_401(self):
        """PASSWD: 401 wrong old password."""
        reply = self.alice.command("PASSWD|wrongpass|new password")
        self.assertEqual(err_prefix(reply[0]), "ERR|PASSWD|401")
        self.assertFalse(self.alice.closed)
        self.assertEqual(
            self.h.connect().command("LOGIN|alice|password1"), ["OK|LOGIN|alice|Alice"]
        )

    def test_passwd_with_short_new_password_is_400(self):
        """PASSWD: 400 when the new password is shorter than --min-password-length."""
        reply = self.alice.command("PASSWD|password1|short")
        self.assertEqual(err_prefix(reply[0]), "ERR|PASSWD|400")
        self.assertEqual(
            self.h.connect().command("LOGIN|alice|password1"), ["OK|LOGIN|alice|Alice"]
        )

    def test_passwd_with_invalid_new_password_is_400(self):
        """PASSWD: 400 for a new password with a control character or over 128 characters."""
        for new in ["new\tpassword", "p" * 129]:
            self.assertEqual(
                err_prefix(self.alice.command(f"PASSWD|password1|{new}")[0]), "ERR|PASSWD|400"
            )


class LoginRecordTests(SynchronousTestCase):
    """The store reads what a login needs in one round trip."""

    def setUp(self):
        self.store = ImmediateSqliteStore()
        self.successResultOf(self.store.open())
        self.successResultOf(self.store.create_user("alice", "hash", "Alice", 0.0))
        self.successResultOf(self.store.join_room("#dev", "alice", 0.0))
        self.successResultOf(self.store.add_token("alice", "t" * 64, 100.0))

    def test_login_record_carries_the_account_and_its_rooms(self):
        """The account and every room it is a member of."""
        record = self.successResultOf(self.store.login_record("alice"))
        self.assertEqual((record.user.username, record.user.display_name), ("alice", "Alice"))
        self.assertEqual(record.rooms, {"#general", "#dev"})

    def test_login_record_of_an_unknown_user_is_none(self):
        """No account, no record."""
        self.assertIsNone(self.successResultOf(self.store.login_record("nobody")))

    def test_resume_record_needs_the_users_own_unexpired_token(self):
        """A valid token gives the record; an expired one, another user's
        or an unknown one gives None."""
        self.assertEqual(
            self.successResultOf(self.store.resume_record("alice", "t" * 64, 99.0)).user.username,
            "alice",
        )
        self.assertIsNone(self.successResultOf(self.store.resume_record("alice", "t" * 64, 100.0)))
        self.assertIsNone(self.successResultOf(self.store.resume_record("alice", "u" * 64, 99.0)))
        self.successResultOf(self.store.create_user("bob", "hash", "Bob", 0.0))
        self.assertIsNone(self.successResultOf(self.store.resume_record("bob", "t" * 64, 99.0)))
