/* SPDX-License-Identifier: MIT */
/*
 * A minimal KVM guest: one VM, one memslot of RAM, N vCPUs put straight into
 * 64-bit long mode at CPL 3 by the VMM -- no firmware, no guest kernel.
 *
 * Why CPL 3: on nested "PVM" KVM only 64-bit ring-3 code runs at full speed
 * (ring 0, 32-bit and real mode are emulated, hundreds of times slower); the
 * same setup runs unchanged on ordinary hardware KVM.
 *
 * Guest-physical layout (identity-mapped with 2 MiB pages, user bit at every
 * level, so guest virtual == guest physical):
 *
 *   0x00000000  KG_PML4_GPA   PML4, PDPT, then one PD per GiB of RAM
 *   0x00050000  KG_GDT_GPA    GDT: null, code64 DPL0, data DPL0, data DPL3,
 *                             code64 DPL3, 64-bit TSS (16 bytes)
 *   0x00051000  KG_TSS_GPA    the TSS (rsp0 unused: nothing enters ring 0) and
 *                             its I/O permission bitmap, all 65536 ports
 *                             (8 KiB + the trailing 0xff byte: to 0x53069)
 *   0x00060000  KG_MAILBOX_GPA  the mailbox: parameters in, progress out
 *                             (struct kg_mailbox, shared with guest code)
 *   0x00100000  KG_CODE_GPA   guest code, up to KG_CODE_MAX bytes
 *   0x00180000  KG_STACK_GPA  vCPU stacks, KG_STACK_SIZE each, top-down
 *   0x00200000  KG_WORK_GPA   workload memory, up to the end of RAM
 *
 * All of it is guest RAM, so it migrates with the rest: the destination
 * never builds any of it, it loads the vCPU registers that point into it.
 *
 * Port I/O from CPL 3 (`out`, which exits to the VMM as KVM_EXIT_IO: that is
 * how the guest reports and sleeps, see guest/abi.h) is allowed by the TSS's
 * I/O permission bitmap, port by port (kg_boot_allow_ports()), and by
 * RFLAGS.IOPL = 3: each host honours at least one of the two. Nested "PVM"
 * KVM raises #GP for `out` at CPL 3 unless the bitmap allows the port,
 * whatever IOPL says; QEMU's TCG (the nested kvm_amd of the kvm-in-qemu VM)
 * fails every bitmap check of a busy TSS and goes by IOPL alone; hardware
 * KVM honours both.
 *
 * Thread rules: kg_vm_* from the owner's thread; each vCPU is run by one
 * thread at a time.
 */
#ifndef TERN_VM_KVM_GUEST_H
#define TERN_VM_KVM_GUEST_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tern/tern.h>

#define KG_MAX_VCPUS 64
#define KG_PML4_GPA 0x0ull
#define KG_GDT_GPA 0x50000ull
#define KG_TSS_GPA 0x51000ull
#define KG_TSS_IOMAP_OFF 0x68u	   /* the bitmap right after the 104-byte 64-bit TSS */
#define KG_TSS_IOMAP_BYTES 0x2000u /* one bit per port, 65536 ports */
/* The TSS limit (its last byte): the bitmap's trailing all-ones byte, which
 * the CPU may read with the bitmap's last byte (a 2-byte read). */
#define KG_TSS_LIMIT (KG_TSS_IOMAP_OFF + KG_TSS_IOMAP_BYTES)
#define KG_MAILBOX_GPA 0x60000ull
#define KG_CODE_GPA 0x100000ull
#define KG_CODE_MAX 0x80000ull
#define KG_STACK_GPA 0x180000ull
#define KG_STACK_SIZE 0x2000ull /* 64 vCPUs x 8 KiB fill 0x180000..0x200000 */
#define KG_WORK_GPA 0x200000ull
#define KG_MAX_RAM (64ull << 30) /* the PD area below KG_GDT_GPA holds 64 PDs */
#define KG_RAM_ALIGN (2ull << 20)

struct kg_vcpu {
	int fd;
	struct kvm_run *run; /* mmap of the vCPU fd, kg_vm.run_size bytes */
};

struct kg_vm {
	int kvm_fd, vm_fd;
	uint8_t *ram;	   /* host mapping of guest-physical [0, ram_size) */
	uint64_t ram_size; /* a multiple of KG_RAM_ALIGN, at least 4 MiB */
	uint32_t slot;	   /* the one memslot (0) */
	uint32_t nvcpus;
	size_t run_size;
	uint32_t tsc_khz; /* KVM_GET_TSC_KHZ of vCPU 0; 0 when KVM cannot tell */
	struct kg_vcpu vcpu[KG_MAX_VCPUS];
};

/*
 * kg_vm_create() - open /dev/kvm, create the VM, map @ram_size bytes of fresh
 * anonymous memory (MAP_NORESERVE, advised MADV_HUGEPAGE), register it as
 * memslot 0 at guest-physical 0, create @nvcpus vCPUs with the host's
 * supported CPUID, and read the TSC frequency. Nothing is written to RAM:
 * on a destination it must stay untouched until pages land.
 * Return: 0, or a negative errno with @err saying which step failed.
 * -ENODEV when /dev/kvm is missing.
 */
int kg_vm_create(struct kg_vm *vm, uint64_t ram_size, uint32_t nvcpus, struct tern_error *err);

/* kg_vm_destroy() - close every fd, unmap RAM; safe on a half-created vm. */
void kg_vm_destroy(struct kg_vm *vm);

/*
 * kg_boot_setup() - source side: write page tables, GDT and TSS into RAM and
 * copy @code (@len <= KG_CODE_MAX) to KG_CODE_GPA. The TSS's I/O bitmap
 * denies every port: give the guest its own with kg_boot_allow_ports().
 * Needs only vm->ram and vm->ram_size (a test may point them at plain memory).
 */
int kg_boot_setup(struct kg_vm *vm, const void *code, size_t len, struct tern_error *err);

/*
 * kg_boot_allow_ports() - after kg_boot_setup(): clear the I/O bitmap's bits
 * for ports [@first, @first + @count), so that CPL-3 `in`/`out` on them
 * exits to the VMM instead of raising #GP.
 * Return: 0, or -EINVAL when the range leaves the 16-bit port space.
 */
int kg_boot_allow_ports(struct kg_vm *vm, uint32_t first, uint32_t count, struct tern_error *err);

/*
 * kg_long_mode_regs() - the register state kg_vcpu_enter_long_mode() loads
 * into vCPU @idx, built over @sr (as KVM_GET_SREGS returned it, or zeroed)
 * and into @regs: long mode, CPL 3, CR3 = KG_PML4_GPA, TR = the TSS,
 * RFLAGS = IOPL 3 | bit 1 (IF 0), RIP = @rip, RDI = @arg0, RSI = @arg1,
 * RSP = the top of vCPU @idx's stack minus 8. No KVM call: tests read it.
 */
void kg_long_mode_regs(uint32_t idx, uint64_t rip, uint64_t arg0, uint64_t arg1,
		       struct kvm_sregs *sr, struct kvm_regs *regs);

/*
 * kg_io_allowed() - would `in`/`out` of @size bytes (1, 2 or 4) on @port,
 * executed with @sr and @rflags, exit to the VMM rather than fault? Applies
 * the architecture's rule to the TSS as it lies in guest RAM: CPL <= IOPL
 * passes; otherwise TR must be a present 64-bit TSS whose limit covers the
 * I/O map base (offset 102) and both bitmap bytes the access reads, and
 * every bit for ports @port..@port + @size - 1 must be 0. Setting IOPL
 * aside (@rflags with IOPL 0) gives the answer of a host that ignores it,
 * such as nested PVM KVM.
 */
bool kg_io_allowed(struct kg_vm *vm, const struct kvm_sregs *sr, uint64_t rflags, uint32_t port,
		   uint32_t size);

/*
 * kg_vcpu_enter_long_mode() - set vCPU @idx's special and general registers:
 * long mode, CPL 3, CR3 = KG_PML4_GPA, TR = the TSS, RFLAGS = IOPL 3 | bit 1
 * (with the TSS's I/O bitmap: see the top),
 * RIP = @rip, RDI = @arg0, RSI = @arg1, and RSP = the top of vCPU @idx's
 * stack (KG_STACK_GPA + (@idx + 1) * KG_STACK_SIZE) minus 8, as if @rip had
 * been called: a C function entered there sees the ABI's stack alignment
 * (it must never return: there is no return address). No IDT: any exception
 * is a triple fault (KVM_EXIT_SHUTDOWN).
 */
int kg_vcpu_enter_long_mode(struct kg_vm *vm, uint32_t idx, uint64_t rip, uint64_t arg0,
			    uint64_t arg1, struct tern_error *err);

/*
 * kg_explain_fault() - an operator's sentence for vCPU @idx's exit
 * @exit_reason that the guest did not ask for: the exit, RIP, the
 * instruction bytes there and the likely cause (a triple fault on port I/O
 * says whether the TSS I/O bitmap allowed the port). @first_exit: the guest
 * had not exited to the VMM before on this host; the sentence then opens
 * with "the guest could not start on this KVM". Reads the vCPU's registers
 * (KVM_GET_REGS/SREGS): call it from the thread that runs the vCPU.
 * Return: 0, or -EINVAL on a bad argument (@buf untouched).
 */
int kg_explain_fault(struct kg_vm *vm, uint32_t idx, uint32_t exit_reason, bool first_exit,
		     char *buf, size_t len);

/* kg_exit_name() - KVM_EXIT_* in words ("shutdown (triple fault)", ...). */
const char *kg_exit_name(uint32_t exit_reason);

/* The guest-physical address @gpa as a host pointer (no bounds check). */
static inline void *kg_gpa(struct kg_vm *vm, uint64_t gpa)
{
	return vm->ram + gpa;
}

#endif /* TERN_VM_KVM_GUEST_H */
