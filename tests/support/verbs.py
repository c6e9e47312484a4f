"""What the tests expect a reply to name, worked out apart from the parser."""

from messenger import wire


def verb_of(line: str) -> str:
    """The upper-case verb a reply to this line names, or ``"?"`` when the
    verb is unknown or not ASCII (docs/protocol.md, rule 5)."""
    verb = line.partition("|")[0]
    verb = verb.upper() if verb.isascii() else "?"
    return verb if verb in wire.CLIENT_COMMANDS else "?"
