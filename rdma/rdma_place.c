/* SPDX-License-Identifier: MIT */
/*
 * rdma_place: guest pages straight into the peer's guest RAM.
 *
 * bind_ram(): the sender announces its choice in a BIND message (pin-all or
 * not, the pin limit, each region's size, which the receiver checks against
 * its own) and waits, bounded by its io timeout, for the BIND_ACK: the
 * staging ring's address and rkey, and with pin-all every region's address
 * and rkey. With pin-all both sides register every region whole at bind
 * (shared between the channels of a process, rdma_dev.c), so the time shows
 * in the migration's setup. Without, each side registers 1 MiB chunks as
 * they are first used, through a registration cache bounded by the pin
 * limit (rdma_regcache.c): the sender's own lkeys, and the receiver's rkeys
 * as the sender holds them. A missing remote chunk costs one REG/REG_ACK
 * round trip (the receiver registers it in its receive path, where its
 * worker waits when idle); evicting one sends an UNREG, which RC ordering
 * puts after every WRITE to that chunk.
 *
 * send_packet(): pages become runs (rdma_runs.c), one RDMA WRITE per run
 * (split where the device's SGE count runs out), then the header goes as a
 * SEND on the same QP: its arrival means the pages are in place (RC
 * ordering; RFC 5040 for iWARP). An encoded payload is copied into a local
 * mirror of the peer's staging ring at the span rdma_ring_alloc() gives,
 * RDMA-written to the same span of the peer's ring, and named (off, len,
 * end) in the SEND's header; the receiver checks the span, lends it out from
 * recv_payload() and releases it at its next call (feedback word).
 *
 * Every field of a message is validated before use; a bad one fails the
 * connection with -EPROTO and says what and where in conn->detail.
 */
#include <stdio.h>
#include <stdlib.h>

#include "rdma_priv.h"
#include "rdma_regcache.h"
#include "rdma_ring.h"
#include "rdma_runs.h"
#include "rdma_test.h"

#define RDMA_RING_SIZE_DEFAULT (8ull << 20)
#define RDMA_PIN_LIMIT_DEFAULT (256ull << 20)
#define RDMA_RUN_MAX (1ull << 20)
#define RDMA_DST_ACCESS (IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE)

static uint64_t ring_size_override; /* tests */

struct rdma_place {
	bool sender, pin_all, unbinding;
	uint32_t n, chunk_shift;
	struct tern_ram_region *regions;
	uint64_t pin_limit;
	/* sender */
	struct ibv_mr **local_mr; /* pin-all: per region (shared) */
	uint64_t *raddr;	  /* pin-all: the peer's region addresses */
	uint32_t *rkey;		  /* pin-all: their rkeys */
	uint64_t **chunk_raddr;	  /* pin-all off: per region, per chunk */
	struct rdma_regcache *local_rc, *remote_rc;
	struct rdma_run *runs;
	uint32_t runs_cap;
	struct rdma_ring ring;
	uint64_t ring_addr;
	uint32_t ring_rkey;
	uint8_t *stage;
	struct ibv_mr *stage_mr;
	bool ack_ready;
	struct rdma_msg ack;
	uint8_t *ack_payload;
	/* receiver */
	bool bind_pending;
	struct rdma_msg bind_msg;
	uint64_t *bind_sizes;
	struct ibv_mr **region_mr; /* pin-all */
	struct ibv_mr ***chunk_mr; /* pin-all off */
	uint64_t dst_pinned;
	uint8_t *ring_mem;
	struct ibv_mr *ring_mr;
	uint64_t ring_size;
	uint64_t expect_end;
	bool span_valid, lent;
	uint64_t span_off, span_len, span_end, lent_end;
};

void rdma_test_set_ring_size(uint64_t size)
{
	ring_size_override = size;
}

static uint64_t nchunks(const struct rdma_place *p, uint32_t region)
{
	return (p->regions[region].size + (1ull << p->chunk_shift) - 1) >> p->chunk_shift;
}

static void pinned_add(struct rdma_conn *c, int64_t delta)
{
	uint64_t now = __atomic_add_fetch(&c->st.pinned, (uint64_t)delta, __ATOMIC_RELAXED);

	if (delta > 0 && now > __atomic_load_n(&c->st.peak, __ATOMIC_RELAXED))
		__atomic_store_n(&c->st.peak, now, __ATOMIC_RELAXED);
}

/* What a registration is, for the figures: guest RAM counts as pinned (a
 * whole region shared by the channels counts once, on the channel that
 * registered it and on the one that let it go); the staging ring and its
 * mirror are the transport's own buffers, timed but not counted. */
enum reg_kind { REG_RAM, REG_RAM_SHARED, REG_BUFFER };

/* Register and account; on failure a message in @err. */
static struct ibv_mr *reg_timed(struct rdma_conn *c, void *addr, uint64_t len, int access,
				enum reg_kind kind, const char *what, struct tern_error *err)
{
	uint64_t t0 = tern_now_ns();
	bool counted = kind == REG_RAM;
	struct ibv_mr *mr = kind == REG_RAM_SHARED
				? rdma_shared_mr_get(c->pd, addr, len, access, &counted)
				: rdma_reg(c->pd, addr, len, access);
	char msg[256];

	rdma_stat_add(&c->st.reg_ns, tern_now_ns() - t0);
	if (!mr) {
		int code = errno ? -errno : -ENOMEM;

		rdma_reg_error(msg, sizeof(msg), code, what, len,
			       kind == REG_BUFFER	       ? NULL
			       : c->place && c->place->pin_all ? "turn rdma-pin-all off"
							       : "lower the pin limit");
		tern_error_set(err, code, "%s", msg);
		return NULL;
	}
	/* the ring counts as a registration, not as pinned guest RAM */
	if (counted || kind == REG_BUFFER)
		rdma_stat_add(&c->st.chunks, 1);
	if (counted)
		pinned_add(c, (int64_t)len);
	return mr;
}

static void dereg_counted(struct rdma_conn *c, struct ibv_mr *mr, enum reg_kind kind)
{
	uint64_t len;
	bool counted;

	if (!mr)
		return;
	len = mr->length;
	if (kind == REG_RAM_SHARED) {
		counted = rdma_shared_mr_put(mr);
	} else {
		counted = kind == REG_RAM;
		rdma_dereg(mr);
	}
	if (counted)
		pinned_add(c, -(int64_t)len);
}

/* ---- sender: registration caches ------------------------------------- */

static int local_reg(void *opaque, uint32_t region, uint64_t chunk, uint8_t *addr, uint64_t len,
		     uint32_t *ret_key, void **ret_handle, struct tern_error *err)
{
	struct ibv_mr *mr = reg_timed(opaque, addr, len, 0, REG_RAM, "guest RAM", err);

	if (!mr)
		return err && err->code ? err->code : -ENOMEM;
	*ret_key = mr->lkey;
	*ret_handle = mr;
	return 0;
}

static void local_dereg(void *opaque, uint32_t region, uint64_t chunk, void *handle)
{
	dereg_counted(opaque, handle, REG_RAM);
}

/* Wait for the peer's answer (BIND_ACK, REG_ACK) of type @type. */
static int wait_ack(struct rdma_conn *c, uint8_t type, struct tern_error *err)
{
	struct rdma_place *p = c->place;
	uint64_t deadline =
	    tern_now_ms() + (uint64_t)(c->io_timeout_ms > 0 ? c->io_timeout_ms : 30000);
	struct rdma_msg m;
	int ret;

	c->stop_on_ctl = true;
	while (!p->ack_ready) {
		ret = rdma_next_msg(c, deadline, &m, NULL);
		if (ret == 0) {
			ret = rdma_fail(c, -EPROTO, "stream data from %s while waiting for %s",
					c->base.peer, rdma_msg_type_name(type));
			break;
		}
		if (ret < 0) {
			if (ret == -ETIMEDOUT)
				snprintf(c->base.detail, sizeof(c->base.detail),
					 "no %s from %s within %d ms", rdma_msg_type_name(type),
					 c->base.peer, c->io_timeout_ms);
			break;
		}
		ret = 0;
	}
	c->stop_on_ctl = false;
	if (!p->ack_ready)
		return tern_error_set(err, ret, "%s", c->base.detail);
	p->ack_ready = false;
	if (p->ack.type != type)
		return tern_error_set(err,
				      rdma_fail(c, -EPROTO, "%s from %s, expected %s",
						rdma_msg_type_name(p->ack.type), c->base.peer,
						rdma_msg_type_name(type)),
				      "%s", c->base.detail);
	return 0;
}

/* The destination refused to register: its limit, not ours, is the one. */
static void remote_reg_error(char *buf, size_t size, int code, uint64_t len, bool pin_all)
{
	snprintf(buf, size, "the destination could not register %" PRIu64 " MiB of guest RAM: %s%s",
		 (uint64_t)DIV_ROUND_UP(len, 1ull << 20), strerror_r(-code, (char[64]){""}, 64),
		 code == -ENOMEM || code == -EPERM || code == -EAGAIN
		     ? pin_all ? " (its RLIMIT_MEMLOCK; or turn rdma-pin-all off)"
			       : " (its RLIMIT_MEMLOCK; or lower the pin limit)"
		     : "");
}

static int remote_reg(void *opaque, uint32_t region, uint64_t chunk, uint8_t *addr, uint64_t len,
		      uint32_t *ret_key, void **ret_handle, struct tern_error *err)
{
	struct rdma_conn *c = opaque;
	struct rdma_place *p = c->place;
	struct rdma_msg m = {.type = RDMA_MSG_REG, .a = region, .b = chunk};
	int ret, code;

	ret = rdma_send_msg(c, &m, NULL, 0);
	if (!ret)
		ret = wait_ack(c, RDMA_MSG_REG_ACK, err);
	if (ret)
		return tern_error_set(err, ret, "%s", c->base.detail);
	code = (int)(p->ack.d >> 32);
	if (p->ack.a != region || p->ack.b != chunk)
		return tern_error_set(err,
				      rdma_fail(c, -EPROTO,
						"REG_ACK for region %" PRIu64 " chunk %" PRIu64
						", asked region %u chunk %" PRIu64,
						p->ack.a, p->ack.b, region, chunk),
				      "%s", c->base.detail);
	if (code) {
		char msg[200];

		remote_reg_error(msg, sizeof(msg), -code, len, false);
		return tern_error_set(err, rdma_fail(c, -code, "%s", msg), "%s", msg);
	}
	p->chunk_raddr[region][chunk] = p->ack.c;
	*ret_key = (uint32_t)p->ack.d;
	*ret_handle = NULL;
	return 0;
}

static void remote_dereg(void *opaque, uint32_t region, uint64_t chunk, void *handle)
{
	struct rdma_conn *c = opaque;
	struct rdma_msg m = {.type = RDMA_MSG_UNREG, .a = region, .b = chunk};

	if (c->place->unbinding || rdma_check(c))
		return;
	(void)rdma_send_msg(c, &m, NULL, 0);
}

static const struct rdma_reg_ops local_ops = {.reg = local_reg, .dereg = local_dereg};
static const struct rdma_reg_ops remote_ops = {.reg = remote_reg, .dereg = remote_dereg};

/* ---- bind -------------------------------------------------------------- */

/* @n == 0: a receiver's placeholder for a BIND that came before bind_ram(). */
static int place_new(struct rdma_conn *c, const struct tern_ram_region *regions, uint32_t n)
{
	struct rdma_place *p = c->place;

	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p)
			return -ENOMEM;
		p->chunk_shift = RDMA_CHUNK_SHIFT_DEFAULT;
		c->place = p;
	}
	if (n) {
		p->regions = calloc(n, sizeof(*regions));
		if (!p->regions)
			return -ENOMEM;
		memcpy(p->regions, regions, n * sizeof(*regions));
		p->n = n;
	}
	return 0;
}

static int sender_bind(struct rdma_conn *c, const struct tern_bind_opts *opts,
		       struct tern_error *err)
{
	struct rdma_place *p = c->place;
	struct rdma_msg m = {.type = RDMA_MSG_BIND, .a = p->pin_limit, .b = p->n, .len = p->n * 8};
	uint8_t *sizes = malloc((size_t)p->n * 8);
	struct iovec iov = {.iov_base = sizes, .iov_len = (size_t)p->n * 8};
	int ret;

	if (!sizes)
		return -ENOMEM;
	for (uint32_t i = 0; i < p->n; i++)
		put_be64(sizes + i * 8, p->regions[i].size);
	if (p->pin_all)
		m.flags = RDMA_MSG_F_PIN_ALL;
	/* announce first: the peer registers while we do */
	ret = rdma_send_msg(c, &m, &iov, 1);
	free(sizes);
	if (ret)
		return tern_error_set(err, ret, "BIND: %s", c->base.detail);
	if (p->pin_all) {
		p->local_mr = calloc(p->n, sizeof(*p->local_mr));
		p->raddr = calloc(p->n, sizeof(*p->raddr));
		p->rkey = calloc(p->n, sizeof(*p->rkey));
		if (!p->local_mr || !p->raddr || !p->rkey)
			return -ENOMEM;
		for (uint32_t i = 0; i < p->n; i++) {
			p->local_mr[i] = reg_timed(c, p->regions[i].host, p->regions[i].size, 0,
						   REG_RAM_SHARED, "guest RAM", err);
			if (!p->local_mr[i])
				return rdma_fail(c, err->code, "%s", err->msg);
		}
	} else {
		p->chunk_raddr = calloc(p->n, sizeof(*p->chunk_raddr));
		if (!p->chunk_raddr)
			return -ENOMEM;
		for (uint32_t i = 0; i < p->n; i++) {
			p->chunk_raddr[i] = calloc(nchunks(p, i) + 1, sizeof(uint64_t));
			if (!p->chunk_raddr[i])
				return -ENOMEM;
		}
		ret = rdma_regcache_new(p->regions, p->n, p->chunk_shift, p->pin_limit, &local_ops,
					c, &p->local_rc, err);
		if (!ret)
			ret = rdma_regcache_new(p->regions, p->n, p->chunk_shift, p->pin_limit,
						&remote_ops, c, &p->remote_rc, err);
		if (ret)
			return ret;
	}
	ret = wait_ack(c, RDMA_MSG_BIND_ACK, err);
	if (ret)
		return ret;
	if (p->ack.d) {
		char msg[200];

		uint64_t total = 0;

		for (uint32_t i = 0; p->pin_all && i < p->n; i++)
			total += p->regions[i].size;
		remote_reg_error(msg, sizeof(msg), -(int)p->ack.d, total, p->pin_all);
		return tern_error_set(err, rdma_fail(c, -(int)p->ack.d, "%s", msg), "%s", msg);
	}
	if (!p->ack.b || p->ack.b > (1ull << 30) ||
	    (p->pin_all ? p->ack.len != p->n * 16 : p->ack.len != 0))
		return tern_error_set(err,
				      rdma_fail(c, -EPROTO,
						"BIND_ACK from %s: ring of %" PRIu64
						" bytes, %u bytes of regions for %u",
						c->base.peer, p->ack.b, p->ack.len, p->n),
				      "%s", c->base.detail);
	for (uint32_t i = 0; p->pin_all && i < p->n; i++) {
		p->raddr[i] = get_be64(p->ack_payload + i * 16);
		p->rkey[i] = get_be32(p->ack_payload + i * 16 + 8);
	}
	p->ring_addr = p->ack.a;
	p->ring_rkey = (uint32_t)p->ack.c;
	rdma_ring_init(&p->ring, p->ack.b);
	return 0;
}

/* The local mirror of the peer's ring, at the first encoded payload: a
 * channel that only places pages never pins it. */
static int stage_open(struct rdma_conn *c)
{
	struct rdma_place *p = c->place;
	struct tern_error err = {0};

	p->stage = aligned_alloc(4096, p->ring.size);
	if (!p->stage)
		return rdma_fail(c, -ENOMEM, "out of memory for the staging buffer");
	p->stage_mr =
	    reg_timed(c, p->stage, p->ring.size, 0, REG_BUFFER, "the staging buffer", &err);
	if (!p->stage_mr)
		return rdma_fail(c, err.code, "%s", err.msg);
	return 0;
}

/* Receiver: the sender's BIND, once both it and our bind_ram() are here. */
static int receiver_bind(struct rdma_conn *c)
{
	struct rdma_place *p = c->place;
	const struct rdma_msg *m = &p->bind_msg;
	struct rdma_msg ack = {.type = RDMA_MSG_BIND_ACK};
	struct tern_error err = {0};
	uint8_t *regs = NULL;
	struct iovec iov;
	int ret = 0;

	p->bind_pending = false;
	if (m->b != p->n)
		return rdma_fail(c, -EPROTO, "BIND from %s: %" PRIu64 " regions, %u here",
				 c->base.peer, m->b, p->n);
	for (uint32_t i = 0; i < p->n; i++)
		if (p->bind_sizes[i] != p->regions[i].size)
			return rdma_fail(c, -EPROTO,
					 "BIND from %s: region %u is %" PRIu64
					 " bytes there, %" PRIu64 " here",
					 c->base.peer, i, p->bind_sizes[i], p->regions[i].size);
	p->pin_all = m->flags & RDMA_MSG_F_PIN_ALL;
	p->pin_limit = m->a ? m->a : RDMA_PIN_LIMIT_DEFAULT;
	p->ring_size = ring_size_override ? ring_size_override : RDMA_RING_SIZE_DEFAULT;
	p->ring_mem = aligned_alloc(4096, p->ring_size);
	if (p->pin_all) {
		p->region_mr = calloc(p->n, sizeof(*p->region_mr));
		regs = calloc(p->n, 16);
	} else {
		p->chunk_mr = calloc(p->n, sizeof(*p->chunk_mr));
		for (uint32_t i = 0; p->chunk_mr && i < p->n; i++)
			if (!(p->chunk_mr[i] = calloc(nchunks(p, i), sizeof(struct ibv_mr *))))
				ret = -ENOMEM;
	}
	if (!p->ring_mem || (p->pin_all ? !p->region_mr || !regs : !p->chunk_mr) || ret) {
		ret = rdma_fail(c, -ENOMEM, "BIND: out of memory");
		ack.d = ENOMEM;
		goto answer;
	}
	p->ring_mr = reg_timed(c, p->ring_mem, p->ring_size, RDMA_DST_ACCESS, REG_BUFFER,
			       "the staging ring", &err);
	for (uint32_t i = 0; p->ring_mr && p->pin_all && i < p->n; i++) {
		p->region_mr[i] = reg_timed(c, p->regions[i].host, p->regions[i].size,
					    RDMA_DST_ACCESS, REG_RAM_SHARED, "guest RAM", &err);
		if (!p->region_mr[i])
			break;
		put_be64(regs + i * 16, (uintptr_t)p->regions[i].host);
		put_be32(regs + i * 16 + 8, p->region_mr[i]->rkey ^ c->rkey_xor);
	}
	if (err.code) {
		ack.d = (uint64_t)-err.code;
		ret = rdma_fail(c, err.code, "%s", err.msg);
		goto answer;
	}
	ack.a = (uintptr_t)p->ring_mem;
	ack.b = p->ring_size;
	ack.c = p->ring_mr->rkey;
	if (p->pin_all)
		ack.len = p->n * 16;
answer:
	iov.iov_base = regs;
	iov.iov_len = ack.len;
	if (rdma_send_msg(c, &ack, &iov, 1) && !ret)
		ret = c->failed ? c->failed : -EIO;
	free(regs);
	return ret;
}

int rdma_bind_ram_locked(struct tern_conn *tc, const struct tern_ram_region *regions, uint32_t n,
			 const struct tern_bind_opts *opts)
{
	struct rdma_conn *c = (struct rdma_conn *)tc;
	struct tern_error err = {0};
	int ret = rdma_check(c);

	if (ret)
		return ret;
	if ((c->place && (c->place->n || !c->place->bind_pending)) || !n || n > RDMA_MAX_REGIONS)
		return -EINVAL;
	ret = place_new(c, regions, n);
	if (ret)
		return ret;
	if (!opts) {
		/* receiver: the BIND may be here already */
		return c->place->bind_pending ? receiver_bind(c) : 0;
	}
	c->place->sender = true;
	c->place->pin_all = opts->pin_all;
	c->place->pin_limit = opts->pin_limit ? opts->pin_limit : RDMA_PIN_LIMIT_DEFAULT;
	ret = sender_bind(c, opts, &err);
	if (ret && !c->base.detail[0])
		rdma_str_copy(c->base.detail, sizeof(c->base.detail), err.msg);
	return ret;
}

/* ---- receiver: control messages ---------------------------------------- */

static int handle_reg(struct rdma_conn *c, const struct rdma_msg *m)
{
	struct rdma_place *p = c->place;
	struct rdma_msg ack = {.type = RDMA_MSG_REG_ACK, .a = m->a, .b = m->b};
	struct tern_error err = {0};
	uint32_t region = (uint32_t)m->a;
	uint64_t off, len;
	struct ibv_mr **slot;

	if (!p || p->sender || p->pin_all || !p->chunk_mr)
		return rdma_fail(c, -EPROTO, "%s from %s on a channel not bound for chunks",
				 rdma_msg_type_name(m->type), c->base.peer);
	if (m->a >= p->n)
		return rdma_fail(c, -EPROTO, "%s from %s: region %" PRIu64 " of %u",
				 rdma_msg_type_name(m->type), c->base.peer, m->a, p->n);
	if (m->b >= nchunks(p, region))
		return rdma_fail(
		    c, -EPROTO,
		    "%s from %s: chunk %" PRIu64 " outside region %u (%" PRIu64 " chunks)",
		    rdma_msg_type_name(m->type), c->base.peer, m->b, region, nchunks(p, region));
	slot = &p->chunk_mr[region][m->b];
	off = m->b << p->chunk_shift;
	len = MIN(1ull << p->chunk_shift, p->regions[region].size - off);
	if (m->type == RDMA_MSG_UNREG) {
		if (*slot) {
			p->dst_pinned -= (*slot)->length;
			dereg_counted(c, *slot, REG_RAM);
			*slot = NULL;
		}
		return 0;
	}
	if (!*slot) {
		/* the sender's cache keeps its bound; allow the 4-chunk floor */
		if (p->dst_pinned + len > MAX(p->pin_limit, 4ull << p->chunk_shift) + len)
			return rdma_fail(c, -EPROTO,
					 "REG from %s: %" PRIu64
					 " bytes pinned, over its limit %" PRIu64,
					 c->base.peer, p->dst_pinned, p->pin_limit);
		*slot = reg_timed(c, p->regions[region].host + off, len, RDMA_DST_ACCESS, REG_RAM,
				  "guest RAM", &err);
		if (*slot)
			p->dst_pinned += len;
	}
	if (*slot) {
		ack.c = (uintptr_t)(*slot)->addr;
		ack.d = (*slot)->rkey ^ c->rkey_xor;
	} else {
		ack.d = (uint64_t)-err.code << 32;
		rdma_str_copy(c->base.detail, sizeof(c->base.detail), err.msg);
	}
	return rdma_send_msg(c, &ack, NULL, 0);
}

int rdma_place_handle(struct rdma_conn *c, const struct rdma_msg *m, const uint8_t *payload)
{
	struct rdma_place *p = c->place;

	switch (m->type) {
	case RDMA_MSG_BIND:
		if (p && (p->sender || p->bind_pending || p->region_mr || p->chunk_mr))
			return rdma_fail(c, -EPROTO, "BIND from %s: channel bound already",
					 c->base.peer);
		if (!p) {
			/* before our bind_ram(): keep it for then */
			if (place_new(c, NULL, 0))
				return rdma_fail(c, -ENOMEM, "out of memory");
			p = c->place;
		}
		free(p->bind_sizes);
		p->bind_sizes = calloc(m->b, sizeof(uint64_t));
		if (!p->bind_sizes)
			return rdma_fail(c, -ENOMEM, "out of memory");
		for (uint64_t i = 0; i < m->b; i++)
			p->bind_sizes[i] = get_be64(payload + i * 8);
		p->bind_msg = *m;
		p->bind_pending = true;
		return p->n ? receiver_bind(c) : 0;
	case RDMA_MSG_REG:
	case RDMA_MSG_UNREG:
		return handle_reg(c, m);
	case RDMA_MSG_BIND_ACK:
	case RDMA_MSG_REG_ACK:
		if (!p || !p->sender || p->ack_ready)
			return rdma_fail(c, -EPROTO, "unexpected %s from %s",
					 rdma_msg_type_name(m->type), c->base.peer);
		free(p->ack_payload);
		p->ack_payload = NULL;
		if (m->len && !(p->ack_payload = malloc(m->len)))
			return rdma_fail(c, -ENOMEM, "out of memory");
		if (m->len)
			memcpy(p->ack_payload, payload, m->len);
		p->ack = *m;
		p->ack_ready = true;
		return 0;
	default:
		return rdma_fail(c, -EPROTO, "unexpected %s from %s", rdma_msg_type_name(m->type),
				 c->base.peer);
	}
}

/* ---- sender: packets ----------------------------------------------------- */

/* The key for [off, off + len) of @region in @rc, waiting out -EBUSY. */
static int cache_get(struct rdma_conn *c, struct rdma_regcache *rc, uint32_t region, uint64_t off,
		     uint64_t len, uint32_t *ret_key)
{
	uint64_t deadline =
	    tern_now_ms() + (uint64_t)(c->io_timeout_ms > 0 ? c->io_timeout_ms : 30000);
	struct tern_error err = {0};
	int ret;

	for (;;) {
		ret = rdma_regcache_get(rc, region, off, len, c->sq_posted + 1, ret_key, &err);
		if (ret != -EBUSY)
			break;
		ret = rdma_check(c);
		if (!ret)
			ret = rdma_wait(c, deadline, 0);
		if (ret)
			return ret;
	}
	if (ret && !c->failed)
		rdma_fail(c, ret, "%s", err.msg);
	return ret;
}

/* Post the WRITEs of one run: pages iov[1 + first ..] to the peer's @off. */
static int write_run(struct rdma_conn *c, const struct iovec *iov, const struct tern_placement *pl,
		     const struct rdma_run *run)
{
	struct rdma_place *p = c->place;
	const struct tern_ram_region *r = &p->regions[pl->region];
	uint32_t i = run->first, end = run->first + run->npages;
	uint64_t roff = run->off;

	while (i < end) {
		struct ibv_sge sge[RDMA_MAX_SGE];
		struct ibv_send_wr wr = {.sg_list = sge, .opcode = IBV_WR_RDMA_WRITE};
		uint64_t posted, wlen = 0, raddr;
		uint32_t rkey, nsge = 0, j;
		int ret;

		/* the remote key first: a miss sends REG (and maybe UNREG) */
		do {
			posted = c->sq_posted;
			if (p->pin_all) {
				raddr = p->raddr[pl->region] + roff;
				rkey = p->rkey[pl->region];
			} else {
				ret = cache_get(c, p->remote_rc, pl->region, roff,
						(uint64_t)(end - i) * pl->page_size, &rkey);
				if (ret)
					return ret;
				raddr = p->chunk_raddr[pl->region][roff >> p->chunk_shift] +
					(roff & ((1ull << p->chunk_shift) - 1));
			}
		} while (posted != c->sq_posted);
		for (j = i; j < end; j++) {
			const uint8_t *a = iov[1 + j].iov_base;
			uint64_t loff = (uint64_t)(a - r->host);
			uint32_t lkey;

			if (a < r->host || loff + pl->page_size > r->size ||
			    iov[1 + j].iov_len != pl->page_size)
				return rdma_fail(c, -EINVAL,
						 "page %u of the packet is not a page of region %u",
						 j, pl->region);
			if (p->pin_all) {
				lkey = p->local_mr[pl->region]->lkey;
			} else {
				ret = cache_get(c, p->local_rc, pl->region, loff, pl->page_size,
						&lkey);
				if (ret)
					return ret;
			}
			if (nsge && sge[nsge - 1].lkey == lkey &&
			    sge[nsge - 1].addr + sge[nsge - 1].length == (uintptr_t)a) {
				sge[nsge - 1].length += pl->page_size;
			} else {
				if (nsge == c->max_sge)
					break;
				sge[nsge].addr = (uintptr_t)a;
				sge[nsge].length = pl->page_size;
				sge[nsge].lkey = lkey;
				nsge++;
			}
			wlen += pl->page_size;
		}
		wr.num_sge = (int)nsge;
		wr.wr.rdma.remote_addr = raddr;
		wr.wr.rdma.rkey = rkey ^ c->rkey_xor;
		ret = rdma_post_send(c, &wr, RDMA_WR_WRITE, false, NULL);
		if (ret)
			return ret;
		rdma_stat_add(&c->st.placed, wlen);
		roff += wlen;
		i = j;
	}
	return 0;
}

static int send_placed(struct rdma_conn *c, struct iovec *iov, int iovcnt,
		       const struct tern_placement *pl)
{
	struct rdma_place *p = c->place;
	uint32_t nruns;

	if (pl->region >= p->n || (uint32_t)iovcnt != 1 + pl->npages || !pl->page_size)
		return rdma_fail(c, -EINVAL, "packet of %d iovecs for %u pages of region %u",
				 iovcnt, pl->npages, pl->region);
	if (pl->npages > p->runs_cap) {
		struct rdma_run *runs = realloc(p->runs, pl->npages * sizeof(*runs));

		if (!runs)
			return -ENOMEM;
		p->runs = runs;
		p->runs_cap = pl->npages;
	}
	nruns = rdma_runs_build(pl->off, pl->npages, pl->page_size,
				p->pin_all ? 63 : p->chunk_shift, RDMA_RUN_MAX, p->runs);
	for (uint32_t i = 0; i < nruns; i++) {
		int ret = write_run(c, iov, pl, &p->runs[i]);

		if (ret)
			return ret;
	}
	/* the header after the writes: its arrival means the pages are there */
	return rdma_stream_send(c, iov, 1);
}

static int send_staged(struct rdma_conn *c, struct iovec *iov, int iovcnt)
{
	struct rdma_place *p = c->place;
	uint64_t deadline =
	    tern_now_ms() + (uint64_t)(c->io_timeout_ms > 0 ? c->io_timeout_ms : 30000);
	struct rdma_msg m = {.type = RDMA_MSG_DATA, .flags = RDMA_MSG_F_SPAN};
	struct ibv_sge sge;
	struct ibv_send_wr wr = {.sg_list = &sge, .num_sge = 1, .opcode = IBV_WR_RDMA_WRITE};
	uint64_t len = 0, off, end;
	int backoff_us = 20, ret;
	uint8_t *dst;

	for (int i = 1; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (!p->stage_mr && (ret = stage_open(c)))
		return ret;
	if (iov[0].iov_len > RDMA_BUF_SIZE - RDMA_MSG_HDR_LEN || !iov[0].iov_len)
		return -EMSGSIZE;
	for (;;) {
		ret = rdma_ring_alloc(&p->ring, len, &off, &end);
		if (ret != -EAGAIN)
			break;
		rdma_feedback_read(c);
		if (rdma_ring_release(&p->ring, c->peer_released))
			return rdma_fail(c, -EPROTO,
					 "%s released its staging ring up to %" PRIu64
					 ", beyond the %" PRIu64 " bytes allocated",
					 c->base.peer, c->peer_released, p->ring.head);
		ret = rdma_ring_alloc(&p->ring, len, &off, &end);
		if (ret != -EAGAIN)
			break;
		ret = rdma_check(c);
		if (!ret)
			ret = rdma_wait(c, deadline, backoff_us);
		if (ret == -ETIMEDOUT)
			snprintf(c->base.detail, sizeof(c->base.detail),
				 "%s released no staging ring space for %d ms", c->base.peer,
				 c->io_timeout_ms);
		if (ret)
			return ret;
		backoff_us = MIN(backoff_us * 2, 1000);
	}
	if (ret)
		return rdma_fail(c, ret,
				 "payload of %" PRIu64 " bytes does not fit the %" PRIu64
				 "-byte staging ring",
				 len, p->ring.size);
	dst = p->stage + off;
	for (int i = 1; i < iovcnt; i++) {
		memcpy(dst, iov[i].iov_base, iov[i].iov_len);
		dst += iov[i].iov_len;
	}
	sge.addr = (uintptr_t)(p->stage + off);
	sge.length = (uint32_t)len;
	sge.lkey = p->stage_mr->lkey;
	wr.wr.rdma.remote_addr = p->ring_addr + off;
	wr.wr.rdma.rkey = p->ring_rkey ^ c->rkey_xor;
	ret = rdma_post_send(c, &wr, RDMA_WR_WRITE, false, NULL);
	if (ret)
		return ret;
	rdma_stat_add(&c->st.staged, len);
	m.len = (uint32_t)iov[0].iov_len;
	m.a = off;
	m.b = len;
	m.c = end;
	return rdma_send_msg(c, &m, iov, 1);
}

int rdma_send_packet_locked(struct tern_conn *tc, const struct iovec *iov, int iovcnt,
			    const struct tern_placement *place)
{
	struct rdma_conn *c = (struct rdma_conn *)tc;
	struct iovec *v = (struct iovec *)iov;
	int ret = rdma_check(c);

	if (ret)
		return ret;
	if (!c->place || !c->place->sender || iovcnt < 1)
		return rdma_stream_send(c, v, iovcnt);
	if (place)
		return send_placed(c, v, iovcnt, place);
	if (iovcnt > 1)
		return send_staged(c, v, iovcnt);
	return rdma_stream_send(c, v, iovcnt);
}

/* ---- receiver: pages and payloads --------------------------------------- */

int rdma_place_data(struct rdma_conn *c, const struct rdma_msg *m)
{
	struct rdma_place *p = c->place;

	if (!(m->flags & RDMA_MSG_F_SPAN))
		return 0;
	if (!p || p->sender || !p->ring_mr)
		return rdma_fail(c, -EPROTO,
				 "DATA from %s names a staging span, but no ring is bound",
				 c->base.peer);
	if (p->span_valid)
		return rdma_fail(c, -EPROTO,
				 "DATA from %s names a staging span before the last one was read",
				 c->base.peer);
	p->span_off = m->a;
	p->span_len = m->b;
	p->span_end = m->c;
	p->span_valid = true;
	return 0;
}

int rdma_place_release(struct rdma_conn *c)
{
	struct rdma_place *p = c->place;

	if (!p || !p->lent)
		return 0;
	p->lent = false;
	c->released = p->lent_end;
	return rdma_feedback_send(c);
}

int rdma_recv_pages_locked(struct tern_conn *tc, struct iovec *dst, int n)
{
	struct rdma_conn *c = (struct rdma_conn *)tc;
	int ret = rdma_check(c);

	if (ret)
		return ret;
	if (!c->place || c->place->sender || !c->place->ring_mr)
		return rdma_stream_recv_iov(c, dst, n);
	return rdma_place_release(c); /* the pages are in place already */
}

int rdma_recv_payload_locked(struct tern_conn *tc, void *buf, size_t len, const void **ret_view)
{
	struct rdma_conn *c = (struct rdma_conn *)tc;
	struct rdma_place *p = c->place;
	struct tern_error err = {0};
	int ret = rdma_check(c);

	if (ret)
		return ret;
	if (!p || p->sender || !p->ring_mr) {
		ret = rdma_stream_recv(c, buf, len);
		*ret_view = ret ? NULL : buf;
		return ret;
	}
	ret = rdma_place_release(c);
	if (ret)
		return ret;
	if (!p->span_valid)
		return rdma_fail(c, -EPROTO, "payload of %zu bytes, but %s staged none", len,
				 c->base.peer);
	p->span_valid = false;
	ret = rdma_ring_check(p->ring_size, p->expect_end, p->span_off, p->span_len, p->span_end,
			      p->ring_size, &err);
	if (ret)
		return rdma_fail(c, -EPROTO, "staging span from %s: %s", c->base.peer, err.msg);
	if (p->span_len != len)
		return rdma_fail(
		    c, -EPROTO, "staging span from %s holds %" PRIu64 " bytes, the packet says %zu",
		    c->base.peer, p->span_len, len);
	p->expect_end = p->span_end;
	p->lent = true;
	p->lent_end = p->span_end;
	*ret_view = p->ring_mem + p->span_off;
	return 0;
}

/* ---- teardown, stats ------------------------------------------------------ */

void rdma_place_completed(struct rdma_conn *c)
{
	struct rdma_place *p = c->place;

	if (!p)
		return;
	if (p->local_rc)
		rdma_regcache_completed(p->local_rc, c->sq_done);
	if (p->remote_rc)
		rdma_regcache_completed(p->remote_rc, c->sq_done);
}

void rdma_place_free(struct rdma_conn *c)
{
	struct rdma_place *p = c->place;

	if (!p)
		return;
	p->unbinding = true;
	rdma_regcache_free(p->remote_rc);
	rdma_regcache_free(p->local_rc);
	for (uint32_t i = 0; i < p->n; i++) {
		if (p->local_mr)
			dereg_counted(c, p->local_mr[i], REG_RAM_SHARED);
		if (p->region_mr)
			dereg_counted(c, p->region_mr[i], REG_RAM_SHARED);
		if (p->chunk_mr && p->chunk_mr[i]) {
			for (uint64_t k = 0; k < nchunks(p, i); k++)
				dereg_counted(c, p->chunk_mr[i][k], REG_RAM);
			free(p->chunk_mr[i]);
		}
		if (p->chunk_raddr)
			free(p->chunk_raddr[i]);
	}
	dereg_counted(c, p->ring_mr, REG_BUFFER);
	dereg_counted(c, p->stage_mr, REG_BUFFER);
	free(p->ring_mem);
	free(p->stage);
	free(p->local_mr);
	free(p->region_mr);
	free(p->chunk_mr);
	free(p->chunk_raddr);
	free(p->raddr);
	free(p->rkey);
	free(p->runs);
	free(p->ack_payload);
	free(p->bind_sizes);
	free(p->regions);
	free(p);
	c->place = NULL;
}

void rdma_unbind_ram_locked(struct tern_conn *tc)
{
	struct rdma_conn *c = (struct rdma_conn *)tc;
	uint64_t deadline =
	    tern_now_ms() + (uint64_t)(c->io_timeout_ms > 0 ? c->io_timeout_ms : 30000);

	/* a sender's WRITEs still read its registered pages: let them finish
	 * (every packet ends with a signaled SEND) before the keys go */
	while (c->place && c->place->sender && !rdma_check(c) && c->sq_done < c->last_signaled)
		if (rdma_wait(c, deadline, 0))
			break;
	rdma_place_free(c);
}

void rdma_xport_stats(struct tern_conn *tc, struct tern_xport_stats *st)
{
	struct rdma_conn *c = (struct rdma_conn *)tc;

	st->pinned_bytes += __atomic_load_n(&c->st.pinned, __ATOMIC_RELAXED);
	st->pinned_peak += __atomic_load_n(&c->st.peak, __ATOMIC_RELAXED);
	st->reg_ns += __atomic_load_n(&c->st.reg_ns, __ATOMIC_RELAXED);
	st->chunks_registered += __atomic_load_n(&c->st.chunks, __ATOMIC_RELAXED);
	st->placed_bytes += __atomic_load_n(&c->st.placed, __ATOMIC_RELAXED);
	st->staged_bytes += __atomic_load_n(&c->st.staged, __ATOMIC_RELAXED);
}

/* ---- test hooks ---------------------------------------------------------- */

int rdma_test_qp_error(struct tern_conn *tc)
{
	struct ibv_qp_attr attr = {.qp_state = IBV_QPS_ERR};

	return -ibv_modify_qp(((struct rdma_conn *)tc)->qp, &attr, IBV_QP_STATE);
}

void rdma_test_corrupt_rkey(struct tern_conn *tc, uint32_t mask)
{
	((struct rdma_conn *)tc)->rkey_xor = mask;
}

int rdma_test_send_raw(struct tern_conn *tc, const struct rdma_msg *m, const void *payload)
{
	struct rdma_conn *c = (struct rdma_conn *)tc;
	struct rdma_msg copy = *m;
	struct iovec iov = {.iov_base = (void *)payload, .iov_len = m->len};
	int ret;

	rdma_lock(c, RDMA_ROLE_SEND);
	ret = rdma_send_msg(c, &copy, &iov, 1);
	rdma_unlock(c);
	return ret;
}
