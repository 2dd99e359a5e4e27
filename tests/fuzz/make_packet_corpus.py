#!/usr/bin/env python3
# Writes the seed corpus of fuzz_packet (tests/fuzz/corpus/packet/): byte 0
# picks the method (0 none, 1 zlib, 2 zstd, 3 xbzrle, 4 auto), then a worker
# packet as multifd/multifd.h lays it out: header, offsets, payload. Pages are
# 4096 bytes (the harness's page size on x86-64); the block has 16 pages.
# Files a fuzzing run finds go in the same directory: keep them.
import os
import random
import struct
import subprocess
import zlib

PAGE = 4096
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus', 'packet')
os.makedirs(out, exist_ok=True)
rnd = random.Random(7)
NONE, ZLIB, ZSTD, XBZRLE = 1, 2, 3, 4
METHOD = {'none': 0, 'zlib': 1, 'zstd': 2, 'xbzrle': 3, 'auto': 4}


def hdr(normal, zero, codec, plen, flags=0, seq=0, rnd_=1, block=0, magic=0x54524e50,
        version=1, reserved=0):
    return struct.pack('>IHHQQIIIIII', magic, version, flags, seq, rnd_, block, normal, zero,
                       codec, plen, reserved)


def packet(method, codec, offs_normal, offs_zero, payload, **kw):
    h = hdr(len(offs_normal), len(offs_zero), codec, len(payload), **kw)
    offs = b''.join(struct.pack('>Q', o * PAGE) for o in offs_normal + offs_zero)
    return bytes([METHOD[method]]) + h + offs + payload


def text_page(seed):
    r = random.Random(seed)
    words = [b'page', b'dirty', b'round', b'channel', b'the', b'of', b'guest']
    s = b''
    while len(s) < PAGE:
        s += r.choice(words) + b' '
    return s[:PAGE]


def deflate(data):
    c = zlib.compressobj(1, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)


def zstd(data):
    try:
        return subprocess.run(['zstd', '-1', '-c', '-q'], input=data, check=True,
                              capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None


pages2 = text_page(1) + text_page(2)
seeds = {
    'none-two-pages': packet('none', NONE, [0, 15], [3], pages2),
    'none-zero-only': packet('none', NONE, [], [1, 2, 3], b''),
    'none-bad-offset': packet('none', NONE, [16], [], text_page(3)),
    'none-sync': bytes([0]) + hdr(0, 0, NONE, 0, flags=1),
    'none-codec-zstd': packet('none', ZSTD, [0], [], b'\x28\xb5\x2f\xfd' + bytes(20)),
    'zlib-two-pages': packet('zlib', ZLIB, [0, 15], [4], deflate(pages2)),
    'zlib-garbage': packet('zlib', ZLIB, [2], [], bytes(rnd.randrange(256) for _ in range(80))),
    'zlib-short': packet('zlib', ZLIB, [2, 3], [], deflate(text_page(4))),
    'zlib-raw-page': packet('zlib', NONE, [5], [], text_page(5)),
    'zstd-garbage': packet('zstd', ZSTD, [7], [], b'\x28\xb5\x2f\xfd' + bytes(rnd.randrange(256) for _ in range(60))),
    'zstd-over-bound': bytes([2]) + hdr(1, 0, ZSTD, 1 << 30) + struct.pack('>Q', 0),
    'xbzrle-raw-and-unchanged': packet('xbzrle', XBZRLE, [0, 1], [], b'\x00' + text_page(6) + b'\x02'),
    'xbzrle-delta': packet('xbzrle', XBZRLE, [15], [], b'\x01\x00\x05' + bytes([10, 3, 1, 2, 3])),
    'xbzrle-delta-past-page': packet('xbzrle', XBZRLE, [15], [], b'\x01\x00\x06' + bytes([0xfe, 0x1f, 10]) + bytes(3)),
    'xbzrle-bad-kind': packet('xbzrle', XBZRLE, [1], [], b'\x09'),
    'auto-zlib-refused': packet('auto', ZLIB, [0], [], deflate(text_page(7))),
    'auto-xbzrle': packet('auto', XBZRLE, [3], [8], b'\x00' + text_page(8)),
    'auto-none': packet('auto', NONE, [3], [], text_page(9)),
}
z = zstd(pages2)
if z:
    seeds['zstd-two-pages'] = packet('zstd', ZSTD, [0, 15], [6], z)
    seeds['auto-zstd'] = packet('auto', ZSTD, [8, 9], [], z)
for name, data in seeds.items():
    with open(os.path.join(out, name), 'wb') as f:
        f.write(data)
