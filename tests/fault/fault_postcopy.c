/* SPDX-License-Identifier: MIT */
/*
 * Postcopy's bad input and lost peers, on a real destination with
 * postcopy-ram (a fake source from fake_peer.c), and on the source's page
 * request path.
 *
 * Before POSTCOPY_RUN the rules of fault_dest.c hold: the destination
 * fails with the reason, the same reason goes back in an ERROR frame, and
 * its guest is never started. After RUN the guest runs there: a source
 * lost then fails the destination with a message that says its guest
 * cannot go on, and how many pages it lacks -- never `completed`.
 *
 * The destination has one block "ram0" of 4 MiB and one section "dev".
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fake_peer.h"
#include "fault_util.h"

#define RAM_SIZE (4u << 20)

static const struct ram_spec dst_ram[] = {{"ram0", RAM_SIZE}};
static const struct sec_spec dst_secs[] = {{"dev", 0, 2, 2, false}};
static const struct fp_block layout[] = {{"ram0", RAM_SIZE}};

struct pcase {
	struct peer dst;
	struct fake_src fs;
	struct tern_error peer_err;
};

/* A destination with postcopy-ram (@dest_cap), a fake source with one bulk
 * channel, and postcopy-ram in its HELLO (@src_cap, with its urgent one). */
static void pcase_start(struct pcase *c, bool dest_cap, bool src_cap)
{
	struct tern_error err = {0};

	memset(c, 0, sizeof(*c));
	peer_new(&c->dst, false, dst_ram, 1, dst_secs, 1);
	peer_param(&c->dst, "handshake-timeout", 1000);
	if (dest_cap && tern_cap_set(c->dst.s, "postcopy-ram", true, &err))
		fail_msg("postcopy-ram: %s", err.msg);
	peer_listen(&c->dst, "tcp:127.0.0.1:0");
	fsrc_init(&c->fs, c->dst.uri, 1);
	if (src_cap) {
		c->fs.caps = CAP_BIT(CAP_POSTCOPY_RAM);
		c->fs.urgent = 1;
	}
}

static void pcase_free(struct pcase *c)
{
	fsrc_close(&c->fs);
	peer_free(&c->dst);
}

static void expect_error_frame(struct pcase *c, const char *needle)
{
	struct tern_error err = {0};

	if (fsrc_read_error(&c->fs, &c->peer_err, &err))
		fail_msg("no ERROR frame from the destination: %s", err.msg);
	fprintf(stderr, "[fake src] ERROR frame: %s\n", c->peer_err.msg);
	assert_str_contains(c->peer_err.msg, needle);
}

/* Failed before RUN: the reason on both ends, the guest never started. */
static void expect_refused(struct pcase *c, const char *needle)
{
	expect_error_frame(c, needle);
	expect_final(&c->dst, TERN_STATUS_FAILED, needle);
	assert_uint_equal(probe_resumes(&c->dst.probe), 0);
}

/* Handshake, channels, and round 1: one page on the bulk channel, SYNC on
 * both, RAM_SYNC 1. */
static void round_one(struct pcase *c)
{
	uint32_t page = c->fs.page_size, i;
	uint64_t off = 8 * (uint64_t)page;
	uint8_t *p = malloc(page);

	assert_non_null(p);
	memset(p, 0x5a, page);
	CHECK_ERR(fsrc_handshake(&c->fs, layout, 1, &err));
	CHECK_ERR(fsrc_open_channels(&c->fs, &err));
	CHECK(fsrc_send_pages(&c->fs, 0, 0, &off, 1, 0, p));
	for (i = 0; i < c->fs.nchannels + c->fs.urgent; i++)
		CHECK(fsrc_send_sync(&c->fs, i, false));
	CHECK(fsrc_ram_sync(&c->fs, 1));
	free(p);
}

/* POSTCOPY_DISCARD of block @block: @n runs of (first, pages). */
static void send_discard(struct pcase *c, uint32_t block, const uint64_t *runs, uint32_t n)
{
	struct buf b;
	uint32_t i;

	buf_init(&b);
	buf_put_u32(&b, block);
	buf_put_u32(&b, n);
	for (i = 0; i < 2 * n; i++)
		buf_put_u64(&b, runs[i]);
	CHECK(fsrc_send_frame(&c->fs, CTL_POSTCOPY_DISCARD, b.data, b.len));
	buf_fini(&b);
}

static void send_run(struct pcase *c, uint64_t round, uint64_t pages)
{
	uint8_t p[16];

	put_be64(p, round);
	put_be64(p + 8, pages);
	CHECK(fsrc_send_frame(&c->fs, CTL_POSTCOPY_RUN, p, sizeof(p)));
}

/* A source whose HELLO asks for postcopy-ram where it is off. */
static void test_pc_cap_not_here(void **state)
{
	struct pcase c;

	pcase_start(&c, false, true);
	CHECK_ERR(fsrc_connect(&c.fs, &err));
	CHECK(fsrc_send_stream_hdr(&c.fs, CTL_MAGIC, CTL_VERSION));
	CHECK(fsrc_send_hello(&c.fs, layout, 1));
	CHECK_ERR(fsrc_recv_rp_hdr(&c.fs, &err));
	expect_refused(&c, "postcopy-ram is on at the source but not here");
	pcase_free(&c);
}

/* DISCARD and RUN from a source that did not say postcopy-ram in HELLO. */
static void test_pc_run_without_cap(void **state)
{
	struct pcase c;

	pcase_start(&c, true, false);
	round_one(&c);
	send_run(&c, 2, 0);
	expect_refused(&c, "POSTCOPY_RUN without postcopy-ram");
	pcase_free(&c);
}

/* Page runs past the block's end, or overflowing, or of an unknown block. */
static void test_pc_discard_outside(void **state)
{
	const uint64_t pages = RAM_SIZE / (uint64_t)getpagesize();
	const uint64_t runs[] = {3, 2, pages - 1, 2};
	struct pcase c;

	pcase_start(&c, true, true);
	round_one(&c);
	send_discard(&c, 0, runs, 2);
	expect_refused(&c, "outside its");
	pcase_free(&c);
}

static void test_pc_discard_overflow(void **state)
{
	const uint64_t runs[] = {5, UINT64_MAX - 2};
	struct pcase c;

	pcase_start(&c, true, true);
	round_one(&c);
	send_discard(&c, 0, runs, 1);
	expect_refused(&c, "outside its");
	pcase_free(&c);
}

static void test_pc_discard_unknown_block(void **state)
{
	const uint64_t runs[] = {1, 1};
	struct pcase c;

	pcase_start(&c, true, true);
	round_one(&c);
	send_discard(&c, 3, runs, 1);
	expect_refused(&c, "POSTCOPY_DISCARD: block 3 of 1");
	pcase_free(&c);
}

/* A frame whose length does not match its count of runs. */
static void test_pc_discard_truncated(void **state)
{
	uint8_t p[8 + 16 + 4] = {0};
	struct pcase c;

	pcase_start(&c, true, true);
	round_one(&c);
	put_be32(p + 4, 1);
	CHECK(fsrc_send_frame(&c.fs, CTL_POSTCOPY_DISCARD, p, sizeof(p)));
	expect_refused(&c, "do not hold 1 page runs");
	pcase_free(&c);
}

/* RUN must count exactly the pages DISCARD named, in the next round. */
static void test_pc_run_count_mismatch(void **state)
{
	const uint64_t runs[] = {2, 2};
	struct pcase c;

	pcase_start(&c, true, true);
	round_one(&c);
	send_discard(&c, 0, runs, 1);
	send_run(&c, 2, 5);
	expect_refused(&c, "5 pages to come, DISCARD named 2");
	pcase_free(&c);
}

static void test_pc_run_wrong_round(void **state)
{
	const uint64_t runs[] = {2, 2};
	struct pcase c;

	pcase_start(&c, true, true);
	round_one(&c);
	send_discard(&c, 0, runs, 1);
	send_run(&c, 7, 2);
	expect_refused(&c, "POSTCOPY_RUN for round 7 after round 1");
	pcase_free(&c);
}

/*
 * The source goes away in postcopy: pages 2 and 3 were missing at RUN, page
 * 2 came on the urgent channel (placed, readable), page 3 never did. The
 * destination's guest was started; the destination fails saying that its
 * guest cannot go on, one page short, and never completes.
 */
static void test_pc_source_lost(void **state)
{
	const uint64_t runs[] = {2, 2};
	uint32_t page = (uint32_t)getpagesize();
	uint64_t off = 2 * (uint64_t)page;
	uint8_t *p = malloc(page);
	struct tern_stats st;
	struct pcase c;
	int i;

	assert_non_null(p);
	memset(p, 0xc3, page);
	pcase_start(&c, true, true);
	round_one(&c);
	send_discard(&c, 0, runs, 1);
	send_run(&c, 2, 2);
	assert_true(peer_wait_status(&c.dst, TERN_STATUS_POSTCOPY_ACTIVE, 10000));
	assert_uint_equal(probe_resumes(&c.dst.probe), 1);
	c.fs.pkt_flags = MF_FLAG_POSTCOPY;
	CHECK(fsrc_send_pages(&c.fs, 1, 0, &off, 1, 0, p)); /* the urgent channel */
	for (i = 0; i < 500; i++) {
		tern_stats_get(c.dst.s, &st);
		if (st.postcopy_remaining_pages == 1)
			break;
		usleep(10000);
	}
	assert_uint_equal(st.postcopy_missing_pages, 2);
	assert_uint_equal(st.postcopy_remaining_pages, 1);
	assert_int_equal(c.dst.ram[0].host[off + 17], 0xc3);
	assert_int_equal(c.dst.ram[0].host[8 * (uint64_t)page], 0x5a); /* round 1's */
	fsrc_close(&c.fs);
	expect_final(&c.dst, TERN_STATUS_FAILED,
		     "cannot go on: 1 of its pages are only on the source");
	tern_stats_get(c.dst.s, &st);
	assert_true(st.postcopy);
	assert_uint_equal(probe_resumes(&c.dst.probe), 1);
	free(p);
	pcase_free(&c);
}

/* A postcopy packet on a destination that was not told RUN: refused by
 * the packet's own check, not placed, not written. */
static void test_pc_packet_before_run(void **state)
{
	uint32_t page = (uint32_t)getpagesize();
	uint64_t off = 5 * (uint64_t)page;
	uint8_t *p = calloc(1, page);
	struct pcase c;

	assert_non_null(p);
	memset(p, 0x77, page);
	pcase_start(&c, true, false);
	CHECK_ERR(fsrc_handshake(&c.fs, layout, 1, &err));
	CHECK_ERR(fsrc_open_channels(&c.fs, &err));
	c.fs.pkt_flags = MF_FLAG_POSTCOPY;
	CHECK(fsrc_send_pages(&c.fs, 0, 0, &off, 1, 0, p));
	/* it waits for RUN, which a source without postcopy-ram cannot send:
	 * the control channel's end fails the destination */
	fsrc_close(&c.fs);
	expect_final(&c.dst, TERN_STATUS_FAILED, "");
	assert_int_equal(c.dst.ram[0].host[off], 0);
	assert_uint_equal(probe_resumes(&c.dst.probe), 0);
	free(p);
	pcase_free(&c);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    FAULT_CASE(test_pc_cap_not_here),	       FAULT_CASE(test_pc_run_without_cap),
	    FAULT_CASE(test_pc_discard_outside),       FAULT_CASE(test_pc_discard_overflow),
	    FAULT_CASE(test_pc_discard_unknown_block), FAULT_CASE(test_pc_discard_truncated),
	    FAULT_CASE(test_pc_run_count_mismatch),    FAULT_CASE(test_pc_run_wrong_round),
	    FAULT_CASE(test_pc_source_lost),	       FAULT_CASE(test_pc_packet_before_run),
	};

	return fault_main("fault_postcopy", tests, ARRAY_SIZE(tests), argc, argv);
}
