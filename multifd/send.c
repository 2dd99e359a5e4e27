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
 * times per batch (MF_BATCH_PAGES, 512 pages), never per page.
 *
 * A sync request sits in the slot behind the batch queued before it, so each
 * channel writes SYNC n after all of its round-n pages.
 *
 * Codecs: a packet of codec NONE still goes out straight from guest RAM.
 * Any other codec encodes the normal pages with the channel's own encoder for
 * it (created on first use) and writes the encoder's iovecs instead. Zero
 * pages never reach an encoder; under a method that may use XBZRLE they, and
 * every page sent by another codec, are dropped from the shared page cache, so
 * the cache never holds a version the destination does not have.
 *
 * AUTO picks a codec per packet from what the channel measured; see
 * auto_pick().
 *
 * Postcopy: a batch marked postcopy goes out with MF_FLAG_POSTCOPY and never
 * as XBZRLE -- the destination dropped the pages it lacked at the switch, so
 * a delta would apply to the wrong page: AUTO leaves XBZRLE out of its
 * choice, and method xbzrle sends such a batch raw (dropping its pages from
 * the cache like every raw page). A raw batch goes out with codec NONE under
 * any method. A postcopy page must reach the destination as a payload it
 * places itself, so on a placement transport it goes unplaced (staged);
 * a stream still sends it from guest RAM, zero-copy too (the source guest
 * stays paused for good after the switch: its pages no longer change).
 *
 * The urgent channel (cfg.urgent, postcopy-ram): the last channel takes only
 * batches from mf_send_urgent_queue(), which come from a pool of their own
 * (MF_URGENT_BATCHES), so a fault's page neither waits behind bulk pages on
 * the wire nor for a batch the bulk producer holds. Syncs and flushes cover
 * it like any channel. Its SYNC|LAST closes it: mf_send_urgent_queue() then
 * refuses (-EPIPE), and the page goes on a bulk channel anyway.
 *
 * Zero-copy (zero-copy-send, tcp: only): a packet of codec NONE goes through
 * conn_send_packet() with its placement, which a stream that has zero-copy
 * on sends with MSG_ZEROCOPY: the kernel may still read those guest pages
 * after the call returned, until it reports the send complete. A page the
 * guest writes meanwhile reaches the destination old, new or torn -- and
 * that is fine, because the write is in the dirty log: it came after the
 * sync that put the page in this round, so a later sync finds the page
 * dirty and a later round sends it again, and the destination's SYNC
 * barrier lands that copy after this one. The last round runs with the
 * guest paused, so its pages cannot change in flight. Header, offsets and
 * every encoded payload (the worker's and the encoders' buffers, reused at
 * once) are sent by copy, before the call returns: only guest RAM is ever
 * in flight. XBZRLE's cache still drops every page sent raw (above), so it
 * never holds a version the destination may not have. Each
 * channel waits for all its sends to complete before it writes SYNC
 * (SYNC|LAST included), so a round ends, and a migration returns, with
 * nothing of guest RAM in the kernel's hands; on a failure or a cancel the
 * transport's close() abandons what is still in flight (util/transport.h).
 *
 * No wait is unbounded. A worker's write that makes no progress for
 * io-timeout fails (the connection's own send timeout, so the page path
 * stays one writev per packet, with no poll), naming the channel. The
 * producer's waits for a slot, a sync's place or a flush are timed: they
 * end when the workers made no progress for twice io-timeout (a backstop:
 * a worker bounds its own writes first), and, where the caller gives a
 * timeout, then too -- the migration thread checks migration-timeout
 * between two such waits. Cancel wakes them all (quit) and shuts the
 * connections, which kicks the workers out of sendmsg().
 */
#include <assert.h>
#include <pthread.h>
#include <stdlib.h>

#include <stdio.h>

#include "multifd.h"

/* header + offsets, rounded up to the 64-byte alignment of the buffer */
#define MF_HDRBUF_SIZE (DIV_ROUND_UP(MF_HDR_SIZE + 8 * MF_MAX_PAGES + 64, 64) * 64)

/* AUTO: weight of the newest sample in the moving averages, how often a codec
 * other than the current choice is tried, and how close (fraction) XBZRLE
 * may come to the best and still be preferred (it seeds its cache). */
#define MF_AUTO_ALPHA 0.25
#define MF_AUTO_PROBE_EVERY 32
/* ... backing off to this while the choice holds: a probe of a slow codec on
 * a fast link stalls its channel for a packet. */
#define MF_AUTO_PROBE_MAX 256
#define MF_AUTO_XBZRLE_SLACK 0.05
#define MF_AUTO_REASON_MAX 128

/* The urgent pool: one batch sending, one in the urgent channel's slot. */
#define MF_URGENT_BATCHES 2

/* What a channel knows of one codec: moving averages over its packets. */
struct mf_auto_est {
	double enc_ns_per_byte; /* encode time per raw page byte */
	double ratio;		/* payload bytes per raw page byte */
	double hit_rate;	/* XBZRLE: pages that had a cached version */
	uint32_t samples;
};

struct mf_auto {
	struct mf_auto_est est[MF_NCODECS];
	double link_ns_per_byte; /* ns the link takes per wire byte (auto_learn_link) */
	bool link_known;
	uint64_t decisions;
	uint64_t probe_at;    /* the decision that probes next */
	uint32_t probe_every; /* MF_AUTO_PROBE_EVERY, doubling while the choice holds */
	uint32_t current;
	uint32_t probe_next;
};

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
	uint64_t sync_queued; /* the last round whose SYNC was queued here */
	bool busy;	      /* sending something taken from the slot */
	/* worker thread only */
	uint64_t seq;
	uint8_t *hdrbuf; /* header + offsets */
	uint64_t *offh;	 /* the normal pages' offsets, host order (placement) */
	struct iovec *iov;
	uint32_t iov_max; /* entries of ->iov */
	struct codec_page *pages;
	struct codec_enc *enc[MF_NCODECS];
	struct mf_auto autosel;
	bool background; /* postcopy, a bulk channel: yields to the urgent path */
	/* written by the worker, read by anyone (atomics) */
	struct mf_chan_stats stats;
	struct mf_codec_stats cstats;
	/* the channel's wire bytes once its SYNC of round r went, at
	 * [r % MF_SYNC_MARKS]: ->sync_wire first, then ->sync_done = r */
	uint64_t sync_wire[MF_SYNC_MARKS];
	uint64_t sync_done[MF_SYNC_MARKS];
};

struct mf_send {
	struct mf_config cfg;
	pthread_mutex_t lock;
	/* protected by ->lock */
	pthread_cond_t free_cond; /* a slot emptied, a batch came back, or failure */
	struct mf_batch **pool;
	uint32_t pool_len;
	struct mf_batch *upool[MF_URGENT_BATCHES];
	uint32_t upool_len;
	bool urgent_closed; /* the urgent channel's SYNC|LAST was queued */
	uint32_t next_chan;
	uint64_t progress; /* bumped whenever a worker takes or finishes a send */
	bool quit;
	bool failed;
	struct tern_error err;
	char auto_reason[MF_AUTO_REASON_MAX];
	/* immutable after start */
	struct tern_ram_region *regions; /* cfg.blocks, as transports see them */
	uint32_t nbulk;			 /* channels bulk batches use: 0..nbulk-1 */
	uint32_t nbatches;		 /* the bulk pool's; MF_URGENT_BATCHES follow */
	struct mf_batch *batches;
	struct mf_send_chan *chans;
};

static bool batch_is_urgent(const struct mf_send *s, const struct mf_batch *b)
{
	return b >= s->batches + s->nbatches;
}

/* Back to the pool it came from. A pool overflowing: a batch put twice. */
static void batch_put_locked(struct mf_send *s, struct mf_batch *b)
{
	if (batch_is_urgent(s, b)) {
		assert(s->upool_len < MF_URGENT_BATCHES);
		s->upool[s->upool_len++] = b;
	} else {
		assert(s->pool_len < s->nbatches);
		s->pool[s->pool_len++] = b;
	}
}

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

/* A failed write on channel @c: a stall says what it waited for. */
static int chan_send_error(struct mf_send_chan *c, int ret, const char *what,
			   struct tern_error *err)
{
	if (ret == -ETIMEDOUT)
		return tern_error_set(err, ret,
				      "worker channel %u: could not write %s to %s for %d ms "
				      "(peer not reading)",
				      c->index, what, c->conn->peer, c->owner->cfg.io_timeout_ms);
	return tern_error_set(err, ret, "channel %u: sending %s to %s: %s%s%s", c->index, what,
			      c->conn->peer, strerror(-ret), c->conn->detail[0] ? ": " : "",
			      c->conn->detail);
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
	    .codec = TERN_CODEC_NONE,
	};
	int ret;

	mf_hdr_encode(c->hdrbuf, &h);
	ret = conn_send(c->conn, c->hdrbuf, MF_HDR_SIZE);
	if (ret)
		return ret;
	c->seq++;
	stat_add(&c->stats.wire_bytes, MF_HDR_SIZE);
	stat_add(&c->stats.packets, 1);
	/* the worker alone adds to its wire bytes: this is the count at the
	 * SYNC; the mark is invalid while it changes (a seqlock's write) */
	__atomic_store_n(&c->sync_done[round % MF_SYNC_MARKS], 0, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&c->sync_wire[round % MF_SYNC_MARKS],
			 __atomic_load_n(&c->stats.wire_bytes, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
	__atomic_store_n(&c->sync_done[round % MF_SYNC_MARKS], round, __ATOMIC_RELEASE);
	return 0;
}

static double ewma(double avg, double sample, uint32_t samples)
{
	return samples ? avg + MF_AUTO_ALPHA * (sample - avg) : sample;
}

/* The codecs AUTO chooses from, in the order ties go. */
static const uint32_t auto_codecs[] = {TERN_CODEC_XBZRLE, TERN_CODEC_NONE, TERN_CODEC_ZSTD};

/*
 * auto_pick() - the codec for a batch of @raw page bytes (@hdrlen of header
 * and offsets) under AUTO.
 *
 * The model: what we want most is RAM bytes moved per second. A batch sent
 * with codec c costs encode_c = raw x (encode ns per byte of c) of this
 * worker's CPU, and wire_c = hdrlen + raw x (ratio of c) bytes of this
 * channel's share of the link, which drains at link_bps. Encoding one batch
 * overlaps with sending the previous ones (the other channels keep the link
 * busy, and this channel's socket buffer drains while it encodes), so the
 * batch takes
 *
 *	t_c = max(encode_c, wire_c / link_bps)
 *
 * and the codec with the smallest t_c moves the most RAM per second. A fast
 * link makes encoding the bottleneck and favours none; a slow one favours
 * the best ratio. link_bps is what TCP measured the channel's path
 * delivering (auto_learn_link()), or else how long its writes take. Encode rate and ratio are
 *moving averages over the packets each codec carried; the XBZRLE ratio folds in its cache hit rate.
 *
 * Figures of a codec not in use go stale, so 1 batch in MF_AUTO_PROBE_EVERY
 * (backing off to 1 in MF_AUTO_PROBE_MAX while the choice holds)
 * goes to another codec, in turn; a codec with no figure yet is tried first.
 * XBZRLE only pays on a page it sent before (its cache is seeded by its own
 * misses and forgets pages other codecs send), so it is kept when it comes
 * within MF_AUTO_XBZRLE_SLACK of the best: on a link-bound channel a miss
 * costs a copy hidden under the send, and the next round's hits pay for it.
 *
 * @no_xbzrle: leave XBZRLE out. The first round sends every page once:
 * XBZRLE could only miss and copy, so it joins from the second round on
 * (QEMU's "bulk stage"); and a postcopy batch must not use it (see the top).
 * @reason: set to the explanation of a model decision, left alone for a
 * probe. Returns the codec id.
 */
static uint32_t auto_pick(struct mf_auto *a, bool no_xbzrle, bool paused, uint64_t raw,
			  uint64_t hdrlen, char *reason, size_t len, bool *ret_decided)
{
	double best_t = 0, t[ARRAY_SIZE(auto_codecs)], link_ns = a->link_ns_per_byte;
	uint32_t i, best = TERN_CODEC_NONE, bi = 0;
	/* XBZRLE is auto_codecs[0]: the loops below start past it */
	uint32_t first = no_xbzrle ? 1 : 0;

	*ret_decided = false;
	if (paused) {
		/* No exploring with the guest paused: the codec in use, or none
		 * when nothing was measured yet (or XBZRLE is out). */
		if (!a->current || !a->est[a->current].samples ||
		    (first && a->current == TERN_CODEC_XBZRLE))
			return TERN_CODEC_NONE;
		return a->current;
	}
	for (i = first; i < ARRAY_SIZE(auto_codecs); i++)
		if (!a->est[auto_codecs[i]].samples)
			return auto_codecs[i];
	if (!a->probe_every)
		a->probe_every = MF_AUTO_PROBE_EVERY;
	if (++a->decisions >= a->probe_at) {
		/* Every probe that leaves the choice as it was doubles the
		 * interval (up to MF_AUTO_PROBE_MAX); a change resets it below. */
		a->probe_at = a->decisions + a->probe_every;
		if (a->probe_every < MF_AUTO_PROBE_MAX)
			a->probe_every *= 2;
		for (i = 0; i < ARRAY_SIZE(auto_codecs); i++) {
			uint32_t id = auto_codecs[a->probe_next++ % ARRAY_SIZE(auto_codecs)];

			if (id != a->current && !(first && id == TERN_CODEC_XBZRLE))
				return id;
		}
	}
	for (i = first; i < ARRAY_SIZE(auto_codecs); i++) {
		const struct mf_auto_est *e = &a->est[auto_codecs[i]];
		double enc = e->enc_ns_per_byte * (double)raw;
		double wire = (double)hdrlen + e->ratio * (double)raw;

		t[i] = MAX(enc, wire * link_ns);
		if (i == first || t[i] < best_t) {
			best_t = t[i];
			best = auto_codecs[i];
			bi = i;
		}
	}
	/* XBZRLE is first in auto_codecs: keep it when close enough. */
	if (!first && best != TERN_CODEC_XBZRLE && t[0] <= best_t * (1 + MF_AUTO_XBZRLE_SLACK)) {
		best = TERN_CODEC_XBZRLE;
		bi = 0;
		best_t = t[0];
	}
	if (best != a->current) {
		a->probe_every = MF_AUTO_PROBE_EVERY;
		a->probe_at = a->decisions + a->probe_every;
	}
	a->current = best;
	*ret_decided = true;
	{
		const struct mf_auto_est *e = &a->est[best];
		double enc = e->enc_ns_per_byte * (double)raw;
		double ram_mbs = best_t > 0 ? (double)raw * 1e3 / best_t : 0;
		double link_mbs = link_ns > 0 ? 1e3 / link_ns : 0;
		char hits[32] = "";

		if (best == TERN_CODEC_XBZRLE)
			snprintf(hits, sizeof(hits), ", %.0f%% cache hits", e->hit_rate * 100);
		snprintf(reason, len,
			 "%s: %.1fx ratio%s, %s-bound at %.0f MB/s of RAM (link %.0f MB/s)",
			 codec_name((enum tern_codec_id)best), e->ratio > 0 ? 1 / e->ratio : 0,
			 hits, enc >= t[bi] ? "encode" : "link", ram_mbs, link_mbs);
	}
	return best;
}

/* Record what a packet of codec @id taught AUTO. */
static void auto_learn(struct mf_auto *a, uint32_t id, uint64_t raw, uint64_t payload,
		       uint64_t enc_ns, const struct codec_stats *before,
		       const struct codec_stats *after)
{
	struct mf_auto_est *e = &a->est[id];

	if (!raw)
		return;
	e->enc_ns_per_byte = ewma(e->enc_ns_per_byte, (double)enc_ns / (double)raw, e->samples);
	e->ratio = ewma(e->ratio, (double)payload / (double)raw, e->samples);
	if (id == TERN_CODEC_XBZRLE) {
		uint64_t h = after->cache_hits - before->cache_hits;
		uint64_t m = after->cache_misses - before->cache_misses;

		if (h + m)
			e->hit_rate = ewma(e->hit_rate, (double)h / (double)(h + m), e->samples);
	}
	e->samples++;
}

/*
 * What the link carries for this channel. Where the transport knows (TCP:
 * the kernel's delivery rate), that: a write's duration only shows how fast
 * the socket buffer had room, which on a slow link behind a fast encoder is
 * far above what the link carries. A sample the sender limited (it had
 * nothing queued) only says the link carries at least that much, so it may
 * raise the estimate, never lower it. Otherwise the write's own pace.
 */
static void auto_learn_link(struct mf_auto *a, struct tern_conn *conn, uint64_t wire,
			    uint64_t send_ns)
{
	bool app_limited = false;
	uint64_t rate = conn->ops->delivery_rate ? conn->ops->delivery_rate(conn, &app_limited) : 0;
	double ns;

	if (!wire)
		return;
	if (!rate) {
		ns = (double)send_ns / (double)wire;
	} else {
		ns = 1e9 / (double)rate;
		if (app_limited && a->link_known && ns > a->link_ns_per_byte)
			return;
	}
	a->link_ns_per_byte = ewma(a->link_ns_per_byte, ns, a->link_known ? 1 : 0);
	a->link_known = true;
}

static int chan_encoder(struct mf_send_chan *c, uint32_t id, struct codec_enc **ret,
			struct tern_error *err)
{
	const struct mf_config *cfg = &c->owner->cfg;
	struct codec_config cc = mf_codec_config(cfg, id);
	int ret_code;

	if (!c->enc[id]) {
		if (id == TERN_CODEC_XBZRLE && !cfg->xbzrle)
			return tern_error_set(err, -EINVAL,
					      "channel %u: XBZRLE without a page cache", c->index);
		ret_code = codec_enc_new(&cc, &c->enc[id], err);
		if (ret_code)
			return tern_error_prefix(err, "channel %u: creating the %s encoder",
						 c->index, codec_name(cc.id));
	}
	*ret = c->enc[id];
	return 0;
}

/* Copy encoder @id's running totals to the figures others read. */
static void publish_codec_stats(struct mf_send_chan *c, uint32_t id, const struct codec_stats *v)
{
	struct codec_stats *d = &c->cstats.codec[id];

	__atomic_store_n(&d->pages, v->pages, __ATOMIC_RELAXED);
	__atomic_store_n(&d->bytes_in, v->bytes_in, __ATOMIC_RELAXED);
	__atomic_store_n(&d->bytes_out, v->bytes_out, __ATOMIC_RELAXED);
	__atomic_store_n(&d->ns, v->ns, __ATOMIC_RELAXED);
	__atomic_store_n(&d->cache_hits, v->cache_hits, __ATOMIC_RELAXED);
	__atomic_store_n(&d->cache_misses, v->cache_misses, __ATOMIC_RELAXED);
	__atomic_store_n(&d->overflows, v->overflows, __ATOMIC_RELAXED);
	__atomic_store_n(&d->delta_bytes, v->delta_bytes, __ATOMIC_RELAXED);
}

/*
 * Where a packet's pages go: raw pages to their final address (a placement
 * transport writes them there, a stream may send them zero-copy) -- except
 * postcopy pages on a placement transport, which the peer must place
 * itself: they go as a payload. Encoded payloads: never placed.
 */
static const struct tern_placement *packet_place(struct mf_send_chan *c, const struct mf_batch *b,
						 uint32_t codec, const struct tern_placement *place)
{
	if (codec != TERN_CODEC_NONE)
		return NULL;
	if (UNLIKELY(b->postcopy) && conn_places_pages(c->conn))
		return NULL;
	return place;
}

static int send_batch_packet(struct mf_send_chan *c, const struct mf_batch *b,
			     struct tern_error *err)
{
	struct mf_send *s = c->owner;
	const struct mf_config *cfg = &s->cfg;
	const struct mf_block *blk = &cfg->blocks[b->block];
	uint32_t page = cfg->page_size, i, normal = 0, zero = 0, iovcnt = 1, codec;
	uint8_t *offs = c->hdrbuf + MF_HDR_SIZE;
	struct xbzrle_cache *cache = cfg->xbzrle;
	struct codec_stats before = {0}, after = {0};
	uint64_t payload, t0, enc_ns = 0, send_ns, key_base = (uint64_t)b->block << 40;
	char reason[MF_AUTO_REASON_MAX];
	struct tern_placement place;
	bool decided = false;
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
			if (cache)
				xbzrle_cache_drop(cache, key_base | b->pages[i]);
		} else {
			put_be64(offs + 8 * (size_t)normal, off);
			c->offh[normal] = off;
			c->pages[normal].src = p;
			c->pages[normal].key = key_base | b->pages[i];
			normal++;
		}
	}
	if (zero && normal < b->npages - zero)
		memmove(offs + 8 * (size_t)normal, offs + 8 * (size_t)(b->npages - zero),
			8 * (size_t)zero);
	hdrlen = MF_HDR_SIZE + 8 * (size_t)b->npages;

	if (!normal || b->raw)
		codec = TERN_CODEC_NONE;
	else if (cfg->method == MF_METHOD_AUTO)
		codec =
		    auto_pick(&c->autosel, b->round <= 1 || b->postcopy, b->paused,
			      (uint64_t)normal * page, hdrlen, reason, sizeof(reason), &decided);
	else if (b->postcopy && cfg->method == TERN_CODEC_XBZRLE)
		codec = TERN_CODEC_NONE; /* no delta after the switch (see the top) */
	else
		codec = cfg->method;

	if (codec == TERN_CODEC_NONE) {
		/* Zero copy: the pages go from guest RAM to the socket, or to
		 * their final address in the peer's RAM (placement). */
		for (i = 0; i < normal; i++) {
			c->iov[iovcnt].iov_base = (void *)c->pages[i].src;
			c->iov[iovcnt].iov_len = page;
			iovcnt++;
			if (cache)
				xbzrle_cache_drop(cache, c->pages[i].key);
		}
		payload = (uint64_t)normal * page;
	} else {
		struct codec_enc *enc = NULL;
		uint32_t niov = 0;
		ssize_t n;

		ret = chan_encoder(c, codec, &enc, err);
		if (ret)
			return ret;
		if (codec != TERN_CODEC_XBZRLE && cache)
			for (i = 0; i < normal; i++)
				xbzrle_cache_drop(cache, c->pages[i].key);
		codec_enc_stats(enc, &before);
		t0 = tern_now_ns();
		n = codec_encode(enc, c->pages, normal, c->iov + 1, c->iov_max - 1, &niov, err);
		enc_ns = tern_now_ns() - t0;
		if (n < 0)
			return tern_error_prefix(
			    err, "channel %u packet %" PRIu64 " (%s): encoding", c->index, c->seq,
			    codec_name((enum tern_codec_id)codec));
		if ((uint64_t)n > codec_payload_max((enum tern_codec_id)codec, page, normal) ||
		    niov > c->iov_max - 1)
			return tern_error_set(err, -EOVERFLOW,
					      "channel %u packet %" PRIu64
					      " (%s): encoder produced %zd bytes in %u iovecs",
					      c->index, c->seq,
					      codec_name((enum tern_codec_id)codec), n, niov);
		codec_enc_stats(enc, &after);
		publish_codec_stats(c, codec, &after);
		payload = (uint64_t)n;
		iovcnt += niov;
	}
	h = (struct mf_packet_hdr){
	    .magic = MF_PACKET_MAGIC,
	    .version = MF_VERSION,
	    .flags = b->postcopy ? MF_FLAG_POSTCOPY : 0,
	    .seq = c->seq,
	    .round = b->round,
	    .block = b->block,
	    .normal = normal,
	    .zero = zero,
	    .codec = codec,
	    .payload_len = (uint32_t)payload,
	};
	mf_hdr_encode(c->hdrbuf, &h);
	c->iov[0].iov_base = c->hdrbuf;
	c->iov[0].iov_len = hdrlen;
	place = (struct tern_placement){
	    .region = b->block,
	    .npages = normal,
	    .page_size = page,
	    .off = c->offh,
	};
	t0 = tern_now_ns();
	ret = conn_send_packet(c->conn, c->iov, (int)iovcnt, packet_place(c, b, codec, &place));
	send_ns = tern_now_ns() - t0;
	if (ret)
		return chan_send_error(c, ret, "a packet", err);
	c->seq++;
	if (cfg->method == MF_METHOD_AUTO) {
		auto_learn_link(&c->autosel, c->conn, hdrlen + payload, send_ns);
		if (normal)
			auto_learn(&c->autosel, codec, (uint64_t)normal * page, payload, enc_ns,
				   &before, &after);
		stat_add(&c->cstats.auto_packets[codec], 1);
		if (decided) {
			pthread_mutex_lock(&s->lock);
			memcpy(s->auto_reason, reason, sizeof(reason));
			pthread_mutex_unlock(&s->lock);
		}
	}
	if (codec == TERN_CODEC_NONE && normal) {
		struct codec_stats *d = &c->cstats.codec[TERN_CODEC_NONE];

		stat_add(&d->pages, normal);
		stat_add(&d->bytes_in, payload);
		stat_add(&d->bytes_out, payload);
	}
	stat_add(&c->stats.wire_bytes, hdrlen + payload);
	stat_add(&c->stats.normal_pages, normal);
	stat_add(&c->stats.zero_pages, zero);
	stat_add(&c->stats.packets, 1);
	return 0;
}

static void *send_worker(void *arg)
{
	struct mf_send_chan *c = arg;
	struct mf_send *s = c->owner;
	CPU_THREAD(cpu, s->cfg.cpu, TERN_CPU_SEND, "tern-send/%u", c->index);
	struct tern_error err = {0};
	uint8_t hello[MF_HELLO_SIZE];
	int ret;

	mf_hello_encode(hello, s->cfg.uuid, c->index, s->cfg.nchannels);
	ret = conn_send(c->conn, hello, sizeof(hello));
	if (ret) {
		chan_send_error(c, ret, "its hello", &err);
		goto fail;
	}
	stat_add(&c->stats.wire_bytes, MF_HELLO_SIZE);
	ret = conn_bind_ram(c->conn, s->regions, s->cfg.nblocks, &s->cfg.bind);
	if (ret) {
		chan_send_error(c, ret, "its RAM registration", &err);
		goto fail;
	}
	/* ready: mf_send_flush() waited for this */
	pthread_mutex_lock(&s->lock);
	c->busy = false;
	s->progress++;
	pthread_cond_broadcast(&s->free_cond);
	pthread_mutex_unlock(&s->lock);

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
		s->progress++;
		pthread_cond_broadcast(&s->free_cond);
		pthread_mutex_unlock(&s->lock);

		if (b) {
			if (b->postcopy && !c->background &&
			    !mf_chan_is_urgent(&s->cfg, c->index)) {
				mf_postcopy_background();
				c->background = true;
			}
			ret = send_batch_packet(c, b, &err);
			if (!ret && s->cfg.digest) {
				cpu_thread_switch(&cpu, TERN_CPU_DIGEST);
				s->cfg.digest(s->cfg.opaque, b->block, b->pages, b->npages);
				cpu_thread_switch(&cpu, TERN_CPU_SEND);
			}
		} else {
			/* Zero-copy: the kernel lets go of every page this
			 * channel sent before its SYNC goes (see the top). */
			ret = conn_send_wait(c->conn);
			if (ret)
				chan_send_error(c, ret, "its pages (zero-copy completions)", &err);
			if (!ret) {
				ret = send_sync_packet(c, round, last);
				if (ret)
					chan_send_error(c, ret, "SYNC", &err);
			}
		}

		pthread_mutex_lock(&s->lock);
		if (b)
			batch_put_locked(s, b);
		c->busy = false;
		s->progress++;
		pthread_cond_broadcast(&s->free_cond);
		pthread_mutex_unlock(&s->lock);

		if (ret)
			goto fail;
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
	uint32_t i, id, iov_max = MF_MAX_PAGES;
	struct mf_send *s;
	int rc;

	rc = mf_method_check(cfg->method, "multifd", err);
	if (!rc && mf_method_codecs(cfg->method) >> TERN_CODEC_XBZRLE & 1 && !cfg->xbzrle)
		rc = tern_error_set(err, -EINVAL, "multifd: %s without an XBZRLE page cache",
				    mf_method_name(cfg->method));
	if (!rc && cfg->urgent && cfg->nchannels < 2)
		rc = tern_error_set(err, -EINVAL,
				    "multifd: an urgent channel needs 2 channels or more, not %u "
				    "(the last one carries only urgent pages)",
				    cfg->nchannels);
	s = rc ? NULL : calloc(1, sizeof(*s));
	if (!s) {
		for (i = 0; i < cfg->nchannels; i++)
			conn_close(conns[i]);
		return rc ? rc : tern_error_set(err, -ENOMEM, "multifd: out of memory");
	}
	s->cfg = *cfg;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->free_cond, NULL);
	s->chans = calloc(cfg->nchannels, sizeof(*s->chans));
	s->nbulk = cfg->nchannels - (cfg->urgent ? 1 : 0);
	/* Two batches per bulk channel (one in flight, one queued) and one
	 * being filled; the urgent pool's after them. */
	s->nbatches = 2 * s->nbulk + 1;
	s->batches = calloc(s->nbatches + MF_URGENT_BATCHES, sizeof(*s->batches));
	s->pool = calloc(s->nbatches, sizeof(*s->pool));
	s->regions = calloc(cfg->nblocks ? cfg->nblocks : 1, sizeof(*s->regions));
	if (!s->chans || !s->batches || !s->pool || !s->regions) {
		for (i = 0; i < cfg->nchannels; i++)
			conn_close(conns[i]);
		free(s->chans);
		s->chans = NULL;
		mf_send_free(s);
		return tern_error_set(err, -ENOMEM, "multifd: out of memory");
	}
	for (i = 0; i < s->nbatches; i++)
		s->pool[s->pool_len++] = &s->batches[i];
	for (i = 0; i < MF_URGENT_BATCHES; i++)
		s->upool[s->upool_len++] = &s->batches[s->nbatches + i];
	for (i = 0; i < cfg->nblocks; i++)
		s->regions[i] = (struct tern_ram_region){cfg->blocks[i].host, cfg->blocks[i].size};
	for (i = 0; i < cfg->nchannels; i++) {
		struct mf_send_chan *c = &s->chans[i];

		c->owner = s;
		c->index = i;
		c->conn = conns[i];
		c->sync_queued = mf_first_round(cfg) - 1;
		c->busy = true; /* until its hello is sent and its RAM bound */
		pthread_cond_init(&c->work_cond, NULL);
	}
	for (id = TERN_CODEC_NONE + 1; id < TERN_CODEC_MAX; id++)
		if (mf_method_codecs(cfg->method) >> id & 1)
			iov_max = MAX(iov_max,
				      codec_encode_iov_max((enum tern_codec_id)id, MF_MAX_PAGES));
	for (i = 0; i < cfg->nchannels; i++) {
		struct mf_send_chan *c = &s->chans[i];

		/* aligned_alloc() wants the size a multiple of the alignment */
		c->hdrbuf = aligned_alloc(64, MF_HDRBUF_SIZE);
		c->iov_max = iov_max + 1;
		c->iov = calloc(c->iov_max, sizeof(*c->iov));
		c->pages = calloc(MF_MAX_PAGES, sizeof(*c->pages));
		c->offh = calloc(MF_MAX_PAGES, sizeof(*c->offh));
		c->autosel.est[TERN_CODEC_NONE].ratio = 1; /* none is known without a try */
		c->autosel.est[TERN_CODEC_NONE].samples = 1;
		if (!c->hdrbuf || !c->iov || !c->pages || !c->offh) {
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

/* One wait of the producer's (see the comment at the top). */
struct producer_wait {
	const char *what;  /* what it waits for, for the stall message */
	uint64_t until_ns; /* the caller's limit (tern_now_ns()), 0: none */
	uint64_t progress; /* ->progress when last seen moving ... */
	uint64_t since_ns; /* ... and when */
};

static void pwait_init(struct mf_send *s, struct producer_wait *w, const char *what, int timeout_ms)
{
	w->what = what;
	w->since_ns = tern_now_ns();
	w->until_ns = timeout_ms >= 0 ? w->since_ns + (uint64_t)timeout_ms * 1000000 : 0;
	w->progress = s->progress;
}

/*
 * Wait once on ->free_cond (under ->lock). 0: look again; -EAGAIN: the
 * caller's limit passed; or the error of a stall: no worker took or
 * finished anything for twice io-timeout -- a backstop: a worker's write
 * that stalls fails first, after io-timeout without a byte accepted, and
 * names its channel; a write still creeping along restarts that clock
 * without being seen here. The stall fails the data plane here,
 * under the lock; the caller, the one thread that waits for the workers,
 * reports it (on_error is for threads that do not, and must not run
 * under this lock).
 */
static int pwait_locked(struct mf_send *s, struct producer_wait *w)
{
	uint64_t now = tern_now_ns(), stall_ns = 2 * (uint64_t)s->cfg.io_timeout_ms * 1000000;
	uint64_t wake = w->until_ns;
	struct timespec ts;

	if (s->progress != w->progress) {
		w->progress = s->progress;
		w->since_ns = now;
	}
	if (w->until_ns && now >= w->until_ns)
		return -EAGAIN;
	if (stall_ns) {
		if (now - w->since_ns >= stall_ns) {
			s->failed = true;
			tern_error_set(&s->err, -ETIMEDOUT,
				       "multifd: no worker channel took %s for %d ms", w->what,
				       2 * s->cfg.io_timeout_ms);
			pthread_cond_broadcast(&s->free_cond);
			return s->err.code;
		}
		if (!wake || w->since_ns + stall_ns < wake)
			wake = w->since_ns + stall_ns;
	}
	if (!wake) {
		pthread_cond_wait(&s->free_cond, &s->lock);
		return 0;
	}
	ts = tern_deadline_ms(DIV_ROUND_UP(wake - now, 1000000));
	pthread_cond_timedwait(&s->free_cond, &s->lock, &ts);
	return 0;
}

struct mf_batch *mf_send_batch_get(struct mf_send *s)
{
	struct mf_batch *b = NULL;
	struct producer_wait w;

	pthread_mutex_lock(&s->lock);
	pwait_init(s, &w, "a batch back", -1);
	while (!s->pool_len && !s->failed && !s->quit && !pwait_locked(s, &w))
		;
	if (!s->failed && !s->quit) {
		b = s->pool[--s->pool_len];
		b->npages = 0;
		b->paused = false;
		b->postcopy = false;
		b->raw = false;
	}
	pthread_mutex_unlock(&s->lock);
	return b;
}

void mf_send_batch_put(struct mf_send *s, struct mf_batch *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&s->lock);
	batch_put_locked(s, b);
	pthread_cond_broadcast(&s->free_cond);
	pthread_mutex_unlock(&s->lock);
}

static bool slot_free_locked(const struct mf_send_chan *c)
{
	return !c->slot && !c->sync_pending;
}

static bool batch_valid(const struct mf_send *s, const struct mf_batch *b)
{
	return b->npages && b->npages <= MF_MAX_PAGES && b->block < s->cfg.nblocks;
}

int mf_send_batch_queue(struct mf_send *s, struct mf_batch *b, int timeout_ms)
{
	uint32_t n = s->nbulk, i;
	struct producer_wait w;
	int ret = 0;

	if (!batch_valid(s, b)) {
		mf_send_batch_put(s, b);
		return -EINVAL;
	}
	pthread_mutex_lock(&s->lock);
	pwait_init(s, &w, "a batch", timeout_ms);
	for (;;) {
		if (s->failed || s->quit) {
			batch_put_locked(s, b);
			ret = s->failed ? s->err.code : -ECANCELED;
			break;
		}
		/* Round-robin from the channel after the last one used; the
		 * urgent channel (the last) is not among them. */
		for (i = 0; i < n; i++) {
			struct mf_send_chan *c = &s->chans[(s->next_chan + i) % n];

			if (slot_free_locked(c)) {
				c->slot = b;
				s->next_chan = (c->index + 1) % n;
				pthread_cond_signal(&c->work_cond);
				goto out;
			}
		}
		ret = pwait_locked(s, &w);
		if (ret == -EAGAIN)
			break; /* @b stays the caller's */
	}
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/* Whether the urgent calls refuse: failure, shutdown, or the channel closed. */
static bool urgent_refused_locked(const struct mf_send *s)
{
	return s->failed || s->quit || s->urgent_closed;
}

struct mf_batch *mf_send_urgent_get(struct mf_send *s)
{
	struct mf_batch *b = NULL;
	struct producer_wait w;

	if (!s->cfg.urgent)
		return NULL;
	pthread_mutex_lock(&s->lock);
	pwait_init(s, &w, "an urgent batch back", -1);
	while (!s->upool_len && !urgent_refused_locked(s) && !pwait_locked(s, &w))
		;
	if (s->upool_len && !urgent_refused_locked(s)) {
		b = s->upool[--s->upool_len];
		b->npages = 0;
		b->paused = false;
		b->postcopy = true;
		b->raw = true;
	}
	pthread_mutex_unlock(&s->lock);
	return b;
}

void mf_send_urgent_put(struct mf_send *s, struct mf_batch *b)
{
	mf_send_batch_put(s, b); /* it knows the pool by the address */
}

/*
 * The urgent channel's slot holds one thing, as any channel's: this batch,
 * or the migration thread's SYNC (mf_send_sync()), whichever takes the free
 * slot first under ->lock. Both wait on ->free_cond for the worker to empty
 * it, so neither blocks the other for longer than one send. A SYNC|LAST
 * that comes first closes the channel: the batch goes back (-EPIPE).
 */
int mf_send_urgent_queue(struct mf_send *s, struct mf_batch *b, int timeout_ms)
{
	struct mf_send_chan *c;
	struct producer_wait w;
	int ret = 0;

	if (!s->cfg.urgent || !batch_valid(s, b)) {
		mf_send_batch_put(s, b);
		return -EINVAL;
	}
	c = &s->chans[s->nbulk];
	pthread_mutex_lock(&s->lock);
	pwait_init(s, &w, "an urgent batch", timeout_ms);
	for (;;) {
		if (urgent_refused_locked(s)) {
			batch_put_locked(s, b);
			ret = s->failed ? s->err.code : s->quit ? -ECANCELED : -EPIPE;
			break;
		}
		if (slot_free_locked(c)) {
			/* what the destination expects on this channel now:
			 * the round after the last SYNC queued here */
			b->round = c->sync_queued + 1;
			c->slot = b;
			pthread_cond_signal(&c->work_cond);
			break;
		}
		ret = pwait_locked(s, &w);
		if (ret == -EAGAIN)
			break; /* @b stays the caller's */
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int mf_send_sync(struct mf_send *s, uint64_t round, bool last, int timeout_ms)
{
	struct producer_wait w;
	uint32_t i;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	pwait_init(s, &w, "a SYNC", timeout_ms);
	for (i = 0; i < s->cfg.nchannels && !ret; i++) {
		struct mf_send_chan *c = &s->chans[i];

		if (c->sync_queued == round)
			continue; /* queued by a call that timed out */
		while (!slot_free_locked(c) && !s->failed && !s->quit && !ret)
			ret = pwait_locked(s, &w);
		if (s->failed || s->quit) {
			ret = s->failed ? s->err.code : -ECANCELED;
			break;
		}
		if (ret)
			break;
		c->sync_queued = round;
		c->sync_pending = true;
		c->sync_last = last;
		c->sync_round = round;
		pthread_cond_signal(&c->work_cond);
		if (last && s->cfg.urgent && i == s->nbulk) {
			/* the urgent channel: refuses from now on; wake its
			 * waiters to tell them */
			s->urgent_closed = true;
			pthread_cond_broadcast(&s->free_cond);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int mf_send_flush(struct mf_send *s, int timeout_ms)
{
	struct producer_wait w;
	uint32_t i;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	pwait_init(s, &w, "its last send", timeout_ms);
	for (i = 0; i < s->cfg.nchannels && !ret; i++) {
		struct mf_send_chan *c = &s->chans[i];

		while ((!slot_free_locked(c) || c->busy) && !s->failed && !s->quit && !ret)
			ret = pwait_locked(s, &w);
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

bool mf_send_sync_wire(struct mf_send *s, uint64_t round, uint64_t *ret_bytes)
{
	uint32_t i, m = round % MF_SYNC_MARKS;
	uint64_t sum = 0;

	for (i = 0; i < s->cfg.nchannels; i++) {
		struct mf_send_chan *c = &s->chans[i];
		uint64_t w;

		if (__atomic_load_n(&c->sync_done[m], __ATOMIC_ACQUIRE) != round)
			return false;
		w = __atomic_load_n(&c->sync_wire[m], __ATOMIC_RELAXED);
		/* the mark was not reused while we read it */
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&c->sync_done[m], __ATOMIC_RELAXED) != round)
			return false;
		sum += w;
	}
	*ret_bytes = sum;
	return true;
}

uint64_t mf_send_link_rate(struct mf_send *s)
{
	uint64_t sum = 0;
	uint32_t i;

	for (i = 0; i < s->cfg.nchannels; i++) {
		struct tern_conn *conn = s->chans[i].conn;
		bool app_limited = false;
		uint64_t rate;

		if (!conn->ops->delivery_rate)
			return 0;
		rate = conn->ops->delivery_rate(conn, &app_limited);
		if (!rate || app_limited)
			return 0;
		sum += rate;
	}
	return sum;
}

void mf_send_codec_stats(struct mf_send *s, struct mf_codec_stats *total, char *reason, size_t len)
{
	uint32_t i;

	memset(total, 0, sizeof(*total));
	for (i = 0; i < s->cfg.nchannels; i++)
		mf_codec_stats_add(total, &s->chans[i].cstats);
	if (reason && len) {
		pthread_mutex_lock(&s->lock);
		snprintf(reason, len, "%s", s->auto_reason);
		pthread_mutex_unlock(&s->lock);
	}
}

bool mf_send_places_pages(struct mf_send *s)
{
	return s->cfg.nchannels && conn_places_pages(s->chans[0].conn);
}

void mf_send_xport_stats(struct mf_send *s, struct tern_xport_stats *total)
{
	uint32_t i;

	for (i = 0; i < s->cfg.nchannels; i++)
		conn_xport_stats(s->chans[i].conn, total);
}

void mf_send_free(struct mf_send *s)
{
	uint32_t i, id;

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
			free(c->pages);
			free(c->offh);
			for (id = 0; id < MF_NCODECS; id++)
				if (c->enc[id])
					codec_enc_free(c->enc[id]);
		}
	}
	free(s->chans);
	free(s->regions);
	free(s->batches);
	free(s->pool);
	pthread_cond_destroy(&s->free_cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
