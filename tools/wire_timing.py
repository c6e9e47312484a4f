"""Micro timing of messenger.wire's hottest paths (not a test).

Run: ``python tools/wire_timing.py [OLD_WIRE.py]``; with a path (say, the
single-file wire.py of an older commit, ``git show REV:messenger/wire.py``),
it times that module too, interleaved, for a before/after comparison.  Prints the mean time of one call, in
microseconds, best of 25 runs, for parsing the lines a server reads most
(MSG, SEND, ACK), parsing the lines a client reads most (R, C, DLV, OK|MSG),
formatting the events a server writes most, and a rarer command for contrast.
"""

from __future__ import annotations

import importlib.util
import sys
import timeit
from types import ModuleType

from messenger import wire

CLIENT_LINES = {
    "MSG": "MSG|bob|hello there, how are you today?",
    "MSG room": "MSG|#general|hello there, how are you today?",
    "SEND": "SEND|c-12345|bob|hello there | with a pipe",
    "ACK": "ACK|123456789",
    "HISTORY": "HISTORY|#general|50|before|1000",
    "USR": "USR|alice|correct horse|Alice",
}

SERVER_LINES = {
    "R": "R|alice|123456789|hello there, how are you today?",
    "C": "C|#general|alice|123456789|hello there, how are you today?",
    "DLV": "DLV|123456789|bob|2026-11-22T09:30:00.123Z",
    "OK|MSG": "OK|MSG|123456789",
}


def measure(call: object, number: int = 20_000) -> float:
    best = min(timeit.repeat(call, number=number, repeat=25))  # type: ignore[arg-type]
    return best / number * 1e6


def load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("wire_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["wire_before"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def main() -> None:
    modules = [("now", wire)]
    if len(sys.argv) > 1:
        modules.insert(0, ("before", load(sys.argv[1])))
    print(" " * 19 + "".join(f"{label:>10}" for label, _ in modules))

    def row(name: str, calls: list[object]) -> None:
        print(f"  {name:17}" + "".join(f"{measure(call):7.2f} us" for call in calls))

    print("parse_command")
    for name, line in CLIENT_LINES.items():
        row(name, [lambda m=m, line=line: m.parse_command(line) for _, m in modules])
    print("parse_server_line")
    for name, line in SERVER_LINES.items():
        row(name, [lambda m=m, line=line: m.parse_server_line(line) for _, m in modules])
    print("to_line")
    for name, line in SERVER_LINES.items():
        row(name, [m.parse_server_line(line).to_line for _, m in modules])


if __name__ == "__main__":
    main()
