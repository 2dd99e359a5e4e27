/* SPDX-License-Identifier: MIT */
/*
 * zstd: one frame per channel that never ends, flushed (ZSTD_e_flush) at the
 * end of every packet so that the packet decodes on arrival, while the next
 * packet still compresses against the history of the ones before it.
 *
 * No copies of our own: the encoder feeds ZSTD_compressStream2() straight
 * from the page pointers, a run of contiguous pages per call (zstd stages
 * input in its own window, so a page changing under it only yields a newer
 * version), and the decoder sets each destination page (or run of contiguous
 * pages) as ZSTD_decompressStream()'s output in turn.
 */
#include <zstd.h>

#include "compress_priv.h"

/*
 * The largest window a stream may use, both ways: 8 MiB. The decoder refuses
 * frames that ask for more, so a hostile source cannot make each channel's
 * decoder allocate zstd's default maximum (128 MiB); the encoder caps its own
 * window to match.
 */
#define ZS_WINDOW_LOG_MAX 23

static ssize_t zs_encode(struct codec_enc *e, const struct codec_page *pages, uint32_t n,
			 struct iovec *iov, uint32_t *ret_niov, struct tern_error *err)
{
	ZSTD_CCtx *cctx = e->state;
	ZSTD_outBuffer out = {e->buf, e->buf_cap, 0};
	uint32_t i, run;

	for (i = 0; i < n; i += run) {
		ZSTD_inBuffer in = {pages[i].src, 0, 0};
		ZSTD_EndDirective mode;
		size_t left;

		run = codec_run_src(pages, i, n, e->cfg.page_size);
		in.size = (size_t)run * e->cfg.page_size;
		mode = i + run == n ? ZSTD_e_flush : ZSTD_e_continue;

		do {
			size_t pos_in = in.pos, pos_out = out.pos;

			left = ZSTD_compressStream2(cctx, &out, &in, mode);
			if (ZSTD_isError(left))
				return tern_error_set(err, -EIO, "zstd: compression failed: %s",
						      ZSTD_getErrorName(left));
			/* the buffer holds the worst case: running out is a bug */
			if (out.pos == out.size ||
			    (in.pos == pos_in && out.pos == pos_out && (left || in.pos < in.size)))
				return tern_error_set(
				    err, -ENOSPC,
				    "zstd: %u pages overflow the %zu-byte payload bound", n,
				    e->buf_cap);
		} while (in.pos < in.size || (mode == ZSTD_e_flush && left));
	}
	return (ssize_t)out.pos;
}

static int zs_enc_init(struct codec_enc *e, struct tern_error *err)
{
	int level = e->cfg.level ? e->cfg.level : 1;
	ZSTD_CCtx *cctx;
	size_t r;

	if (level < 1 || level > 20)
		return tern_error_set(err, -EINVAL, "zstd: level %d is not in 1..20", level);
	cctx = ZSTD_createCCtx();
	if (!cctx)
		return tern_error_set(err, -ENOMEM, "zstd: no memory for a stream");
	r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
	/* zstd's tables give levels up to 19 windows of at most 2^23 for a
	 * stream; the ultra levels ask for more */
	if (!ZSTD_isError(r) && level >= 18)
		r = ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, ZS_WINDOW_LOG_MAX);
	if (ZSTD_isError(r)) {
		ZSTD_freeCCtx(cctx);
		return tern_error_set(err, -EINVAL, "zstd: level %d: %s", level,
				      ZSTD_getErrorName(r));
	}
	e->state = cctx;
	return 0;
}

static void zs_enc_fini(struct codec_enc *e)
{
	ZSTD_freeCCtx(e->state);
}

static int zs_decode(struct codec_dec *d, const uint8_t *payload, size_t len, uint8_t *const *dst,
		     uint32_t n, struct tern_error *err)
{
	ZSTD_DCtx *dctx = d->state;
	ZSTD_inBuffer in = {payload, len, 0};
	size_t ps = d->cfg.page_size, expect = n * ps, r;
	uint8_t spill[64];
	uint32_t i, run;

	for (i = 0; i < n; i += run) {
		ZSTD_outBuffer out = {dst[i], 0, 0};

		run = codec_run_dst(dst, i, n, ps);
		out.size = run * ps;
		while (out.pos < out.size) {
			size_t pos_in = in.pos, pos_out = out.pos;

			r = ZSTD_decompressStream(dctx, &out, &in);
			if (ZSTD_isError(r))
				return tern_error_set(err, -EPROTO, "zstd: corrupt stream: %s",
						      ZSTD_getErrorName(r));
			if (in.pos == pos_in && out.pos == pos_out)
				return tern_error_set(
				    err, -EPROTO, "zstd: packet decodes to %zu bytes, expected %zu",
				    i * ps + out.pos, expect);
		}
	}
	/* What is left must decode to nothing; the decoder may also hold
	 * decoded bytes that did not fit the last page. */
	for (;;) {
		ZSTD_outBuffer out = {spill, sizeof(spill), 0};
		size_t pos_in = in.pos;

		r = ZSTD_decompressStream(dctx, &out, &in);
		if (ZSTD_isError(r))
			return tern_error_set(err, -EPROTO, "zstd: corrupt stream: %s",
					      ZSTD_getErrorName(r));
		if (out.pos)
			return tern_error_set(
			    err, -EPROTO, "zstd: packet decodes to more than %zu bytes", expect);
		if (in.pos == pos_in)
			break;
	}
	if (in.pos != in.size)
		return tern_error_set(err, -EPROTO, "zstd: %zu payload bytes left undecoded",
				      in.size - in.pos);
	return 0;
}

static int zs_dec_init(struct codec_dec *d, struct tern_error *err)
{
	size_t r;

	d->state = ZSTD_createDCtx();
	if (!d->state)
		return tern_error_set(err, -ENOMEM, "zstd: no memory for a stream");
	r = ZSTD_DCtx_setParameter(d->state, ZSTD_d_windowLogMax, ZS_WINDOW_LOG_MAX);
	if (ZSTD_isError(r)) {
		ZSTD_freeDCtx(d->state);
		d->state = NULL;
		return tern_error_set(err, -EINVAL, "zstd: window limit: %s", ZSTD_getErrorName(r));
	}
	return 0;
}

static void zs_dec_fini(struct codec_dec *d)
{
	ZSTD_freeDCtx(d->state);
}

static uint64_t zs_payload_max(uint32_t page_size, uint32_t n)
{
	uint64_t src = (uint64_t)page_size * n;

	/* ZSTD_COMPRESSBOUND() covers one frame's blocks; the first packet
	 * also carries the frame header, and every flush closes a block */
	return ZSTD_COMPRESSBOUND(src) + 18 /* ZSTD_FRAMEHEADERSIZE_MAX */ + 3 + 64;
}

const struct codec_ops codec_zstd_ops = {
    .id = TERN_CODEC_ZSTD,
    .enc_init = zs_enc_init,
    .enc_fini = zs_enc_fini,
    .encode = zs_encode,
    .dec_init = zs_dec_init,
    .dec_fini = zs_dec_fini,
    .decode = zs_decode,
    .payload_max = zs_payload_max,
};
