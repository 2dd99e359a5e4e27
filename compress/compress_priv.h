/* SPDX-License-Identifier: MIT */
/*
 * compress internals: the ops table each codec fills, and the encoder and
 * decoder objects codec.c builds around it. codec.c owns what every codec
 * shares (the output buffer, the stats, the clock); a codec file owns only
 * its stream state.
 */
#ifndef TERN_COMPRESS_PRIV_H
#define TERN_COMPRESS_PRIV_H

#include "compress.h"

struct codec_enc {
	struct codec_config cfg;
	const struct codec_ops *ops;
	void *state;  /* the codec's own: a z_stream, a ZSTD_CCtx, ... */
	uint8_t *buf; /* payload buffer, @buf_cap bytes */
	size_t buf_cap;
	struct codec_stats st; /* worker thread only */
};

struct codec_dec {
	struct codec_config cfg;
	const struct codec_ops *ops;
	void *state;
	struct codec_stats st;
};

/*
 * One codec. encode() writes the payload of @n pages into e->buf (room for
 * codec_payload_max() bytes, allocated by codec.c) and returns its length;
 * it may instead fill @iov itself (the none codec points at the pages) and
 * set *ret_niov. decode() fills @n pages at @dst from @len payload bytes.
 * Both update only the codec-specific stats; codec.c counts pages, bytes and
 * time.
 */
struct codec_ops {
	enum tern_codec_id id;
	bool no_buf; /* encode() never writes e->buf (none) */
	int (*enc_init)(struct codec_enc *e, struct tern_error *err);
	void (*enc_fini)(struct codec_enc *e);
	ssize_t (*encode)(struct codec_enc *e, const struct codec_page *pages, uint32_t n,
			  struct iovec *iov, uint32_t *ret_niov, struct tern_error *err);
	int (*dec_init)(struct codec_dec *d, struct tern_error *err);
	void (*dec_fini)(struct codec_dec *d);
	int (*decode)(struct codec_dec *d, const uint8_t *payload, size_t len, uint8_t *const *dst,
		      uint32_t n, struct tern_error *err);
	/* The worst-case payload of @n pages of @page_size bytes. */
	uint64_t (*payload_max)(uint32_t page_size, uint32_t n);
};

/*
 * How many pages from @i on are contiguous in memory (each page_size after
 * the one before): zlib and zstd take them in one call, which saves the
 * per-call cost that would otherwise be paid per page.
 */
static inline uint32_t codec_run_src(const struct codec_page *pages, uint32_t i, uint32_t n,
				     size_t ps)
{
	uint32_t j = i + 1;

	while (j < n && pages[j].src == pages[j - 1].src + ps)
		j++;
	return j - i;
}

static inline uint32_t codec_run_dst(uint8_t *const *dst, uint32_t i, uint32_t n, size_t ps)
{
	uint32_t j = i + 1;

	while (j < n && dst[j] == dst[j - 1] + ps)
		j++;
	return j - i;
}

/*
 * Guest RAM changes under the encoder: the guest keeps running. In C that is
 * a data race, so the compiler may assume it does not happen and read a
 * guest page again where the code reads it once and then uses its copy --
 * clang turns "copy the page into the payload, then the payload into the
 * XBZRLE cache" into two copies from guest RAM, and the cache then holds a
 * version that was never sent. Where the bytes read must be used as read,
 * this compiler barrier between the read and the reuse stops that: past it,
 * the compiler must assume any memory (guest RAM included) changed, so only
 * the copy holds what was read. It costs no instruction.
 */
#define guest_read_fence() __asm__ __volatile__("" ::: "memory")

extern const struct codec_ops codec_none_ops;
extern const struct codec_ops codec_xbzrle_ops;
#ifdef TERN_HAVE_ZLIB
extern const struct codec_ops codec_zlib_ops;
#endif
#ifdef TERN_HAVE_ZSTD
extern const struct codec_ops codec_zstd_ops;
#endif

/*
 * xbzrle_encode_update() - xbzrle_encode(), and write the changed runs to
 * @old as they are sent, so that @old ends as "old + the delta" (the cache
 * takes the version the destination will have without a second pass). On
 * -ENOSPC @old is partly updated: the caller overwrites it.
 */
int xbzrle_encode_update(uint8_t *old, const uint8_t *cur, size_t len, uint8_t *out,
			 size_t out_max);

/* XBZRLE payload record kinds (see xbzrle_codec.c). */
#define XBZRLE_REC_RAW 0
#define XBZRLE_REC_DELTA 1
#define XBZRLE_REC_UNCHANGED 2

#endif /* TERN_COMPRESS_PRIV_H */
