/* SPDX-License-Identifier: MIT */
/*
 * Send side of the worker channels.
 *
 * The migration thread fills batches of page numbers and queues each on a
 * worker's one-entry slot; the worker takes it at once (so the producer can
 * fill the next while it sends), tests each page for zero, and writes one
 * packet with a single writev: header and offsets from its own buffer, then
 * the normal pages straight from guest RAM -- no copy of a page in user
 * space. One mutex guards the slots and the batch pool; it is taken a few
 * times per batch (128 pages), never per page.
 *
 * A sync request sits in the slot behind the batch queued before it, so each
 * channel writes SYNC n after all of its round-n pages.
 */
#include <pthread.h>
#include <stdlib.h>

#include "compress/compress.h"
#include "multifd.h"

/* header + offsets, rounded up to the 64-byte alignment of the buffer */
#define MF_HDRBUF_SIZE (DIV_ROUND_UP(MF_HDR_SIZE + 8 * MF_MAX_PAGES + 64, 64) * 64)

struct mf_send_chan {
	/* immutable after start */
	struct mf_send *owner;
	uint32_t index;
	struct tern_conn *conn;
	pthread_t thread;
	bool thread_started;
	/* protected by owner->lock */
	pthread_cond_t work_cond;
	struct mf_batch *slot;
	bool sync_pending;
	bool sync_last;
	uint64_t sync_round;
	bool busy; /* sending something taken from the slot */
	/* worker thread only */
	uint64_t seq;
	uint8_t *hdrbuf; /* header + offsets */
	struct iovec *iov;
	/* written by the worker, read by anyone (atomics) */
	struct mf_chan_stats stats;
};

struct mf_send {
	struct mf_config cfg;
	pthread_mutex_t lock;
	/* protected by ->lock */
	pthread_cond_t free_cond; /* a slot emptied, a batch came back, or failure */
	struct mf_batch **pool;
	uint32_t pool_len;
	uint32_t next_chan;
	bool quit;
	bool failed;
	struct tern_error err;
	/* immutable after start */
	uint32_t nbatches;
	struct mf_batch *batches;
	struct mf_send_chan *chans;
};

static void send_fail(struct mf_send *s, int code, const struct tern_error *cause)
{
	bool first;
	uint32_t i;

	pthread_mutex_lock(&s->lock);
	first = !s->failed;
	if (first) {
		s->failed = true;
		tern_error_set(&s->err, code, "%s", cause && cause->code ? cause->msg : "failed");
	}
	for (i = 0; i < s->cfg.nchannels; i++)
		pthread_cond_broadcast(&s->chans[i].work_cond);
	pthread_cond_broadcast(&s->free_cond);
	pthread_mutex_unlock(&s->lock);
	if (first) {
		tern_log_msg(s->cfg.log, 3, "multifd send: %s", s->err.msg);
		if (s->cfg.on_error)
			s->cfg.on_error(s->cfg.opaque);
	}
}

static void stat_add(uint64_t *field, uint64_t v)
{
	__atomic_fetch_add(field, v, __ATOMIC_RELAXED);
}

static int send_sync_packet(struct mf_send_chan *c, uint64_t round, bool last)
{
	struct mf_packet_hdr h = {
	    .magic = MF_PACKET_MAGIC,
	    .version = MF_VERSION,
	    .flags = MF_FLAG_SYNC | (last ? MF_FLAG_LAST : 0),
	    .seq = c->seq,
	    .round = round,
	    .codec = c->owner->cfg.codec,
	};
	int ret;

	mf_hdr_encode(c->hdrbuf, &h);
	ret = conn_send(c->conn, c->hdrbuf, MF_HDR_SIZE);
	if (ret)
		return ret;
	c->seq++;
	stat_add(&c->stats.wire_bytes, MF_HDR_SIZE);
	stat_add(&c->stats.packets, 1);
	return 0;
}

static int send_batch_packet(struct mf_send_chan *c, const struct mf_batch *b)
{
	const struct mf_config *cfg = &c->owner->cfg;
	const struct mf_block *blk = &cfg->blocks[b->block];
	uint32_t page = cfg->page_size, i, normal = 0, zero = 0, iovcnt = 1;
	uint8_t *offs = c->hdrbuf + MF_HDR_SIZE;
	struct mf_packet_hdr h;
	size_t hdrlen;
	int ret;

	/* Normal pages' offsets fill from the front, zero pages' from the back
	 * of the same array; then the zero ones are moved up behind them. */
	for (i = 0; i < b->npages; i++) {
		uint64_t off = b->pages[i] * page;
		uint8_t *p = blk->host + off;

		if (page_is_zero(p, page)) {
			zero++;
			put_be64(offs + 8 * (size_t)(b->npages - zero), off);
		} else {
			put_be64(offs + 8 * (size_t)normal, off);
			c->iov[iovcnt].iov_base = p;
			c->iov[iovcnt].iov_len = page;
			iovcnt++;
			normal++;
		}
	}
	if (zero && normal < b->npages - zero)
		memmove(offs + 8 * (size_t)normal, offs + 8 * (size_t)(b->npages - zero),
			8 * (size_t)zero);
	h = (struct mf_packet_hdr){
	    .magic = MF_PACKET_MAGIC,
	    .version = MF_VERSION,
	    .seq = c->seq,
	    .round = b->round,
	    .block = b->block,
	    .normal = normal,
	    .zero = zero,
	    .codec = cfg->codec,
	    .payload_len = normal * page,
	};
	mf_hdr_encode(c->hdrbuf, &h);
	hdrlen = MF_HDR_SIZE + 8 * (size_t)b->npages;
	c->iov[0].iov_base = c->hdrbuf;
	c->iov[0].iov_len = hdrlen;
	ret = conn_send_iov(c->conn, c->iov, (int)iovcnt);
	if (ret)
		return ret;
	c->seq++;
	stat_add(&c->stats.wire_bytes, hdrlen + (uint64_t)normal * page);
	stat_add(&c->stats.normal_pages, normal);
	stat_add(&c->stats.zero_pages, zero);
	stat_add(&c->stats.packets, 1);
	return 0;
}

static void *send_worker(void *arg)
{
	struct mf_send_chan *c = arg;
	struct mf_send *s = c->owner;
	struct tern_error err = {0};
	uint8_t hello[MF_HELLO_SIZE];
	int ret;

	mf_hello_encode(hello, s->cfg.uuid, c->index, s->cfg.nchannels);
	ret = conn_send(c->conn, hello, sizeof(hello));
	if (ret) {
		tern_error_set(&err, ret, "channel %u: sending hello to %s: %s", c->index,
			       c->conn->peer, strerror(-ret));
		goto fail;
	}
	stat_add(&c->stats.wire_bytes, MF_HELLO_SIZE);

	for (;;) {
		struct mf_batch *b = NULL;
		bool sync = false, last = false;
		uint64_t round = 0;

		pthread_mutex_lock(&s->lock);
		while (!c->slot && !c->sync_pending && !s->quit && !s->failed)
			pthread_cond_wait(&c->work_cond, &s->lock);
		if (s->quit || s->failed) {
			pthread_mutex_unlock(&s->lock);
			return NULL;
		}
		if (c->slot) {
			b = c->slot;
			c->slot = NULL;
		} else {
			sync = true;
			last = c->sync_last;
			round = c->sync_round;
			c->sync_pending = false;
		}
		c->busy = true;
		pthread_cond_broadcast(&s->free_cond);
		pthread_mutex_unlock(&s->lock);

		if (b)
			ret = send_batch_packet(c, b);
		else
			ret = send_sync_packet(c, round, last);

		pthread_mutex_lock(&s->lock);
		if (b)
			s->pool[s->pool_len++] = b;
		c->busy = false;
		pthread_cond_broadcast(&s->free_cond);
		pthread_mutex_unlock(&s->lock);

		if (ret) {
			tern_error_set(&err, ret, "channel %u: sending to %s: %s", c->index,
				       c->conn->peer, strerror(-ret));
			goto fail;
		}
		if (sync && last)
			return NULL;
	}
fail:
	/* After a shutdown the I/O error is its echo, not a failure. */
	pthread_mutex_lock(&s->lock);
	ret = s->quit;
	pthread_mutex_unlock(&s->lock);
	if (!ret)
		send_fail(s, err.code, &err);
	return NULL;
}

int mf_send_start(const struct mf_config *cfg, struct tern_conn **conns, struct mf_send **ret,
		  struct tern_error *err)
{
	struct mf_send *s;
	uint32_t i;
	int rc;

	s = calloc(1, sizeof(*s));
	if (!s) {
		for (i = 0; i < cfg->nchannels; i++)
			conn_close(conns[i]);
		return tern_error_set(err, -ENOMEM, "multifd: out of memory");
	}
	s->cfg = *cfg;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->free_cond, NULL);
	s->chans = calloc(cfg->nchannels, sizeof(*s->chans));
	/* Two batches per channel (one in flight, one queued) and one being filled. */
	s->nbatches = 2 * cfg->nchannels + 1;
	s->batches = calloc(s->nbatches, sizeof(*s->batches));
	s->pool = calloc(s->nbatches, sizeof(*s->pool));
	if (!s->chans || !s->batches || !s->pool) {
		for (i = 0; i < cfg->nchannels; i++)
			conn_close(conns[i]);
		free(s->chans);
		s->chans = NULL;
		mf_send_free(s);
		return tern_error_set(err, -ENOMEM, "multifd: out of memory");
	}
	for (i = 0; i < s->nbatches; i++)
		s->pool[s->pool_len++] = &s->batches[i];
	for (i = 0; i < cfg->nchannels; i++) {
		struct mf_send_chan *c = &s->chans[i];

		c->owner = s;
		c->index = i;
		c->conn = conns[i];
		pthread_cond_init(&c->work_cond, NULL);
	}
	for (i = 0; i < cfg->nchannels; i++) {
		struct mf_send_chan *c = &s->chans[i];

		/* aligned_alloc() wants the size a multiple of the alignment */
		c->hdrbuf = aligned_alloc(64, MF_HDRBUF_SIZE);
		c->iov = calloc(MF_MAX_PAGES + 1, sizeof(*c->iov));
		if (!c->hdrbuf || !c->iov) {
			rc = tern_error_set(err, -ENOMEM, "multifd: out of memory");
			goto err_stop;
		}
		rc = -pthread_create(&c->thread, NULL, send_worker, c);
		if (rc) {
			tern_error_set(err, rc, "multifd: starting channel %u: %s", i,
				       strerror(-rc));
			goto err_stop;
		}
		c->thread_started = true;
	}
	*ret = s;
	return 0;

err_stop:
	mf_send_free(s);
	return rc;
}

struct mf_batch *mf_send_batch_get(struct mf_send *s)
{
	struct mf_batch *b = NULL;

	pthread_mutex_lock(&s->lock);
	while (!s->pool_len && !s->failed && !s->quit)
		pthread_cond_wait(&s->free_cond, &s->lock);
	if (!s->failed && !s->quit) {
		b = s->pool[--s->pool_len];
		b->npages = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return b;
}

void mf_send_batch_put(struct mf_send *s, struct mf_batch *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&s->lock);
	s->pool[s->pool_len++] = b;
	pthread_cond_broadcast(&s->free_cond);
	pthread_mutex_unlock(&s->lock);
}

static bool slot_free_locked(const struct mf_send_chan *c)
{
	return !c->slot && !c->sync_pending;
}

int mf_send_batch_queue(struct mf_send *s, struct mf_batch *b)
{
	uint32_t n = s->cfg.nchannels, i;
	int ret = 0;

	if (!b->npages || b->npages > MF_MAX_PAGES || b->block >= s->cfg.nblocks) {
		mf_send_batch_put(s, b);
		return -EINVAL;
	}
	pthread_mutex_lock(&s->lock);
	for (;;) {
		if (s->failed || s->quit) {
			s->pool[s->pool_len++] = b;
			ret = s->failed ? s->err.code : -ECANCELED;
			break;
		}
		/* Round-robin from the channel after the last one used. */
		for (i = 0; i < n; i++) {
			struct mf_send_chan *c = &s->chans[(s->next_chan + i) % n];

			if (slot_free_locked(c)) {
				c->slot = b;
				s->next_chan = (c->index + 1) % n;
				pthread_cond_signal(&c->work_cond);
				goto out;
			}
		}
		pthread_cond_wait(&s->free_cond, &s->lock);
	}
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int mf_send_sync(struct mf_send *s, uint64_t round, bool last)
{
	uint32_t i;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->cfg.nchannels && !ret; i++) {
		struct mf_send_chan *c = &s->chans[i];

		while (!slot_free_locked(c) && !s->failed && !s->quit)
			pthread_cond_wait(&s->free_cond, &s->lock);
		if (s->failed || s->quit) {
			ret = s->failed ? s->err.code : -ECANCELED;
			break;
		}
		c->sync_pending = true;
		c->sync_last = last;
		c->sync_round = round;
		pthread_cond_signal(&c->work_cond);
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int mf_send_flush(struct mf_send *s)
{
	uint32_t i;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->cfg.nchannels; i++) {
		struct mf_send_chan *c = &s->chans[i];

		while ((!slot_free_locked(c) || c->busy) && !s->failed && !s->quit)
			pthread_cond_wait(&s->free_cond, &s->lock);
	}
	if (s->failed)
		ret = s->err.code;
	else if (s->quit)
		ret = -ECANCELED;
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int mf_send_error(struct mf_send *s, struct tern_error *err)
{
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	if (s->failed) {
		ret = s->err.code;
		tern_error_set(err, ret, "%s", s->err.msg);
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

void mf_send_shutdown(struct mf_send *s)
{
	uint32_t i;

	pthread_mutex_lock(&s->lock);
	s->quit = true;
	for (i = 0; i < s->cfg.nchannels; i++)
		pthread_cond_broadcast(&s->chans[i].work_cond);
	pthread_cond_broadcast(&s->free_cond);
	pthread_mutex_unlock(&s->lock);
	for (i = 0; i < s->cfg.nchannels; i++)
		conn_shutdown(s->chans[i].conn);
}

void mf_send_stats(struct mf_send *s, struct mf_chan_stats *total, struct mf_chan_stats *per_chan)
{
	uint32_t i;

	memset(total, 0, sizeof(*total));
	for (i = 0; i < s->cfg.nchannels; i++)
		mf_chan_stats_add(total, &s->chans[i].stats, per_chan ? &per_chan[i] : NULL);
}

void mf_send_free(struct mf_send *s)
{
	uint32_t i;

	if (!s)
		return;
	if (s->chans) {
		pthread_mutex_lock(&s->lock);
		s->quit = true;
		for (i = 0; i < s->cfg.nchannels; i++)
			pthread_cond_broadcast(&s->chans[i].work_cond);
		pthread_cond_broadcast(&s->free_cond);
		pthread_mutex_unlock(&s->lock);
		for (i = 0; i < s->cfg.nchannels; i++) {
			struct mf_send_chan *c = &s->chans[i];

			/* A worker blocked in send wakes on shutdown; one that
			 * finished has handed its bytes to the kernel already. */
			conn_shutdown(c->conn);
			if (c->thread_started)
				pthread_join(c->thread, NULL);
		}
		for (i = 0; i < s->cfg.nchannels; i++) {
			struct mf_send_chan *c = &s->chans[i];

			conn_close(c->conn);
			pthread_cond_destroy(&c->work_cond);
			free(c->hdrbuf);
			free(c->iov);
		}
	}
	free(s->chans);
	free(s->batches);
	free(s->pool);
	pthread_cond_destroy(&s->free_cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
