/* SPDX-License-Identifier: MIT */
/*
 * compress: page encodings behind one interface -- none, zlib, zstd, XBZRLE --
 * and the fast zero-page test every encoding starts with.
 *
 * One encoder and one decoder per worker channel and codec: zlib and zstd
 * keep one stream per channel (each packet compresses against the history of
 * its channel) and flush at the end of every packet, so every packet decodes
 * on arrival. XBZRLE encoders share one page cache (struct xbzrle_cache) per
 * source session, because a page may travel on another channel next round;
 * the destination applies deltas to the page in guest RAM, which holds
 * exactly the version the delta was computed against (the per-round sync
 * barrier orders a page's versions across channels).
 *
 * Nothing here owns a thread or a socket. Encoders and decoders are used by
 * one worker thread each; the XBZRLE cache is safe to share between them.
 */
#ifndef TERN_COMPRESS_H
#define TERN_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "util/util.h"

/* Wire ids of the page encodings (0 is invalid). `auto` is a setting, not an
 * encoding: it picks one of these per packet. */
enum tern_codec_id {
	TERN_CODEC_INVALID = 0,
	TERN_CODEC_NONE = 1,
	TERN_CODEC_ZLIB = 2,
	TERN_CODEC_ZSTD = 3,
	TERN_CODEC_XBZRLE = 4,
	TERN_CODEC_MAX,
};

/* "none", "zlib", "zstd", "xbzrle"; "invalid" otherwise. */
const char *codec_name(enum tern_codec_id id);
/* The id for @name, or TERN_CODEC_INVALID. */
enum tern_codec_id codec_by_name(const char *name);
/* Whether this build can encode and decode @id (zlib/zstd are meson features). */
bool codec_available(enum tern_codec_id id);

/*
 * page_is_zero() - whether @len bytes at @p (8-byte aligned, len a multiple
 * of 64) are all zero. Random pages are decided on the first cache line, so
 * the cost is only paid in full by pages that are (nearly) zero.
 */
bool page_is_zero(const void *p, size_t len);

/* ---- XBZRLE page cache (source side, shared by the channels) ----------- */

/*
 * The cache holds, per key, the version of the page the destination has.
 * Its users keep that true:
 * - a page that leaves the source other than through an XBZRLE encoder (a
 *   zero page, or a packet of another codec in `auto` mode) is dropped with
 *   xbzrle_cache_drop() before the next XBZRLE encode of it;
 * - no two encoders work on the same key at once, and a page's round-n
 *   version is encoded before its round-n+1 version starts (e.g. the
 *   workers drain their round-n batches before round n+1 is handed out).
 *   Different keys sharing a slot are fine: a busy slot is a miss.
 * Page size: a multiple of 64, at most 64 KiB.
 */
struct xbzrle_cache;

/* A cache of @bytes (at least one page; rounded down to whole pages). */
int xbzrle_cache_new(uint64_t bytes, uint32_t page_size, struct xbzrle_cache **ret,
		     struct tern_error *err);
/* Change the size, dropping every entry. Only while no encoder uses it (the
 * caller quiesces its workers first, e.g. at a round boundary). */
int xbzrle_cache_resize(struct xbzrle_cache *c, uint64_t bytes, struct tern_error *err);
/* Forget the version of @key (a page that went out as a zero page).
 * Thread-safe; waits only while another thread holds @key's slot, which is
 * for one page's work at most. */
void xbzrle_cache_drop(struct xbzrle_cache *c, uint64_t key);
uint64_t xbzrle_cache_size(const struct xbzrle_cache *c);
void xbzrle_cache_free(struct xbzrle_cache *c);

/* ---- the XBZRLE delta format (exposed for tests and fuzzing) ----------- */

/*
 * xbzrle_encode() - the delta that turns @old into @cur (@len bytes each) into
 * @out (room for @out_max bytes). Return: the delta's length (0 when the
 * pages are equal), or -ENOSPC when it would not fit (the caller sends the
 * page raw: an "overflow").
 */
int xbzrle_encode(const uint8_t *old, const uint8_t *cur, size_t len, uint8_t *out, size_t out_max);
/*
 * xbzrle_decode() - apply @dlen bytes of delta to @page (@len bytes) in place.
 * Refuses (-EPROTO, message in @err) a truncated or overlong delta and any run
 * that would write past the page; @page may then be partly written (it is
 * guest RAM the migration is failing on anyway).
 */
int xbzrle_decode(const uint8_t *delta, size_t dlen, uint8_t *page, size_t len,
		  struct tern_error *err);

/* ---- encoders and decoders --------------------------------------------- */

struct codec_config {
	enum tern_codec_id id;
	uint32_t page_size;
	int level;		    /* zlib 1..9, zstd 1..20; ignored otherwise */
	struct xbzrle_cache *cache; /* XBZRLE encoder only */
};

/* One page to encode: where it is, and its cache key (block << 40 | page). */
struct codec_page {
	const uint8_t *src;
	uint64_t key;
};

/* What one encoder or decoder did; summed by the caller. */
struct codec_stats {
	uint64_t pages;	    /* normal pages through the codec */
	uint64_t bytes_in;  /* their raw size */
	uint64_t bytes_out; /* payload bytes produced (encode) or consumed (decode) */
	uint64_t ns;	    /* time spent encoding or decoding */
	/* XBZRLE (encoder side) */
	uint64_t cache_hits;   /* page had a cached version */
	uint64_t cache_misses; /* it had none: sent raw, cached */
	uint64_t overflows;    /* delta not smaller than the page: sent raw */
	uint64_t delta_bytes;  /* bytes of deltas sent */
};

struct codec_enc;
struct codec_dec;

int codec_enc_new(const struct codec_config *cfg, struct codec_enc **ret, struct tern_error *err);
/*
 * codec_encode() - encode @n normal pages into one packet payload, described
 * by up to @iov_max iovecs written to @iov (they point into the encoder's own
 * buffers, or at a stable copy of a page: never at guest RAM that may change
 * under the send for codecs whose state depends on the bytes sent). Valid
 * until the next call. Return: the payload length, or a negative errno.
 */
ssize_t codec_encode(struct codec_enc *e, const struct codec_page *pages, uint32_t n,
		     struct iovec *iov, uint32_t iov_max, uint32_t *ret_niov,
		     struct tern_error *err);
/* The most iovecs codec_encode() writes for @n pages: @n for none (its
 * iovecs point at the pages themselves), 1 for the others. */
uint32_t codec_encode_iov_max(enum tern_codec_id id, uint32_t n);
/* The most payload bytes a packet of @n pages may carry with @id (the
 * receiver refuses longer payloads before reading them). */
uint64_t codec_payload_max(enum tern_codec_id id, uint32_t page_size, uint32_t n);
void codec_enc_stats(const struct codec_enc *e, struct codec_stats *ret);
void codec_enc_free(struct codec_enc *e);

int codec_dec_new(const struct codec_config *cfg, struct codec_dec **ret, struct tern_error *err);
/*
 * codec_decode() - decode @len payload bytes into @n pages at @dst[i] (their
 * final addresses in guest RAM). zlib/zstd: the payload must produce exactly
 * n x page_size bytes, else -EPROTO. XBZRLE: deltas apply to what @dst[i]
 * holds. Every error names what was wrong.
 */
int codec_decode(struct codec_dec *d, const uint8_t *payload, size_t len, uint8_t *const *dst,
		 uint32_t n, struct tern_error *err);
void codec_dec_stats(const struct codec_dec *d, struct codec_stats *ret);
void codec_dec_free(struct codec_dec *d);

#endif /* TERN_COMPRESS_H */
