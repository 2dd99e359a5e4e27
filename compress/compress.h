/* SPDX-License-Identifier: MIT */
/*
 * compress: page encodings behind one ops table (none for now; zlib, zstd and
 * XBZRLE come with their issue) and the fast zero-page test every encoding
 * starts with.
 */
#ifndef TERN_COMPRESS_H
#define TERN_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Wire ids of the page encodings (0 is invalid). */
enum tern_codec_id {
	TERN_CODEC_INVALID = 0,
	TERN_CODEC_NONE = 1,
	TERN_CODEC_MAX,
};

const char *codec_name(enum tern_codec_id id);

/*
 * page_is_zero() - whether @len bytes at @p (8-byte aligned, len a multiple
 * of 64) are all zero. Random pages are decided on the first cache line, so
 * the cost is only paid in full by pages that are (nearly) zero.
 */
bool page_is_zero(const void *p, size_t len);

#endif /* TERN_COMPRESS_H */
