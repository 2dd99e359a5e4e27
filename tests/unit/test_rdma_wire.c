/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for rdma/rdma_wire.c: the rdma transport's message headers,
 * rdma_cm private data and feedback word round-trip, and every malformed
 * field a peer could send is refused with -EPROTO and a message.
 */
#include <stdio.h>
#include <stdlib.h>

#include "tests/cmocka_compat.h"
#include "util/util.h"
#include "rdma/rdma_wire.h"

static int decode_one(const struct rdma_msg *m, uint32_t avail, struct rdma_msg *out,
		      struct tern_error *err)
{
	uint8_t buf[RDMA_MSG_HDR_LEN + 64] = {0};

	rdma_msg_encode(m, buf);
	return rdma_msg_decode(buf, avail, out, err);
}

static void test_msg_round_trip(void **state)
{
	struct rdma_msg m = {.type = RDMA_MSG_DATA,
			     .flags = RDMA_MSG_F_SPAN,
			     .len = 56,
			     .a = 4096,
			     .b = 100,
			     .c = 4196},
			out;
	struct tern_error err = {0};

	assert_int_equal(decode_one(&m, RDMA_MSG_HDR_LEN + 56, &out, &err), 0);
	assert_int_equal(out.type, RDMA_MSG_DATA);
	assert_int_equal(out.flags, RDMA_MSG_F_SPAN);
	assert_int_equal(out.len, 56);
	assert_true(out.a == 4096 && out.b == 100 && out.c == 4196 && out.d == 0);

	m = (struct rdma_msg){
	    .type = RDMA_MSG_REG_ACK, .a = 3, .b = 7, .c = 0x7f0000001000ull, .d = 0x1234};
	assert_int_equal(decode_one(&m, RDMA_MSG_HDR_LEN, &out, &err), 0);
	assert_true(out.c == 0x7f0000001000ull && out.d == 0x1234);
	assert_string_equal(rdma_msg_type_name(RDMA_MSG_UNREG), "UNREG");
	assert_string_equal(rdma_msg_type_name(99), "unknown");
}

/* Each malformed header: -EPROTO, *m untouched, a message naming it. */
static void expect_bad(const struct rdma_msg *m, uint32_t avail, const char *what)
{
	struct rdma_msg out = {.type = 0xee};
	struct tern_error err = {0};

	assert_int_equal(decode_one(m, avail, &out, &err), -EPROTO);
	assert_int_equal(out.type, 0xee);
	if (!strstr(err.msg, what)) {
		fprintf(stderr, "message \"%s\" does not name \"%s\"\n", err.msg, what);
		fail();
	}
}

static void test_msg_bad(void **state)
{
	uint8_t buf[RDMA_MSG_HDR_LEN] = {0};
	struct tern_error err = {0};
	struct rdma_msg out;

	expect_bad(&(struct rdma_msg){.type = 0}, RDMA_MSG_HDR_LEN, "unknown message type 0");
	expect_bad(&(struct rdma_msg){.type = RDMA_MSG_MAX}, RDMA_MSG_HDR_LEN,
		   "unknown message type");
	expect_bad(&(struct rdma_msg){.type = RDMA_MSG_REG, .flags = RDMA_MSG_F_SPAN},
		   RDMA_MSG_HDR_LEN, "unknown flags");
	expect_bad(&(struct rdma_msg){.type = RDMA_MSG_DATA, .len = 10}, RDMA_MSG_HDR_LEN + 9,
		   "says 10 payload bytes, carries 9");
	expect_bad(&(struct rdma_msg){.type = RDMA_MSG_DATA}, RDMA_MSG_HDR_LEN, "empty");
	expect_bad(&(struct rdma_msg){.type = RDMA_MSG_DATA, .len = 1, .a = 5},
		   RDMA_MSG_HDR_LEN + 1, "without a span");
	expect_bad(&(struct rdma_msg){.type = RDMA_MSG_BIND, .b = 0}, RDMA_MSG_HDR_LEN,
		   "0 regions");
	expect_bad(&(struct rdma_msg){.type = RDMA_MSG_BIND, .b = 3, .len = 16},
		   RDMA_MSG_HDR_LEN + 16, "3 regions in 16 bytes");
	expect_bad(&(struct rdma_msg){.type = RDMA_MSG_BIND_ACK, .len = 8}, RDMA_MSG_HDR_LEN + 8,
		   "BIND_ACK");
	expect_bad(&(struct rdma_msg){.type = RDMA_MSG_REG, .a = 1ull << 32}, RDMA_MSG_HDR_LEN,
		   "REG: bad fields");
	expect_bad(&(struct rdma_msg){.type = RDMA_MSG_UNREG, .len = 4}, RDMA_MSG_HDR_LEN + 4,
		   "UNREG: bad fields");
	/* shorter than a header */
	assert_int_equal(rdma_msg_decode(buf, 10, &out, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "shorter than its header"));
	/* reserved bits */
	rdma_msg_encode(&(struct rdma_msg){.type = RDMA_MSG_REG}, buf);
	buf[3] = 1;
	memset(&err, 0, sizeof(err));
	assert_int_equal(rdma_msg_decode(buf, RDMA_MSG_HDR_LEN, &out, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "reserved"));
}

static void test_priv(void **state)
{
	struct rdma_priv p = {.recv_depth = 16,
			      .buf_size = 65536,
			      .fb_addr = 0xdead000,
			      .fb_rkey = 77},
			 out;
	uint8_t buf[64] = {0};
	struct tern_error err = {0};

	rdma_priv_encode(&p, buf);
	/* a transport may pad the private data: longer is fine */
	assert_int_equal(rdma_priv_decode(buf, 56, &out, &err), 0);
	assert_true(out.recv_depth == 16 && out.buf_size == 65536 && out.fb_addr == 0xdead000 &&
		    out.fb_rkey == 77);
	assert_int_equal(rdma_priv_decode(buf, RDMA_PRIV_LEN - 1, &out, &err), -EPROTO);
	assert_int_equal(rdma_priv_decode(NULL, 0, &out, &err), -EPROTO);
	buf[0] ^= 1;
	memset(&err, 0, sizeof(err));
	assert_int_equal(rdma_priv_decode(buf, 56, &out, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "magic"));
	p.recv_depth = 0;
	rdma_priv_encode(&p, buf);
	memset(&err, 0, sizeof(err));
	assert_int_equal(rdma_priv_decode(buf, 56, &out, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "out of range"));
}

static void test_feedback(void **state)
{
	struct rdma_feedback f = {.reposted = 123456, .released = 7u << 20}, out = {0};
	uint64_t word[3];

	rdma_feedback_encode(&f, (uint8_t *)word);
	assert_int_equal(rdma_feedback_decode((uint8_t *)word, &out), 0);
	assert_true(out.reposted == 123456 && out.released == (7u << 20));
	/* a word half written by the NIC does not check */
	((uint8_t *)word)[7] ^= 0x40;
	out.reposted = 1;
	assert_int_equal(rdma_feedback_decode((uint8_t *)word, &out), -EAGAIN);
	assert_true(out.reposted == 1);
	/* all zero (never written) does not check either: the owner
	 * initializes it with an encoded zero */
	memset(word, 0, sizeof(word));
	assert_int_equal(rdma_feedback_decode((uint8_t *)word, &out), -EAGAIN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_msg_round_trip),
	    cmocka_unit_test(test_msg_bad),
	    cmocka_unit_test(test_priv),
	    cmocka_unit_test(test_feedback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
