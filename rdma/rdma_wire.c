/* SPDX-License-Identifier: MIT */
/*
 * rdma_wire: encode, decode and validate the transport's message headers,
 * connect private data and feedback word (see rdma_wire.h).
 */
#include "rdma_wire.h"

#define RDMA_FEEDBACK_SALT 0x7465726e66656564ull /* "ternfeed" */

static const char *const msg_names[RDMA_MSG_MAX] = {
    [RDMA_MSG_DATA] = "DATA", [RDMA_MSG_BIND] = "BIND",	      [RDMA_MSG_BIND_ACK] = "BIND_ACK",
    [RDMA_MSG_REG] = "REG",   [RDMA_MSG_REG_ACK] = "REG_ACK", [RDMA_MSG_UNREG] = "UNREG",
};

/* Flags each type may carry. */
static const uint8_t msg_flags[RDMA_MSG_MAX] = {
    [RDMA_MSG_DATA] = RDMA_MSG_F_SPAN,
    [RDMA_MSG_BIND] = RDMA_MSG_F_PIN_ALL,
};

const char *rdma_msg_type_name(uint32_t type)
{
	return type && type < RDMA_MSG_MAX ? msg_names[type] : "unknown";
}

void rdma_msg_encode(const struct rdma_msg *m, uint8_t *buf)
{
	buf[0] = m->type;
	buf[1] = m->flags;
	put_be16(buf + 2, 0);
	put_be32(buf + 4, m->len);
	put_be64(buf + 8, m->a);
	put_be64(buf + 16, m->b);
	put_be64(buf + 24, m->c);
	put_be64(buf + 32, m->d);
}

int rdma_msg_decode(const uint8_t *buf, uint32_t avail, struct rdma_msg *m, struct tern_error *err)
{
	struct rdma_msg v;

	if (avail < RDMA_MSG_HDR_LEN)
		return tern_error_set(err, -EPROTO, "message of %u bytes, shorter than its header",
				      avail);
	v.type = buf[0];
	v.flags = buf[1];
	v.len = get_be32(buf + 4);
	v.a = get_be64(buf + 8);
	v.b = get_be64(buf + 16);
	v.c = get_be64(buf + 24);
	v.d = get_be64(buf + 32);
	if (!v.type || v.type >= RDMA_MSG_MAX)
		return tern_error_set(err, -EPROTO, "unknown message type %u", v.type);
	if (v.flags & ~msg_flags[v.type])
		return tern_error_set(err, -EPROTO, "%s: unknown flags %#x", msg_names[v.type],
				      v.flags);
	if (get_be16(buf + 2))
		return tern_error_set(err, -EPROTO, "%s: reserved bits set", msg_names[v.type]);
	if (v.len != avail - RDMA_MSG_HDR_LEN)
		return tern_error_set(err, -EPROTO, "%s: says %u payload bytes, carries %u",
				      msg_names[v.type], v.len, avail - RDMA_MSG_HDR_LEN);
	switch (v.type) {
	case RDMA_MSG_DATA:
		if (!v.len)
			return tern_error_set(err, -EPROTO, "DATA: empty");
		if (!(v.flags & RDMA_MSG_F_SPAN) && (v.a || v.b || v.c || v.d))
			return tern_error_set(err, -EPROTO, "DATA: span fields without a span");
		break;
	case RDMA_MSG_BIND:
		if (!v.b || v.b > RDMA_MAX_REGIONS || v.len != v.b * 8)
			return tern_error_set(err, -EPROTO,
					      "BIND: %" PRIu64 " regions in %u bytes (at most %u)",
					      v.b, v.len, RDMA_MAX_REGIONS);
		break;
	case RDMA_MSG_BIND_ACK:
		if (v.len % 16 || v.len / 16 > RDMA_MAX_REGIONS || v.c > UINT32_MAX || v.d > 4095)
			return tern_error_set(err, -EPROTO, "BIND_ACK: bad length %u or key",
					      v.len);
		break;
	case RDMA_MSG_REG:
	case RDMA_MSG_UNREG:
		if (v.len || v.a > UINT32_MAX || v.c || v.d)
			return tern_error_set(err, -EPROTO, "%s: bad fields", msg_names[v.type]);
		break;
	case RDMA_MSG_REG_ACK:
		if (v.len || v.a > UINT32_MAX || (v.d >> 32) > 4095)
			return tern_error_set(err, -EPROTO, "REG_ACK: bad fields");
		break;
	}
	*m = v;
	return 0;
}

void rdma_priv_encode(const struct rdma_priv *p, uint8_t *buf)
{
	memset(buf, 0, RDMA_PRIV_LEN);
	put_be32(buf, RDMA_PRIV_MAGIC);
	put_be32(buf + 4, RDMA_PRIV_VERSION);
	put_be32(buf + 8, p->recv_depth);
	put_be32(buf + 12, p->buf_size);
	put_be64(buf + 16, p->fb_addr);
	put_be32(buf + 24, p->fb_rkey);
}

int rdma_priv_decode(const uint8_t *buf, uint32_t len, struct rdma_priv *p, struct tern_error *err)
{
	struct rdma_priv v;

	/* A transport pads private data with zeros: longer is fine. */
	if (!buf || len < RDMA_PRIV_LEN)
		return tern_error_set(err, -EPROTO, "connect data of %u bytes: not a tern peer",
				      buf ? len : 0);
	if (get_be32(buf) != RDMA_PRIV_MAGIC)
		return tern_error_set(err, -EPROTO, "connect data: bad magic %#x: not a tern peer",
				      get_be32(buf));
	if (get_be32(buf + 4) != RDMA_PRIV_VERSION)
		return tern_error_set(err, -EPROTO, "connect data: version %u, expected %u",
				      get_be32(buf + 4), RDMA_PRIV_VERSION);
	v.recv_depth = get_be32(buf + 8);
	v.buf_size = get_be32(buf + 12);
	v.fb_addr = get_be64(buf + 16);
	v.fb_rkey = get_be32(buf + 24);
	if (!v.recv_depth || v.recv_depth > 4096 || v.buf_size < RDMA_MSG_HDR_LEN + 64 ||
	    v.buf_size > (1u << 24))
		return tern_error_set(
		    err, -EPROTO, "connect data: receive depth %u or buffer size %u out of range",
		    v.recv_depth, v.buf_size);
	*p = v;
	return 0;
}

void rdma_feedback_encode(const struct rdma_feedback *f, uint8_t *buf)
{
	put_be64(buf, f->reposted);
	put_be64(buf + 8, f->released);
	put_be64(buf + 16, f->reposted ^ f->released ^ RDMA_FEEDBACK_SALT);
}

int rdma_feedback_decode(const uint8_t *buf, struct rdma_feedback *f)
{
	uint64_t r = __atomic_load_n((const uint64_t *)buf, __ATOMIC_ACQUIRE);
	uint64_t s = __atomic_load_n((const uint64_t *)(buf + 8), __ATOMIC_ACQUIRE);
	uint64_t k = __atomic_load_n((const uint64_t *)(buf + 16), __ATOMIC_ACQUIRE);

	r = get_be64((const uint8_t *)&r);
	s = get_be64((const uint8_t *)&s);
	k = get_be64((const uint8_t *)&k);
	if ((r ^ s ^ RDMA_FEEDBACK_SALT) != k)
		return -EAGAIN;
	f->reposted = r;
	f->released = s;
	return 0;
}
