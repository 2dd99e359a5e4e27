/* SPDX-License-Identifier: MIT */
/*
 * zlib: one deflate stream per channel, flushed (Z_SYNC_FLUSH) at the end of
 * every packet so that the packet decodes on arrival, while the next packet
 * still compresses against the history of the ones before it.
 *
 * Raw deflate (no zlib header, no Adler-32): the stream never ends, so its
 * trailing checksum would never be sent, yet computing it would cost every
 * byte; TCP already checks the bytes, and a corrupt or mis-sized packet is
 * still caught by the exact decoded length.
 *
 * No copies of our own: the encoder feeds deflate straight from the page
 * pointers, a run of contiguous pages per call (deflate copies them into its
 * window, so a page changing under it only yields a newer version), and the
 * decoder sets each destination page (or run of contiguous pages) as
 * inflate's output in turn.
 */
#include <stdlib.h>
#include <zlib.h>

#include "compress_priv.h"

static ssize_t zl_encode(struct codec_enc *e, const struct codec_page *pages, uint32_t n,
			 struct iovec *iov, uint32_t *ret_niov, struct tern_error *err)
{
	z_stream *zs = e->state;
	uint32_t ps = e->cfg.page_size, i, run;
	int r;

	zs->next_out = e->buf;
	zs->avail_out = (uInt)e->buf_cap;
	for (i = 0; i < n; i += run) {
		run = codec_run_src(pages, i, n, ps);
		zs->next_in = (Bytef *)pages[i].src;
		zs->avail_in = run * ps;
		r = deflate(zs, i + run == n ? Z_SYNC_FLUSH : Z_NO_FLUSH);
		if (r != Z_OK)
			return tern_error_set(err, -EIO, "zlib: deflate failed (%d): %s", r,
					      zs->msg ? zs->msg : "no message");
		/* the buffer holds the worst case: running out is a bug */
		if (zs->avail_in || !zs->avail_out)
			return tern_error_set(err, -ENOSPC,
					      "zlib: %u pages overflow the %zu-byte payload bound",
					      n, e->buf_cap);
	}
	return (ssize_t)(e->buf_cap - zs->avail_out);
}

static int zl_enc_init(struct codec_enc *e, struct tern_error *err)
{
	int level = e->cfg.level ? e->cfg.level : 1;
	z_stream *zs;
	int r;

	if (level < 1 || level > 9)
		return tern_error_set(err, -EINVAL, "zlib: level %d is not in 1..9", level);
	zs = calloc(1, sizeof(*zs));
	if (!zs)
		return tern_error_set(err, -ENOMEM, "zlib: no memory for a stream");
	r = deflateInit2(zs, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
	if (r != Z_OK) {
		free(zs);
		return tern_error_set(err, r == Z_MEM_ERROR ? -ENOMEM : -EINVAL,
				      "zlib: deflateInit2 failed (%d)", r);
	}
	e->state = zs;
	return 0;
}

static void zl_enc_fini(struct codec_enc *e)
{
	if (e->state) {
		deflateEnd(e->state);
		free(e->state);
	}
}

static int zl_corrupt(z_stream *zs, int r, struct tern_error *err)
{
	return tern_error_set(err, -EPROTO, "zlib: corrupt stream: %s",
			      zs->msg		  ? zs->msg
			      : r == Z_STREAM_END ? "stream ends inside a packet"
						  : "inflate error");
}

static int zl_decode(struct codec_dec *d, const uint8_t *payload, size_t len, uint8_t *const *dst,
		     uint32_t n, struct tern_error *err)
{
	z_stream *zs = d->state;
	size_t ps = d->cfg.page_size, expect = n * ps;
	uint8_t spill[64];
	uint32_t i, run;
	int r;

	zs->next_in = (Bytef *)payload;
	zs->avail_in = (uInt)len;
	for (i = 0; i < n; i += run) {
		run = codec_run_dst(dst, i, n, ps);
		zs->next_out = dst[i];
		zs->avail_out = (uInt)(run * ps);
		while (zs->avail_out) {
			r = inflate(zs, Z_SYNC_FLUSH);
			if (r == Z_BUF_ERROR) /* no progress: the input is used up */
				return tern_error_set(
				    err, -EPROTO, "zlib: packet decodes to %zu bytes, expected %zu",
				    i * ps + (run * ps - zs->avail_out), expect);
			if (r != Z_OK)
				return zl_corrupt(zs, r, err);
		}
	}
	/* What is left must decode to nothing (the flush marker); inflate may
	 * also hold the rest of a match, which it writes only now. */
	for (;;) {
		zs->next_out = spill;
		zs->avail_out = sizeof(spill);
		r = inflate(zs, Z_SYNC_FLUSH);
		if (zs->avail_out != sizeof(spill))
			return tern_error_set(
			    err, -EPROTO, "zlib: packet decodes to more than %zu bytes", expect);
		if (r == Z_BUF_ERROR)
			break;
		if (r != Z_OK)
			return zl_corrupt(zs, r, err);
	}
	if (zs->avail_in)
		return tern_error_set(err, -EPROTO, "zlib: %u payload bytes left undecoded",
				      zs->avail_in);
	return 0;
}

static int zl_dec_init(struct codec_dec *d, struct tern_error *err)
{
	z_stream *zs = calloc(1, sizeof(*zs));
	int r;

	if (!zs)
		return tern_error_set(err, -ENOMEM, "zlib: no memory for a stream");
	r = inflateInit2(zs, -15);
	if (r != Z_OK) {
		free(zs);
		return tern_error_set(err, r == Z_MEM_ERROR ? -ENOMEM : -EINVAL,
				      "zlib: inflateInit2 failed (%d)", r);
	}
	d->state = zs;
	return 0;
}

static void zl_dec_fini(struct codec_dec *d)
{
	if (d->state) {
		inflateEnd(d->state);
		free(d->state);
	}
}

static uint64_t zl_payload_max(uint32_t page_size, uint32_t n)
{
	uint64_t src = (uint64_t)page_size * n;

	/* compressBound()'s stored-block worst case, plus the sync-flush marker
	 * (an empty stored block) and slack */
	return src + (src >> 12) + (src >> 14) + (src >> 25) + 13 + 64;
}

const struct codec_ops codec_zlib_ops = {
    .id = TERN_CODEC_ZLIB,
    .enc_init = zl_enc_init,
    .enc_fini = zl_enc_fini,
    .encode = zl_encode,
    .dec_init = zl_dec_init,
    .dec_fini = zl_dec_fini,
    .decode = zl_decode,
    .payload_max = zl_payload_max,
};
