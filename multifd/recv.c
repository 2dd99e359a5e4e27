/* SPDX-License-Identifier: MIT */
/*
 * Receive side of the worker channels.
 *
 * Each worker reads a header, validates it, reads the offsets, validates
 * them all, and only then reads the page data -- with one readv straight into
 * the pages' final addresses in guest RAM. Zero pages are not written where
 * the page never received data (fresh anonymous memory is zero already, and
 * writing it would allocate it); a page that did receive data and is now zero
 * is cleared. The "touched" bits are set atomically because neighbouring
 * pages of one bitmap word may arrive on different channels.
 * With verify-ram, the counter of each region a packet touched is bumped
 * once its pages are in (core/digest_track.c says why that is enough).
 *
 * An encoded payload (any codec but NONE) cannot be read in place: its
 * length is checked against the codec's bound before a byte is read, it is
 * read into the channel's own buffer, and the channel's decoder for that
 * codec (created on first use) writes the pages to their final addresses.
 * XBZRLE deltas apply to what those pages hold, which is the version the
 * source encoded against: the sync barrier below orders a page's rounds.
 *
 * Sync points: a worker that reads SYNC n records it and waits until the
 * load thread, having seen RAM_SYNC n on the control channel and every
 * channel's SYNC n, releases round n. Until then it reads nothing more, so
 * no page of round n+1 can land before a round-n copy on another channel.
 *
 * Postcopy packets (MF_FLAG_POSTCOPY): the guest runs here, so their pages
 * must appear atomically -- a vCPU may touch one while it lands. They never
 * go into guest RAM by readv or a decoder: after the same checks as any
 * packet, the payload is read (or decoded) into the channel's bounce buffer,
 * allocated on the first such packet, and the placer the load thread set
 * (mf_recv_set_placer(), userfaultfd) puts each run of consecutive pages in
 * place, zero pages too. A worker that meets the first postcopy packet
 * before the placer is set waits for it (or a failure, or shutdown) with the
 * whole packet read, placing nothing; then it keeps its own copy of the
 * placer, so later packets take no lock. The bookkeeping after (touched
 * bits, verify-ram counters, the digest, figures) is a normal packet's.
 */
#include <assert.h>
#include <pthread.h>
#include <stdlib.h>

#include "multifd.h"

struct mf_recv_chan {
	struct mf_recv *owner;
	/* immutable once the worker runs */
	uint32_t index;
	struct tern_conn *conn;
	pthread_t thread;
	bool thread_started;
	/* protected by owner->lock */
	uint64_t synced_round; /* last SYNC read; 0 = none */
	bool done;	       /* read SYNC|LAST and ended */
	/* worker thread only */
	uint64_t seq;
	uint8_t *offsets;
	uint64_t *pgno; /* verify-ram: the packet's normal pages, page numbers */
	struct iovec *iov;
	uint8_t *payload; /* encoded payloads; NULL under method none */
	uint8_t **dst;	  /* the pages a payload decodes into */
	struct codec_dec *dec[MF_NCODECS];
	uint8_t *bounce;   /* postcopy: MF_MAX_PAGES pages, from the first such packet */
	bool background;   /* postcopy, a bulk channel: yields to the urgent path */
	mf_place_fn place; /* postcopy: the placer, once the load thread set it */
	void *place_opaque;
	/* written by the worker, read by anyone (atomics) */
	struct mf_chan_stats stats;
	struct mf_codec_stats cstats;
};

struct mf_recv {
	struct mf_config cfg;
	pthread_mutex_t lock;
	/* protected by ->lock */
	pthread_cond_t cond;
	uint64_t released_round;
	mf_place_fn place; /* mf_recv_set_placer() */
	void *place_opaque;
	uint32_t nadded;
	bool quit;
	bool failed;
	struct tern_error err;
	/* immutable after new */
	struct mf_recv_chan *chans;
	struct tern_ram_region *regions; /* cfg.blocks, as transports see them */
};

static void recv_fail(struct mf_recv *r, const struct tern_error *cause)
{
	bool first;

	pthread_mutex_lock(&r->lock);
	first = !r->failed;
	if (first) {
		r->failed = true;
		tern_error_set(&r->err, cause->code, "%s", cause->msg);
	}
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	if (first) {
		tern_log_msg(r->cfg.log, 3, "multifd recv: %s", cause->msg);
		if (r->cfg.on_error)
			r->cfg.on_error(r->cfg.opaque);
	}
}

static int io_error(struct mf_recv_chan *c, int ret, const char *what, struct tern_error *err)
{
	/* The read deadline (io-timeout) ran out inside the packet. */
	if (ret == -EAGAIN)
		return tern_error_set(
		    err, -ETIMEDOUT,
		    "worker channel %u: no data for %d ms in the middle of packet "
		    "%" PRIu64 "'s %s",
		    c->index, c->conn->recv_timeout_ms, c->seq, what);
	if (ret == -EPIPE)
		return tern_error_set(
		    err, ret, "channel %u: %s closed the connection in packet %" PRIu64 " (%s)%s%s",
		    c->index, c->conn->peer, c->seq, what, c->conn->detail[0] ? ": " : "",
		    c->conn->detail);
	return tern_error_set(err, ret, "channel %u: reading %s of packet %" PRIu64 ": %s%s%s",
			      c->index, what, c->seq, strerror(-ret),
			      c->conn->detail[0] ? ": " : "", c->conn->detail);
}

/* Wait for the load thread to release @round. false when told to stop. */
static bool wait_release(struct mf_recv_chan *c, uint64_t round)
{
	struct mf_recv *r = c->owner;
	bool ok;

	pthread_mutex_lock(&r->lock);
	c->synced_round = round;
	pthread_cond_broadcast(&r->cond);
	while (r->released_round < round && !r->quit && !r->failed)
		pthread_cond_wait(&r->cond, &r->lock);
	ok = r->released_round >= round;
	pthread_mutex_unlock(&r->lock);
	return ok;
}

static void stat_add(uint64_t *field, uint64_t v)
{
	__atomic_fetch_add(field, v, __ATOMIC_RELAXED);
}

static int chan_decoder(struct mf_recv_chan *c, uint32_t id, struct codec_dec **ret,
			struct tern_error *err)
{
	struct codec_config cc = mf_codec_config(&c->owner->cfg, id);

	if (!c->dec[id] && codec_dec_new(&cc, &c->dec[id], err))
		return tern_error_prefix(err,
					 "channel %u packet %" PRIu64 ": creating the %s decoder",
					 c->index, c->seq, codec_name(cc.id));
	*ret = c->dec[id];
	return 0;
}

/*
 * Read an encoded payload (its length already checked against the codec's
 * bound by mf_hdr_check(), and the buffer sized for the largest bound of the
 * method) and decode it into the pages at the validated offsets -- or, with
 * @bounce, into its pages, in packet order.
 */
static int land_encoded(struct mf_recv_chan *c, const struct mf_packet_hdr *h,
			const struct mf_block *blk, uint8_t *bounce, struct tern_error *err)
{
	const size_t page = c->owner->cfg.page_size;
	const char *name = codec_name((enum tern_codec_id)h->codec);
	struct codec_stats v = {0};
	struct codec_dec *dec = NULL;
	const void *payload = NULL;
	struct codec_stats *d;
	uint32_t i;
	int ret;

	if (!c->payload)
		return tern_error_set(err, -EPROTO,
				      "channel %u packet %" PRIu64 " (%s): no room for an encoded "
				      "payload",
				      c->index, c->seq, name);
	ret = chan_decoder(c, h->codec, &dec, err);
	if (ret)
		return ret;
	ret = conn_recv_payload(c->conn, c->payload, h->payload_len, &payload);
	if (ret)
		return io_error(c, ret, "payload", err);
	for (i = 0; i < h->normal; i++)
		c->dst[i] =
		    bounce ? bounce + i * page : blk->host + get_be64(c->offsets + 8 * (size_t)i);
	ret = codec_decode(dec, payload, h->payload_len, c->dst, h->normal, err);
	if (ret)
		return tern_error_prefix(err, "channel %u packet %" PRIu64 " (%s)", c->index,
					 c->seq, name);
	codec_dec_stats(dec, &v);
	d = &c->cstats.codec[h->codec];
	__atomic_store_n(&d->pages, v.pages, __ATOMIC_RELAXED);
	__atomic_store_n(&d->bytes_in, v.bytes_in, __ATOMIC_RELAXED);
	__atomic_store_n(&d->bytes_out, v.bytes_out, __ATOMIC_RELAXED);
	__atomic_store_n(&d->ns, v.ns, __ATOMIC_RELAXED);
	return 0;
}

/* The normal pages' page numbers (for the digest), and their touched bits. */
static void note_touched(struct mf_recv_chan *c, const struct mf_packet_hdr *h,
			 const struct mf_block *blk)
{
	uint32_t page = c->owner->cfg.page_size, i;

	for (i = 0; i < h->normal; i++) {
		uint64_t pg = get_be64(c->offsets + 8 * (size_t)i) / page;

		c->pgno[i] = pg;
		if (!bitmap_test_atomic(blk->touched, pg))
			bitmap_set_atomic(blk->touched, pg);
	}
}

/* A precopy packet's pages, straight into guest RAM (see the top). */
static int land_direct(struct mf_recv_chan *c, const struct mf_packet_hdr *h,
		       const struct mf_block *blk, struct tern_error *err)
{
	uint32_t page = c->owner->cfg.page_size, npages = h->normal + h->zero, i;
	int ret;

	if (h->codec == TERN_CODEC_NONE) {
		for (i = 0; i < h->normal; i++) {
			uint64_t off = get_be64(c->offsets + 8 * (size_t)i);

			c->iov[i].iov_base = blk->host + off;
			c->iov[i].iov_len = page;
		}
		if (h->normal) {
			ret = conn_recv_pages(c->conn, c->iov, (int)h->normal);
			if (ret)
				return io_error(c, ret, "pages", err);
			stat_add(&c->cstats.codec[TERN_CODEC_NONE].pages, h->normal);
			stat_add(&c->cstats.codec[TERN_CODEC_NONE].bytes_in, h->payload_len);
			stat_add(&c->cstats.codec[TERN_CODEC_NONE].bytes_out, h->payload_len);
		}
	} else {
		ret = land_encoded(c, h, blk, NULL, err);
		if (ret)
			return ret;
	}
	note_touched(c, h, blk);
	for (i = h->normal; i < npages; i++) {
		uint64_t off = get_be64(c->offsets + 8 * (size_t)i);

		if (bitmap_test_atomic(blk->touched, off / page))
			memset(blk->host + off, 0, page);
	}
	return 0;
}

/*
 * Wait until the load thread set the placer (at once after the first time).
 * A failure or a shutdown ends the wait with -ECANCELED: the worker then
 * ends, recording nothing of its own (the failure is recorded already, and
 * a shutdown is none).
 */
static int wait_placer(struct mf_recv_chan *c, struct tern_error *err)
{
	struct mf_recv *r = c->owner;

	if (LIKELY(c->place))
		return 0;
	pthread_mutex_lock(&r->lock);
	while (!r->place && !r->quit && !r->failed)
		pthread_cond_wait(&r->cond, &r->lock);
	c->place = r->place;
	c->place_opaque = r->place_opaque;
	pthread_mutex_unlock(&r->lock);
	if (!c->place)
		return tern_error_set(err, -ECANCELED,
				      "channel %u packet %" PRIu64
				      ": stopped while waiting for the postcopy placer",
				      c->index, c->seq);
	return 0;
}

/*
 * Hand @n pages at offsets @offs (validated) to the placer, one call per run
 * of pages consecutive both in the block and in the packet: from @data (the
 * pages in packet order), or zero pages (@data NULL).
 */
static int place_runs(struct mf_recv_chan *c, const struct mf_packet_hdr *h, const uint8_t *offs,
		      uint32_t n, const uint8_t *data, struct tern_error *err)
{
	uint32_t page = c->owner->cfg.page_size, i, j;

	for (i = 0; i < n; i = j) {
		uint64_t off = get_be64(offs + 8 * (size_t)i);
		int ret;

		for (j = i + 1;
		     j < n && get_be64(offs + 8 * (size_t)j) == off + (uint64_t)(j - i) * page; j++)
			;
		ret = c->place(c->place_opaque, h->block, off / page, j - i,
			       data ? data + (size_t)i * page : NULL, err);
		if (ret >= 0)
			continue;
		/* the placer's message, said where it came from */
		if (!err->code)
			return tern_error_set(err, ret,
					      "channel %u packet %" PRIu64
					      ": placing %u %spages at "
					      "page %" PRIu64 " of block %u: %s",
					      c->index, c->seq, j - i, data ? "" : "zero ",
					      off / page, h->block, strerror(-ret));
		return tern_error_prefix(err,
					 "channel %u packet %" PRIu64 ": placing %u %spages at "
					 "page %" PRIu64 " of block %u",
					 c->index, c->seq, j - i, data ? "" : "zero ", off / page,
					 h->block);
	}
	return 0;
}

/* A postcopy packet's pages: through the bounce buffer to the placer. */
static int land_postcopy(struct mf_recv_chan *c, const struct mf_packet_hdr *h,
			 const struct mf_block *blk, struct tern_error *err)
{
	const size_t page = c->owner->cfg.page_size;
	const void *data = NULL;
	int ret;

	if (!c->background && !mf_chan_is_urgent(&c->owner->cfg, c->index)) {
		mf_postcopy_background();
		c->background = true;
	}
	if (!c->bounce) {
		/* MF_MAX_PAGES pages: a multiple of the alignment */
		c->bounce = aligned_alloc(64, MF_MAX_PAGES * page);
		if (!c->bounce)
			return tern_error_set(err, -ENOMEM,
					      "channel %u packet %" PRIu64
					      ": out of memory for the postcopy buffer",
					      c->index, c->seq);
	}
	if (h->codec != TERN_CODEC_NONE) {
		ret = land_encoded(c, h, blk, c->bounce, err);
		if (ret)
			return ret;
		data = c->bounce;
	} else if (h->normal) {
		/* a payload, never placed by the transport (multifd/send.c):
		 * here, or in the transport's staging memory */
		ret = conn_recv_payload(c->conn, c->bounce, h->payload_len, &data);
		if (ret)
			return io_error(c, ret, "pages", err);
		stat_add(&c->cstats.codec[TERN_CODEC_NONE].pages, h->normal);
		stat_add(&c->cstats.codec[TERN_CODEC_NONE].bytes_in, h->payload_len);
		stat_add(&c->cstats.codec[TERN_CODEC_NONE].bytes_out, h->payload_len);
	}
	ret = wait_placer(c, err);
	if (!ret)
		ret = place_runs(c, h, c->offsets, h->normal, data, err);
	if (!ret)
		ret = place_runs(c, h, c->offsets + 8 * (size_t)h->normal, h->zero, NULL, err);
	if (!ret)
		note_touched(c, h, blk);
	return ret;
}

static int land_pages(struct mf_recv_chan *c, const struct mf_packet_hdr *h, struct tern_error *err)
{
	const struct mf_config *cfg = &c->owner->cfg;
	const struct mf_block *blk = &cfg->blocks[h->block];
	uint32_t npages = h->normal + h->zero;
	int ret;

	ret = conn_recv(c->conn, c->offsets, 8 * (size_t)npages);
	if (ret)
		return io_error(c, ret, "offsets", err);
	ret = mf_offsets_check(c->offsets, npages, blk, cfg->page_size, c->index, h->seq, err);
	if (ret)
		return ret;
	if (UNLIKELY(h->flags & MF_FLAG_POSTCOPY))
		ret = land_postcopy(c, h, blk, err);
	else
		ret = land_direct(c, h, blk, err);
	if (ret)
		return ret;
	mf_block_note_written(blk, c->offsets, npages);
	__atomic_fetch_add(&c->stats.wire_bytes,
			   MF_HDR_SIZE + 8 * (uint64_t)npages + h->payload_len, __ATOMIC_RELAXED);
	__atomic_fetch_add(&c->stats.normal_pages, h->normal, __ATOMIC_RELAXED);
	__atomic_fetch_add(&c->stats.zero_pages, h->zero, __ATOMIC_RELAXED);
	__atomic_fetch_add(&c->stats.packets, 1, __ATOMIC_RELAXED);
	return 0;
}

static void *recv_worker(void *arg)
{
	struct mf_recv_chan *c = arg;
	struct mf_recv *r = c->owner;
	CPU_THREAD(cpu, r->cfg.cpu, TERN_CPU_RECV, "tern-recv/%u", c->index);
	struct tern_error err = {0};
	uint8_t hdrbuf[MF_HDR_SIZE];
	uint64_t round = mf_first_round(&r->cfg);
	int ret;

	ret = conn_bind_ram(c->conn, r->regions, r->cfg.nblocks, NULL);
	if (ret) {
		io_error(c, ret, "its RAM registration", &err);
		goto fail;
	}
	for (;;) {
		struct mf_packet_hdr h;

		/* Quiet between packets is no stall: see conn_recv_msg(). */
		ret = conn_recv_msg(c->conn, hdrbuf, sizeof(hdrbuf));
		if (ret) {
			io_error(c, ret, "header", &err);
			break;
		}
		mf_hdr_decode(hdrbuf, &h);
		ret = mf_hdr_check(&h, &r->cfg, c->index, c->seq, round, &err);
		if (ret)
			break;
		if (h.flags & MF_FLAG_SYNC) {
			c->seq++;
			__atomic_fetch_add(&c->stats.wire_bytes, MF_HDR_SIZE, __ATOMIC_RELAXED);
			/* a SYNC is a packet, as on the send side */
			__atomic_fetch_add(&c->stats.packets, 1, __ATOMIC_RELAXED);
			if (!wait_release(c, round))
				goto out; /* stopped: the error is recorded elsewhere */
			if (h.flags & MF_FLAG_LAST) {
				/* the last page is in: no key of ours stays valid */
				conn_unbind_ram(c->conn);
				pthread_mutex_lock(&r->lock);
				c->done = true;
				pthread_cond_broadcast(&r->cond);
				pthread_mutex_unlock(&r->lock);
				return NULL;
			}
			round++;
			continue;
		}
		ret = land_pages(c, &h, &err);
		if (ret)
			break;
		c->seq++;
		if (r->cfg.digest && h.normal) {
			cpu_thread_switch(&cpu, TERN_CPU_DIGEST);
			r->cfg.digest(r->cfg.opaque, h.block, c->pgno, h.normal);
			cpu_thread_switch(&cpu, TERN_CPU_RECV);
		}
	}
fail:
	pthread_mutex_lock(&r->lock);
	ret = r->quit;
	pthread_mutex_unlock(&r->lock);
	if (!ret)
		recv_fail(r, &err);
out:
	/* Failed or stopped: the peer may not write into our RAM any more. */
	conn_unbind_ram(c->conn);
	return NULL;
}

int mf_recv_new(const struct mf_config *cfg, struct mf_recv **ret, struct tern_error *err)
{
	struct mf_recv *r;
	uint32_t i;
	int rc;

	rc = mf_method_check(cfg->method, "multifd", err);
	if (rc)
		return rc;
	if (cfg->urgent && cfg->nchannels < 2)
		return tern_error_set(err, -EINVAL,
				      "multifd: an urgent channel needs 2 channels or more, not %u "
				      "(the last one carries only urgent pages)",
				      cfg->nchannels);
	r = calloc(1, sizeof(*r));
	if (!r)
		return tern_error_set(err, -ENOMEM, "multifd: out of memory");
	r->cfg = *cfg;
	r->released_round = mf_first_round(cfg) - 1;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	r->chans = calloc(cfg->nchannels, sizeof(*r->chans));
	r->regions = calloc(cfg->nblocks ? cfg->nblocks : 1, sizeof(*r->regions));
	if (!r->chans || !r->regions) {
		mf_recv_free(r);
		return tern_error_set(err, -ENOMEM, "multifd: out of memory");
	}
	for (i = 0; i < cfg->nblocks; i++)
		r->regions[i] = (struct tern_ram_region){cfg->blocks[i].host, cfg->blocks[i].size};
	for (i = 0; i < cfg->nchannels; i++) {
		struct mf_recv_chan *c = &r->chans[i];

		c->owner = r;
		c->index = i;
		c->synced_round = mf_first_round(cfg) - 1;
		c->offsets = malloc(8 * MF_MAX_PAGES);
		c->pgno = malloc(sizeof(*c->pgno) * MF_MAX_PAGES);
		c->iov = calloc(MF_MAX_PAGES, sizeof(*c->iov));
		c->dst = calloc(MF_MAX_PAGES, sizeof(*c->dst));
		if (cfg->method != TERN_CODEC_NONE)
			c->payload = malloc(
			    mf_method_payload_max(cfg->method, cfg->page_size, MF_MAX_PAGES));
		if (!c->offsets || !c->pgno || !c->iov || !c->dst ||
		    (cfg->method != TERN_CODEC_NONE && !c->payload)) {
			mf_recv_free(r);
			return tern_error_set(err, -ENOMEM, "multifd: out of memory");
		}
	}
	*ret = r;
	return 0;
}

int mf_recv_add_channel(struct mf_recv *r, struct tern_conn *conn, struct tern_error *err)
{
	uint8_t hello[MF_HELLO_SIZE];
	uint32_t index;
	int ret;

	ret = conn_recv(conn, hello, sizeof(hello));
	if (ret) {
		tern_error_set(err, ret, "worker channel from %s: reading hello: %s", conn->peer,
			       ret == -EPIPE ? "connection closed" : strerror(-ret));
		conn_close(conn);
		return ret;
	}
	ret = mf_hello_check(hello, &r->cfg, &index, err);
	if (ret) {
		conn_close(conn);
		return ret;
	}
	return mf_recv_join(r, conn, index, err);
}

int mf_recv_join(struct mf_recv *r, struct tern_conn *conn, uint32_t index, struct tern_error *err)
{
	struct mf_recv_chan *c;
	int ret;

	if (index >= r->cfg.nchannels) {
		ret = tern_error_set(err, -EINVAL, "worker channel %u of %u", index,
				     r->cfg.nchannels);
		goto err_close;
	}
	c = &r->chans[index];
	pthread_mutex_lock(&r->lock);
	if (c->conn) {
		pthread_mutex_unlock(&r->lock);
		ret = tern_error_set(err, -EPROTO, "worker channel %u connected twice", index);
		goto err_close;
	}
	c->conn = conn;
	pthread_mutex_unlock(&r->lock);
	__atomic_store_n(&c->stats.wire_bytes, MF_HELLO_SIZE, __ATOMIC_RELAXED);
	ret = -pthread_create(&c->thread, NULL, recv_worker, c);
	if (ret)
		return tern_error_set(err, ret, "multifd: starting channel %u: %s", index,
				      strerror(-ret));
	pthread_mutex_lock(&r->lock);
	c->thread_started = true;
	r->nadded++;
	pthread_mutex_unlock(&r->lock);
	return 0;

err_close:
	conn_close(conn);
	return ret;
}

bool mf_recv_complete(struct mf_recv *r)
{
	bool done;

	pthread_mutex_lock(&r->lock);
	done = r->nadded == r->cfg.nchannels;
	pthread_mutex_unlock(&r->lock);
	return done;
}

static bool all_synced_locked(struct mf_recv *r, uint64_t round)
{
	uint32_t i;

	for (i = 0; i < r->cfg.nchannels; i++)
		if (r->chans[i].synced_round < round)
			return false;
	return true;
}

int mf_recv_wait_sync(struct mf_recv *r, uint64_t round, struct tern_error *err)
{
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	while (!all_synced_locked(r, round) && !r->failed && !r->quit)
		pthread_cond_wait(&r->cond, &r->lock);
	if (r->failed) {
		ret = r->err.code;
		tern_error_set(err, ret, "%s", r->err.msg);
	} else if (r->quit) {
		ret = tern_error_set(err, -ECANCELED, "multifd: cancelled");
	} else {
		r->released_round = round;
		pthread_cond_broadcast(&r->cond);
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int mf_recv_finish(struct mf_recv *r, struct tern_error *err)
{
	uint32_t i;
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	for (i = 0; i < r->cfg.nchannels; i++)
		while (!r->chans[i].done && !r->failed && !r->quit)
			pthread_cond_wait(&r->cond, &r->lock);
	if (r->failed) {
		ret = r->err.code;
		tern_error_set(err, ret, "%s", r->err.msg);
	} else if (r->quit) {
		ret = tern_error_set(err, -ECANCELED, "multifd: cancelled");
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int mf_recv_error(struct mf_recv *r, struct tern_error *err)
{
	int ret = 0;

	pthread_mutex_lock(&r->lock);
	if (r->failed) {
		ret = r->err.code;
		tern_error_set(err, ret, "%s", r->err.msg);
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

void mf_recv_set_placer(struct mf_recv *r, mf_place_fn fn, void *opaque)
{
	assert(fn);
	pthread_mutex_lock(&r->lock);
	r->place = fn;
	r->place_opaque = opaque;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

void mf_recv_shutdown(struct mf_recv *r)
{
	uint32_t i;

	/* ->conn is set under the lock; shutdown(2) does not block. */
	pthread_mutex_lock(&r->lock);
	r->quit = true;
	pthread_cond_broadcast(&r->cond);
	for (i = 0; i < r->cfg.nchannels; i++)
		conn_shutdown(r->chans[i].conn);
	pthread_mutex_unlock(&r->lock);
}

void mf_recv_stats(struct mf_recv *r, struct mf_chan_stats *total, struct mf_chan_stats *per_chan)
{
	uint32_t i;

	memset(total, 0, sizeof(*total));
	for (i = 0; i < r->cfg.nchannels; i++)
		mf_chan_stats_add(total, &r->chans[i].stats, per_chan ? &per_chan[i] : NULL);
}

void mf_recv_codec_stats(struct mf_recv *r, struct mf_codec_stats *total)
{
	uint32_t i;

	memset(total, 0, sizeof(*total));
	for (i = 0; i < r->cfg.nchannels; i++)
		mf_codec_stats_add(total, &r->chans[i].cstats);
}

void mf_recv_xport_stats(struct mf_recv *r, struct tern_xport_stats *total)
{
	uint32_t i;

	for (i = 0; i < r->cfg.nchannels; i++) {
		struct tern_conn *conn;

		/* a channel joins under the lock; its conn then stays till free */
		pthread_mutex_lock(&r->lock);
		conn = r->chans[i].conn;
		pthread_mutex_unlock(&r->lock);
		conn_xport_stats(conn, total);
	}
}

void mf_recv_free(struct mf_recv *r)
{
	uint32_t i, id;

	if (!r)
		return;
	if (r->chans) {
		mf_recv_shutdown(r);
		for (i = 0; i < r->cfg.nchannels; i++) {
			struct mf_recv_chan *c = &r->chans[i];

			if (c->thread_started)
				pthread_join(c->thread, NULL);
			conn_close(c->conn);
			free(c->offsets);
			free(c->pgno);
			free(c->iov);
			free(c->dst);
			free(c->payload);
			free(c->bounce);
			for (id = 0; id < MF_NCODECS; id++)
				if (c->dec[id])
					codec_dec_free(c->dec[id]);
		}
	}
	free(r->chans);
	free(r->regions);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r);
}
