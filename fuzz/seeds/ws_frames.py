#!/usr/bin/env python3
"""Writes the seed corpus of the ws_frames target: raw client bytes after the WebSocket upgrade.

Run from fuzz/: python3 seeds/ws_frames.py  (writes corpus/ws_frames/*.bin, deterministic).
Client frames are masked (RFC 6455 section 5.3); fixed mask keys keep the output reproducible.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "..", "signaling", "tests", "fixtures", "sipjs")
OUT = os.path.join(HERE, "..", "corpus", "ws_frames")

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
MASK = b"\x37\xfa\x21\x3d"


def frame(opcode, payload, fin=True, mask=MASK, length=None, rsv=0):
    """One frame; `length` overrides the header's length field (a lie about the payload)."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([bit | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return f.read()


def close_payload(code, reason=b""):
    return struct.pack(">H", code) + reason


def main():
    os.makedirs(OUT, exist_ok=True)
    register = fixture("register.txt")
    invite = fixture("invite.txt")
    bye = fixture("bye.txt")
    third = len(invite) // 3
    seeds = {
        # A SIP.js REGISTER in one masked text frame, then the browser's close.
        "text-register.bin": frame(TEXT, register) + frame(CLOSE, close_payload(1000)),
        # The same as a binary message (the gateway takes UTF-8 binary too).
        "binary-register.bin": frame(BINARY, register),
        "ping.bin": frame(PING, b"keepalive") + frame(PONG, b""),
        "close-going-away.bin": frame(CLOSE, close_payload(1001, b"page unloaded")),
        # RFC 5626 double-CRLF keep-alive, answered with one CRLF.
        "crlf-keepalive.bin": frame(TEXT, b"\r\n\r\n") + frame(TEXT, b"   "),
        # An INVITE in three fragments with a ping between them (control frames may interleave).
        "fragmented-invite.bin": frame(TEXT, invite[:third], fin=False)
        + frame(PING, b"p")
        + frame(CONT, invite[third : 2 * third], fin=False)
        + frame(CONT, invite[2 * third :])
        + frame(TEXT, bye),
        # A call's worth of browser messages in a row.
        "register-invite-bye.bin": frame(TEXT, register)
        + frame(TEXT, invite)
        + frame(TEXT, fixture("ack-for-200.txt"))
        + frame(TEXT, bye)
        + frame(CLOSE, close_payload(1000, b"bye")),
        # Violations: unmasked, invalid UTF-8 binary, bad close code, reserved bits and opcode.
        "unmasked-text.bin": frame(TEXT, register, mask=None),
        "binary-not-utf8.bin": frame(BINARY, b"INVITE \xff\xfe sip:x SIP/2.0\r\n\r\n"),
        "close-bad-code.bin": frame(CLOSE, close_payload(1005)) + frame(CLOSE, b"\x03"),
        "reserved-bits.bin": frame(TEXT, b"x", rsv=0b100) + frame(0x3, b"y"),
        "control-fragmented.bin": frame(PING, b"a", fin=False) + frame(CONT, b"b"),
        "continuation-first.bin": frame(CONT, b"orphan"),
        # Lengths: a header claiming a frame over the 64 KiB limit, one claiming 2^63 - 1, and a
        # 126-byte ping (control frames carry at most 125).
        "frame-over-limit.bin": frame(TEXT, b"", length=64 * 1024 + 1),
        "length-2-63.bin": frame(BINARY, b"", length=(1 << 63) - 1),
        "long-ping.bin": frame(PING, b"p" * 126),
        # A message over 64 KiB from frames under it: the message limit (close 1009).
        "message-over-limit.bin": frame(TEXT, b"a" * 40000, fin=False) + frame(CONT, b"b" * 30000),
    }
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"{len(seeds)} seeds in {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
