/* SPDX-License-Identifier: MIT */
/*
 * The KVM dirty-log provider against a real KVM guest.
 *
 * The guest (vm/kvm_guest, long mode, CPL 3) runs a loop that writes one byte
 * to each address in a table the test fills, then reports with `out`. The
 * test drives the provider's hooks one at a time, as core's precopy loop
 * would, and compares what the provider reported into a stand-in RAM block
 * (kvm_test_stubs.c) with the pages the guest wrote.
 *
 * Layout: one RAM block of BLOCK_PAGES pages holds two memslots --
 *   slot 0: the guest's 8 MiB of RAM at guest-physical 0, at block page 37
 *           (not a multiple of 64, so every chunk is misaligned to KVM's
 *           64-page granule and the provider must widen and mask);
 *   slot 1: 100 pages (not a multiple of 64) just above RAM, right after
 *           slot 0 in the block, mapped into the guest by one more 2 MiB PD
 *           entry.
 * Chunk boundaries (block coordinates) cut through both slots, and chunk
 * 32 = [2048, 2112) holds slot 0's end and slot 1's start.
 *
 * Guest writes land on the last byte of a page (offset 0xfff).
 *
 * The guest's page walker counts as a writer: on AMD NPT (and Intel EPT with
 * A/D bits) the CPU's accesses to guest page tables during a walk are treated
 * as writes at the nested level, so KVM logs the page-table pages (PML4,
 * PDPT, PD: block pages 37..39) whenever the guest misses its TLB -- after a
 * clear, which flushes it, as a rule. Measured in a QEMU/TCG VM with kvm_amd
 * (npt=1). Shadow paging (PVM) does not. So a sync must report exactly the
 * pages the guest wrote, plus possibly those three and nothing else.
 *
 * Without /dev/kvm the binary exits 77 (meson: SKIP).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "tests/cmocka_compat.h"
#include "tests/kvm/kvm_test.h"
#include "tern/kvm.h"
#include "util/util.h"
#include "vm/kvm_guest.h"

#define RAM_SIZE (8ull << 20)
#define RAM_PAGES (RAM_SIZE / 4096) /* 2048 */
#define S0_OFF 37ull		    /* slot 0's first block page */
#define S1_GPA RAM_SIZE		    /* slot 1: right above RAM */
#define S1_PAGES 100ull
#define S1_OFF (S0_OFF + RAM_PAGES) /* 2085 */
#define BLOCK_PAGES (S1_OFF + S1_PAGES + 11)
#define GUEST_PORT 0x10
/* The guest's page tables, in block pages (see above). */
#define WALK_FIRST S0_OFF
#define WALK_LAST (S0_OFF + 2)

/*
 * The guest: forever { n = table[0]; v = table[1];
 *                      for i < n: *(u8 *)table[2 + i] = v; out GUEST_PORT }
 * The table sits in the mailbox page (KG_MAILBOX_GPA), which the guest
 * only reads. No stack, no other writes: what KVM logs is what we asked for.
 */
static const uint8_t guest_code[] = {
    0xbe, 0x00,	      0x00, 0x06, 0x00, /* 0x00 start: mov esi, 0x60000 (KG_MAILBOX_GPA) */
    0x48, 0x8b,	      0x0e,		/* 0x05 mov rcx, [rsi]       ; n */
    0x48, 0x8b,	      0x56, 0x08,	/* 0x08 mov rdx, [rsi + 8]   ; v */
    0x48, 0x83,	      0xc6, 0x10,	/* 0x0c add rsi, 16 */
    0x48, 0x85,	      0xc9,		/* 0x10 loop: test rcx, rcx */
    0x74, 0x0e,				/* 0x13 jz done */
    0x48, 0x8b,	      0x3e,		/* 0x15 mov rdi, [rsi]       ; address */
    0x88, 0x17,				/* 0x18 mov [rdi], dl */
    0x48, 0x83,	      0xc6, 0x08,	/* 0x1a add rsi, 8 */
    0x48, 0xff,	      0xc9,		/* 0x1e dec rcx */
    0xeb, 0xed,				/* 0x21 jmp loop */
    0xe6, GUEST_PORT,			/* 0x23 done: out GUEST_PORT, al */
    0xeb, 0xd9,				/* 0x25 jmp start */
};

struct kstate {
	struct kg_vm vm;
	uint8_t *s1; /* slot 1's memory */
	struct tern_ram_block *block;
	struct tern_kvm_slot slots[2];
	struct tern_kvm_log *log;
	struct tern_session sess;
	bool started;
	uint8_t value;
};

static void fail_err(const char *what, const struct tern_error *err)
{
	print_error("%s: %d %s\n", what, err->code, err->msg);
	fail();
}

static int setup(void **state)
{
	struct kstate *st = calloc(1, sizeof(*st));
	struct kvm_userspace_memory_region mr;
	struct tern_error err = {0};
	uint64_t *pd;

	assert_non_null(st);
	if (kg_vm_create(&st->vm, RAM_SIZE, 1, &err))
		fail_err("kg_vm_create", &err);
	if (kg_boot_setup(&st->vm, guest_code, sizeof(guest_code), &err))
		fail_err("kg_boot_setup", &err);
	if (kg_boot_allow_ports(&st->vm, GUEST_PORT, 1, &err))
		fail_err("kg_boot_allow_ports", &err);
	/* Map slot 1 into the guest: PD entry 4 = guest-physical 8 MiB. */
	pd = kg_gpa(&st->vm, KG_PML4_GPA + 0x2000);
	pd[S1_GPA >> 21] = S1_GPA | 0xe7; /* P RW US A D PS */
	st->s1 = mmap(NULL, S1_PAGES * 4096, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(st->s1 != MAP_FAILED);
	mr = (struct kvm_userspace_memory_region){
	    .slot = 1,
	    .guest_phys_addr = S1_GPA,
	    .memory_size = S1_PAGES * 4096,
	    .userspace_addr = (uintptr_t)st->s1,
	};
	assert_int_equal(ioctl(st->vm.vm_fd, KVM_SET_USER_MEMORY_REGION, &mr), 0);
	if (kg_vcpu_enter_long_mode(&st->vm, 0, KG_CODE_GPA, 0, 0, &err))
		fail_err("kg_vcpu_enter_long_mode", &err);

	st->block = ktest_block_new("ram", BLOCK_PAGES);
	assert_non_null(st->block);
	st->slots[0] = (struct tern_kvm_slot){
	    .slot = 0,
	    .guest_phys_addr = 0,
	    .size = RAM_SIZE,
	    .host = st->vm.ram,
	    .block = st->block,
	    .block_offset = S0_OFF * 4096,
	};
	st->slots[1] = (struct tern_kvm_slot){
	    .slot = 1,
	    .guest_phys_addr = S1_GPA,
	    .size = S1_PAGES * 4096,
	    .host = st->s1,
	    .block = st->block,
	    .block_offset = S1_OFF * 4096,
	};
	*state = st;
	return 0;
}

static int teardown(void **state)
{
	struct kstate *st = *state;

	if (st->started)
		st->sess.ops->stop(st->sess.opaque);
	tern_kvm_log_free(st->log);
	kg_vm_destroy(&st->vm);
	if (st->s1 && st->s1 != MAP_FAILED)
		munmap(st->s1, S1_PAGES * 4096);
	ktest_block_free(st->block);
	free(st);
	return 0;
}

/* The guest-physical address of block page @p (which must be in a slot). */
static uint64_t page_gpa(uint64_t p)
{
	if (p >= S0_OFF && p < S0_OFF + RAM_PAGES)
		return (p - S0_OFF) * 4096;
	assert_true(p >= S1_OFF && p < S1_OFF + S1_PAGES);
	return S1_GPA + (p - S1_OFF) * 4096;
}

/* Let the guest write one byte to each of block pages @pages, and wait. */
static void guest_write(struct kstate *st, const uint64_t *pages, size_t n)
{
	uint64_t *table = kg_gpa(&st->vm, KG_MAILBOX_GPA);
	struct kvm_run *run = st->vm.vcpu[0].run;
	size_t i;

	table[0] = n;
	table[1] = ++st->value;
	for (i = 0; i < n; i++)
		table[2 + i] = page_gpa(pages[i]) + 0xfff;
	for (;;) {
		if (ioctl(st->vm.vcpu[0].fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			print_error("KVM_RUN: %s\n", strerror(errno));
			fail();
		}
		if (run->exit_reason == KVM_EXIT_IO && run->io.port == GUEST_PORT &&
		    run->io.direction == KVM_EXIT_IO_OUT)
			break;
		if (run->exit_reason == KVM_EXIT_INTR)
			continue;
		print_error("guest: unexpected exit %u\n", run->exit_reason);
		fail();
	}
	/* The writes really happened (host view of guest memory). */
	for (i = 0; i < n; i++) {
		uint64_t g = page_gpa(pages[i]) + 0xfff;
		uint8_t *h = g >= S1_GPA ? st->s1 + (g - S1_GPA) : kg_gpa(&st->vm, g);

		assert_int_equal(*h, st->value);
	}
}

static void log_start(struct kstate *st, uint32_t nslots)
{
	struct tern_error err = {0};

	/*
	 * Run the guest once first, so that KVM maps the pages it reads (code,
	 * mailbox, page tables). With TDP (EPT/NPT), KVM maps a page the host
	 * has written as writable on the guest's first access, even a read,
	 * and logs it dirty: an over-approximation our exact-set checks would
	 * see. Mapped already, those pages are only write-protected by the
	 * first clear, and reading them later logs nothing.
	 */
	guest_write(st, NULL, 0);

	if (tern_kvm_log_new(st->vm.vm_fd, st->slots, nslots, &st->log, &err))
		fail_err("tern_kvm_log_new", &err);
	if (tern_kvm_log_attach(&st->sess, st->log, &err))
		fail_err("tern_kvm_log_attach", &err);
	assert_int_equal(st->sess.nadded, 1);
	if (st->sess.ops->start(st->sess.opaque, &err))
		fail_err("start", &err);
	st->started = true;
}

static void log_sync(struct kstate *st)
{
	struct tern_error err = {0};

	ktest_block_reset(st->block);
	if (st->sess.ops->sync(st->sess.opaque, &err))
		fail_err("sync", &err);
}

static void log_clear(struct kstate *st, uint64_t first, uint64_t n)
{
	struct tern_error err = {0};

	if (st->sess.ops->clear && st->sess.ops->clear(st->sess.opaque, st->block, first, n, &err))
		fail_err("clear", &err);
}

/*
 * What send_round() in core/source.c does: clear every chunk of
 * 1 << @shift pages that holds a reported page, in block order.
 */
static void clear_reported_chunks(struct kstate *st, unsigned int shift)
{
	uint64_t c, p;

	for (c = 0; c <= (BLOCK_PAGES - 1) >> shift; c++) {
		uint64_t first = c << shift, n = MIN(1ull << shift, BLOCK_PAGES - first);

		for (p = first; p < first + n; p++)
			if (ktest_block_test(st->block, p))
				break;
		if (p < first + n)
			log_clear(st, first, n);
	}
}

/* Start, then fetch and re-arm everything, as the first round would. */
static void log_settle(struct kstate *st)
{
	log_sync(st);
	clear_reported_chunks(st, 6);
	log_sync(st);
	if (ktest_block_count(st->block)) {
		print_error("%" PRIu64 " pages still dirty after the first clear\n",
			    ktest_block_count(st->block));
		fail();
	}
}

/* The last sync reported @pages, and besides them page-table pages only. */
static void expect_reported(struct kstate *st, const uint64_t *pages, size_t n)
{
	uint64_t p, count = ktest_block_count(st->block);
	size_t i;
	bool ok = true;

	for (i = 0; i < n; i++)
		ok = ok && ktest_block_test(st->block, pages[i]);
	for (p = 0; p < BLOCK_PAGES && ok; p++) {
		if (!ktest_block_test(st->block, p) || (p >= WALK_FIRST && p <= WALK_LAST))
			continue;
		for (i = 0; i < n && pages[i] != p; i++)
			;
		ok = i < n;
	}
	if (ok)
		return;
	print_error("expected %zu pages (and maybe %llu..%llu):", n, WALK_FIRST, WALK_LAST);
	for (i = 0; i < n; i++)
		print_error(" %" PRIu64, pages[i]);
	print_error("\nreported %" PRIu64 ":", count);
	for (p = 0; p < BLOCK_PAGES; p++)
		if (ktest_block_test(st->block, p))
			print_error(" %" PRIu64, p);
	print_error("\n");
	fail();
}

/* (a) After the first round, a sync reports exactly the pages written. */
static void test_written_pages_only(void **state)
{
	struct kstate *st = *state;
	static const uint64_t w[] = {S0_OFF + 3,	   575, 1000, 2047, S1_OFF - 1, S1_OFF,
				     S1_OFF + S1_PAGES - 1};
	struct tern_kvm_log_stats ks;

	log_start(st, 2);
	log_settle(st);
	guest_write(st, w, ARRAY_SIZE(w));
	log_sync(st);
	expect_reported(st, w, ARRAY_SIZE(w));

	tern_kvm_log_stats(st->log, &ks);
	assert_uint_equal(ks.syncs, 3);
	if (st->sess.ops->clear) {
		/*
		 * With manual protection KVM leaves fetched bits set until they
		 * are cleared: the same pages come back until their chunks are
		 * cleared, and then nothing.
		 */
		assert_true(ks.manual_protect);
		log_sync(st);
		expect_reported(st, w, ARRAY_SIZE(w));
		clear_reported_chunks(st, 6);
	}
	log_sync(st);
	expect_reported(st, NULL, 0);
	/* Written again: reported again. */
	guest_write(st, w, 3);
	log_sync(st);
	expect_reported(st, w, 3);
}

/*
 * (b) Clearing one chunk re-arms that chunk only.
 *
 * What KVM does to the rest (manual protection): a page reported dirty stays
 * dirty in KVM's bitmap, and writable, until KVM_CLEAR_DIRTY_LOG clears its
 * bit. So pages of chunks that were never cleared are reported by every sync,
 * written again or not; pages of a cleared chunk come back only if written
 * after the clear.
 */
static void test_chunk_clear_rearms_only_its_chunk(void **state)
{
	struct kstate *st = *state;
	/* C1 = [576, 640), C2 = [704, 768); 575 and 640 are C1's neighbours,
	 * in the same 64-page KVM words as C1's first and last pages. */
	static const uint64_t round_a[] = {576, 597, 639, 704, 737, 767, 575, 640};
	static const uint64_t round_b[] = {590, 639, 705};
	static const uint64_t expect_b[] = {590, 639, 575, 640, 704, 705, 737, 767};
	struct tern_kvm_log_stats before, after;

	log_start(st, 2);
	if (!st->sess.ops->clear)
		skip(); /* no manual protection: nothing to clear by chunk */
	log_settle(st);
	guest_write(st, round_a, ARRAY_SIZE(round_a));
	log_sync(st);
	expect_reported(st, round_a, ARRAY_SIZE(round_a));

	tern_kvm_log_stats(st->log, &before);
	log_clear(st, 576, 64);
	tern_kvm_log_stats(st->log, &after);
	/* One ioctl for slot 0 pages [512, 640), with C1's three bits. */
	assert_uint_equal(after.clears - before.clears, 1);
	assert_uint_equal(after.cleared_pages - before.cleared_pages, 3);

	guest_write(st, round_b, ARRAY_SIZE(round_b));
	log_sync(st);
	expect_reported(st, expect_b, ARRAY_SIZE(expect_b));
}

/*
 * (c) clear-bitmap-shift at its bounds: 64-page chunks (shift 6, chunks cut
 * through both slots and reach slot 1's unaligned end) and one chunk of
 * 2^31 pages (shift 31: the whole block, clamped to each slot).
 */
static void test_clear_shift_bounds(void **state)
{
	struct kstate *st = *state;
	/* Chunk 32 = [2048, 2112) holds 2048, 2084 (slot 0's end), 2085 and
	 * 2111 (slot 1's start); 2112 is in chunk 33 but in the same KVM word
	 * of slot 1 as 2111; 2176 and 2184 (slot 1's last page) are in chunk
	 * 34, whose KVM range [64, 100) ends at the slot's end. */
	static const uint64_t w[] = {S0_OFF + 3, 575,  1000, 2047, 2048, 2084,
				     2085,	 2111, 2112, 2176, 2184};
	static const uint64_t after_32[] = {S0_OFF + 3, 575, 1000, 2047, 2112, 2176, 2184};
	struct tern_kvm_log_stats before, after;

	log_start(st, 2);
	if (!st->sess.ops->clear)
		skip();
	log_settle(st);

	/* Shift 6: chunk 32 alone first -- its neighbours' bits stay. */
	guest_write(st, w, ARRAY_SIZE(w));
	log_sync(st);
	expect_reported(st, w, ARRAY_SIZE(w));
	tern_kvm_log_stats(st->log, &before);
	log_clear(st, 2048, 64);
	tern_kvm_log_stats(st->log, &after);
	assert_uint_equal(after.clears - before.clears, 2); /* one per slot */
	assert_uint_equal(after.cleared_pages - before.cleared_pages, 4);
	log_sync(st);
	expect_reported(st, after_32, ARRAY_SIZE(after_32));
	/* Then the rest in send order: everything is re-armed. */
	clear_reported_chunks(st, 6);
	log_sync(st);
	expect_reported(st, NULL, 0);
	guest_write(st, w, ARRAY_SIZE(w));
	log_sync(st);
	expect_reported(st, w, ARRAY_SIZE(w));

	/* Shift 31: one chunk bigger than the block; one ioctl per slot, and
	 * every page the last sync reported is handed back. */
	tern_kvm_log_stats(st->log, &before);
	log_clear(st, 0, 1ull << 31);
	tern_kvm_log_stats(st->log, &after);
	assert_uint_equal(after.clears - before.clears, 2);
	assert_uint_equal(after.cleared_pages - before.cleared_pages, ktest_block_count(st->block));
	log_sync(st);
	expect_reported(st, NULL, 0);
	guest_write(st, w, ARRAY_SIZE(w));
	log_sync(st);
	expect_reported(st, w, ARRAY_SIZE(w));
}

/* KVM_GET_DIRTY_LOG straight on the vm fd: 0 or -errno. */
static int raw_get_log(struct kstate *st, uint32_t slot)
{
	static uint64_t bits[RAM_PAGES / 64];
	struct kvm_dirty_log dl = {.slot = slot, .dirty_bitmap = bits};

	return ioctl(st->vm.vm_fd, KVM_GET_DIRTY_LOG, &dl) < 0 ? -errno : 0;
}

/*
 * (d) stop turns logging off: KVM frees the slot's dirty bitmap when the
 * flag goes, and KVM_GET_DIRTY_LOG on a slot without one fails with ENOENT
 * (api.rst, 4.8; kvm_get_dirty_log*() in virt/kvm/kvm_main.c).
 */
static void test_stop_turns_logging_off(void **state)
{
	struct kstate *st = *state;
	struct tern_error err = {0};

	assert_rc_equal(raw_get_log(st, 0), -ENOENT); /* before: off */
	log_start(st, 2);
	assert_rc_equal(raw_get_log(st, 0), 0);
	assert_rc_equal(raw_get_log(st, 1), 0);
	st->sess.ops->stop(st->sess.opaque);
	st->started = false;
	assert_rc_equal(raw_get_log(st, 0), -ENOENT);
	assert_rc_equal(raw_get_log(st, 1), -ENOENT);

	/* The provider's own sync now says which ioctl failed where. */
	assert_rc_equal(st->sess.ops->sync(st->sess.opaque, &err), -ENOENT);
	assert_str_contains(err.msg, "KVM_GET_DIRTY_LOG on slot 0");

	/* A second migration may use the log again. */
	tern_error_clear(&err);
	assert_rc_equal(st->sess.ops->start(st->sess.opaque, &err), 0);
	st->started = true;
	assert_rc_equal(raw_get_log(st, 0), 0);
}

/* A slot KVM refuses: start names it and undoes what it had done. */
static void test_start_failure_rolls_back(void **state)
{
	struct kstate *st = *state;
	struct tern_error err = {0};

	/* Slot 7 overlaps slot 0's guest range: KVM answers EEXIST. */
	st->slots[1].slot = 7;
	st->slots[1].guest_phys_addr = 0x400000;
	assert_rc_equal(tern_kvm_log_new(st->vm.vm_fd, st->slots, 2, &st->log, &err), 0);
	assert_rc_equal(tern_kvm_log_attach(&st->sess, st->log, &err), 0);
	assert_rc_equal(st->sess.ops->start(st->sess.opaque, &err), -EEXIST);
	assert_str_contains(err.msg, "KVM_SET_USER_MEMORY_REGION (dirty logging on) on slot 7");
	assert_rc_equal(raw_get_log(st, 0), -ENOENT); /* slot 0's logging undone */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_written_pages_only, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_chunk_clear_rearms_only_its_chunk, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_clear_shift_bounds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_stop_turns_logging_off, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_start_failure_rolls_back, setup, teardown),
	};

	if (access("/dev/kvm", R_OK | W_OK)) {
		printf("SKIP: /dev/kvm: %s\n", strerror(errno));
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
