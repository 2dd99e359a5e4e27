/* kvm-probe: check that /dev/kvm works (meant to run inside the kvm-in-qemu
 * appliance). Runs a vCPU in 64-bit long mode at CPL 3 and checks dirty logging.
 *
 *   gcc -O2 -static -o kvm-probe kvm-probe.c
 *   kvm-probe              probe: caps, CPL3 long mode, dirty log (+ manual protect)
 *   kvm-probe bench MIB P  P passes of the guest writing MIB MiB (rep stosq), with
 *                          dirty logging on; prints time per pass and exit latency
 * Exit code 0 = all checks passed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define MB (1UL << 20)
#define PML4 0x1000
#define PDPT 0x2000
#define PD 0x3000 /* one PD covers 1 GiB with 2 MiB pages */
#define GDT 0x4000
#define TSS 0x5000
#define CODE 0x10000
#define STACK 0x8000
#define PROBE_DATA 0x100000 /* 1 MiB */
#define BENCH_DATA (2 * MB)

static int fails;
#define CHECK(c, ...)                                                                              \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			printf("FAIL: " __VA_ARGS__);                                              \
			printf("\n");                                                              \
			fails++;                                                                   \
		}                                                                                  \
	} while (0)

static void die(const char *what)
{
	printf("FATAL: %s: %s\n", what, strerror(errno));
	exit(2);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* guest code: loop { rdi=r8; rcx=r9; rbx++; rax=rbx; rep stosq; out 0x10,al } */
static const uint8_t guest_code[] = {
    0x4c, 0x89, 0xc7, /* mov rdi, r8 */
    0x4c, 0x89, 0xc9, /* mov rcx, r9 */
    0x48, 0xff, 0xc3, /* inc rbx */
    0x48, 0x89, 0xd8, /* mov rax, rbx */
    0xf3, 0x48, 0xab, /* rep stosq */
    0xe6, 0x10,	      /* out 0x10, al */
    0xeb, 0xed,	      /* jmp start (-19) */
};

struct vm {
	int kvm, vm, vcpu;
	struct kvm_run *run;
	uint8_t *mem;
	size_t size;
};

static const char *exit_name(unsigned r)
{
	static const char *n[] = {
	    [KVM_EXIT_UNKNOWN] = "UNKNOWN",
	    [KVM_EXIT_EXCEPTION] = "EXCEPTION",
	    [KVM_EXIT_IO] = "IO",
	    [KVM_EXIT_HLT] = "HLT",
	    [KVM_EXIT_MMIO] = "MMIO",
	    [KVM_EXIT_SHUTDOWN] = "SHUTDOWN",
	    [KVM_EXIT_FAIL_ENTRY] = "FAIL_ENTRY",
	    [KVM_EXIT_INTERNAL_ERROR] = "INTERNAL_ERROR",
	};
	return r < sizeof(n) / sizeof(n[0]) && n[r] ? n[r] : "?";
}

static void dump_regs(struct vm *v)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	if (ioctl(v->vcpu, KVM_GET_REGS, &r) == 0 && ioctl(v->vcpu, KVM_GET_SREGS, &s) == 0)
		printf("  rip=%llx rsp=%llx rflags=%llx cs=%x/dpl%d cr0=%llx cr3=%llx cr4=%llx "
		       "efer=%llx\n",
		       r.rip, r.rsp, r.rflags, s.cs.selector, s.cs.dpl, s.cr0, s.cr3, s.cr4,
		       s.efer);
}

static void setup_vm(struct vm *v, size_t size, int manual_protect)
{
	memset(v, 0, sizeof(*v));
	v->size = size;
	v->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (v->kvm < 0)
		die("open /dev/kvm");
	v->vm = ioctl(v->kvm, KVM_CREATE_VM, 0);
	if (v->vm < 0)
		die("KVM_CREATE_VM");
	if (manual_protect) {
		struct kvm_enable_cap cap = {.cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
					     .args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE};
		if (ioctl(v->vm, KVM_ENABLE_CAP, &cap) < 0)
			die("KVM_ENABLE_CAP(MANUAL_DIRTY_LOG_PROTECT2)");
	}
	v->mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (v->mem == MAP_FAILED)
		die("mmap guest memory");

	/* identity map with 2 MiB pages; U/W/P everywhere, A and D preset so the guest's
	 * page walker never writes the tables (they would show up in the dirty log) */
	uint64_t *pml4 = (void *)(v->mem + PML4), *pdpt = (void *)(v->mem + PDPT),
		 *pd = (void *)(v->mem + PD);
	pml4[0] = PDPT | 0x27;
	pdpt[0] = PD | 0x27;
	for (size_t i = 0; i < (size + 2 * MB - 1) / (2 * MB) && i < 512; i++)
		pd[i] = (i << 21) | 0x80 | 0x40 | 0x20 | 0x7; /* PS|D|A|U|W|P */

	uint64_t *gdt = (void *)(v->mem + GDT);
	gdt[0] = 0;
	gdt[1] = 0x00af9b000000ffffULL; /* 0x08 kernel code64, DPL0 (unused) */
	gdt[2] = 0x00affb000000ffffULL; /* 0x10 user code64, DPL3, L=1, accessed */
	gdt[3] = 0x00cff3000000ffffULL; /* 0x18 user data, DPL3, accessed */
	/* 0x20: 64-bit available TSS (type 9; TR load marks it busy = type 11) */
	/* Its I/O permission bitmap opens port 0x10 (the guest's `out`) and no
	 * other, and IOPL is 3: nested PVM KVM faults on `out` at CPL 3 unless
	 * the bitmap allows the port, QEMU's TCG goes by IOPL alone. It covers
	 * ports 0..23, then the all-ones byte; the limit ends there. */
	uint64_t base = TSS, limit = 104 + 3;
	uint8_t *tss = v->mem + TSS;
	uint16_t iomap = 104;
	memset(tss, 0, 104);
	memcpy(tss + 102, &iomap, sizeof(iomap));
	tss[104] = 0xff;
	tss[105] = 0xff;
	tss[106] = (uint8_t) ~(1u << (0x10 % 8)); /* ports 16..23: 0x10 open */
	tss[107] = 0xff;
	gdt[4] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x8bULL << 40) |
		 (((base >> 24) & 0xff) << 56);
	gdt[5] = base >> 32;
	memcpy(v->mem + CODE, guest_code, sizeof(guest_code));

	struct kvm_userspace_memory_region reg = {
	    .slot = 0,
	    .flags = KVM_MEM_LOG_DIRTY_PAGES,
	    .guest_phys_addr = 0,
	    .memory_size = size,
	    .userspace_addr = (uintptr_t)v->mem,
	};
	if (ioctl(v->vm, KVM_SET_USER_MEMORY_REGION, &reg) < 0)
		die("KVM_SET_USER_MEMORY_REGION");

	v->vcpu = ioctl(v->vm, KVM_CREATE_VCPU, 0);
	if (v->vcpu < 0)
		die("KVM_CREATE_VCPU");
	int mmap_size = ioctl(v->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	v->run = mmap(NULL, mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu, 0);
	if (v->run == MAP_FAILED)
		die("mmap kvm_run");

	struct kvm_cpuid2 *cpuid =
	    calloc(1, sizeof(*cpuid) + 256 * sizeof(struct kvm_cpuid_entry2));
	cpuid->nent = 256;
	if (ioctl(v->kvm, KVM_GET_SUPPORTED_CPUID, cpuid) < 0)
		die("KVM_GET_SUPPORTED_CPUID");
	if (ioctl(v->vcpu, KVM_SET_CPUID2, cpuid) < 0)
		die("KVM_SET_CPUID2");
	free(cpuid);

	struct kvm_sregs s;
	if (ioctl(v->vcpu, KVM_GET_SREGS, &s) < 0)
		die("KVM_GET_SREGS");
	struct kvm_segment cs = {.base = 0,
				 .limit = 0xffffffff,
				 .selector = 0x10 | 3,
				 .type = 11,
				 .present = 1,
				 .dpl = 3,
				 .db = 0,
				 .s = 1,
				 .l = 1,
				 .g = 1};
	struct kvm_segment ds = {.base = 0,
				 .limit = 0xffffffff,
				 .selector = 0x18 | 3,
				 .type = 3,
				 .present = 1,
				 .dpl = 3,
				 .db = 1,
				 .s = 1,
				 .l = 0,
				 .g = 1};
	struct kvm_segment tr = {.base = TSS,
				 .limit = 104 + 3,
				 .selector = 0x20,
				 .type = 11,
				 .present = 1,
				 .dpl = 0,
				 .s = 0};
	s.cs = cs;
	s.ds = s.es = s.fs = s.gs = s.ss = ds;
	s.tr = tr;
	s.ldt = (struct kvm_segment){.selector = 0, .type = 2, .present = 0, .unusable = 1};
	s.gdt.base = GDT;
	s.gdt.limit = 6 * 8 - 1;
	s.idt.base = 0;
	s.idt.limit = 0;
	s.cr0 = 0x1 | 0x2 | 0x10 | 0x20 | 0x10000 | 0x80000000; /* PE MP ET NE WP PG */
	s.cr3 = PML4;
	s.cr4 = 0x20 | 0x200 | 0x400; /* PAE OSFXSR OSXMMEXCPT */
	s.efer = 0x100 | 0x400;	      /* LME LMA */
	if (ioctl(v->vcpu, KVM_SET_SREGS, &s) < 0)
		die("KVM_SET_SREGS");

	struct kvm_regs r = {0};
	r.rip = CODE;
	r.rsp = STACK;
	r.rflags = 0x2 | (3 << 12); /* IOPL 3, and the TSS's bitmap opens 0x10 */
	if (ioctl(v->vcpu, KVM_SET_REGS, &r) < 0)
		die("KVM_SET_REGS");
}

/* set r8/r9 (destination, qword count) and run until the guest's 'out' */
static int run_pass(struct vm *v, uint64_t dst, uint64_t qwords)
{
	struct kvm_regs r;
	if (ioctl(v->vcpu, KVM_GET_REGS, &r) < 0)
		die("KVM_GET_REGS");
	r.r8 = dst;
	r.r9 = qwords;
	if (ioctl(v->vcpu, KVM_SET_REGS, &r) < 0)
		die("KVM_SET_REGS");
	for (;;) {
		if (ioctl(v->vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			die("KVM_RUN");
		}
		unsigned er = v->run->exit_reason;
		if (er == KVM_EXIT_IO && v->run->io.port == 0x10 &&
		    v->run->io.direction == KVM_EXIT_IO_OUT)
			return 0;
		printf("unexpected exit %u (%s)", er, exit_name(er));
		if (er == KVM_EXIT_FAIL_ENTRY)
			printf(
			    " hw_reason=0x%llx",
			    (unsigned long long)v->run->fail_entry.hardware_entry_failure_reason);
		if (er == KVM_EXIT_INTERNAL_ERROR)
			printf(" suberror=%u", v->run->internal.suberror);
		if (er == KVM_EXIT_IO)
			printf(" port=0x%x", v->run->io.port);
		printf("\n");
		dump_regs(v);
		return -1;
	}
}

/* returns the number of dirty pages at or above page `from`; fills list with up
 * to max of their page numbers */
static size_t get_dirty_from(struct vm *v, uint64_t *list, size_t max, int manual, size_t from)
{
	size_t pages = v->size / PAGE;
	uint64_t *bm = calloc(pages / 64 + 1, 8);
	struct kvm_dirty_log dl = {.slot = 0, .dirty_bitmap = bm};
	if (ioctl(v->vm, KVM_GET_DIRTY_LOG, &dl) < 0)
		die("KVM_GET_DIRTY_LOG");
	size_t n = 0;
	for (size_t p = from; p < pages; p++)
		if (bm[p / 64] >> (p % 64) & 1) {
			if (n < max)
				list[n] = p;
			n++;
		}
	if (manual) {
		struct kvm_clear_dirty_log cl = {
		    .slot = 0, .first_page = 0, .num_pages = pages, .dirty_bitmap = bm};
		if (ioctl(v->vm, KVM_CLEAR_DIRTY_LOG, &cl) < 0)
			die("KVM_CLEAR_DIRTY_LOG");
	}
	free(bm);
	return n;
}

/* The data pages must match exactly. Besides them KVM may log the VMM's own
 * structural pages: on AMD NPT every guest page-table walk is a write in the
 * nested tables (so PML4/PDPT/PD pages are logged on every pass), and KVM maps
 * a page writable even on a read/exec fault and logs it (the code page, first
 * pass only). Those are allowed, and reported. */
static size_t get_dirty(struct vm *v, uint64_t *list, size_t max, int manual)
{
	return get_dirty_from(v, list, max, manual, 0);
}

static void expect_dirty(struct vm *v, const char *what, int manual, const uint64_t *want,
			 size_t nwant)
{
	uint64_t got[64], data[64];
	size_t n = get_dirty(v, got, 64, manual), nd = 0;
	printf("%s: dirty pages:", what);
	for (size_t i = 0; i < n && i < 64; i++) {
		uint64_t gpa = got[i] * PAGE;
		printf(" 0x%llx", (unsigned long long)gpa);
		if (gpa >= PROBE_DATA)
			data[nd++] = got[i];
		else if (gpa == PML4 || gpa == PDPT || gpa == PD || gpa == CODE)
			printf("(%s)", gpa == CODE ? "code" : "pt");
		else
			CHECK(0, "%s: unexpected dirty page 0x%llx", what, (unsigned long long)gpa);
	}
	printf("\n");
	int ok = nd == nwant;
	for (size_t i = 0; ok && i < nd; i++)
		ok = data[i] == want[i];
	CHECK(ok, "%s: data pages dirty log mismatch (got %zu pages, want %zu)", what, nd, nwant);
}

static int probe(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("open /dev/kvm");
	int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
	printf("KVM_GET_API_VERSION = %d\n", api);
	CHECK(api == 12, "api version %d", api);
	int mdp2 = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
	int ring = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING);
	int ring_ar = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_DIRTY_LOG_RING_ACQ_REL);
	printf("KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 = %d\n", mdp2);
	printf("KVM_CAP_DIRTY_LOG_RING = %d (max ring bytes)\n", ring);
	printf("KVM_CAP_DIRTY_LOG_RING_ACQ_REL = %d\n", ring_ar);
	CHECK(mdp2 > 0, "no MANUAL_DIRTY_LOG_PROTECT2");
	CHECK(ring > 0, "no DIRTY_LOG_RING");
	close(kvm);

	for (int manual = 0; manual <= 1; manual++) {
		struct vm v;
		const char *mode = manual ? "manual-protect" : "classic";
		setup_vm(&v, 2 * MB, manual);
		/* dirty log starts empty (pages written by the VMM are not logged) */
		uint64_t a = PROBE_DATA / PAGE, b = a + 1, c = a + 2;
		expect_dirty(&v, mode, manual, NULL, 0);
		if (run_pass(&v, PROBE_DATA, 2 * PAGE / 8) < 0) { /* pages a, b */
			fails++;
			continue;
		}
		CHECK(v.mem[PROBE_DATA] == 1 && v.mem[PROBE_DATA + PAGE] == 1,
		      "%s: guest writes not visible", mode);
		struct kvm_sregs s;
		ioctl(v.vcpu, KVM_GET_SREGS, &s);
		printf("%s: pass 1 exit IO port 0x10 at CPL%d, long mode cs.l=%d efer=0x%llx\n",
		       mode, s.cs.dpl, s.cs.l, s.efer);
		uint64_t w1[] = {a, b};
		expect_dirty(&v, mode, manual, w1, 2);
		if (run_pass(&v, PROBE_DATA + PAGE, 2 * PAGE / 8) < 0) { /* pages b, c */
			fails++;
			continue;
		}
		uint64_t w2[] = {b, c};
		expect_dirty(&v, mode, manual, w2, 2);
		CHECK(v.mem[PROBE_DATA + PAGE] == 2 && v.mem[PROBE_DATA] == 1, "%s: pass 2 data",
		      mode);
	}
	printf("%s\n", fails ? "PROBE FAILED" : "PROBE OK");
	return fails ? 1 : 0;
}

static int bench(unsigned mib, unsigned passes)
{
	struct vm v;
	size_t size = BENCH_DATA + (size_t)mib * MB;
	setup_vm(&v, size, 0);
	get_dirty(&v, NULL, 0, 0);
	double t = now();
	for (int i = 0; i < 1000; i++)
		if (run_pass(&v, BENCH_DATA, 0) < 0)
			return 1;
	printf("exit round trip (out -> VMM -> KVM_RUN): %.1f us\n", (now() - t) / 1000 * 1e6);
	for (unsigned p = 0; p < passes; p++) {
		t = now();
		if (run_pass(&v, BENCH_DATA, (size_t)mib * MB / 8) < 0)
			return 1;
		double run = now() - t;
		t = now();
		size_t n = get_dirty_from(&v, NULL, 0, 0, BENCH_DATA / PAGE);
		double gl = now() - t;
		printf("pass %u: guest wrote %u MiB in %.3f s (%.1f MiB/s); GET_DIRTY_LOG %.3f s, "
		       "%zu dirty data pages\n",
		       p, mib, run, mib / run, gl, n);
		CHECK(n == (size_t)mib * MB / PAGE, "pass %u: %zu dirty pages, want %zu", p, n,
		      (size_t)mib * MB / PAGE);
	}
	return fails ? 1 : 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc >= 2 && !strcmp(argv[1], "bench"))
		return bench(argc > 2 ? atoi(argv[2]) : 64, argc > 3 ? atoi(argv[3]) : 3);
	return probe();
}
