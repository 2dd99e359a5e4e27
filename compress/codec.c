/* SPDX-License-Identifier: MIT */
/*
 * The codec front end: names, what this build has, and the encoder and
 * decoder objects around each codec's ops. What every codec shares lives
 * here so that the codecs stay small: the payload buffer (sized by the
 * codec's own worst case, grown to the largest packet seen), the argument
 * checks and the figures (pages, bytes, and time read once per packet, not
 * per page, because a clock read costs as much as a small delta).
 *
 * The none codec is here too: its payload is the pages themselves, so its
 * iovecs point at them (it keeps no state that depends on the bytes, so a
 * page changing under the send only sends a newer version, as without a
 * codec); its decoder copies each page to its destination.
 */
#include <stdlib.h>

#include "compress_priv.h"

static const char *const codec_names[TERN_CODEC_MAX] = {
    [TERN_CODEC_NONE] = "none",
    [TERN_CODEC_ZLIB] = "zlib",
    [TERN_CODEC_ZSTD] = "zstd",
    [TERN_CODEC_XBZRLE] = "xbzrle",
};

const char *codec_name(enum tern_codec_id id)
{
	if ((unsigned)id >= TERN_CODEC_MAX || !codec_names[id])
		return "invalid";
	return codec_names[id];
}

enum tern_codec_id codec_by_name(const char *name)
{
	unsigned i;

	for (i = 0; name && i < TERN_CODEC_MAX; i++)
		if (codec_names[i] && !strcmp(codec_names[i], name))
			return (enum tern_codec_id)i;
	return TERN_CODEC_INVALID;
}

static const struct codec_ops *codec_ops_of(enum tern_codec_id id)
{
	switch (id) {
	case TERN_CODEC_NONE:
		return &codec_none_ops;
	case TERN_CODEC_XBZRLE:
		return &codec_xbzrle_ops;
#ifdef TERN_HAVE_ZLIB
	case TERN_CODEC_ZLIB:
		return &codec_zlib_ops;
#endif
#ifdef TERN_HAVE_ZSTD
	case TERN_CODEC_ZSTD:
		return &codec_zstd_ops;
#endif
	default:
		return NULL;
	}
}

bool codec_available(enum tern_codec_id id)
{
	return codec_ops_of(id) != NULL;
}

uint32_t codec_encode_iov_max(enum tern_codec_id id, uint32_t n)
{
	/* none: one iovec a page; the others build one contiguous payload. */
	if (id == TERN_CODEC_NONE)
		return n;
	return n ? 1 : 0;
}

uint64_t codec_payload_max(enum tern_codec_id id, uint32_t page_size, uint32_t n)
{
	const struct codec_ops *ops = codec_ops_of(id);

	return ops ? ops->payload_max(page_size, n) : 0;
}

static int codec_check_config(const struct codec_config *cfg, const struct codec_ops **ret_ops,
			      struct tern_error *err)
{
	const struct codec_ops *ops = codec_ops_of(cfg->id);

	/* explicit codes: the callers dereference *ret_ops on success */
	if (!ops) {
		tern_error_set(err, -ENOTSUP, "codec %s (%d) is not in this build",
			       codec_name(cfg->id), (int)cfg->id);
		return -ENOTSUP;
	}
	if (cfg->page_size < 64 || cfg->page_size % 64) {
		tern_error_set(err, -EINVAL, "%s: page size %u is not a multiple of 64",
			       codec_name(cfg->id), cfg->page_size);
		return -EINVAL;
	}
	*ret_ops = ops;
	return 0;
}

/* ---- encoder ----------------------------------------------------------- */

int codec_enc_new(const struct codec_config *cfg, struct codec_enc **ret, struct tern_error *err)
{
	const struct codec_ops *ops = NULL;
	struct codec_enc *e;
	int ret_code;

	ret_code = codec_check_config(cfg, &ops, err);
	if (ret_code < 0)
		return ret_code;
	e = calloc(1, sizeof(*e));
	if (!e)
		return tern_error_set(err, -ENOMEM, "%s: no memory for an encoder",
				      codec_name(cfg->id));
	e->cfg = *cfg;
	e->ops = ops;
	if (ops->enc_init) {
		ret_code = ops->enc_init(e, err);
		if (ret_code < 0) {
			free(e);
			return ret_code;
		}
	}
	*ret = e;
	return 0;
}

/* Make e->buf hold the worst case of @n pages. */
static int codec_enc_reserve(struct codec_enc *e, uint32_t n, struct tern_error *err)
{
	uint64_t need = e->ops->payload_max(e->cfg.page_size, n);
	uint8_t *b;

	if (need <= e->buf_cap)
		return 0;
	if (need > SIZE_MAX / 2)
		return tern_error_set(err, -E2BIG, "%s: %u pages do not fit a packet",
				      codec_name(e->cfg.id), n);
	/* aligned, so that raw pages copied into the payload stay page-aligned
	 * relative to their record and memcpy runs at full speed */
	b = aligned_alloc(64, (size_t)(need + 63) & ~(size_t)63);
	if (!b)
		return tern_error_set(err, -ENOMEM, "%s: no memory for a %" PRIu64 "-byte payload",
				      codec_name(e->cfg.id), need);
	free(e->buf);
	e->buf = b;
	e->buf_cap = need;
	return 0;
}

ssize_t codec_encode(struct codec_enc *e, const struct codec_page *pages, uint32_t n,
		     struct iovec *iov, uint32_t iov_max, uint32_t *ret_niov,
		     struct tern_error *err)
{
	uint32_t niov = 0;
	uint64_t t0;
	ssize_t len;
	int ret;

	if (n == 0) {
		*ret_niov = 0;
		return 0;
	}
	if (iov_max < codec_encode_iov_max(e->cfg.id, n))
		return tern_error_set(err, -EINVAL, "%s: %u iovecs for %u pages, need %u",
				      codec_name(e->cfg.id), iov_max, n,
				      codec_encode_iov_max(e->cfg.id, n));
	if (!e->ops->no_buf) {
		ret = codec_enc_reserve(e, n, err);
		if (ret < 0)
			return ret;
	}
	t0 = tern_now_ns();
	len = e->ops->encode(e, pages, n, iov, &niov, err);
	if (len < 0)
		return len;
	if (!niov) {
		iov[0].iov_base = e->buf;
		iov[0].iov_len = (size_t)len;
		niov = 1;
	}
	e->st.ns += tern_now_ns() - t0;
	e->st.pages += n;
	e->st.bytes_in += (uint64_t)n * e->cfg.page_size;
	e->st.bytes_out += (uint64_t)len;
	*ret_niov = niov;
	return len;
}

void codec_enc_stats(const struct codec_enc *e, struct codec_stats *ret)
{
	*ret = e->st;
}

void codec_enc_free(struct codec_enc *e)
{
	if (!e)
		return;
	if (e->ops->enc_fini)
		e->ops->enc_fini(e);
	free(e->buf);
	free(e);
}

/* ---- decoder ----------------------------------------------------------- */

int codec_dec_new(const struct codec_config *cfg, struct codec_dec **ret, struct tern_error *err)
{
	const struct codec_ops *ops = NULL;
	struct codec_dec *d;
	int ret_code;

	ret_code = codec_check_config(cfg, &ops, err);
	if (ret_code < 0)
		return ret_code;
	d = calloc(1, sizeof(*d));
	if (!d)
		return tern_error_set(err, -ENOMEM, "%s: no memory for a decoder",
				      codec_name(cfg->id));
	d->cfg = *cfg;
	d->ops = ops;
	if (ops->dec_init) {
		ret_code = ops->dec_init(d, err);
		if (ret_code < 0) {
			free(d);
			return ret_code;
		}
	}
	*ret = d;
	return 0;
}

int codec_decode(struct codec_dec *d, const uint8_t *payload, size_t len, uint8_t *const *dst,
		 uint32_t n, struct tern_error *err)
{
	uint64_t max = d->ops->payload_max(d->cfg.page_size, n);
	uint64_t t0;
	int ret;

	if (n == 0 && len == 0)
		return 0;
	if (n == 0 || len == 0 || len > max)
		return tern_error_set(err, -EPROTO,
				      "%s: %zu payload bytes for %u pages (at most %" PRIu64 ")",
				      codec_name(d->cfg.id), len, n, max);
	t0 = tern_now_ns();
	ret = d->ops->decode(d, payload, len, dst, n, err);
	if (ret < 0)
		return ret;
	d->st.ns += tern_now_ns() - t0;
	d->st.pages += n;
	d->st.bytes_in += (uint64_t)n * d->cfg.page_size;
	d->st.bytes_out += len;
	return 0;
}

void codec_dec_stats(const struct codec_dec *d, struct codec_stats *ret)
{
	*ret = d->st;
}

void codec_dec_free(struct codec_dec *d)
{
	if (!d)
		return;
	if (d->ops->dec_fini)
		d->ops->dec_fini(d);
	free(d);
}

/* ---- none -------------------------------------------------------------- */

static ssize_t none_encode(struct codec_enc *e, const struct codec_page *pages, uint32_t n,
			   struct iovec *iov, uint32_t *ret_niov, struct tern_error *err)
{
	uint32_t i;

	for (i = 0; i < n; i++) {
		iov[i].iov_base = (void *)pages[i].src;
		iov[i].iov_len = e->cfg.page_size;
	}
	*ret_niov = n;
	return (ssize_t)n * e->cfg.page_size;
}

static int none_decode(struct codec_dec *d, const uint8_t *payload, size_t len, uint8_t *const *dst,
		       uint32_t n, struct tern_error *err)
{
	size_t ps = d->cfg.page_size;
	uint32_t i;

	if (len != n * ps)
		return tern_error_set(err, -EPROTO, "none: %zu payload bytes for %u pages of %zu",
				      len, n, ps);
	for (i = 0; i < n; i++)
		memcpy(dst[i], payload + i * ps, ps);
	return 0;
}

static uint64_t none_payload_max(uint32_t page_size, uint32_t n)
{
	return (uint64_t)page_size * n;
}

const struct codec_ops codec_none_ops = {
    .id = TERN_CODEC_NONE,
    .no_buf = true,
    .encode = none_encode,
    .decode = none_decode,
    .payload_max = none_payload_max,
};
