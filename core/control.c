/* SPDX-License-Identifier: MIT */
/*
 * The control channel's framing: a stream header (magic, version) in each
 * direction, then frames of type u16 | flags u16 | length u32 | payload, all
 * big-endian. A frame's length is checked against the most its type may
 * carry before a byte of payload is allocated or read, so a corrupt or
 * hostile length cannot make us allocate gigabytes. Payloads are decoded
 * with a bounds-checked reader that remembers an overrun instead of reading
 * past the end; the caller checks ->bad once after decoding a payload.
 */
#include <stdlib.h>

#include "core_priv.h"

static const char *const ctl_names[CTL_TYPE_MAX] = {
    [CTL_INVALID] = "invalid",
    [CTL_HELLO] = "HELLO",
    [CTL_HELLO_ACK] = "HELLO_ACK",
    [CTL_ERROR] = "ERROR",
    [CTL_SECTION_FULL] = "SECTION_FULL",
    [CTL_RAM_SYNC] = "RAM_SYNC",
    [CTL_EOS] = "EOS",
    [CTL_LOADED] = "LOADED",
    [CTL_COMPLETE] = "COMPLETE",
    [CTL_COMMIT] = "COMMIT",
    [CTL_RAM_SYNC_ACK] = "RAM_SYNC_ACK",
    [CTL_RAM_HINT] = "RAM_HINT",
    [CTL_RESUMED] = "RESUMED",
    [CTL_KEEPALIVE] = "KEEPALIVE",
    [CTL_POSTCOPY_DISCARD] = "POSTCOPY_DISCARD",
    [CTL_POSTCOPY_RUN] = "POSTCOPY_RUN",
    [CTL_POSTCOPY_RUNNING] = "POSTCOPY_RUNNING",
    [CTL_PAGE_REQ] = "PAGE_REQ",
    [CTL_POSTCOPY_RESUME] = "POSTCOPY_RESUME",
    [CTL_POSTCOPY_MISSING] = "POSTCOPY_MISSING",
    [CTL_POSTCOPY_RESUME_ACK] = "POSTCOPY_RESUME_ACK",
};

/* The most payload each frame type may carry. */
static const uint32_t ctl_max_len[CTL_TYPE_MAX] = {
    [CTL_HELLO] = 1u << 20,
    [CTL_HELLO_ACK] = 0,
    [CTL_ERROR] = 4096,
    [CTL_SECTION_FULL] = SECTION_MAX_PAYLOAD + 1024,
    [CTL_RAM_SYNC] = 8,
    [CTL_EOS] = 16,
    [CTL_LOADED] = 8, /* u64: ns the destination spent loading sections */
    [CTL_COMPLETE] = 64,
    [CTL_COMMIT] = 8,
    [CTL_RAM_SYNC_ACK] = 8,
    [CTL_RAM_HINT] = CTL_HINT_MAX,
    [CTL_RESUMED] = 8, /* u64: ns its resume callback took */
    [CTL_KEEPALIVE] = 0,
    [CTL_POSTCOPY_DISCARD] = CTL_DISCARD_MAX,
    [CTL_POSTCOPY_RUN] = 16,	/* round u64 | missing pages u64 */
    [CTL_POSTCOPY_RUNNING] = 8, /* u64: ns its resume callback took */
    [CTL_PAGE_REQ] = 12,	/* block u32 | page u64 */
    /* uuid[16] | round u64 | nchannels u32 */
    [CTL_POSTCOPY_RESUME] = 28,
    [CTL_POSTCOPY_MISSING] = CTL_DISCARD_MAX, /* POSTCOPY_DISCARD's layout */
    [CTL_POSTCOPY_RESUME_ACK] = 16,	      /* last round u64 | pages u64 */
};

const char *ctl_type_name(uint16_t type)
{
	return type < CTL_TYPE_MAX ? ctl_names[type] : "unknown";
}

/* ---- buffers ------------------------------------------------------------ */

void buf_init(struct buf *b)
{
	memset(b, 0, sizeof(*b));
}

void buf_fini(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	b->oom = false;
}

void buf_put(struct buf *b, const void *p, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		uint8_t *d;

		while (cap < b->len + n)
			cap *= 2;
		d = realloc(b->data, cap);
		if (!d) {
			b->oom = true;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
}

void buf_put_u8(struct buf *b, uint8_t v)
{
	buf_put(b, &v, 1);
}

void buf_put_u16(struct buf *b, uint16_t v)
{
	uint8_t t[2];

	put_be16(t, v);
	buf_put(b, t, 2);
}

void buf_put_u32(struct buf *b, uint32_t v)
{
	uint8_t t[4];

	put_be32(t, v);
	buf_put(b, t, 4);
}

void buf_put_u64(struct buf *b, uint64_t v)
{
	uint8_t t[8];

	put_be64(t, v);
	buf_put(b, t, 8);
}

void buf_put_str(struct buf *b, const char *s)
{
	size_t n = strlen(s);

	if (n > UINT16_MAX)
		n = UINT16_MAX;
	buf_put_u16(b, (uint16_t)n);
	buf_put(b, s, n);
}

/* ---- reader ------------------------------------------------------------- */

void rd_init(struct rd *r, const void *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->off = 0;
	r->bad = false;
}

const uint8_t *rd_bytes(struct rd *r, size_t n)
{
	const uint8_t *p;

	if (r->bad || n > r->len - r->off) {
		r->bad = true;
		return NULL;
	}
	p = r->p + r->off;
	r->off += n;
	return p;
}

uint8_t rd_u8(struct rd *r)
{
	const uint8_t *p = rd_bytes(r, 1);

	return p ? p[0] : 0;
}

uint16_t rd_u16(struct rd *r)
{
	const uint8_t *p = rd_bytes(r, 2);

	return p ? get_be16(p) : 0;
}

uint32_t rd_u32(struct rd *r)
{
	const uint8_t *p = rd_bytes(r, 4);

	return p ? get_be32(p) : 0;
}

uint64_t rd_u64(struct rd *r)
{
	const uint8_t *p = rd_bytes(r, 8);

	return p ? get_be64(p) : 0;
}

void rd_str(struct rd *r, char *out, size_t outlen)
{
	uint16_t n = rd_u16(r);
	const uint8_t *p;

	out[0] = '\0';
	if (r->bad)
		return;
	if (!n || n >= outlen) {
		r->bad = true;
		return;
	}
	p = rd_bytes(r, n);
	if (!p)
		return;
	if (memchr(p, '\0', n)) {
		r->bad = true;
		return;
	}
	memcpy(out, p, n);
	out[n] = '\0';
}

size_t rd_left(const struct rd *r)
{
	return r->len - r->off;
}

/* ---- frames ------------------------------------------------------------- */

int ctl_send_stream_hdr(struct tern_conn *c, uint32_t magic)
{
	uint8_t h[CTL_STREAM_HDR_SIZE];

	put_be32(h, magic);
	put_be32(h + 4, CTL_VERSION);
	return conn_send(c, h, sizeof(h));
}

int ctl_recv_stream_hdr(struct tern_conn *c, uint32_t magic, const char *what,
			struct tern_error *err)
{
	uint8_t h[CTL_STREAM_HDR_SIZE];
	uint32_t m, v;
	int ret;

	ret = conn_recv(c, h, sizeof(h));
	if (ret == -EPIPE)
		return tern_error_set(err, ret, "%s: stream truncated in its header (%s closed it)",
				      what, c->peer);
	if (ret)
		return tern_error_set(err, ret, "%s: reading the stream header: %s", what,
				      strerror(-ret));
	m = get_be32(h);
	v = get_be32(h + 4);
	if (m != magic)
		return tern_error_set(err, -EPROTO, "%s: bad magic %#x (expected %#x)", what, m,
				      magic);
	if (v != CTL_VERSION)
		return tern_error_set(err, -EPROTONOSUPPORT,
				      "%s: unknown protocol version %u (we speak %u)", what, v,
				      CTL_VERSION);
	return 0;
}

int ctl_send(struct tern_conn *c, enum ctl_type type, const void *payload, size_t len)
{
	uint8_t h[CTL_HDR_SIZE];
	struct iovec iov[2] = {
	    {.iov_base = h, .iov_len = sizeof(h)},
	    {.iov_base = (void *)payload, .iov_len = len},
	};

	if (!c)
		return -ENOTCONN;
	put_be16(h, (uint16_t)type);
	put_be16(h + 2, 0);
	put_be32(h + 4, (uint32_t)len);
	return conn_send_iov(c, iov, len ? 2 : 1);
}

/* @who: NULL to wait for the next frame without a deadline, else the peer
 * that must say something within the read deadline (named if it does not). */
static int ctl_recv_frame(struct tern_conn *c, const char *what, const char *who,
			  uint16_t *ret_type, uint8_t **ret_payload, uint32_t *ret_len,
			  struct tern_error *err)
{
	uint8_t h[CTL_HDR_SIZE];
	uint16_t type, flags;
	uint32_t len;
	uint8_t *p = NULL;
	int ret;

	/* Quiet between frames is no stall (see conn_recv_msg()), unless the
	 * peer keeps the channel alive with KEEPALIVE frames. */
	ret = who ? conn_recv_msg_bounded(c, h, sizeof(h)) : conn_recv_msg(c, h, sizeof(h));
	if (ret == -ETIME)
		return tern_error_set(err, -ETIMEDOUT,
				      "%s: nothing from %s for %d ms (not even a keepalive)", what,
				      who, c->recv_timeout_ms);
	if (ret == -EPIPE)
		return tern_error_set(err, ret, "%s: %s closed the connection", what, c->peer);
	if (ret == -EAGAIN)
		return tern_error_set(err, -ETIMEDOUT,
				      "%s: no data for %d ms in the middle of a frame header", what,
				      c->recv_timeout_ms);
	if (ret)
		return tern_error_set(err, ret, "%s: reading a frame header: %s", what,
				      strerror(-ret));
	type = get_be16(h);
	flags = get_be16(h + 2);
	len = get_be32(h + 4);
	if (type == CTL_INVALID || type >= CTL_TYPE_MAX)
		return tern_error_set(err, -EPROTO, "%s: unknown frame type %u", what, type);
	if (flags)
		return tern_error_set(err, -EPROTO, "%s: %s frame with unknown flags %#x", what,
				      ctl_type_name(type), flags);
	if (len > ctl_max_len[type])
		return tern_error_set(err, -EPROTO,
				      "%s: %s frame of %u bytes, more than its limit of %u", what,
				      ctl_type_name(type), len, ctl_max_len[type]);
	if (len) {
		p = malloc(len);
		if (!p)
			return tern_error_set(err, -ENOMEM, "%s: out of memory", what);
		ret = conn_recv(c, p, len);
		if (ret) {
			free(p);
			if (ret == -EPIPE)
				return tern_error_set(err, ret,
						      "%s: stream truncated inside a %s frame (%s "
						      "closed the connection)",
						      what, ctl_type_name(type), c->peer);
			if (ret == -EAGAIN)
				return tern_error_set(err, -ETIMEDOUT,
						      "%s: no data for %d ms in the middle of a "
						      "%s frame's payload",
						      what, c->recv_timeout_ms,
						      ctl_type_name(type));
			return tern_error_set(err, ret, "%s: reading a %s frame: %s", what,
					      ctl_type_name(type), strerror(-ret));
		}
	}
	*ret_type = type;
	*ret_payload = p;
	*ret_len = len;
	return 0;
}

int ctl_recv(struct tern_conn *c, const char *what, uint16_t *ret_type, uint8_t **ret_payload,
	     uint32_t *ret_len, struct tern_error *err)
{
	return ctl_recv_frame(c, what, NULL, ret_type, ret_payload, ret_len, err);
}

int ctl_recv_bounded(struct tern_conn *c, const char *what, const char *who, uint16_t *ret_type,
		     uint8_t **ret_payload, uint32_t *ret_len, struct tern_error *err)
{
	return ctl_recv_frame(c, what, who, ret_type, ret_payload, ret_len, err);
}

int ctl_send_error(struct tern_conn *c, int code, const char *msg)
{
	const char *text = msg[0] ? msg : "unknown error";
	/* Cut the message, not the frame: code u32 + length u16 + text must
	 * stay within the ERROR limit, or the peer reads a malformed frame. */
	size_t n = strnlen(text, ctl_max_len[CTL_ERROR] - 6);
	struct buf b;
	int ret;

	buf_init(&b);
	buf_put_u32(&b, (uint32_t)(-code));
	buf_put_u16(&b, (uint16_t)n);
	buf_put(&b, text, n);
	ret = b.oom ? -ENOMEM : ctl_send(c, CTL_ERROR, b.data, b.len);
	buf_fini(&b);
	return ret;
}

int ctl_decode_error(const uint8_t *p, uint32_t len, const char *who, struct tern_error *err)
{
	char msg[4096];
	uint32_t code;
	struct rd r;

	rd_init(&r, p, len);
	code = rd_u32(&r);
	rd_str(&r, msg, sizeof(msg));
	if (r.bad || rd_left(&r) || !code || code > 4095)
		return tern_error_set(err, -EPROTO, "%s sent a malformed ERROR frame", who);
	return tern_error_set(err, -(int)code, "%s: %s", who, msg);
}
