/* SPDX-License-Identifier: MIT */
/*
 * Faults seen from a real source session: a destination with another RAM
 * layout or an older device section, a (fake) destination that refuses or
 * vanishes mid-round, a section that cannot be saved, and cancel at each
 * state on either side. Each case asserts that
 *
 *   - the source ends `failed` (or `cancelled`) with a message naming the
 *     problem, and tern_wait() returns;
 *   - the source guest kept running: pause was never called, or resume was
 *     called exactly once after it;
 *   - a real destination ended `failed` and never started its guest;
 *   - nothing leaks and every thread is joined (ASan + LSan in CI).
 */
#include <stdio.h>
#include <stdlib.h>

#include "fake_peer.h"
#include "fault_util.h"

#define SMALL_RAM (4u << 20)
#define BIG_RAM (16u << 20)
#define HUGE_RAM (32u << 20)

static const struct ram_spec small_ram[] = {{"ram0", SMALL_RAM}};
static const struct ram_spec big_ram[] = {{"ram0", BIG_RAM}};
static const struct ram_spec huge_ram[] = {{"ram0", HUGE_RAM}};
static const struct sec_spec dev_v1[] = {{"dev", 0, 1, 1, false}};

/* Start the source towards @uri. */
static void src_migrate(struct peer *src, const char *uri)
{
	struct tern_error err = {0};

	if (tern_migrate(src->s, uri, &err))
		fail_msg("tern_migrate %s: %s", uri, err.msg);
}

/* The source's guest kept running: never paused, or resumed once after the pause. */
static void expect_guest_running(struct peer *src)
{
	unsigned int pauses = probe_pauses(&src->probe), resumes = probe_resumes(&src->probe);

	fprintf(stderr, "[src] pause called %u times, resume %u times\n", pauses, resumes);
	assert_true(pauses <= 1);
	assert_uint_equal(resumes, pauses);
}

static void expect_dest_not_started(struct peer *dst, const char *needle)
{
	expect_final(dst, TERN_STATUS_FAILED, needle);
	assert_uint_equal(probe_resumes(&dst->probe), 0);
}

static void dest_start(struct peer *dst, const struct ram_spec *rs, const struct sec_spec *ss,
		       unsigned int nsecs, bool use_unix)
{
	char uri[300];

	peer_new(dst, false, rs, 1, ss, nsecs);
	if (use_unix)
		unix_uri(uri, sizeof(uri));
	else
		snprintf(uri, sizeof(uri), "tcp:127.0.0.1:0");
	peer_listen(dst, uri);
}

/* A migration that cannot converge: every page dirty every round, slow link. */
static void make_endless(struct peer *src)
{
	peer_add_always_dirty(src);
	peer_param(src, "max-bandwidth", 8u << 20);
	peer_param(src, "downtime-limit", 1);
}

/* ---- 13: the destination has another RAM size ------------------------------ */

static void test_dest_ram_size(void **state)
{
	static const struct ram_spec other[] = {{"ram0", 2 * SMALL_RAM}};
	struct peer src, dst;

	dest_start(&dst, other, NULL, 0, false);
	peer_new(&src, true, small_ram, 1, NULL, 0);
	src_migrate(&src, dst.uri);
	expect_final(&src, TERN_STATUS_FAILED, "destination: RAM layout mismatch");
	expect_final(&src, TERN_STATUS_FAILED, "block 'ram0' has 4194304 bytes on the source");
	assert_uint_equal(probe_pauses(&src.probe), 0);
	expect_guest_running(&src);
	expect_dest_not_started(&dst, "RAM layout mismatch");
	peer_free(&src);
	peer_free(&dst);
}

/* ---- 14: the destination loads only older versions of a section ------------ */

static void test_dest_section_older(void **state)
{
	static const struct sec_spec src_secs[] = {{"dev", 0, 3, 1, false}};
	static const struct sec_spec dst_secs[] = {{"dev", 0, 2, 1, false}};
	static const char needle[] = "section 'dev' instance 0: version 3, this destination loads "
				     "1..2";
	struct peer src, dst;

	dest_start(&dst, small_ram, dst_secs, 1, true);
	peer_new(&src, true, small_ram, 1, src_secs, 1);
	src_migrate(&src, dst.uri);
	expect_final(&src, TERN_STATUS_FAILED, needle);
	/* The failure came at switchover: the guest was paused, then resumed. */
	assert_uint_equal(probe_pauses(&src.probe), 1);
	expect_guest_running(&src);
	expect_dest_not_started(&dst, needle);
	peer_free(&src);
	peer_free(&dst);
}

/* ---- 15: the destination goes away ------------------------------------------ */

static void test_dest_closes_mid_round(void **state)
{
	struct tern_error err = {0};
	struct tern_stats st;
	struct fake_dst fd;
	struct peer src;
	char uri[300];

	/*
	 * Unix sockets buffer at most a few MiB a channel, so 32 MiB of data
	 * cannot all be in flight: the source is still in round 1 when the
	 * fake closes. Every page stays dirty, so even a host with huge
	 * buffers cannot let it converge and pause.
	 */
	unix_uri(uri, sizeof(uri));
	if (fdst_start(&fd, uri, FDST_CLOSE_IN_ROUND, &err))
		fail_msg("fake destination: %s", err.msg);
	peer_new(&src, true, huge_ram, 1, NULL, 0);
	peer_add_always_dirty(&src);
	peer_param(&src, "downtime-limit", 1);
	src_migrate(&src, fd.uri);
	assert_true(fdst_wait_closed(&fd, FAULT_WAIT_MS));
	peer_wait_final(&src, &st);
	fprintf(stderr, "[src] ended %s: %s (rounds %" PRIu64 ", %" PRIu64 " bytes sent)\n",
		tern_status_name(st.status), st.error, st.rounds, st.ram_transferred);
	assert_int_equal(st.status, TERN_STATUS_FAILED);
	assert_true(st.ram_transferred < HUGE_RAM);
	/* The return path or a worker notices first, by EOF, EPIPE or a reset. */
	if (!strstr(st.error, "closed the connection") && !strstr(st.error, "Broken pipe") &&
	    !strstr(st.error, "Connection reset by peer"))
		fail_msg("source error does not say the destination went away: %s", st.error);
	assert_uint_equal(probe_pauses(&src.probe), 0);
	expect_guest_running(&src);
	peer_free(&src);
	if (fdst_stop(&fd, &err))
		fail_msg("fake destination: %s", err.msg);
}

static void test_dest_replies_error(void **state)
{
	struct tern_error err = {0};
	struct fake_dst fd;
	struct peer src;

	if (fdst_start(&fd, "tcp:127.0.0.1:0", FDST_REPLY_ERROR, &err))
		fail_msg("fake destination: %s", err.msg);
	peer_new(&src, true, small_ram, 1, NULL, 0);
	src_migrate(&src, fd.uri);
	expect_final(&src, TERN_STATUS_FAILED, "destination: " FDST_ERROR_MSG);
	assert_uint_equal(probe_pauses(&src.probe), 0);
	expect_guest_running(&src);
	peer_free(&src);
	if (fdst_stop(&fd, &err))
		fail_msg("fake destination: %s", err.msg);
}

/* ---- 16: cancel ------------------------------------------------------------- */

/* Setup: the destination accepted and read HELLO but never answers. */
static void test_cancel_setup(void **state)
{
	struct tern_error err = {0};
	struct tern_stats st;
	struct fake_dst fd;
	struct peer src;

	if (fdst_start(&fd, "tcp:127.0.0.1:0", FDST_HANG, &err))
		fail_msg("fake destination: %s", err.msg);
	peer_new(&src, true, small_ram, 1, NULL, 0);
	src_migrate(&src, fd.uri);
	assert_true(fdst_wait_hello(&fd, FAULT_WAIT_MS));
	tern_stats_get(src.s, &st);
	assert_int_equal(st.status, TERN_STATUS_SETUP);
	assert_rc_equal(tern_cancel(src.s), 0);
	expect_final(&src, TERN_STATUS_CANCELLED, "migration cancelled on the source");
	assert_rc_equal(tern_cancel(src.s), -EALREADY);
	assert_uint_equal(probe_pauses(&src.probe), 0);
	expect_guest_running(&src);
	peer_free(&src);
	if (fdst_stop(&fd, &err))
		fail_msg("fake destination: %s", err.msg);
}

/* Active: a real destination; the migration cannot converge. */
static void test_cancel_active(void **state)
{
	struct peer src, dst;

	dest_start(&dst, big_ram, NULL, 0, false);
	peer_new(&src, true, big_ram, 1, NULL, 0);
	make_endless(&src);
	src_migrate(&src, dst.uri);
	assert_true(peer_wait_status(&src, TERN_STATUS_ACTIVE, FAULT_WAIT_MS));
	assert_true(peer_wait_transferred(&src, 2u << 20, FAULT_WAIT_MS));
	assert_true(peer_wait_status(&dst, TERN_STATUS_ACTIVE, FAULT_WAIT_MS));
	assert_rc_equal(tern_cancel(src.s), 0);
	expect_final(&src, TERN_STATUS_CANCELLED, "migration cancelled on the source");
	assert_uint_equal(probe_pauses(&src.probe), 0);
	expect_guest_running(&src);
	/* The source tells nothing on cancel: the destination sees it hang up. */
	expect_dest_not_started(&dst, "closed the connection");
	peer_free(&src);
	peer_free(&dst);
}

struct canceller {
	struct peer *src;
	int ret;
};

static void *cancel_thread(void *arg)
{
	struct canceller *c = arg;

	c->ret = tern_cancel(c->src->s);
	probe_release_pause(&c->src->probe);
	return NULL;
}

/* Device: pause() blocks until another thread has cancelled, then returns. */
static void test_cancel_device(void **state)
{
	struct canceller c;
	struct tern_stats st;
	struct peer src, dst;
	pthread_t t;

	dest_start(&dst, small_ram, dev_v1, 1, true);
	peer_new(&src, true, small_ram, 1, dev_v1, 1);
	src.probe.hold_pause = true;
	src_migrate(&src, dst.uri);
	assert_true(probe_wait_in_pause(&src.probe, FAULT_WAIT_MS));
	tern_stats_get(src.s, &st);
	assert_int_equal(st.status, TERN_STATUS_DEVICE);
	c = (struct canceller){.src = &src};
	assert_rc_equal(pthread_create(&t, NULL, cancel_thread, &c), 0);
	pthread_join(t, NULL);
	assert_rc_equal(c.ret, 0);
	expect_final(&src, TERN_STATUS_CANCELLED, "migration cancelled on the source");
	assert_uint_equal(probe_pauses(&src.probe), 1);
	assert_uint_equal(probe_resumes(&src.probe), 1);
	expect_dest_not_started(&dst, "closed the connection");
	peer_free(&src);
	peer_free(&dst);
}

/* The destination cancels while active: the source hears why. */
static void test_dest_cancel_active(void **state)
{
	struct peer src, dst;

	dest_start(&dst, big_ram, NULL, 0, true);
	peer_new(&src, true, big_ram, 1, NULL, 0);
	make_endless(&src);
	src_migrate(&src, dst.uri);
	assert_true(peer_wait_status(&dst, TERN_STATUS_ACTIVE, FAULT_WAIT_MS));
	assert_true(peer_wait_transferred(&src, 2u << 20, FAULT_WAIT_MS));
	assert_rc_equal(tern_cancel(dst.s), 0);
	expect_dest_not_started(&dst, "migration cancelled on the destination");
	expect_final(&src, TERN_STATUS_FAILED,
		     "destination: migration cancelled on the destination");
	expect_guest_running(&src);
	assert_rc_equal(tern_cancel(dst.s), -EALREADY);
	peer_free(&src);
	peer_free(&dst);
}

/* ---- 17: a section that cannot be saved ---------------------------------------- */

static void test_section_save_fails(void **state)
{
	static const struct sec_spec src_secs[] = {{"dev", 0, 1, 1, true}};
	struct peer src, dst;

	dest_start(&dst, small_ram, dev_v1, 1, false);
	peer_new(&src, true, small_ram, 1, src_secs, 1);
	src_migrate(&src, dst.uri);
	expect_final(&src, TERN_STATUS_FAILED, "saving section 'dev' instance 0: " FAULT_SAVE_MSG);
	assert_uint_equal(probe_pauses(&src.probe), 1);
	expect_guest_running(&src);
	/* The source's ERROR frame got through: the destination says why. */
	expect_dest_not_started(&dst, "source: saving section 'dev' instance 0: " FAULT_SAVE_MSG);
	peer_free(&src);
	peer_free(&dst);
}

int main(int argc, char **argv)
{
	static const struct CMUnitTest tests[] = {
	    FAULT_CASE(test_dest_ram_size),	    FAULT_CASE(test_dest_section_older),
	    FAULT_CASE(test_dest_closes_mid_round), FAULT_CASE(test_dest_replies_error),
	    FAULT_CASE(test_cancel_setup),	    FAULT_CASE(test_cancel_active),
	    FAULT_CASE(test_cancel_device),	    FAULT_CASE(test_dest_cancel_active),
	    FAULT_CASE(test_section_save_fails),
	};

	return fault_main("fault_source", tests, ARRAY_SIZE(tests), argc, argv);
}
