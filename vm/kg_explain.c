/* SPDX-License-Identifier: MIT */
/*
 * Words for a vCPU exit the guest did not ask for.
 *
 * The guest has no IDT, so every exception ends in KVM_EXIT_SHUTDOWN (a
 * triple fault) with RIP at the instruction that faulted. "exit 8" tells an
 * operator nothing; the instruction there usually tells the cause. The
 * guest is identity-mapped (guest virtual == guest physical), so the bytes
 * at RIP are RAM at that address. We decode only what this guest's
 * failures look like: port I/O (its only way out besides faults), and say
 * "an exception" for the rest, with the bytes for whoever looks further.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vm/kvm_guest.h"

#define INSN_MAX 15  /* the longest x86 instruction */
#define INSN_SHOWN 8 /* bytes quoted in the message: every I/O form fits */

struct io_insn {
	bool is_io;
	bool in;
	bool string;
	bool port_in_dx;
	uint32_t port;
	uint32_t size;
};

/* Decode port I/O at @b (@n bytes); @rdx for the port of the DX forms. */
static struct io_insn decode_io(const uint8_t *b, size_t n, uint64_t rdx)
{
	struct io_insn io = {0};
	bool opsize16 = false;
	size_t i = 0;

	/* legacy prefixes, then at most one REX (which must come last) */
	while (i < n && (b[i] == 0x66 || b[i] == 0x67 || b[i] == 0xf2 || b[i] == 0xf3 ||
			 b[i] == 0x2e || b[i] == 0x36 || b[i] == 0x3e || b[i] == 0x26 ||
			 b[i] == 0x64 || b[i] == 0x65 || b[i] == 0xf0)) {
		opsize16 |= b[i] == 0x66;
		i++;
	}
	if (i < n && (b[i] & 0xf0) == 0x40)
		i++;
	if (i >= n)
		return io;
	switch (b[i]) {
	case 0xe4: /* in al, imm8 */
	case 0xe5: /* in eax, imm8 */
	case 0xe6: /* out imm8, al */
	case 0xe7: /* out imm8, eax */
		if (i + 1 >= n)
			return io;
		io.port = b[i + 1];
		break;
	case 0xec: /* in al, dx */
	case 0xed:
	case 0xee: /* out dx, al */
	case 0xef:
	case 0x6c: /* ins */
	case 0x6d:
	case 0x6e: /* outs */
	case 0x6f:
		io.port = (uint32_t)(rdx & 0xffff);
		io.port_in_dx = true;
		io.string = b[i] >= 0x6c && b[i] <= 0x6f;
		break;
	default:
		return io;
	}
	io.is_io = true;
	io.in = b[i] == 0xe4 || b[i] == 0xe5 || b[i] == 0xec || b[i] == 0xed || b[i] == 0x6c ||
		b[i] == 0x6d;
	io.size = (b[i] & 1) ? (opsize16 ? 2 : 4) : 1;
	return io;
}

const char *kg_exit_name(uint32_t r)
{
	switch (r) {
	case KVM_EXIT_SHUTDOWN:
		return "shutdown (triple fault)";
	case KVM_EXIT_FAIL_ENTRY:
		return "fail_entry";
	case KVM_EXIT_INTERNAL_ERROR:
		return "internal_error";
	case KVM_EXIT_EXCEPTION:
		return "exception";
	case KVM_EXIT_HLT:
		return "hlt";
	case KVM_EXIT_MMIO:
		return "mmio";
	case KVM_EXIT_IO:
		return "io";
	case KVM_EXIT_UNKNOWN:
		return "unknown";
	case KVM_EXIT_SYSTEM_EVENT:
		return "system_event";
	default:
		return "other";
	}
}

/* The likely cause of a triple fault whose instruction is @io. */
static void io_cause(struct kg_vm *vm, const struct kvm_sregs *sr, uint64_t rflags,
		     const struct io_insn *io, char *buf, size_t len)
{
	const char *what = io->in ? "in" : "out";

	if (kg_io_allowed(vm, sr, rflags & ~(3ull << 12), io->port, io->size))
		snprintf(buf, len,
			 "`%s` on port %#x raised #GP although the TSS I/O bitmap allows it: "
			 "this KVM does not honour the bitmap at CPL 3",
			 what, io->port);
	else
		snprintf(buf, len,
			 "`%s` on port %#x raised #GP: the port is not open in the guest's "
			 "TSS I/O bitmap",
			 what, io->port);
}

int kg_explain_fault(struct kg_vm *vm, uint32_t idx, uint32_t exit_reason, bool first_exit,
		     char *buf, size_t len)
{
	char bytes[INSN_SHOWN * 3 + 1] = "", cause[160] = "";
	struct kvm_sregs sr;
	struct kvm_regs regs;
	bool have_regs, have_sregs, reset = false;
	uint8_t insn[INSN_MAX];
	size_t n = 0, i;

	if (!vm || idx >= vm->nvcpus || !len)
		return -EINVAL;
	have_regs = ioctl(vm->vcpu[idx].fd, KVM_GET_REGS, &regs) == 0;
	have_sregs = ioctl(vm->vcpu[idx].fd, KVM_GET_SREGS, &sr) == 0;
	if (have_regs && regs.rip < vm->ram_size) {
		n = vm->ram_size - regs.rip < INSN_MAX ? vm->ram_size - regs.rip : INSN_MAX;
		memcpy(insn, kg_gpa(vm, regs.rip), n);
		for (i = 0; i < n && i < INSN_SHOWN; i++)
			snprintf(bytes + 3 * i, sizeof(bytes) - 3 * i, "%02x ", insn[i]);
		bytes[3 * i - 1] = '\0'; /* the last space */
	}

	if (exit_reason == KVM_EXIT_SHUTDOWN && have_regs && have_sregs && regs.rip == 0xfff0 &&
	    sr.cs.selector == 0xf000) {
		/* AMD: KVM re-initialises the VMCB after a shutdown intercept */
		reset = true;
		snprintf(cause, sizeof(cause),
			 "KVM reset the vCPU at the shutdown (as it does on AMD), so where "
			 "it faulted is unknown");
	} else if (exit_reason == KVM_EXIT_SHUTDOWN) {
		struct io_insn io = n ? decode_io(insn, n, regs.rdx) : (struct io_insn){0};

		if (io.is_io && have_sregs)
			io_cause(vm, &sr, regs.rflags, &io, cause, sizeof(cause));
		else if (have_regs && regs.rip >= vm->ram_size)
			snprintf(cause, sizeof(cause), "RIP is outside guest RAM (%" PRIu64 " MiB)",
				 vm->ram_size >> 20);
		else
			snprintf(cause, sizeof(cause),
				 "an exception there, and no IDT to handle it");
	} else if (exit_reason == KVM_EXIT_FAIL_ENTRY) {
		snprintf(cause, sizeof(cause),
			 "KVM refused the vCPU state on entry (hardware reason %#llx)",
			 (unsigned long long)vm->vcpu[idx]
			     .run->fail_entry.hardware_entry_failure_reason);
	} else if (exit_reason == KVM_EXIT_INTERNAL_ERROR) {
		snprintf(cause, sizeof(cause), "KVM could not emulate it (suberror %u)",
			 vm->vcpu[idx].run->internal.suberror);
	}

	if (reset)
		snprintf(buf, len, "%sexit %u (%s): %s",
			 first_exit ? "the guest could not start on this KVM: " : "", exit_reason,
			 kg_exit_name(exit_reason), cause);
	else
		snprintf(buf, len, "%sexit %u (%s) at RIP %#" PRIx64 " [%s]%s%s",
			 first_exit ? "the guest could not start on this KVM: " : "", exit_reason,
			 kg_exit_name(exit_reason), have_regs ? (uint64_t)regs.rip : 0,
			 n ? bytes : "bytes unreadable", cause[0] ? ": " : "", cause);
	return 0;
}
