"""A stand-in for the import's reader process (tests only): it sends a frame nobody can
decode, then keeps writing as a reader with more batches would, so it never ends by itself."""

from __future__ import annotations

import struct
import sys

out = sys.stdout.buffer
junk = b"\xc1" * 64  # 0xc1 is never valid msgpack
out.write(struct.pack(">I", len(junk)) + junk)
out.flush()
while True:
    out.write(b"\0" * 65536)
