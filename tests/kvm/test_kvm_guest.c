/* SPDX-License-Identifier: MIT */
/*
 * The reference guest's bring-up (vm/kvm_guest.c), checked two ways.
 *
 * Layout, without KVM: kg_boot_setup() writes into plain memory and
 * kg_long_mode_regs() builds the registers tern-vm loads; the test reads
 * them back as the CPU would. This is what would have caught the guest
 * that triple-faulted on strict hosts: its TSS had no I/O bitmap and it
 * relied on RFLAGS.IOPL = 3, which one KVM honours and another (nested PVM)
 * ignores. Port I/O must pass both ways: by IOPL 3 (QEMU's TCG checks no
 * bitmap of a busy TSS correctly) and, with IOPL set aside, by the bitmap
 * alone, which must open tern-vm's ports (for 32-bit accesses, which span
 * four port bits each) and nothing else. The page tables must map what the
 * guest touches, identity, user, writable.
 *
 * Behaviour, with /dev/kvm (skipped without it): a guest that writes to an
 * open port exits as KVM_EXIT_IO; one that writes to a port the bitmap does
 * not open exits too where the host honours IOPL, or faults, and then
 * kg_explain_fault() names the port; one that runs ud2 faults everywhere,
 * and the explanation says the guest could not start.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "tests/cmocka_compat.h"
#include "vm/guest/abi.h"
#include "vm/kvm_guest.h"

#define LAYOUT_RAM (8ull << 20)

_Static_assert(KG_TSS_GPA + KG_TSS_LIMIT < KG_MAILBOX_GPA,
	       "the TSS and its I/O bitmap run into the mailbox");

struct layout {
	struct kg_vm vm;
	struct kvm_sregs sr;
	struct kvm_regs regs;
};

static int layout_setup(void **state)
{
	struct layout *l = calloc(1, sizeof(*l));
	struct tern_error err = {0};

	assert_non_null(l);
	assert_int_equal(posix_memalign((void **)&l->vm.ram, 4096, LAYOUT_RAM), 0);
	memset(l->vm.ram, 0x5a, LAYOUT_RAM); /* setup must not rely on zeroed RAM */
	l->vm.ram_size = LAYOUT_RAM;
	assert_int_equal(kg_boot_setup(&l->vm, "\xf4", 1, &err), 0);
	/* exactly what tern-vm opens (vm/tv_vcpu.c) */
	assert_int_equal(kg_boot_allow_ports(&l->vm, TV_PORT_FIRST, TV_PORT_COUNT, &err), 0);
	kg_long_mode_regs(0, KG_CODE_GPA, KG_MAILBOX_GPA, 0, &l->sr, &l->regs);
	*state = l;
	return 0;
}

static int layout_teardown(void **state)
{
	struct layout *l = *state;

	free(l->vm.ram);
	free(l);
	return 0;
}

#define NO_IOPL(rflags) ((rflags) & ~(3ull << 12)) /* a host that ignores IOPL */

/* The guest's ports pass on a host that honours IOPL and, with IOPL set
 * aside, through the bitmap alone. */
static void test_ports_open_either_way(void **state)
{
	struct layout *l = *state;
	const uint32_t ports[] = {TV_PORT_FILL_DONE, TV_PORT_SLEEP, TV_PORT_PANIC};
	size_t i;

	assert_int_equal(l->sr.cs.dpl, 3);
	assert_int_equal((l->regs.rflags >> 12) & 3, 3);
	for (i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
		assert_true(kg_io_allowed(&l->vm, &l->sr, l->regs.rflags, ports[i], 4));
		if (!kg_io_allowed(&l->vm, &l->sr, NO_IOPL(l->regs.rflags), ports[i], 4))
			fail_msg("32-bit out to port %#x is not open in the TSS I/O bitmap: "
				 "a host that ignores IOPL (nested PVM KVM) faults on it",
				 ports[i]);
		assert_true(kg_io_allowed(&l->vm, &l->sr, NO_IOPL(l->regs.rflags), ports[i], 1));
	}
}

/* Least privilege in the bitmap: every other port is closed there. */
static void test_other_ports_closed(void **state)
{
	struct layout *l = *state;
	const uint32_t closed[] = {0x0,
				   0x20,
				   0x70,
				   0x80,
				   0x3f8,
				   0xcf8,
				   TV_PORT_FIRST - 1,
				   TV_PORT_FIRST + TV_PORT_COUNT,
				   0xfffc,
				   0xffff};
	size_t i;

	for (i = 0; i < sizeof(closed) / sizeof(closed[0]); i++)
		if (kg_io_allowed(&l->vm, &l->sr, NO_IOPL(l->regs.rflags), closed[i], 1))
			fail_msg("port %#x is open, only the guest's may be", closed[i]);
	/* a 32-bit access that starts on an open port but spans a closed one */
	assert_false(kg_io_allowed(&l->vm, &l->sr, NO_IOPL(l->regs.rflags), TV_PORT_PANIC + 1, 4));
	/* the check itself: with IOPL 3 the architecture skips the bitmap */
	assert_true(kg_io_allowed(&l->vm, &l->sr, l->regs.rflags, 0x80, 1));
}

/* TR, the GDT's TSS descriptor and the TSS agree, and the limit covers the
 * whole bitmap and the all-ones byte after it. */
static void test_tss_and_gdt_agree(void **state)
{
	struct layout *l = *state;
	const uint64_t *gdt = kg_gpa(&l->vm, KG_GDT_GPA);
	const uint8_t *tss = kg_gpa(&l->vm, KG_TSS_GPA);
	uint32_t sel = l->sr.tr.selector >> 3, limit;
	uint64_t lo, hi, base;
	uint16_t iomap;

	assert_true(l->sr.tr.present);
	assert_int_equal(l->sr.tr.type, 11); /* 64-bit TSS, busy */
	assert_int_equal(l->sr.tr.base, KG_TSS_GPA);
	assert_int_equal(l->sr.tr.limit, KG_TSS_LIMIT);
	assert_true((sel + 1) * 8 <= (uint32_t)l->sr.gdt.limit + 1);
	lo = gdt[sel];
	hi = gdt[sel + 1];
	base = ((lo >> 16) & 0xffffff) | ((lo >> 56) & 0xff) << 24 | (hi & 0xffffffff) << 32;
	limit = (uint32_t)((lo & 0xffff) | ((lo >> 48) & 0xf) << 16);
	assert_int_equal(base, KG_TSS_GPA);
	assert_int_equal(limit, KG_TSS_LIMIT);
	assert_int_equal((lo >> 40) & 0xf, 11);
	assert_true(lo & (1ull << 47));	 /* present */
	assert_false(lo & (1ull << 55)); /* byte granularity: the limit is bytes */

	memcpy(&iomap, tss + 102, sizeof(iomap));
	assert_int_equal(iomap, KG_TSS_IOMAP_OFF);
	assert_true(iomap >= 104);
	assert_int_equal(tss[iomap + KG_TSS_IOMAP_BYTES], 0xff);
	assert_int_equal(iomap + KG_TSS_IOMAP_BYTES, l->sr.tr.limit);
}

/* Everything the guest touches is mapped identity, present, user, writable,
 * with A and D preset (the CPU never writes the tables: they stay clean in
 * the dirty log). */
static void test_identity_map(void **state)
{
	struct layout *l = *state;
	const uint64_t addrs[] = {
	    KG_GDT_GPA,	 KG_TSS_GPA + KG_TSS_LIMIT, KG_MAILBOX_GPA, KG_CODE_GPA, KG_STACK_GPA,
	    KG_WORK_GPA, LAYOUT_RAM - 4096};
	const uint64_t want = 0x1 | 0x2 | 0x4 | 0x20; /* P RW US A */
	size_t i;

	assert_int_equal(l->sr.cr3, KG_PML4_GPA);
	assert_true(l->sr.cr0 & (1ull << 31));	 /* PG */
	assert_true(l->sr.cr4 & (1ull << 5));	 /* PAE */
	assert_false(l->sr.cr4 & (1ull << 2));	 /* TSD: rdtsc allowed at CPL 3 */
	assert_true(l->sr.efer & (1ull << 10));	 /* LMA */
	assert_false(l->sr.efer & (1ull << 11)); /* no NXE: bit 63 would be reserved */
	for (i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		uint64_t a = addrs[i];
		const uint64_t *pml4 = kg_gpa(&l->vm, l->sr.cr3);
		uint64_t e4 = pml4[(a >> 39) & 511], e3, e2;

		assert_int_equal(e4 & want, want);
		e3 = ((const uint64_t *)kg_gpa(&l->vm, e4 & ~0xfffull))[(a >> 30) & 511];
		assert_int_equal(e3 & want, want);
		assert_false(e3 & 0x80); /* no 1 GiB pages */
		e2 = ((const uint64_t *)kg_gpa(&l->vm, e3 & ~0xfffull))[(a >> 21) & 511];
		assert_int_equal(e2 & (want | 0x40 | 0x80), want | 0x40 | 0x80); /* D, PS */
		assert_int_equal(e2 & ~0xfffull & ~(1ull << 63), a & ~((2ull << 20) - 1));
		assert_false(e2 >> 63);
	}
}

static void test_allow_ports_range(void **state)
{
	struct layout *l = *state;
	struct tern_error err = {0};

	assert_int_equal(kg_boot_allow_ports(&l->vm, 0xfffe, 3, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "port"));
	assert_int_equal(kg_boot_allow_ports(&l->vm, 0x10000, 1, NULL), -EINVAL);
	assert_int_equal(kg_boot_allow_ports(&l->vm, 0, 0, NULL), -EINVAL);
	assert_false(kg_io_allowed(&l->vm, &l->sr, NO_IOPL(l->regs.rflags), 0xffff, 1));
	assert_int_equal(kg_boot_allow_ports(&l->vm, 0xffff, 1, NULL), 0);
	assert_true(kg_io_allowed(&l->vm, &l->sr, NO_IOPL(l->regs.rflags), 0xffff, 1));
	/* a 2-byte access at 0xffff would wrap the port space: never allowed */
	assert_false(kg_io_allowed(&l->vm, &l->sr, NO_IOPL(l->regs.rflags), 0xffff, 2));
}

/* ---- on a real KVM ------------------------------------------------------- */

static bool have_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* mov edx, PORT; mov eax, 0x2a; out dx, eax; ud2 (never reached twice) */
static size_t out_guest(uint8_t *code, uint32_t port)
{
	const uint8_t tmpl[] = {0xba, 0, 0, 0, 0, 0xb8, 0x2a, 0, 0, 0, 0xef, 0x0f, 0x0b};

	memcpy(code, tmpl, sizeof(tmpl));
	memcpy(code + 1, &port, 4);
	return sizeof(tmpl);
}

/* Run @code (@n bytes) until its first exit; its reason, and @why explained. */
static uint32_t run_guest(struct kg_vm *vm, const uint8_t *code, size_t n, char *why, size_t len)
{
	struct tern_error err = {0};
	uint32_t reason;

	if (kg_vm_create(vm, 4ull << 20, 1, &err))
		fail_msg("kg_vm_create: %s", err.msg);
	if (kg_boot_setup(vm, code, n, &err) ||
	    kg_boot_allow_ports(vm, TV_PORT_FIRST, TV_PORT_COUNT, &err) ||
	    kg_vcpu_enter_long_mode(vm, 0, KG_CODE_GPA, 0, 0, &err))
		fail_msg("guest setup: %s", err.msg);
	if (ioctl(vm->vcpu[0].fd, KVM_RUN, 0) < 0)
		fail_msg("KVM_RUN: %s", strerror(errno));
	reason = vm->vcpu[0].run->exit_reason;
	assert_int_equal(kg_explain_fault(vm, 0, reason, true, why, len), 0);
	return reason;
}

static uint32_t run_out_guest(struct kg_vm *vm, uint32_t port, char *why, size_t len)
{
	uint8_t code[16];
	size_t n = out_guest(code, port);

	return run_guest(vm, code, n, why, len);
}

static void test_kvm_open_port_exits(void **state)
{
	struct kg_vm vm;
	struct kvm_run *run;
	char why[320];
	uint32_t val;

	(void)state;
	if (!have_kvm())
		skip();
	assert_int_equal(run_out_guest(&vm, TV_PORT_SLEEP, why, sizeof(why)), KVM_EXIT_IO);
	run = vm.vcpu[0].run;
	assert_int_equal(run->io.port, TV_PORT_SLEEP);
	assert_int_equal(run->io.direction, KVM_EXIT_IO_OUT);
	assert_int_equal(run->io.size, 4);
	memcpy(&val, (uint8_t *)run + run->io.data_offset, 4);
	assert_int_equal(val, 0x2a);
	kg_vm_destroy(&vm);
}

/* Where RIP survived the shutdown (not on AMD, where KVM resets the vCPU),
 * the explanation quotes it and the bytes there. */
static void expect_at(const char *why, const char *rip, const char *bytes)
{
	if (strstr(why, "KVM reset the vCPU"))
		return;
	assert_non_null(strstr(why, rip));
	assert_non_null(strstr(why, bytes));
}

/* A port the bitmap does not open: a host that honours IOPL 3 lets it exit;
 * one that goes by the bitmap (nested PVM) faults, and the explanation
 * names the port. */
static void test_kvm_closed_port(void **state)
{
	struct kg_vm vm;
	char why[320];
	uint32_t reason;

	(void)state;
	if (!have_kvm())
		skip();
	reason = run_out_guest(&vm, 0x80, why, sizeof(why));
	if (reason == KVM_EXIT_IO) {
		assert_int_equal(vm.vcpu[0].run->io.port, 0x80);
		kg_vm_destroy(&vm);
		return;
	}
	kg_vm_destroy(&vm);
	print_message("explained: %s\n", why);
	assert_int_equal(reason, KVM_EXIT_SHUTDOWN);
	assert_non_null(strstr(why, "the guest could not start on this KVM"));
	expect_at(why, "RIP 0x10000a", "[ef 0f 0b");
	if (!strstr(why, "KVM reset the vCPU")) {
		assert_non_null(strstr(why, "port 0x80"));
		assert_non_null(strstr(why, "not open"));
	}
}

/* An exception before the guest did anything: a triple fault on every host,
 * explained as a guest that could not start. */
static void test_kvm_fault_explained(void **state)
{
	const uint8_t code[] = {0x90, 0x0f, 0x0b}; /* nop; ud2 */
	struct kg_vm vm;
	char why[320];
	uint32_t reason;

	(void)state;
	if (!have_kvm())
		skip();
	reason = run_guest(&vm, code, sizeof(code), why, sizeof(why));
	kg_vm_destroy(&vm);
	print_message("explained: %s\n", why);
	assert_int_equal(reason, KVM_EXIT_SHUTDOWN);
	assert_non_null(strstr(why, "the guest could not start on this KVM"));
	assert_non_null(strstr(why, "shutdown (triple fault)"));
	expect_at(why, "RIP 0x100001", "[0f 0b");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_ports_open_either_way, layout_setup,
					    layout_teardown),
	    cmocka_unit_test_setup_teardown(test_other_ports_closed, layout_setup, layout_teardown),
	    cmocka_unit_test_setup_teardown(test_tss_and_gdt_agree, layout_setup, layout_teardown),
	    cmocka_unit_test_setup_teardown(test_identity_map, layout_setup, layout_teardown),
	    cmocka_unit_test_setup_teardown(test_allow_ports_range, layout_setup, layout_teardown),
	    cmocka_unit_test(test_kvm_open_port_exits),
	    cmocka_unit_test(test_kvm_closed_port),
	    cmocka_unit_test(test_kvm_fault_explained),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
