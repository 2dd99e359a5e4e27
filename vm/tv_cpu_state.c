/* SPDX-License-Identifier: MIT */
/*
 * Device sections: what the destination needs besides RAM to run the guest.
 *
 *   "vm"  instance 0, version 1: the guest layout, checked by the destination.
 *         u64 ram_size, u32 nvcpus, u32 abi_version, u32 tsc_khz
 *   "cpu" instance = vCPU index, version 1 (min 1): one vCPU's registers,
 *         every field written on its own, big-endian, in this order:
 *     regs    18 x u64: rax rbx rcx rdx rsi rdi rsp rbp r8..r15 rip rflags
 *     sregs   8 segments (cs ds es fs gs ss tr ldt), each
 *               u64 base, u32 limit, u32 selector, 8 bytes: type present
 *               dpl db s l g avl;
 *             gdt, idt: u64 base, u32 limit;
 *             u64 cr0 cr2 cr3 cr4 cr8 efer apic_base; 4 x u64 interrupt_bitmap
 *     xcrs    u32 count (<= KVM_MAX_XCRS), count x {u32 xcr, u64 value}
 *     fpu     u32 kind (1: XSAVE area, 2: legacy kvm_fpu), u32 length, then
 *             kind 1: the XSAVE area as the CPU lays it out (length bytes);
 *             kind 2: 128 bytes fpr, u32 fcw fsw ftwx last_opcode,
 *                     u64 last_ip last_dp, 256 bytes xmm, u32 mxcsr
 *     events  u32 flags, then exception {injected nr has_error_code pending
 *             has_payload} as 5 bytes, u32 error_code, u64 payload,
 *             interrupt {injected nr soft shadow}, nmi {injected pending
 *             masked}, smi {smm pending smm_inside_nmi latched_init},
 *             triple_fault_pending: 12 bytes; u32 sipi_vector
 *     msrs    u32 count (<= TV_MAX_MSRS), count x {u32 index, u64 value}
 *
 * The load applies them in this order too (XCR0 before the XSAVE area it
 * governs). The destination checks the XSAVE length against its own and every MSR
 * index against the list below before it hands anything to KVM.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "tv.h"

#define TV_FPU_XSAVE 1u
#define TV_FPU_LEGACY 2u
/* the kind 2 encoding: fpr 128, 4 x u32, 2 x u64, xmm 256, mxcsr u32 */
#define TV_KVM_FPU_LEN 420u
#define TV_MAX_MSRS 8u

/* MSRs the guest depends on: the TSC (its pace), and what a guest may set. */
static const uint32_t tv_msrs[] = {
    0x10,	/* IA32_TSC */
    0x277,	/* IA32_PAT */
    0xc0000102, /* IA32_KERNEL_GS_BASE */
};
#define TV_NMSRS (sizeof(tv_msrs) / sizeof(tv_msrs[0]))
_Static_assert(TV_NMSRS <= TV_MAX_MSRS, "TV_MAX_MSRS too small");

/* Sticky-error writer and reader: the first failure wins, later calls do nothing. */
struct wr {
	struct tern_section_writer *w;
	int ret;
	size_t n; /* bytes written: the size hooks are checked against it */
};

struct rd {
	struct tern_section_reader *r;
	int ret;
};

static void put64(struct wr *p, uint64_t v)
{
	if (!p->ret)
		p->ret = tern_section_put_u64(p->w, v);
	p->n += 8;
}

static void put32(struct wr *p, uint32_t v)
{
	if (!p->ret)
		p->ret = tern_section_put_u32(p->w, v);
	p->n += 4;
}

static void putb(struct wr *p, const void *data, size_t len)
{
	if (!p->ret)
		p->ret = tern_section_put(p->w, data, len);
	p->n += len;
}

static uint64_t get64(struct rd *p)
{
	uint64_t v = 0;

	if (!p->ret)
		p->ret = tern_section_get_u64(p->r, &v);
	return p->ret ? 0 : v;
}

static uint32_t get32(struct rd *p)
{
	uint32_t v = 0;

	if (!p->ret)
		p->ret = tern_section_get_u32(p->r, &v);
	return p->ret ? 0 : v;
}

static void getb(struct rd *p, void *data, size_t len)
{
	if (!p->ret)
		p->ret = tern_section_get(p->r, data, len);
	if (p->ret)
		memset(data, 0, len);
}

static int ioctl_err(struct tern_error *err, uint32_t idx, const char *what)
{
	return tv_err(err, -errno, "vCPU %u: %s: %s", idx, what, strerror(errno));
}

/* ---- "vm" ------------------------------------------------------------------ */

/* The section size hook: exactly what vm_save() writes. */
static size_t vm_size(void *opaque)
{
	return 8 + 3 * 4;
}

/* A size hook that disagrees with its save is a bug here: say so. */
static void size_check(struct tv_vm *vm, const char *what, size_t hook, size_t wrote)
{
	if (hook != wrote)
		tv_log(vm->cfg, 4, "%s section: its size hook says %zu bytes, save wrote %zu", what,
		       hook, wrote);
}

static int vm_save(void *opaque, struct tern_section_writer *w, struct tern_error *err)
{
	struct tv_vm *vm = opaque;
	struct wr p = {w, 0, 0};

	put64(&p, vm->kg.ram_size);
	put32(&p, vm->kg.nvcpus);
	put32(&p, TV_ABI_VERSION);
	put32(&p, vm->kg.tsc_khz);
	if (p.ret)
		return tv_err(err, p.ret, "vm section: writing: %s", strerror(-p.ret));
	size_check(vm, "vm", vm_size(vm), p.n);
	return 0;
}

static int vm_load(void *opaque, struct tern_section_reader *r, uint32_t version,
		   struct tern_error *err)
{
	struct tv_vm *vm = opaque;
	struct rd p = {r, 0};
	uint64_t ram = get64(&p);
	uint32_t nvcpus = get32(&p), abi = get32(&p), khz = get32(&p);

	if (p.ret || tern_section_remaining(r))
		return tv_err(err, -EPROTO, "vm section: %s",
			      p.ret ? "truncated" : "trailing bytes");
	if (ram != vm->kg.ram_size)
		return tv_err(err, -EINVAL,
			      "vm section: the source guest has %" PRIu64
			      " bytes of RAM, this destination %" PRIu64,
			      ram, vm->kg.ram_size);
	if (nvcpus != vm->kg.nvcpus)
		return tv_err(err, -EINVAL,
			      "vm section: the source guest has %u vCPUs, this destination %u",
			      nvcpus, vm->kg.nvcpus);
	if (abi != TV_ABI_VERSION)
		return tv_err(err, -EINVAL,
			      "vm section: the source guest uses mailbox ABI %u, this tern-vm %u",
			      abi, TV_ABI_VERSION);
	if (khz != vm->kg.tsc_khz)
		tv_log(vm->cfg, 4,
		       "the source TSC runs at %u kHz, this host's at %u kHz: the guest's dirty "
		       "rate will be off by their ratio",
		       khz, vm->kg.tsc_khz);
	return 0;
}

/* ---- "cpu" ----------------------------------------------------------------- */

/* Bytes of each part of a "cpu" section, as laid out at the top of the file. */
#define TV_REGS_BYTES (18 * 8)
#define TV_SEG_BYTES (8 + 4 + 4 + 8)
#define TV_SREGS_BYTES (8 * TV_SEG_BYTES + 2 * (8 + 4) + 7 * 8 + 4 * 8)
#define TV_EVENTS_BYTES (4 + 5 + 4 + 8 + 12 + 4)
#define TV_XCR_BYTES (4 + 8)
#define TV_MSR_BYTES (4 + 8)

static void put_seg(struct wr *p, const struct kvm_segment *s)
{
	uint8_t b[8] = {s->type, s->present, s->dpl, s->db, s->s, s->l, s->g, s->avl};

	put64(p, s->base);
	put32(p, s->limit);
	put32(p, s->selector);
	putb(p, b, sizeof(b));
}

static void get_seg(struct rd *p, struct kvm_segment *s)
{
	uint8_t b[8];
	uint32_t sel;

	s->base = get64(p);
	s->limit = get32(p);
	sel = get32(p);
	getb(p, b, sizeof(b));
	if (sel > 0xffff && !p->ret)
		p->ret = -EINVAL;
	s->selector = (uint16_t)sel;
	s->type = b[0];
	s->present = b[1];
	s->dpl = b[2];
	s->db = b[3];
	s->s = b[4];
	s->l = b[5];
	s->g = b[6];
	s->avl = b[7];
}

static void put_sregs(struct wr *p, const struct kvm_sregs *sr)
{
	const struct kvm_segment *segs[] = {&sr->cs, &sr->ds, &sr->es, &sr->fs,
					    &sr->gs, &sr->ss, &sr->tr, &sr->ldt};
	size_t i;

	for (i = 0; i < 8; i++)
		put_seg(p, segs[i]);
	put64(p, sr->gdt.base);
	put32(p, sr->gdt.limit);
	put64(p, sr->idt.base);
	put32(p, sr->idt.limit);
	put64(p, sr->cr0);
	put64(p, sr->cr2);
	put64(p, sr->cr3);
	put64(p, sr->cr4);
	put64(p, sr->cr8);
	put64(p, sr->efer);
	put64(p, sr->apic_base);
	for (i = 0; i < 4; i++)
		put64(p, sr->interrupt_bitmap[i]);
}

static void get_sregs(struct rd *p, struct kvm_sregs *sr)
{
	struct kvm_segment *segs[] = {&sr->cs, &sr->ds, &sr->es, &sr->fs,
				      &sr->gs, &sr->ss, &sr->tr, &sr->ldt};
	uint32_t lim;
	size_t i;

	for (i = 0; i < 8; i++)
		get_seg(p, segs[i]);
	sr->gdt.base = get64(p);
	lim = get32(p);
	sr->gdt.limit = (uint16_t)lim;
	if (lim > 0xffff && !p->ret)
		p->ret = -EINVAL;
	sr->idt.base = get64(p);
	lim = get32(p);
	sr->idt.limit = (uint16_t)lim;
	if (lim > 0xffff && !p->ret)
		p->ret = -EINVAL;
	sr->cr0 = get64(p);
	sr->cr2 = get64(p);
	sr->cr3 = get64(p);
	sr->cr4 = get64(p);
	sr->cr8 = get64(p);
	sr->efer = get64(p);
	sr->apic_base = get64(p);
	for (i = 0; i < 4; i++)
		sr->interrupt_bitmap[i] = get64(p);
}

/* The 18 general registers, in the documented order. */
static __u64 *regs_field(struct kvm_regs *r, size_t i)
{
	__u64 *f[18] = {&r->rax, &r->rbx, &r->rcx, &r->rdx, &r->rsi, &r->rdi,
			&r->rsp, &r->rbp, &r->r8,  &r->r9,  &r->r10, &r->r11,
			&r->r12, &r->r13, &r->r14, &r->r15, &r->rip, &r->rflags};

	return f[i];
}

static int save_fpu(struct tv_vcpu *v, int fd, struct wr *p, struct tern_error *err)
{
	struct tv_vm *vm = v->vm;

	if (vm->xsave_len) {
		struct kvm_xsave *xs = calloc(1, vm->xsave_len);
		unsigned long req = KVM_GET_XSAVE;
		int r;

#ifdef KVM_GET_XSAVE2
		if (vm->xsave2)
			req = KVM_GET_XSAVE2;
#endif
		if (!xs)
			return tv_err(err, -ENOMEM, "vCPU %u: XSAVE buffer", v->idx);
		r = ioctl(fd, req, xs);
		if (r < 0) {
			r = ioctl_err(err, v->idx, vm->xsave2 ? "KVM_GET_XSAVE2" : "KVM_GET_XSAVE");
			free(xs);
			return r;
		}
		put32(p, TV_FPU_XSAVE);
		put32(p, vm->xsave_len);
		putb(p, xs, vm->xsave_len);
		free(xs);
	} else {
		struct kvm_fpu f;

		if (ioctl(fd, KVM_GET_FPU, &f) < 0)
			return ioctl_err(err, v->idx, "KVM_GET_FPU");
		put32(p, TV_FPU_LEGACY);
		put32(p, TV_KVM_FPU_LEN);
		putb(p, f.fpr, sizeof(f.fpr));
		put32(p, f.fcw);
		put32(p, f.fsw);
		put32(p, f.ftwx);
		put32(p, f.last_opcode);
		put64(p, f.last_ip);
		put64(p, f.last_dp);
		putb(p, f.xmm, sizeof(f.xmm));
		put32(p, f.mxcsr);
	}
	return 0;
}

static int load_fpu(struct tv_vcpu *v, int fd, struct rd *p, struct tern_error *err)
{
	struct tv_vm *vm = v->vm;
	uint32_t kind = get32(p), len = get32(p);

	if (p->ret)
		return 0; /* the caller reports the truncation */
	if (kind == TV_FPU_XSAVE) {
		struct kvm_xsave *xs;
		int r = 0;

		if (!vm->xsave_len)
			return tv_err(
			    err, -EINVAL,
			    "vCPU %u: the source sent XSAVE state, this host has no XSAVE", v->idx);
		if (len != vm->xsave_len)
			return tv_err(err, -EINVAL,
				      "vCPU %u: XSAVE area of %u bytes from the source, %u here",
				      v->idx, len, vm->xsave_len);
		xs = calloc(1, len);
		if (!xs)
			return tv_err(err, -ENOMEM, "vCPU %u: XSAVE buffer", v->idx);
		getb(p, xs, len);
		if (!p->ret && ioctl(fd, KVM_SET_XSAVE, xs) < 0)
			r = ioctl_err(err, v->idx, "KVM_SET_XSAVE");
		free(xs);
		return r;
	}
	if (kind == TV_FPU_LEGACY) {
		struct kvm_fpu f;

		if (len != TV_KVM_FPU_LEN)
			return tv_err(err, -EINVAL, "vCPU %u: FPU state of %u bytes, expected %u",
				      v->idx, len, TV_KVM_FPU_LEN);
		memset(&f, 0, sizeof(f));
		getb(p, f.fpr, sizeof(f.fpr));
		f.fcw = (__u16)get32(p);
		f.fsw = (__u16)get32(p);
		f.ftwx = (__u8)get32(p);
		f.last_opcode = (__u16)get32(p);
		f.last_ip = get64(p);
		f.last_dp = get64(p);
		getb(p, f.xmm, sizeof(f.xmm));
		f.mxcsr = get32(p);
		if (!p->ret && ioctl(fd, KVM_SET_FPU, &f) < 0)
			return ioctl_err(err, v->idx, "KVM_SET_FPU");
		return 0;
	}
	return tv_err(err, -EINVAL, "vCPU %u: unknown FPU state kind %u", v->idx, kind);
}

static void put_events(struct wr *p, const struct kvm_vcpu_events *e)
{
	uint8_t ex[5] = {e->exception.injected, e->exception.nr, e->exception.has_error_code,
			 e->exception.pending, e->exception_has_payload};
	uint8_t rest[12] = {e->interrupt.injected, e->interrupt.nr,	e->interrupt.soft,
			    e->interrupt.shadow,   e->nmi.injected,	e->nmi.pending,
			    e->nmi.masked,	   e->smi.smm,		e->smi.pending,
			    e->smi.smm_inside_nmi, e->smi.latched_init, e->triple_fault.pending};

	put32(p, e->flags);
	putb(p, ex, sizeof(ex));
	put32(p, e->exception.error_code);
	put64(p, e->exception_payload);
	putb(p, rest, sizeof(rest));
	put32(p, e->sipi_vector);
}

static void get_events(struct rd *p, struct kvm_vcpu_events *e)
{
	uint8_t ex[5], rest[12];

	memset(e, 0, sizeof(*e));
	e->flags = get32(p);
	getb(p, ex, sizeof(ex));
	e->exception.error_code = get32(p);
	e->exception_payload = get64(p);
	getb(p, rest, sizeof(rest));
	e->sipi_vector = get32(p);
	e->exception.injected = ex[0];
	e->exception.nr = ex[1];
	e->exception.has_error_code = ex[2];
	e->exception.pending = ex[3];
	e->exception_has_payload = ex[4];
	e->interrupt.injected = rest[0];
	e->interrupt.nr = rest[1];
	e->interrupt.soft = rest[2];
	e->interrupt.shadow = rest[3];
	e->nmi.injected = rest[4];
	e->nmi.pending = rest[5];
	e->nmi.masked = rest[6];
	e->smi.smm = rest[7];
	e->smi.pending = rest[8];
	e->smi.smm_inside_nmi = rest[9];
	e->smi.latched_init = rest[10];
	e->triple_fault.pending = rest[11];
}

/*
 * The section size hook, called while the guest runs: what cpu_save() will
 * write, exactly. Nothing in it depends on the vCPU's state: the XCR count
 * was read at setup (KVM reports the same count every time), the XSAVE
 * length is the host's, the MSR list is fixed.
 */
static size_t cpu_size(void *opaque)
{
	struct tv_vcpu *v = opaque;
	struct tv_vm *vm = v->vm;

	return TV_REGS_BYTES + TV_SREGS_BYTES + 4 + (size_t)vm->nxcrs * TV_XCR_BYTES + 4 + 4 +
	       (vm->xsave_len ? vm->xsave_len : TV_KVM_FPU_LEN) + TV_EVENTS_BYTES + 4 +
	       TV_NMSRS * TV_MSR_BYTES;
}

static int cpu_save(void *opaque, struct tern_section_writer *w, struct tern_error *err)
{
	struct tv_vcpu *v = opaque;
	struct tv_vm *vm = v->vm;
	int fd = vm->kg.vcpu[v->idx].fd;
	union {
		struct kvm_msrs hdr; /* entries[] lives in raw's tail */
		uint8_t raw[sizeof(struct kvm_msrs) + TV_MAX_MSRS * sizeof(struct kvm_msr_entry)];
	} msrs;
	struct kvm_vcpu_events ev;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_xcrs xcrs;
	struct wr p = {w, 0, 0};
	size_t i;
	int ret;

	if (ioctl(fd, KVM_GET_REGS, &regs) < 0)
		return ioctl_err(err, v->idx, "KVM_GET_REGS");
	if (ioctl(fd, KVM_GET_SREGS, &sregs) < 0)
		return ioctl_err(err, v->idx, "KVM_GET_SREGS");
	memset(&xcrs, 0, sizeof(xcrs));
	if (vm->has_xcrs && ioctl(fd, KVM_GET_XCRS, &xcrs) < 0)
		return ioctl_err(err, v->idx, "KVM_GET_XCRS");
	if (xcrs.nr_xcrs > KVM_MAX_XCRS)
		return tv_err(err, -EIO, "vCPU %u: KVM returned %u XCRs", v->idx, xcrs.nr_xcrs);
	if (ioctl(fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return ioctl_err(err, v->idx, "KVM_GET_VCPU_EVENTS");
	memset(&msrs, 0, sizeof(msrs));
	msrs.hdr.nmsrs = TV_NMSRS;
	for (i = 0; i < TV_NMSRS; i++)
		msrs.hdr.entries[i].index = tv_msrs[i];
	ret = ioctl(fd, KVM_GET_MSRS, &msrs);
	if (ret < 0)
		return ioctl_err(err, v->idx, "KVM_GET_MSRS");
	if ((size_t)ret != TV_NMSRS)
		return tv_err(err, -EIO, "vCPU %u: KVM_GET_MSRS read MSR %#x and stopped", v->idx,
			      tv_msrs[ret]);

	for (i = 0; i < 18; i++)
		put64(&p, *regs_field(&regs, i));
	put_sregs(&p, &sregs);
	put32(&p, xcrs.nr_xcrs);
	for (i = 0; i < xcrs.nr_xcrs; i++) {
		put32(&p, xcrs.xcrs[i].xcr);
		put64(&p, xcrs.xcrs[i].value);
	}
	ret = save_fpu(v, fd, &p, err);
	if (ret)
		return ret;
	put_events(&p, &ev);
	put32(&p, TV_NMSRS);
	for (i = 0; i < TV_NMSRS; i++) {
		put32(&p, msrs.hdr.entries[i].index);
		put64(&p, msrs.hdr.entries[i].data);
	}
	if (p.ret)
		return tv_err(err, p.ret, "vCPU %u: writing its section: %s", v->idx,
			      strerror(-p.ret));
	size_check(vm, "cpu", cpu_size(v), p.n);
	return 0;
}

static bool msr_known(uint32_t index)
{
	size_t i;

	for (i = 0; i < TV_NMSRS; i++)
		if (tv_msrs[i] == index)
			return true;
	return false;
}

/* The event flags we hand back to KVM: what its GET reports without opt-in caps. */
#define TV_EVENT_FLAGS                                                                             \
	(KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM)

static int cpu_load(void *opaque, struct tern_section_reader *r, uint32_t version,
		    struct tern_error *err)
{
	struct tv_vcpu *v = opaque;
	struct tv_vm *vm = v->vm;
	int fd = vm->kg.vcpu[v->idx].fd;
	union {
		struct kvm_msrs hdr; /* entries[] lives in raw's tail */
		uint8_t raw[sizeof(struct kvm_msrs) + TV_MAX_MSRS * sizeof(struct kvm_msr_entry)];
	} msrs;
	struct kvm_vcpu_events ev;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_xcrs xcrs;
	struct rd p = {r, 0};
	uint32_t n;
	size_t i;
	int ret;

	memset(&regs, 0, sizeof(regs));
	memset(&sregs, 0, sizeof(sregs));
	memset(&xcrs, 0, sizeof(xcrs));
	memset(&msrs, 0, sizeof(msrs));
	for (i = 0; i < 18; i++)
		*regs_field(&regs, i) = get64(&p);
	get_sregs(&p, &sregs);
	if (p.ret)
		goto bad;
	/* sregs before everything else: CR4 and EFER decide what the rest may hold */
	if (ioctl(fd, KVM_SET_SREGS, &sregs) < 0)
		return ioctl_err(err, v->idx, "KVM_SET_SREGS");
	if (ioctl(fd, KVM_SET_REGS, &regs) < 0)
		return ioctl_err(err, v->idx, "KVM_SET_REGS");

	n = get32(&p);
	if (!p.ret && n > KVM_MAX_XCRS)
		return tv_err(err, -EINVAL, "vCPU %u: %u XCRs, at most %u", v->idx, n,
			      KVM_MAX_XCRS);
	xcrs.nr_xcrs = n;
	for (i = 0; i < n && !p.ret; i++) {
		xcrs.xcrs[i].xcr = get32(&p);
		xcrs.xcrs[i].value = get64(&p);
	}
	if (p.ret)
		goto bad;
	if (n && !vm->has_xcrs)
		return tv_err(err, -EINVAL, "vCPU %u: the source sent XCRs, this host has none",
			      v->idx);
	if (n && ioctl(fd, KVM_SET_XCRS, &xcrs) < 0)
		return ioctl_err(err, v->idx, "KVM_SET_XCRS");
	ret = load_fpu(v, fd, &p, err);
	if (ret)
		return ret;

	get_events(&p, &ev);
	n = get32(&p);
	if (!p.ret && n > TV_MAX_MSRS)
		return tv_err(err, -EINVAL, "vCPU %u: %u MSRs, at most %u", v->idx, n, TV_MAX_MSRS);
	msrs.hdr.nmsrs = n;
	for (i = 0; i < n && !p.ret; i++) {
		msrs.hdr.entries[i].index = get32(&p);
		msrs.hdr.entries[i].data = get64(&p);
		if (!p.ret && !msr_known(msrs.hdr.entries[i].index))
			return tv_err(err, -EINVAL, "vCPU %u: MSR %#x is not one tern-vm migrates",
				      v->idx, msrs.hdr.entries[i].index);
	}
	if (p.ret)
		goto bad;
	if (tern_section_remaining(r))
		return tv_err(err, -EPROTO, "vCPU %u: %zu trailing bytes in its section", v->idx,
			      tern_section_remaining(r));
	ev.flags &= TV_EVENT_FLAGS;
	ev.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING;
	if (ioctl(fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		return ioctl_err(err, v->idx, "KVM_SET_VCPU_EVENTS");
	ret = ioctl(fd, KVM_SET_MSRS, &msrs);
	if (ret < 0)
		return ioctl_err(err, v->idx, "KVM_SET_MSRS");
	if ((uint32_t)ret != n)
		return tv_err(err, -EIO, "vCPU %u: KVM_SET_MSRS refused MSR %#x", v->idx,
			      msrs.hdr.entries[ret].index);
	return 0;
bad:
	return tv_err(err, p.ret == -EPROTO ? -EPROTO : -EINVAL, "vCPU %u: section %s", v->idx,
		      p.ret == -EPROTO ? "truncated" : "holds an out-of-range field");
}

int tv_sections_register(struct tern_session *s, struct tv_vm *vm, struct tern_error *err)
{
	static const struct tern_section_ops vm_ops = {
	    .save = vm_save, .load = vm_load, .size = vm_size};
	static const struct tern_section_ops cpu_ops = {
	    .save = cpu_save, .load = cpu_load, .size = cpu_size};
	uint32_t i;
	int ret;

	/* "vm" first: a layout mismatch is reported before any vCPU state is loaded */
	ret = tern_section_register(s, "vm", 0, 1, 1, &vm_ops, vm, err);
	for (i = 0; !ret && i < vm->kg.nvcpus; i++)
		ret = tern_section_register(s, "cpu", i, 1, 1, &cpu_ops, &vm->vcpu[i], err);
	return ret;
}
