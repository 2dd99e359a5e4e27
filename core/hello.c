/* SPDX-License-Identifier: MIT */
/*
 * The handshake. HELLO carries everything both sides must agree on before a
 * page moves:
 *
 *   uuid[16] | page_size u32 | channels u32 | method u32 | zlib level u32 |
 *   zstd level u32 | caps u64 | nblocks u32 |
 *   nblocks x (name: u16 length + bytes | size u64)
 *
 * The destination checks each field against its own configuration and
 * answers HELLO_ACK, or ERROR with the reason (another RAM layout, a page
 * size it does not use, a capability it does not know, a page encoding it
 * cannot decode ...). The method is the source's multifd-compression: the
 * destination follows it, provided it can decode every codec it may bring.
 */
#include "core_priv.h"

int hello_encode(struct tern_session *s, struct buf *b)
{
	uint32_t i;

	buf_put(b, s->uuid, 16);
	buf_put_u32(b, s->page_size);
	buf_put_u32(b, s->nchannels);
	buf_put_u32(b, s->method);
	buf_put_u32(b, (uint32_t)s->zlib_level);
	buf_put_u32(b, (uint32_t)s->zstd_level);
	buf_put_u64(b, caps_bits(&s->params) & CAPS_WIRE);
	buf_put_u32(b, s->nblocks);
	for (i = 0; i < s->nblocks; i++) {
		buf_put_str(b, s->blocks[i]->name);
		buf_put_u64(b, s->blocks[i]->size);
	}
	return b->oom ? -ENOMEM : 0;
}

int hello_check(struct tern_session *s, const uint8_t *p, uint32_t len, struct tern_error *err)
{
	const uint8_t *uuid;
	uint32_t page, nch, method, zlib, zstd, nblocks, i;
	uint64_t caps;
	struct rd r;
	int ret;

	rd_init(&r, p, len);
	uuid = rd_bytes(&r, 16);
	page = rd_u32(&r);
	nch = rd_u32(&r);
	method = rd_u32(&r);
	zlib = rd_u32(&r);
	zstd = rd_u32(&r);
	caps = rd_u64(&r);
	nblocks = rd_u32(&r);
	if (r.bad)
		return tern_error_set(err, -EPROTO, "HELLO: truncated (%u bytes)", len);
	if (page != s->page_size)
		return tern_error_set(err, -EPROTO, "HELLO: page size %u, ours is %u", page,
				      s->page_size);
	if (!nch || nch > TERN_MAX_CHANNELS)
		return tern_error_set(err, -EPROTO, "HELLO: %u worker channels, outside 1..%u", nch,
				      TERN_MAX_CHANNELS);
	if (!mf_method_codecs(method))
		return tern_error_set(err, -EPROTONOSUPPORT, "HELLO: unknown page encoding %u",
				      method);
	ret = mf_method_check(method, "HELLO", err);
	if (ret)
		return ret;
	if (zlib < 1 || zlib > 9 || zstd < 1 || zstd > 20)
		return tern_error_set(
		    err, -EPROTO,
		    "HELLO: zlib level %u (1..9) or zstd level %u (1..20) out of range", zlib,
		    zstd);
	if (caps & ~CAPS_KNOWN)
		return tern_error_set(err, -EPROTONOSUPPORT,
				      "HELLO: unknown capabilities %#" PRIx64, caps & ~CAPS_KNOWN);
	if ((caps & CAP_BIT(CAP_POSTCOPY_RAM)) && !caps_get(&s->params, CAP_POSTCOPY_RAM))
		return tern_error_set(
		    err, -EPROTO,
		    "HELLO: postcopy-ram is on at the source but not here (set it "
		    "on both sides)");
	if ((caps & CAP_BIT(CAP_POSTCOPY_RAM)) && nch >= TERN_MAX_CHANNELS)
		return tern_error_set(err, -EPROTO,
				      "HELLO: postcopy-ram with %u worker channels: at most %u",
				      nch, TERN_MAX_CHANNELS - 1);
	if (nblocks != s->nblocks)
		return tern_error_set(err, -EPROTO,
				      "RAM layout mismatch: source has %u blocks, destination %u",
				      nblocks, s->nblocks);
	for (i = 0; i < nblocks; i++) {
		const struct tern_ram_block *b = s->blocks[i];
		char name[256];
		uint64_t size;

		rd_str(&r, name, sizeof(name));
		size = rd_u64(&r);
		if (r.bad)
			return tern_error_set(err, -EPROTO, "HELLO: RAM block %u truncated", i);
		if (strcmp(name, b->name))
			return tern_error_set(
			    err, -EPROTO,
			    "RAM layout mismatch: block %u is '%s' on the source, "
			    "'%s' here",
			    i, name, b->name);
		if (size != b->size)
			return tern_error_set(err, -EPROTO,
					      "RAM layout mismatch: block '%s' has %" PRIu64
					      " bytes on the source, %" PRIu64 " here",
					      name, size, b->size);
	}
	if (rd_left(&r))
		return tern_error_set(err, -EPROTO, "HELLO: %zu trailing bytes", rd_left(&r));
	/* stats_fill() reads the channel count under the lock */
	pthread_mutex_lock(&s->lock);
	memcpy(s->uuid, uuid, 16);
	s->nchannels = nch;
	s->nworkers = nch + ((caps & CAP_BIT(CAP_POSTCOPY_RAM)) ? 1 : 0);
	s->peer_caps = caps;
	s->method = method;
	s->zlib_level = (int)zlib;
	s->zstd_level = (int)zstd;
	pthread_mutex_unlock(&s->lock);
	return 0;
}
