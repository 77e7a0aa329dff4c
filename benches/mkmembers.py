#!/usr/bin/env python3
"""Re-encodes a file as snapjob's gzip members, for benchmarks: python3 benches/mkmembers.py SRC DST LEVEL"""
# Re-encodes a file as snapjob's gzip members (1 MiB each, SJ index entry), level from argv.
import sys, zlib, struct
src, dst, level = sys.argv[1], sys.argv[2], int(sys.argv[3])
B = 1 << 20
with open(src, 'rb') as f, open(dst, 'wb') as o:
    while True:
        block = f.read(B)
        if not block:
            break
        c = zlib.compressobj(level, zlib.DEFLATED, -15)
        body = c.compress(block) + c.flush()
        total = 24 + len(body) + 8
        o.write(bytes([0x1f,0x8b,8,4,0,0,0,0,0,255,12,0]) + b'SJ\x08\x00' + struct.pack('<II', total, len(block)))
        o.write(body)
        o.write(struct.pack('<II', zlib.crc32(block) & 0xffffffff, len(block)))
