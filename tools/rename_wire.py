"""Rename the wire classes to names that say what they are.

Run from the repository root::

    python tools/rename_wire.py            # rename, then ruff fixes the import order
    python tools/rename_wire.py --check    # list what would change; exit 1 if anything

It is idempotent: the old names are gone after one run, so running it again
(say, after merging a branch written against the old names) changes only
what still uses them.  It renames

* ``wire.Old`` everywhere (code, comments, docstrings), for every module of
  ``messenger/``, ``tests/``, ``bench/``, ``tools/`` and ``twisted/``;
* the bare name ``Old`` in code (not in strings or comments, not after a
  ``.``) inside ``messenger/wire/`` and in every module that imports it with
  ``from messenger.wire import ...``.

The verb stays each class's ``NAME``: only the Python names change.
"""

from __future__ import annotations

import argparse
import ast
import io
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

#: Old class name -> new class name.  The verbs themselves do not change.
RENAMES = {
    # client commands
    "Usr": "CreateAccount",
    "Token": "NewToken",
    "Msg": "SendMessage",
    "Send": "SendMessageOnce",
    "Bcst": "Broadcast",
    "Ack": "Acknowledge",
    "Who": "WhoIsOnline",
    "Whois": "LookUpUser",
    "Rooms": "MyRooms",
    "Members": "RoomMembers",
    "Name": "SetDisplayName",
    "Passwd": "SetPassword",
    # server messages
    "H": "HistoryLine",
    "R": "DirectMessage",
    "C": "RoomMessage",
    "Dlv": "Delivered",
    "On": "UserOnline",
    "Off": "UserOffline",
    "Joined": "MemberJoined",
    "Parted": "MemberParted",
}

ROOTS = ("messenger", "tests", "bench", "tools", "twisted")
WIRE_PACKAGE = Path("messenger/wire")
THIS_FILE = Path("tools/rename_wire.py")

_QUALIFIED = re.compile(r"\bwire\.(%s)\b" % "|".join(map(re.escape, RENAMES)))


def imported_from_wire(source: str) -> set[str]:
    """The old names a module imports with ``from messenger.wire import``."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("messenger.wire"):
            names.update(alias.name for alias in node.names if alias.name in RENAMES)
    return names


def rename_bare(source: str, names: set[str]) -> str:
    """Rename the NAME tokens in ``names`` that are not attributes."""
    if not names:
        return source
    lines = source.splitlines(keepends=True)
    edits = []  # (row, col, old, new), applied right to left
    previous = None
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if (
            token.type == tokenize.NAME
            and token.string in names
            and not (previous is not None and previous.string == ".")
        ):
            edits.append((token.start[0], token.start[1], token.string, RENAMES[token.string]))
        if token.type not in (tokenize.NL, tokenize.COMMENT):
            previous = token
    for row, col, old, new in sorted(edits, reverse=True):
        line = lines[row - 1]
        assert line[col : col + len(old)] == old
        lines[row - 1] = line[:col] + new + line[col + len(old) :]
    return "".join(lines)


def rename(path: Path, source: str) -> str:
    text = _QUALIFIED.sub(lambda m: "wire." + RENAMES[m.group(1)], source)
    if WIRE_PACKAGE in path.parents:
        bare = set(RENAMES)
    else:
        bare = imported_from_wire(text)
    return rename_bare(text, bare)


def python_files(root: Path) -> list[Path]:
    files = []
    for top in ROOTS:
        for path in sorted((root / top).rglob("*.py")):
            relative = path.relative_to(root)
            if relative == THIS_FILE or ".venv" in relative.parts:
                continue
            files.append(relative)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; list what would")
    args = parser.parse_args(argv)
    root = Path.cwd()
    changed = []
    for path in python_files(root):
        source = (root / path).read_text(encoding="utf-8")
        renamed = rename(path, source)
        if renamed != source:
            changed.append(str(path))
            if not args.check:
                (root / path).write_text(renamed, encoding="utf-8")
    for name in changed:
        print(("would rename in " if args.check else "renamed in ") + name)
    if args.check:
        return 1 if changed else 0
    if changed and shutil.which("ruff"):
        # Renamed imports are out of order now; the formatter may rewrap.
        subprocess.run(["ruff", "check", "--fix", "--select", "I", *changed], check=False)
        subprocess.run(["ruff", "format", *changed], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
