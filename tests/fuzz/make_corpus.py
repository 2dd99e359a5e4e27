#!/usr/bin/env python3
# Writes the seed corpus of fuzz_xbzrle (tests/fuzz/corpus/xbzrle/). Byte 0
# picks the harness mode (0 delta, 1 packet payload, 2 encoder round trip),
# byte 1 the page size (64 * (1 + b % 64)) or page count (1 + b % 4); see
# fuzz_xbzrle.c. Files a fuzzing run finds go in the same directory, named
# crash-<sha1> by libFuzzer: keep them, they are regression tests.
import os
import random

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus', 'xbzrle')
os.makedirs(out, exist_ok=True)
rnd = random.Random(4)

seeds = {
    # mode 0: deltas against a 64-byte page (byte 1 = 0) or 4096 (63)
    'delta-empty': [0, 0],
    'delta-first-byte': [0, 0, 0, 1, 0xaa],
    'delta-two-pairs': [0, 0, 5, 3, 1, 2, 3, 10, 1, 9],
    'delta-whole-page': [0, 0, 0, 64] + [0x5a] * 64,
    'delta-last-byte': [0, 0, 63, 1, 7],
    'delta-4k-varint': [0, 63, 0xff, 0x1f, 1, 9],
    'delta-trunc-varint': [0, 0, 0x85],
    'delta-trunc-skip': [0, 0, 4],
    'delta-trunc-bytes': [0, 0, 4, 3, 1],
    'delta-overlong': [0, 0, 60, 4, 1, 2, 3, 4, 0],
    'delta-skip-past': [0, 0, 64, 1, 9],
    'delta-count-past': [0, 0, 60, 5, 1, 2, 3, 4, 5],
    'delta-huge-count': [0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f],
    'delta-empty-changed': [0, 0, 3, 0],
    'delta-empty-skip': [0, 0, 3, 1, 9, 0, 1, 9],
    'delta-nonminimal': [0, 0, 0x83, 0x00, 1, 9],
    'delta-varint-6': [0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
    # mode 1: XBZRLE packet payloads of 4096-byte pages
    'payload-unchanged': [1, 0, 2],
    'payload-raw': [1, 0, 0] + [0x33] * 4096,
    'payload-raw-short': [1, 0, 0] + [0x33] * 4095,
    'payload-two': [1, 1, 2, 1, 0, 3, 5, 1, 9],
    'payload-delta-zero-len': [1, 0, 1, 0, 0],
    'payload-delta-past': [1, 0, 1, 0, 3, 0x90, 0x20, 1],
    'payload-bad-kind': [1, 0, 7],
    'payload-trailing': [1, 0, 2, 2],
    'payload-four': [1, 3, 2, 2, 1, 0, 3, 0, 1, 1, 2],
    # mode 2: encoder round trips
    'encode-sparse': [2, 63] + [rnd.randrange(256) for _ in range(64)] + [10, 1, 200, 2],
    'encode-dense': [2, 1] + [rnd.randrange(256) for _ in range(400)],
    'encode-equal': [2, 0, 1, 2, 3, 4],
}
for name, data in seeds.items():
    with open(os.path.join(out, name), 'wb') as f:
        f.write(bytes(data))
print(f'{len(seeds)} seeds in {out}')
