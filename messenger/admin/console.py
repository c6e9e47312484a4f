"""Where messenger-admin reads and writes: the terminal, or test doubles."""

from __future__ import annotations

import getpass
import sys


class Console:
    """Where a command reads and writes: the real terminal, or test doubles."""

    def __init__(self, stdin=None, stdout=None, stderr=None) -> None:
        self.stdin = stdin if stdin is not None else sys.stdin
        self.stdout = stdout if stdout is not None else sys.stdout
        self.stderr = stderr if stderr is not None else sys.stderr

    def out(self, text: str = "") -> None:
        self.stdout.write(text + "\n")

    def err(self, text: str) -> None:
        self.stderr.write(text + "\n")

    def ask_password(self, prompt: str) -> str:
        """Read a password without echo (getpass uses the terminal itself)."""
        return getpass.getpass(prompt)

    def ask(self, prompt: str) -> str:
        self.stderr.write(prompt)
        self.stderr.flush()
        line = self.stdin.readline()
        return line.rstrip("\n")

    def progress(self, total: int, unit: str, description: str):
        """A progress bar on stderr, shown only when it is a terminal."""
        from tqdm import tqdm

        return tqdm(
            total=total,
            unit=unit,
            desc=description,
            file=self.stderr,
            disable=None if _isatty(self.stderr) else True,
            leave=False,
        )


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
