/* SPDX-License-Identifier: MIT */
/*
 * tern_kvm_log_new() refuses bad memslot descriptions before it asks KVM
 * anything, so these tests run without /dev/kvm: the vm fd is /dev/null,
 * which only the capability probe (the last step) would notice.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "tests/cmocka_compat.h"
#include "tests/kvm/kvm_test.h"
#include "tern/kvm.h"

#define NPAGES 256

struct vstate {
	int fd;
	void *host;
	struct tern_ram_block *block;
	struct tern_kvm_slot slot[2];
};

static int setup(void **state)
{
	struct vstate *v = calloc(1, sizeof(*v));

	assert_non_null(v);
	v->fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	assert_true(v->fd >= 0);
	v->host = aligned_alloc(4096, NPAGES * 4096);
	assert_non_null(v->host);
	v->block = ktest_block_new("ram", NPAGES);
	assert_non_null(v->block);
	/* Two good slots side by side in one block. */
	v->slot[0] = (struct tern_kvm_slot){
	    .slot = 0,
	    .guest_phys_addr = 0,
	    .size = NPAGES / 2 * 4096,
	    .host = v->host,
	    .block = v->block,
	    .block_offset = 0,
	};
	v->slot[1] = v->slot[0];
	v->slot[1].slot = 1;
	v->slot[1].guest_phys_addr = 1ull << 32;
	v->slot[1].host = (uint8_t *)v->host + NPAGES / 2 * 4096;
	v->slot[1].block_offset = NPAGES / 2 * 4096;
	*state = v;
	return 0;
}

static int teardown(void **state)
{
	struct vstate *v = *state;

	close(v->fd);
	free(v->host);
	ktest_block_free(v->block);
	free(v);
	return 0;
}

/* new() fails with @code and a message containing @what; nothing is returned. */
static void expect_refused(struct vstate *v, uint32_t nslots, int code, const char *what)
{
	struct tern_kvm_log *log = (struct tern_kvm_log *)0x1;
	struct tern_error err = {0};

	assert_rc_equal(tern_kvm_log_new(v->fd, v->slot, nslots, &log, &err), code);
	assert_rc_equal(err.code, code);
	assert_str_contains(err.msg, what);
	assert_true(log == (struct tern_kvm_log *)0x1);
}

static void test_size_zero(void **state)
{
	struct vstate *v = *state;

	v->slot[1].size = 0;
	expect_refused(v, 2, -EINVAL, "slot 1: size 0 is not a non-zero multiple of 4096");
}

static void test_size_unaligned(void **state)
{
	struct vstate *v = *state;

	v->slot[0].size = 4096 + 512;
	expect_refused(v, 2, -EINVAL, "slot 0: size 4608");
}

static void test_offset_unaligned(void **state)
{
	struct vstate *v = *state;

	v->slot[1].block_offset += 8;
	expect_refused(v, 2, -EINVAL, "block offset 0x80008 is not page-aligned");
}

static void test_outside_block(void **state)
{
	struct vstate *v = *state;

	/* One page past the block's end. */
	v->slot[1].block_offset += 4096;
	expect_refused(v, 2, -ERANGE, "does not fit in RAM block 'ram'");
	/* An offset beyond the block, and one that would wrap around. */
	v->slot[1].block_offset = (NPAGES + 1) * 4096ull;
	expect_refused(v, 2, -ERANGE, "slot 1");
	v->slot[1].block_offset = UINT64_MAX & ~4095ull;
	expect_refused(v, 2, -ERANGE, "slot 1");
}

static void test_duplicate_id(void **state)
{
	struct vstate *v = *state;

	v->slot[1].slot = 0;
	expect_refused(v, 2, -EEXIST, "slot 0 is listed twice");
}

static void test_no_block(void **state)
{
	struct vstate *v = *state;

	v->slot[0].block = NULL;
	expect_refused(v, 2, -EINVAL, "slot 0 has no RAM block");
}

static void test_unaligned_addresses(void **state)
{
	struct vstate *v = *state;

	v->slot[1].guest_phys_addr += 2048;
	expect_refused(v, 2, -EINVAL, "must be page-aligned");
	v->slot[1].guest_phys_addr -= 2048;
	v->slot[1].host = (uint8_t *)v->slot[1].host + 64;
	expect_refused(v, 2, -EINVAL, "must be page-aligned");
}

static void test_log_flag_preset(void **state)
{
	struct vstate *v = *state;

	v->slot[0].flags = 1; /* KVM_MEM_LOG_DIRTY_PAGES */
	expect_refused(v, 2, -EINVAL, "KVM_MEM_LOG_DIRTY_PAGES already");
}

static void test_no_slots_bad_fd(void **state)
{
	struct vstate *v = *state;
	struct tern_kvm_log *log = NULL;
	struct tern_error err = {0};

	expect_refused(v, 0, -EINVAL, "no memslots");
	assert_rc_equal(tern_kvm_log_new(-1, v->slot, 2, &log, &err), -EBADF);
	assert_str_contains(err.msg, "bad vm fd -1");
	assert_null(log);
}

/* Good slots get as far as the probe, which /dev/null does not answer. */
static void test_probe_failure_named(void **state)
{
	struct vstate *v = *state;

	expect_refused(v, 2, -ENOTTY, "KVM_CHECK_EXTENSION(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2)");
}

static void test_stats_null(void **state)
{
	struct tern_kvm_log_stats st;

	memset(&st, 0xff, sizeof(st));
	tern_kvm_log_stats(NULL, &st);
	assert_false(st.manual_protect);
	assert_uint_equal(st.syncs, 0);
	assert_uint_equal(st.last_round_clear_ns, 0);
	tern_kvm_log_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_size_zero, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_size_unaligned, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_offset_unaligned, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outside_block, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_duplicate_id, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_block, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unaligned_addresses, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_log_flag_preset, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_slots_bad_fd, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_probe_failure_named, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stats_null, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
