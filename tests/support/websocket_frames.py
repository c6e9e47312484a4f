"""Raw WebSocket frames a client would send, built byte by byte.

wsproto encodes every ``str`` it sends as UTF-8 and so cannot send a text
message that is not UTF-8; tests that need one build the frame here
(RFC 6455, section 5.2: a client's frames are always masked).
"""

from __future__ import annotations

TEXT = 0x1
CONTINUATION = 0x0
#: Any four bytes do; fixed so that a failing test is reproducible.
MASKING_KEY = b"\x37\xfa\x21\x3d"


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One masked frame: ``fin`` false leaves the message unfinished."""
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        length = bytes([0x80 | size])
    elif size < 1 << 16:
        length = bytes([0x80 | 126]) + size.to_bytes(2, "big")
    else:
        length = bytes([0x80 | 127]) + size.to_bytes(8, "big")
    masked = bytes(byte ^ MASKING_KEY[i % 4] for i, byte in enumerate(payload))
    return bytes([first]) + length + MASKING_KEY + masked


def text_frame(payload: bytes, fin: bool = True) -> bytes:
    """A text message (or its first frame) whose payload is ``payload`` as
    is, UTF-8 or not."""
    return client_frame(TEXT, payload, fin)
