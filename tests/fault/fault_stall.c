/* SPDX-License-Identifier: MIT */
/*
 * A real source against a destination that goes silent (issue 10): one that
 * stops reading once pages flow (as a SIGSTOPped process does: its kernel
 * still holds the connections open, its windows shut), one that reads
 * everything but never acknowledges a round, and one that acknowledges the
 * rounds but never answers EOS. Each case asserts that the source ends
 * within a generous bound (only there to catch a hang; the measured time is
 * printed), with a message naming what it waited for, and that its guest
 * runs on: never paused, or resumed once.
 *
 * The silent destination is a fake, here, with the library's own frame
 * encoders: it accepts, answers the handshake, and then does as told.
 */
#include <stdio.h>
#include <stdlib.h>

#include "fake_peer.h"
#include "fault_util.h"
#include "tcp/tcp.h"

#define SMALL_RAM (4u << 20)
#define HUGE_RAM (32u << 20)
#define NCHAN 2

static const struct ram_spec small_ram[] = {{"ram0", SMALL_RAM}};
static const struct ram_spec huge_ram[] = {{"ram0", HUGE_RAM}};

enum mute_mode {
	MUTE_INVALID = 0,
	MUTE_STOP_READING, /* read 1 MiB a channel, then nothing at all */
	MUTE_NO_ACK,	   /* read everything, acknowledge nothing */
	MUTE_NO_COMPLETE,  /* acknowledge every round, never answer EOS */
	MUTE_MAX,
};

struct mute_dst;

struct mute_chan {
	struct mute_dst *d;
	struct tern_conn *conn;
	pthread_t thread;
	bool started;
};

struct mute_dst {
	enum mute_mode mode;
	struct tern_listener *l;
	char uri[300];
	pthread_t thread;
	bool started;
	struct tern_conn *ctl;
	struct mute_chan chan[NCHAN];
	/* protected by ->lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t bytes_read;
	bool eos_seen;
};

static void mute_add_read(struct mute_dst *d, uint64_t n)
{
	pthread_mutex_lock(&d->lock);
	d->bytes_read += n;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

/* Read a worker channel until it ends (or 1 MiB of it: MUTE_STOP_READING). */
static void *mute_chan_thread(void *arg)
{
	static __thread uint8_t buf[64 << 10];
	struct mute_chan *c = arg;
	uint64_t left = c->d->mode == MUTE_STOP_READING ? 1u << 20 : UINT64_MAX;

	while (left) {
		size_t n = MIN(left, sizeof(buf));

		if (conn_recv(c->conn, buf, n))
			break;
		left -= n;
		mute_add_read(c->d, n);
	}
	return NULL;
}

/* Handshake, join the channels, then play the mode on the control channel. */
static void *mute_thread(void *arg)
{
	struct mute_dst *d = arg;
	struct tern_error err = {0};
	uint16_t type;
	uint8_t *p = NULL;
	struct tern_conn *conn = NULL;
	uint32_t len, i;
	int ret;

	/* Connections are published under ->lock: mute_stop() shuts them down
	 * from the test's thread while this one may still be accepting. */
	ret = d->l->ops->accept(d->l, FP_RECV_TIMEOUT_MS, &conn, &err);
	pthread_mutex_lock(&d->lock);
	d->ctl = conn;
	pthread_mutex_unlock(&d->lock);
	if (!ret)
		ret = ctl_recv_stream_hdr(d->ctl, CTL_MAGIC, "mute destination", &err);
	if (!ret)
		ret = ctl_recv(d->ctl, "mute destination", &type, &p, &len, &err);
	free(p);
	if (!ret)
		ret = ctl_send_stream_hdr(d->ctl, CTL_RP_MAGIC);
	if (!ret)
		ret = ctl_send(d->ctl, CTL_HELLO_ACK, NULL, 0);
	for (i = 0; !ret && i < NCHAN; i++) {
		struct mute_chan *c = &d->chan[i];

		conn = NULL;
		ret = d->l->ops->accept(d->l, FP_RECV_TIMEOUT_MS, &conn, &err);
		pthread_mutex_lock(&d->lock);
		c->conn = conn;
		pthread_mutex_unlock(&d->lock);
		c->d = d;
		if (!ret)
			ret = -pthread_create(&c->thread, NULL, mute_chan_thread, c);
		c->started = !ret;
	}
	while (!ret && d->mode != MUTE_STOP_READING) {
		ret = ctl_recv(d->ctl, "mute destination", &type, &p, &len, &err);
		if (ret)
			break;
		if (type == CTL_RAM_SYNC && len == 8 && d->mode == MUTE_NO_COMPLETE)
			ret = ctl_send(d->ctl, CTL_RAM_SYNC_ACK, p, 8);
		if (type == CTL_EOS) {
			pthread_mutex_lock(&d->lock);
			d->eos_seen = true;
			pthread_mutex_unlock(&d->lock);
		}
		free(p);
	}
	return NULL;
}

/* @use_unix: a Unix socket (its send timeout, no keepalive), else TCP. */
static void mute_start_on(struct mute_dst *d, enum mute_mode mode, bool use_unix)
{
	char uri[300] = "tcp:127.0.0.1:0";

	const struct tern_transport_ops *tp;
	struct tern_error err = {0};
	const char *addr;

	memset(d, 0, sizeof(*d));
	d->mode = mode;
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	if (use_unix)
		unix_uri(uri, sizeof(uri));
	if (tcp_transport_for_uri(uri, &tp, &addr, &err) || tp->listen(addr, &d->l, &err) ||
	    d->l->ops->uri(d->l, d->uri, sizeof(d->uri)))
		fail_msg("mute destination: %s", err.msg);
	assert_rc_equal(pthread_create(&d->thread, NULL, mute_thread, d), 0);
	d->started = true;
}

/* TCP: the keepalive and TCP_USER_TIMEOUT path is exercised too. */
static void mute_start(struct mute_dst *d, enum mute_mode mode)
{
	mute_start_on(d, mode, false);
}

/* Wait until @bytes of worker-channel data arrived; false after @timeout_ms. */
static bool mute_wait_read(struct mute_dst *d, uint64_t bytes, int timeout_ms)
{
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	pthread_mutex_lock(&d->lock);
	while (d->bytes_read < bytes && pthread_cond_timedwait(&d->cond, &d->lock, &ts) == 0)
		;
	ok = d->bytes_read >= bytes;
	pthread_mutex_unlock(&d->lock);
	return ok;
}

static void mute_stop(struct mute_dst *d)
{
	uint32_t i;

	d->l->ops->shutdown(d->l);
	pthread_mutex_lock(&d->lock);
	conn_shutdown(d->ctl);
	for (i = 0; i < NCHAN; i++)
		conn_shutdown(d->chan[i].conn);
	pthread_mutex_unlock(&d->lock);
	if (d->started)
		pthread_join(d->thread, NULL);
	for (i = 0; i < NCHAN; i++) {
		if (d->chan[i].started)
			pthread_join(d->chan[i].thread, NULL);
		conn_close(d->chan[i].conn);
	}
	conn_close(d->ctl);
	d->l->ops->close(d->l);
	pthread_cond_destroy(&d->cond);
	pthread_mutex_destroy(&d->lock);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * A source of @rs towards @d with io-timeout @io_ms and migration-timeout
 * @mig_s (0: none); @endless: every page dirty every round. Returns when it
 * started.
 */
static uint64_t src_start(struct peer *src, const struct ram_spec *rs, struct mute_dst *d,
			  uint64_t io_ms, uint64_t mig_s, bool endless)
{
	struct tern_error err = {0};

	peer_new(src, true, rs, 1, NULL, 0);
	if (endless) {
		peer_add_always_dirty(src);
		peer_param(src, "downtime-limit", 1);
	}
	peer_param(src, "multifd-channels", NCHAN);
	peer_param(src, "io-timeout", io_ms);
	peer_param(src, "migration-timeout", mig_s);
	if (tern_migrate(src->s, d->uri, &err))
		fail_msg("tern_migrate %s: %s", d->uri, err.msg);
	return now_ms();
}

/* The source ended @want with @needle in its message, in at most @max_ms from @t0. */
static void expect_end(struct peer *src, uint64_t t0, enum tern_status want, const char *needle,
		       uint64_t max_ms)
{
	uint64_t took;

	expect_final(src, want, needle);
	took = now_ms() - t0;
	fprintf(stderr,
		"[src] ended %" PRIu64 " ms after the clock started (bound %" PRIu64 " ms)\n", took,
		max_ms);
	assert_true(took <= max_ms);
}

static void expect_guest_running(struct peer *src)
{
	unsigned int pauses = probe_pauses(&src->probe), resumes = probe_resumes(&src->probe);

	fprintf(stderr, "[src] pause called %u times, resume %u times\n", pauses, resumes);
	assert_true(pauses <= 1);
	assert_uint_equal(resumes, pauses);
}

/* ---- a destination that stops reading --------------------------------------- */

/* migration-timeout 2 s, policy cancel: cancelled about then, whatever the peer does. */
static void test_stopped_migration_timeout(void **state)
{
	struct mute_dst d;
	struct peer src;
	uint64_t t0;

	mute_start(&d, MUTE_STOP_READING);
	/* io-timeout well above: the migration-timeout must act on its own */
	t0 = src_start(&src, huge_ram, &d, 60000, 2, true);
	assert_true(mute_wait_read(&d, NCHAN << 20, FAULT_WAIT_MS));
	expect_end(&src, t0, TERN_STATUS_CANCELLED, "migration-timeout of 2 s reached", 4000);
	assert_uint_equal(probe_pauses(&src.probe), 0);
	expect_guest_running(&src);
	peer_free(&src);
	mute_stop(&d);
}

/* No migration-timeout, io-timeout 1 s: a worker channel gives up, named. */
static void test_stopped_io_timeout(void **state)
{
	struct tern_stats st;
	struct mute_dst d;
	struct peer src;
	uint64_t t0;

	mute_start(&d, MUTE_STOP_READING);
	src_start(&src, huge_ram, &d, 1000, 0, true);
	assert_true(mute_wait_read(&d, NCHAN << 20, FAULT_WAIT_MS));
	t0 = now_ms();
	expect_end(&src, t0, TERN_STATUS_FAILED, "could not write", 6000);
	tern_stats_get(src.s, &st);
	assert_str_contains(st.error, "worker channel");
	expect_guest_running(&src);
	peer_free(&src);
	mute_stop(&d);
}

/* The same over a Unix socket. */
static void test_stopped_io_timeout_unix(void **state)
{
	struct tern_stats st;
	struct mute_dst d;
	struct peer src;
	uint64_t t0;

	mute_start_on(&d, MUTE_STOP_READING, true);
	src_start(&src, huge_ram, &d, 1000, 0, true);
	assert_true(mute_wait_read(&d, NCHAN << 20, FAULT_WAIT_MS));
	t0 = now_ms();
	expect_end(&src, t0, TERN_STATUS_FAILED, "could not write", 6000);
	tern_stats_get(src.s, &st);
	assert_str_contains(st.error, "worker channel");
	expect_guest_running(&src);
	peer_free(&src);
	mute_stop(&d);
}

/*
 * migration-timeout 1 s with policy force: force switches over, which needs
 * the pages the migration thread is waiting to hand to the blocked workers
 * anyway, so it waits on; io-timeout fails the migration, naming the
 * channel, and the guest runs on (never paused, or resumed).
 */
static void test_stopped_timeout_force(void **state)
{
	struct tern_error err = {0};
	struct mute_dst d;
	struct peer src;
	uint64_t t0;

	mute_start(&d, MUTE_STOP_READING);
	peer_new(&src, true, huge_ram, 1, NULL, 0);
	peer_add_always_dirty(&src);
	peer_param(&src, "downtime-limit", 1);
	peer_param(&src, "multifd-channels", NCHAN);
	peer_param(&src, "io-timeout", 1000);
	peer_param(&src, "migration-timeout", 1);
	if (tern_param_set_str(src.s, "migration-timeout-policy", "force", &err))
		fail_msg("migration-timeout-policy: %s", err.msg);
	if (tern_migrate(src.s, d.uri, &err))
		fail_msg("tern_migrate %s: %s", d.uri, err.msg);
	t0 = now_ms();
	expect_end(&src, t0, TERN_STATUS_FAILED, "could not write", 8000);
	expect_guest_running(&src);
	peer_free(&src);
	mute_stop(&d);
}

/* tern_cancel() with the destination stopped: cancelled within a second. */
static void test_stopped_cancel(void **state)
{
	struct timespec pause = {.tv_nsec = 500000000};
	struct mute_dst d;
	struct peer src;
	uint64_t t0;

	mute_start(&d, MUTE_STOP_READING);
	src_start(&src, huge_ram, &d, 60000, 0, true);
	assert_true(mute_wait_read(&d, NCHAN << 20, FAULT_WAIT_MS));
	nanosleep(&pause, NULL); /* the source's writes are blocked by now */
	t0 = now_ms();
	assert_rc_equal(tern_cancel(src.s), 0);
	expect_end(&src, t0, TERN_STATUS_CANCELLED, "migration cancelled on the source", 1500);
	assert_uint_equal(probe_pauses(&src.probe), 0);
	expect_guest_running(&src);
	peer_free(&src);
	mute_stop(&d);
}

/* ---- a destination that reads but does not answer ----------------------------- */

/* No RAM_SYNC_ACK ever: the wait before switchover gives up, naming the round. */
static void test_no_ram_sync_ack(void **state)
{
	struct mute_dst d;
	struct peer src;
	uint64_t t0;

	mute_start(&d, MUTE_NO_ACK);
	t0 = src_start(&src, small_ram, &d, 1000, 0, false);
	expect_end(&src, t0, TERN_STATUS_FAILED, "no RAM_SYNC acknowledgement for round 1", 8000);
	assert_uint_equal(probe_pauses(&src.probe), 0);
	expect_guest_running(&src);
	peer_free(&src);
	mute_stop(&d);
}

/* Rounds acknowledged, EOS never answered: the guest was paused and runs again. */
static void test_no_complete(void **state)
{
	struct mute_dst d;
	struct peer src;
	uint64_t t0;

	mute_start(&d, MUTE_NO_COMPLETE);
	t0 = src_start(&src, small_ram, &d, 1000, 0, false);
	expect_end(&src, t0, TERN_STATUS_FAILED, "no LOADED from the destination", 8000);
	pthread_mutex_lock(&d.lock);
	assert_true(d.eos_seen);
	pthread_mutex_unlock(&d.lock);
	assert_uint_equal(probe_pauses(&src.probe), 1);
	expect_guest_running(&src);
	peer_free(&src);
	mute_stop(&d);
}

int main(int argc, char **argv)
{
	static const struct CMUnitTest tests[] = {
	    FAULT_CASE(test_stopped_migration_timeout),
	    FAULT_CASE(test_stopped_io_timeout),
	    FAULT_CASE(test_stopped_io_timeout_unix),
	    FAULT_CASE(test_stopped_timeout_force),
	    FAULT_CASE(test_stopped_cancel),
	    FAULT_CASE(test_no_ram_sync_ack),
	    FAULT_CASE(test_no_complete),
	};

	return fault_main("fault_stall", tests, ARRAY_SIZE(tests), argc, argv);
}
