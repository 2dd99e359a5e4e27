/* SPDX-License-Identifier: MIT */
/*
 * A minimal KVM guest put straight into 64-bit long mode at CPL 3.
 *
 * There is no firmware and no guest kernel: the VMM writes the page tables,
 * the GDT and the TSS into guest RAM, then loads every segment register's
 * hidden part, CR0/CR3/CR4/EFER and RIP/RSP with KVM_SET_SREGS/KVM_SET_REGS.
 * The guest never loads a segment, takes an interrupt or enters ring 0, so
 * there is no IDT and no ring-0 code; any exception is a triple fault, which
 * KVM reports as KVM_EXIT_SHUTDOWN.
 *
 * What KVM needs for this to run, checked against the architecture manual
 * (Intel SDM vol. 3, AMD APM vol. 2) and measured on nested "PVM" KVM, the
 * strictest host we know (see /work/shared/KVM-HERE.md):
 *   - KVM_SET_CPUID2 with what KVM_GET_SUPPORTED_CPUID returns (PVM fails
 *     entry at once with KVM_EXIT_SHUTDOWN without it);
 *   - TR holding a present, busy 64-bit TSS (type 11) from the GDT, whose
 *     limit covers an I/O permission bitmap for all 65536 ports and its
 *     trailing 0xff byte, which opens the ports the VMM grants
 *     (kg_boot_allow_ports()) and no other, AND RFLAGS.IOPL = 3. Either
 *     one alone fails somewhere: PVM ignores IOPL at CPL 3 and raises #GP
 *     for `out` unless the bitmap allows the port; QEMU's TCG, which runs
 *     the nested kvm_amd of scripts/kvm-in-qemu/, faults on every bitmap
 *     check of a TSS whose type is busy (11, which VM entry requires) and
 *     passes `out` only on CPL <= IOPL. Hardware KVM honours both;
 *   - 2 MiB pages with the user bit at every level (1 GiB pages need
 *     CPUID.80000001H:EDX.Page1GB, which not every host passes on, and
 *     failed on PVM);
 *   - CR0 = PE|MP|ET|NE|WP|PG, CR4 = PAE|OSFXSR|OSXMMEXCPT (SSE: the guest is
 *     compiled for baseline x86-64, whose code uses it; nothing needs
 *     OSXSAVE), EFER = LME|LMA (no NXE: no paging entry sets bit 63),
 *     CS with L=1, D=0 and DPL 3, SS and the data segments writable with
 *     DPL 3 and selectors of RPL 3 (SS's RPL must equal CPL), LDT unusable;
 *   - RFLAGS = bit 1 only: IF = 0 (there is no interrupt controller and no
 *     IDT), IOPL = 3 (above), AC = 0; CR4.TSD = 0 so that rdtsc works at
 *     CPL 3.
 * No IDT (limit 0): any exception becomes a triple fault, KVM_EXIT_SHUTDOWN,
 * with RIP at the faulting instruction (except on AMD, where KVM resets the
 * vCPU at a shutdown); kg_explain_fault() turns that into words. Handlers would need ring-0 code,
 * which PVM runs hundreds of times slower and which this guest has no other use for.
 *
 * Every paging entry and descriptor is written with its accessed (and, for
 * the 2 MiB leaves, dirty) bit already set: the CPU then never writes them,
 * so a guest that touches nothing but its own data leaves the page-table,
 * GDT and TSS pages clean in KVM's dirty log.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/util.h"
#include "vm/kvm_guest.h"

/* Paging entry bits. */
#define PTE_P (1ull << 0)
#define PTE_RW (1ull << 1)
#define PTE_US (1ull << 2)
#define PTE_A (1ull << 5)
#define PTE_D (1ull << 6)
#define PTE_PS (1ull << 7)

#define CR0_PE (1ull << 0)
#define CR0_MP (1ull << 1)
#define CR0_ET (1ull << 4)
#define CR0_NE (1ull << 5)
#define CR0_WP (1ull << 16)
#define CR0_PG (1ull << 31)
#define CR4_PAE (1ull << 5)
#define CR4_OSFXSR (1ull << 9)
#define CR4_OSXMMEXCPT (1ull << 10)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define RFLAGS_FIXED (1ull << 1)
#define RFLAGS_IOPL_SHIFT 12
#define RFLAGS_IOPL3 (3ull << RFLAGS_IOPL_SHIFT)

/* Page-table pages inside [KG_PML4_GPA, KG_GDT_GPA). */
#define KG_PDPT_GPA (KG_PML4_GPA + 0x1000)
#define KG_PD_GPA (KG_PML4_GPA + 0x2000) /* one 4 KiB PD per GiB */

/* GDT slots (index << 3 = selector). */
enum {
	GDT_NULL = 0,
	GDT_CODE0,
	GDT_DATA0,
	GDT_DATA3,
	GDT_CODE3,
	GDT_TSS, /* 16 bytes: slots 5 and 6 */
	GDT_ENTRIES = 7,
};
#define SEL_CODE3 ((GDT_CODE3 << 3) | 3)
#define SEL_DATA3 ((GDT_DATA3 << 3) | 3)
#define SEL_TSS (GDT_TSS << 3)
#define SEG_TYPE_CODE 0xb /* execute/read, accessed */
#define SEG_TYPE_DATA 0x3 /* read/write, accessed */
#define SEG_TYPE_TSS64_BUSY 0xb

/* Record the failed step with errno's text; @idx < 0 when not a vCPU's. */
static int kg_errno(struct tern_error *err, const char *what, int idx)
{
	int e = errno ? errno : EIO;

	if (idx >= 0)
		return tern_error_set(err, -e, "kvm guest: %s (vcpu %d): %s", what, idx,
				      strerror(e));
	return tern_error_set(err, -e, "kvm guest: %s: %s", what, strerror(e));
}

/* A code or data descriptor; base 0, limit 4 GiB (ignored in long mode). */
static uint64_t gdt_seg(unsigned int type, unsigned int dpl, bool code64)
{
	uint64_t d = 0xffffull;			 /* limit 15:0 */
	d |= (uint64_t)type << 40;		 /* type */
	d |= 1ull << 44;			 /* S: code/data */
	d |= (uint64_t)dpl << 45;		 /* DPL */
	d |= 1ull << 47;			 /* present */
	d |= 0xfull << 48;			 /* limit 19:16 */
	d |= (code64 ? 1ull << 53 : 1ull << 54); /* L for code, D/B for data */
	d |= 1ull << 55;			 /* G */
	return d;
}

static void gdt_tss(uint64_t *lo, uint64_t *hi, uint64_t base, uint32_t limit)
{
	*lo = (limit & 0xffffull) | (base & 0xffffffull) << 16 |
	      (uint64_t)SEG_TYPE_TSS64_BUSY << 40 | 1ull << 47 |
	      (uint64_t)((limit >> 16) & 0xf) << 48 | ((base >> 24) & 0xffull) << 56;
	*hi = base >> 32;
}

static void kvm_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, uint8_t dpl, bool code64)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->dpl = dpl;
	s->db = code64 ? 0 : 1;
	s->s = 1;
	s->l = code64 ? 1 : 0;
	s->g = 1;
}

void kg_vm_destroy(struct kg_vm *vm)
{
	uint32_t i;

	if (!vm)
		return;
	for (i = 0; i < KG_MAX_VCPUS; i++) {
		if (vm->vcpu[i].run && vm->run_size)
			munmap(vm->vcpu[i].run, vm->run_size);
		vm->vcpu[i].run = NULL;
		if (vm->vcpu[i].fd >= 0)
			close(vm->vcpu[i].fd);
		vm->vcpu[i].fd = -1;
	}
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	vm->vm_fd = vm->kvm_fd = -1;
	if (vm->ram)
		munmap(vm->ram, vm->ram_size);
	vm->ram = NULL;
	vm->nvcpus = 0;
}

/* KVM_GET_SUPPORTED_CPUID, growing the buffer until it fits. */
static struct kvm_cpuid2 *get_supported_cpuid(struct kg_vm *vm, struct tern_error *err)
{
	uint32_t nent = 64;

	for (;;) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + nent * sizeof(c->entries[0]));

		if (!c) {
			tern_error_set(err, -ENOMEM, "kvm guest: out of memory for CPUID");
			return NULL;
		}
		c->nent = nent;
		if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		free(c);
		if (errno != E2BIG || nent >= 4096) {
			kg_errno(err, "KVM_GET_SUPPORTED_CPUID", -1);
			return NULL;
		}
		nent *= 2;
	}
}

/* Fresh anonymous memory, 2 MiB-aligned so that THP can back it. */
static uint8_t *ram_map(uint64_t size)
{
	uint64_t extra = KG_RAM_ALIGN;
	uint8_t *p = mmap(NULL, size + extra, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t start, end;

	if (p == MAP_FAILED)
		return NULL;
	start = ((uintptr_t)p + KG_RAM_ALIGN - 1) & ~(uintptr_t)(KG_RAM_ALIGN - 1);
	end = start + size;
	if (start > (uintptr_t)p)
		munmap(p, start - (uintptr_t)p);
	if ((uintptr_t)p + size + extra > end)
		munmap((void *)end, (uintptr_t)p + size + extra - end);
	madvise((void *)start, size, MADV_HUGEPAGE); /* a hint: failure is fine */
	return (uint8_t *)start;
}

int kg_vm_create(struct kg_vm *vm, uint64_t ram_size, uint32_t nvcpus, struct tern_error *err)
{
	struct kvm_userspace_memory_region mr;
	struct kvm_cpuid2 *cpuid = NULL;
	uint32_t i;
	int ret;

	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = -1;
	for (i = 0; i < KG_MAX_VCPUS; i++)
		vm->vcpu[i].fd = -1;

	if (ram_size < (4ull << 20) || ram_size % KG_RAM_ALIGN || ram_size > KG_MAX_RAM)
		return tern_error_set(err, -EINVAL,
				      "kvm guest: RAM size %" PRIu64
				      " must be a multiple of 2 MiB between 4 MiB and %llu GiB",
				      ram_size, KG_MAX_RAM >> 30);
	if (!nvcpus || nvcpus > KG_MAX_VCPUS)
		return tern_error_set(err, -EINVAL, "kvm guest: %u vCPUs, must be 1..%u", nvcpus,
				      KG_MAX_VCPUS);

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		int e = errno;

		if (e == ENOENT)
			return tern_error_set(err, -ENODEV, "kvm guest: /dev/kvm does not exist");
		return tern_error_set(err, -e, "kvm guest: open /dev/kvm: %s", strerror(e));
	}
	ret = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (ret != KVM_API_VERSION) {
		ret = ret < 0 ? kg_errno(err, "KVM_GET_API_VERSION", -1)
			      : tern_error_set(err, -ENOTSUP, "kvm guest: KVM API %d, need %d", ret,
					       KVM_API_VERSION);
		goto err_destroy;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		ret = kg_errno(err, "KVM_CREATE_VM", -1);
		goto err_destroy;
	}
	ret = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (ret <= 0) {
		ret = kg_errno(err, "KVM_GET_VCPU_MMAP_SIZE", -1);
		goto err_destroy;
	}
	vm->run_size = (size_t)ret;

	vm->ram = ram_map(ram_size);
	if (!vm->ram) {
		ret = kg_errno(err, "mmap of guest RAM", -1);
		goto err_destroy;
	}
	vm->ram_size = ram_size;
	vm->slot = 0;
	mr = (struct kvm_userspace_memory_region){
	    .slot = vm->slot,
	    .flags = 0,
	    .guest_phys_addr = 0,
	    .memory_size = ram_size,
	    .userspace_addr = (uintptr_t)vm->ram,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &mr) < 0) {
		ret = kg_errno(err, "KVM_SET_USER_MEMORY_REGION (slot 0)", -1);
		goto err_destroy;
	}

	cpuid = get_supported_cpuid(vm, err);
	if (!cpuid) {
		ret = err && err->code ? err->code : -EIO;
		goto err_destroy;
	}
	for (i = 0; i < nvcpus; i++) {
		struct kg_vcpu *v = &vm->vcpu[i];
		void *run;

		v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
		if (v->fd < 0) {
			ret = kg_errno(err, "KVM_CREATE_VCPU", (int)i);
			goto err_cpuid;
		}
		vm->nvcpus = i + 1;
		run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
		if (run == MAP_FAILED) {
			ret = kg_errno(err, "mmap of kvm_run", (int)i);
			goto err_cpuid;
		}
		v->run = run;
		/* Without it, entry fails at once with KVM_EXIT_SHUTDOWN. */
		if (ioctl(v->fd, KVM_SET_CPUID2, cpuid) < 0) {
			ret = kg_errno(err, "KVM_SET_CPUID2", (int)i);
			goto err_cpuid;
		}
	}
	free(cpuid);
	/* 0 when the kernel cannot tell (the caller then measures or guesses). */
	ret = ioctl(vm->vcpu[0].fd, KVM_GET_TSC_KHZ, 0);
	vm->tsc_khz = ret > 0 ? (uint32_t)ret : 0;
	return 0;

err_cpuid:
	free(cpuid);
err_destroy:
	kg_vm_destroy(vm);
	return ret;
}

int kg_boot_setup(struct kg_vm *vm, const void *code, size_t len, struct tern_error *err)
{
	const uint64_t gib = 1ull << 30, huge = 2ull << 20;
	uint64_t *pml4, *pdpt, *gdt, npd, addr;
	uint64_t i;

	if (!vm || !vm->ram)
		return tern_error_set(err, -EINVAL, "kvm guest: boot setup before kg_vm_create");
	if (len > KG_CODE_MAX || (len && !code))
		return tern_error_set(err, -EINVAL, "kvm guest: code is %zu bytes, at most %llu",
				      len, KG_CODE_MAX);
	npd = DIV_ROUND_UP(vm->ram_size, gib);
	/* kg_vm_create() caps RAM at KG_MAX_RAM, whose PDs end below the GDT. */
	if (KG_PD_GPA + npd * 0x1000 > KG_GDT_GPA)
		return tern_error_set(err, -EINVAL,
				      "kvm guest: %" PRIu64 " page directories "
				      "do not fit below the GDT",
				      npd);

	memset(kg_gpa(vm, KG_PML4_GPA), 0, KG_PD_GPA + npd * 0x1000 - KG_PML4_GPA);
	pml4 = kg_gpa(vm, KG_PML4_GPA);
	pdpt = kg_gpa(vm, KG_PDPT_GPA);
	pml4[0] = KG_PDPT_GPA | PTE_P | PTE_RW | PTE_US | PTE_A;
	for (i = 0; i < npd; i++)
		pdpt[i] = (KG_PD_GPA + i * 0x1000) | PTE_P | PTE_RW | PTE_US | PTE_A;
	/* The PDs are consecutive: entry n maps guest-physical n * 2 MiB. */
	for (addr = 0, i = 0; addr < vm->ram_size; addr += huge, i++) {
		uint64_t *pd = kg_gpa(vm, KG_PD_GPA);

		pd[i] = addr | PTE_P | PTE_RW | PTE_US | PTE_A | PTE_D | PTE_PS;
	}

	memset(kg_gpa(vm, KG_GDT_GPA), 0, 0x1000);
	gdt = kg_gpa(vm, KG_GDT_GPA);
	gdt[GDT_CODE0] = gdt_seg(SEG_TYPE_CODE, 0, true);
	gdt[GDT_DATA0] = gdt_seg(SEG_TYPE_DATA, 0, false);
	gdt[GDT_DATA3] = gdt_seg(SEG_TYPE_DATA, 3, false);
	gdt[GDT_CODE3] = gdt_seg(SEG_TYPE_CODE, 3, true);
	gdt_tss(&gdt[GDT_TSS], &gdt[GDT_TSS + 1], KG_TSS_GPA, KG_TSS_LIMIT);

	/* The TSS: nothing enters ring 0, so rsp0 and the ISTs stay zero. The
	 * I/O map base (offset 102) points at a bitmap right after the TSS
	 * proper, every port denied (bit set) until kg_boot_allow_ports();
	 * then the all-ones byte the architecture asks for after the last
	 * bitmap byte, inside the limit. */
	{
		uint8_t *tss = kg_gpa(vm, KG_TSS_GPA);
		uint16_t iomap = KG_TSS_IOMAP_OFF;

		memset(tss, 0, KG_TSS_IOMAP_OFF);
		memcpy(tss + 102, &iomap, sizeof(iomap));
		memset(tss + KG_TSS_IOMAP_OFF, 0xff, KG_TSS_IOMAP_BYTES + 1);
	}

	if (len)
		memcpy(kg_gpa(vm, KG_CODE_GPA), code, len);
	return 0;
}

int kg_boot_allow_ports(struct kg_vm *vm, uint32_t first, uint32_t count, struct tern_error *err)
{
	uint8_t *map;
	uint32_t p;

	if (!vm || !vm->ram)
		return tern_error_set(err, -EINVAL,
				      "kvm guest: ports allowed before kg_boot_setup");
	if (!count || first > 0xffff || count > 0x10000 - first)
		return tern_error_set(err, -EINVAL,
				      "kvm guest: ports %#x + %u leave the 16-bit port space",
				      first, count);
	map = (uint8_t *)kg_gpa(vm, KG_TSS_GPA) + KG_TSS_IOMAP_OFF;
	for (p = first; p < first + count; p++)
		map[p / 8] &= (uint8_t) ~(1u << (p % 8));
	return 0;
}

bool kg_io_allowed(struct kg_vm *vm, const struct kvm_sregs *sr, uint64_t rflags, uint32_t port,
		   uint32_t size)
{
	const uint8_t *tss;
	uint32_t cpl = sr->cs.dpl, iopl = (rflags >> RFLAGS_IOPL_SHIFT) & 3, p;
	uint16_t iomap;

	if (cpl <= iopl)
		return true;
	if (!sr->tr.present || sr->tr.type != SEG_TYPE_TSS64_BUSY || sr->tr.limit < 103 ||
	    sr->tr.base + sr->tr.limit >= vm->ram_size || port + size > 0x10000)
		return false;
	tss = kg_gpa(vm, sr->tr.base);
	memcpy(&iomap, tss + 102, sizeof(iomap));
	/* The CPU reads two bytes at iomap + port / 8; both inside the limit. */
	if ((uint32_t)iomap + (port + size - 1) / 8 + 1 > sr->tr.limit)
		return false;
	for (p = port; p < port + size; p++)
		if (tss[iomap + p / 8] & (1u << (p % 8)))
			return false;
	return true;
}

void kg_long_mode_regs(uint32_t idx, uint64_t rip, uint64_t arg0, uint64_t arg1,
		       struct kvm_sregs *sr, struct kvm_regs *regs)
{
	kvm_seg(&sr->cs, SEL_CODE3, SEG_TYPE_CODE, 3, true);
	kvm_seg(&sr->ds, SEL_DATA3, SEG_TYPE_DATA, 3, false);
	sr->es = sr->fs = sr->gs = sr->ss = sr->ds;

	memset(&sr->tr, 0, sizeof(sr->tr));
	sr->tr.base = KG_TSS_GPA;
	sr->tr.limit = KG_TSS_LIMIT;
	sr->tr.selector = SEL_TSS;
	sr->tr.type = SEG_TYPE_TSS64_BUSY;
	sr->tr.present = 1;

	memset(&sr->ldt, 0, sizeof(sr->ldt));
	sr->ldt.type = 2;
	sr->ldt.unusable = 1;

	sr->gdt.base = KG_GDT_GPA;
	sr->gdt.limit = GDT_ENTRIES * 8 - 1;
	sr->idt.base = 0;
	sr->idt.limit = 0;

	sr->cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
	sr->cr3 = KG_PML4_GPA;
	sr->cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
	sr->efer = EFER_LME | EFER_LMA;

	memset(regs, 0, sizeof(*regs));
	/* IOPL 3 and the TSS's I/O bitmap: each host honours one (see the top) */
	regs->rflags = RFLAGS_FIXED | RFLAGS_IOPL3;
	regs->rip = rip;
	/* Top of this vCPU's stack minus a return-address slot: a C function
	 * entered here sees the ABI's alignment (rsp + 8 a multiple of 16). */
	regs->rsp = KG_STACK_GPA + (uint64_t)(idx + 1) * KG_STACK_SIZE - 8;
	regs->rdi = arg0;
	regs->rsi = arg1;
}

int kg_vcpu_enter_long_mode(struct kg_vm *vm, uint32_t idx, uint64_t rip, uint64_t arg0,
			    uint64_t arg1, struct tern_error *err)
{
	struct kvm_sregs sr;
	struct kvm_regs regs;
	struct kg_vcpu *v;

	if (!vm || idx >= vm->nvcpus)
		return tern_error_set(err, -EINVAL, "kvm guest: no vcpu %u", idx);
	v = &vm->vcpu[idx];
	if (ioctl(v->fd, KVM_GET_SREGS, &sr) < 0)
		return kg_errno(err, "KVM_GET_SREGS", (int)idx);
	kg_long_mode_regs(idx, rip, arg0, arg1, &sr, &regs);
	if (ioctl(v->fd, KVM_SET_SREGS, &sr) < 0)
		return kg_errno(err, "KVM_SET_SREGS", (int)idx);
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return kg_errno(err, "KVM_SET_REGS", (int)idx);
	return 0;
}
