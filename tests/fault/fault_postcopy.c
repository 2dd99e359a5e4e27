/* SPDX-License-Identifier: MIT */
/*
 * Postcopy's bad input and lost peers, on a real destination with
 * postcopy-ram (a fake source from fake_peer.c), and on the source's page
 * request path.
 *
 * Before POSTCOPY_RUN the rules of fault_dest.c hold: the destination
 * fails with the reason, the same reason goes back in an ERROR frame, and
 * its guest is never started. After RUN the guest runs there: a source
 * lost then pauses the destination, which a recovery brings back (only
 * this migration's source, resuming where it left off, gets in); once
 * postcopy-recover-timeout passes without one it fails with a message
 * that says its guest cannot go on, and how many pages it lacks -- never
 * `completed`.
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
 * Into postcopy with pages 2 and 3 missing at RUN; page 2 comes on the
 * urgent channel (placed, readable), page 3 does not, and the source goes
 * away: the destination, whose guest was started, pauses.
 */
static void into_postcopy_then_lost(struct pcase *c, uint64_t recover_timeout_ms)
{
	const uint64_t runs[] = {2, 2};
	uint32_t page = (uint32_t)getpagesize();
	uint64_t off = 2 * (uint64_t)page;
	uint8_t *p = malloc(page);
	struct tern_stats st;
	int i;

	assert_non_null(p);
	memset(p, 0xc3, page);
	pcase_start(c, true, true);
	peer_param(&c->dst, "postcopy-recover-timeout", recover_timeout_ms);
	round_one(c);
	send_discard(c, 0, runs, 1);
	send_run(c, 2, 2);
	assert_true(peer_wait_status(&c->dst, TERN_STATUS_POSTCOPY_ACTIVE, 10000));
	assert_uint_equal(probe_resumes(&c->dst.probe), 1);
	c->fs.pkt_flags = MF_FLAG_POSTCOPY;
	CHECK(fsrc_send_pages(&c->fs, 1, 0, &off, 1, 0, p)); /* the urgent channel */
	for (i = 0; i < 500; i++) {
		tern_stats_get(c->dst.s, &st);
		if (st.postcopy_remaining_pages == 1)
			break;
		usleep(10000);
	}
	assert_uint_equal(st.postcopy_missing_pages, 2);
	assert_uint_equal(st.postcopy_remaining_pages, 1);
	assert_int_equal(c->dst.ram[0].host[off + 17], 0xc3);
	assert_int_equal(c->dst.ram[0].host[8 * (uint64_t)page], 0x5a); /* round 1's */
	fsrc_close(&c->fs);
	assert_true(peer_wait_status(&c->dst, TERN_STATUS_POSTCOPY_PAUSED, 10000));
	free(p);
}

/*
 * The source is lost for good: paused, then past postcopy-recover-timeout
 * the destination fails saying that its guest cannot go on, one page
 * short, and why -- never `completed`.
 */
static void test_pc_source_lost(void **state)
{
	struct tern_stats st;
	struct pcase c;

	into_postcopy_then_lost(&c, 300);
	expect_final(&c.dst, TERN_STATUS_FAILED,
		     "cannot go on: 1 of its pages are only on the source: no recovery within "
		     "postcopy-recover-timeout (300 ms): the source is lost");
	tern_stats_get(c.dst.s, &st);
	assert_true(st.postcopy);
	assert_uint_equal(st.postcopy_pauses, 1);
	assert_uint_equal(st.postcopy_recoveries, 0);
	assert_uint_equal(probe_resumes(&c.dst.probe), 1);
	pcase_free(&c);
}

/* tern_postcopy_recover() on port 0: a new fake source (keeping the
 * session's uuid) aimed at the address it bound. */
static void recover_listen(struct pcase *c, struct fake_src *fs)
{
	struct tern_error err = {0};
	char uri[300];

	if (tern_postcopy_recover(c->dst.s, "tcp:127.0.0.1:0", &err))
		fail_msg("recover: %s", err.msg);
	assert_int_equal(tern_postcopy_recover(c->dst.s, "tcp:127.0.0.1:0", &err), -EALREADY);
	assert_int_equal(tern_incoming_uri(c->dst.s, uri, sizeof(uri)), 0);
	fsrc_init(fs, uri, c->fs.nchannels);
	memcpy(fs->uuid, c->fs.uuid, 16);
	fs->caps = c->fs.caps;
	fs->urgent = c->fs.urgent;
}

/* Connect and say POSTCOPY_RESUME for @uuid, @round, @nchannels. */
static void send_resume(struct fake_src *fs, const uint8_t *uuid, uint64_t round, uint32_t nch)
{
	uint8_t p[28];

	CHECK_ERR(fsrc_connect(fs, &err));
	CHECK(fsrc_send_stream_hdr(fs, CTL_MAGIC, CTL_VERSION));
	memcpy(p, uuid, 16);
	put_be64(p + 16, round);
	put_be32(p + 24, nch);
	CHECK(fsrc_send_frame(fs, CTL_POSTCOPY_RESUME, p, sizeof(p)));
}

/* A resume the paused destination must refuse, saying @needle; it stays
 * paused and listening. */
static void expect_resume_refused(struct pcase *c, struct fake_src *fs, const char *needle)
{
	struct tern_error peer = {0}, err = {0};

	if (fsrc_recv_rp_hdr(fs, &err) || fsrc_read_error(fs, &peer, &err))
		fail_msg("no ERROR frame for a bad resume: %s", err.msg);
	fprintf(stderr, "[fake src] resume refused: %s\n", peer.msg);
	assert_str_contains(peer.msg, needle);
	fsrc_close(fs);
	usleep(50000);
	assert_int_equal(tern_stats_get(c->dst.s, &(struct tern_stats){0}), 0);
	assert_true(peer_wait_status(&c->dst, TERN_STATUS_POSTCOPY_RECOVER, 1000));
}

/*
 * Connection lost in postcopy -> postcopy-paused -> recover: resumes that
 * are not this migration's (another session's uuid, a round that does not
 * follow, a new migration's HELLO) are refused with the reason and the
 * destination keeps waiting; the right one gets the missing map (page 3
 * only) and RESUME_ACK after round 1, the page comes in round 2 of the new
 * channels, and the destination completes with every byte in place.
 */
static void test_pc_recover(void **state)
{
	uint32_t page = (uint32_t)getpagesize();
	uint64_t off = 3 * (uint64_t)page, bad_uuid[2] = {1, 2}, blk, first, n, last, pages;
	uint8_t *p = malloc(page), *payload, eos[16];
	struct tern_error herr = {0};
	struct fake_src fs;
	struct tern_stats st;
	struct pcase c;
	uint16_t type;
	uint32_t len, i;

	assert_non_null(p);
	into_postcopy_then_lost(&c, 0);
	recover_listen(&c, &fs);
	assert_true(peer_wait_status(&c.dst, TERN_STATUS_POSTCOPY_RECOVER, 5000));

	send_resume(&fs, (const uint8_t *)bad_uuid, 2, 1);
	expect_resume_refused(&c, &fs, "another migration's session");
	send_resume(&fs, c.fs.uuid, 7, 1);
	expect_resume_refused(&c, &fs,
			      "the source is in round 7, this destination acknowledged round 1");
	send_resume(&fs, c.fs.uuid, 2, 3);
	expect_resume_refused(&c, &fs, "3 worker channels, the migration has 1");
	/* a new migration's HELLO: refused, saying why */
	if (!fsrc_handshake(&fs, layout, 1, &herr))
		fail_msg("a new migration's HELLO was taken by a paused destination");
	fprintf(stderr, "[fake src] HELLO refused: %s\n", herr.msg);
	assert_str_contains(herr.msg, "paused in postcopy");
	fsrc_close(&fs);
	assert_true(peer_wait_status(&c.dst, TERN_STATUS_POSTCOPY_RECOVER, 1000));

	/* this migration's source, in round 2 */
	send_resume(&fs, c.fs.uuid, 2, 1);
	CHECK_ERR(fsrc_recv_rp_hdr(&fs, &err));
	CHECK_ERR(ctl_recv(fs.ctl, "fake", &type, &payload, &len, &err));
	assert_int_equal(type, CTL_POSTCOPY_MISSING);
	assert_int_equal(len, 24);
	blk = get_be32(payload);
	n = get_be32(payload + 4);
	first = get_be64(payload + 8);
	assert_uint_equal(blk, 0);
	assert_uint_equal(n, 1);
	assert_uint_equal(first, 3);
	assert_uint_equal(get_be64(payload + 16), 1);
	free(payload);
	CHECK_ERR(ctl_recv(fs.ctl, "fake", &type, &payload, &len, &err));
	assert_int_equal(type, CTL_POSTCOPY_RESUME_ACK);
	assert_int_equal(len, 16);
	last = get_be64(payload);
	pages = get_be64(payload + 8);
	free(payload);
	assert_uint_equal(last, 1);
	assert_uint_equal(pages, 1);
	for (i = 0; i < fs.nchannels + fs.urgent; i++)
		fs.round[i] = last + 1;
	CHECK_ERR(fsrc_open_channels(&fs, &err));
	assert_true(peer_wait_status(&c.dst, TERN_STATUS_POSTCOPY_ACTIVE, 5000));
	memset(p, 0x3c, page);
	fs.pkt_flags = MF_FLAG_POSTCOPY;
	CHECK(fsrc_send_pages(&fs, 0, 0, &off, 1, 0, p)); /* the bulk channel */
	for (i = 0; i < fs.nchannels + fs.urgent; i++)
		CHECK(fsrc_send_sync(&fs, i, true));
	CHECK(fsrc_ram_sync(&fs, 2));
	put_be64(eos, 2);
	put_be64(eos + 8, 1);
	CHECK(fsrc_send_frame(&fs, CTL_EOS, eos, sizeof(eos)));
	expect_final(&c.dst, TERN_STATUS_COMPLETED, "");
	assert_int_equal(c.dst.ram[0].host[off + 99], 0x3c);
	assert_int_equal((uint8_t)c.dst.ram[0].host[2 * (uint64_t)page + 5], 0xc3);
	tern_stats_get(c.dst.s, &st);
	assert_uint_equal(st.postcopy_pauses, 1);
	assert_uint_equal(st.postcopy_recoveries, 1);
	assert_uint_equal(st.postcopy_remaining_pages, 0);
	assert_uint_equal(probe_resumes(&c.dst.probe), 1);
	fsrc_close(&fs);
	free(p);
	pcase_free(&c);
}

/* Recover refused where nothing is paused: a destination still in
 * precopy, and a source session. */
static void test_pc_recover_not_paused(void **state)
{
	struct tern_error err = {0};
	struct pcase c;

	pcase_start(&c, true, true);
	round_one(&c);
	assert_true(peer_wait_status(&c.dst, TERN_STATUS_ACTIVE, 5000));
	assert_int_equal(tern_postcopy_recover(c.dst.s, "tcp:127.0.0.1:0", &err), -EINVAL);
	assert_str_contains(err.msg, "no incoming migration is paused in postcopy");
	tern_error_clear(&err);
	assert_int_equal(tern_postcopy_resume(c.dst.s, "tcp:127.0.0.1:1", &err), -EINVAL);
	assert_str_contains(err.msg, "no outgoing migration is paused in postcopy");
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
	    FAULT_CASE(test_pc_cap_not_here),
	    FAULT_CASE(test_pc_run_without_cap),
	    FAULT_CASE(test_pc_discard_outside),
	    FAULT_CASE(test_pc_discard_overflow),
	    FAULT_CASE(test_pc_discard_unknown_block),
	    FAULT_CASE(test_pc_discard_truncated),
	    FAULT_CASE(test_pc_run_count_mismatch),
	    FAULT_CASE(test_pc_run_wrong_round),
	    FAULT_CASE(test_pc_source_lost),
	    FAULT_CASE(test_pc_packet_before_run),
	    FAULT_CASE(test_pc_recover),
	    FAULT_CASE(test_pc_recover_not_paused),
	};

	return fault_main("fault_postcopy", tests, ARRAY_SIZE(tests), argc, argv);
}
