/* SPDX-License-Identifier: MIT */
/*
 * The guest VM and its vCPU threads.
 *
 * One thread per vCPU loops on KVM_RUN and answers the guest's ports
 * (guest/abi.h): fill done, sleep, panic. Every other exit is fatal: the
 * thread records a message with the exit reason and RIP, and ends.
 *
 * Pausing, step by step (the library calls tv_vcpus_pause() for switchover):
 *   1. under ->lock: pause_req = true, stop_req = true, and every vCPU's
 *      run->immediate_exit = 1, then SIGUSR1 to each thread (a no-op handler
 *      installed without SA_RESTART);
 *   2. a thread inside KVM_RUN comes out with EINTR (the signal); one about
 *      to enter it returns at once (immediate_exit); one asleep for the
 *      guest wakes early (the signal interrupts nanosleep);
 *   3. each thread sees stop_req, enters KVM_RUN once more with
 *      immediate_exit = 1 so that KVM completes a pending `out` (RIP moves
 *      past it: KVM documents that vCPU state is consistent for saving only
 *      after that), then parks on ->cond and counts itself in nparked;
 *   4. pause returns once nparked == nstarted.
 * Resuming clears pause_req; each thread, under ->lock, resets immediate_exit
 * to 0 before it leaves the park, so a new pause cannot be lost in between.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "tv.h"

#define TV_PAUSE_TIMEOUT_MS 10000
#define TV_FILL_SEED 0x9e3779b97f4a7c15ull

extern const unsigned char tv_guest_code[];
extern const size_t tv_guest_code_len;

static void kick_handler(int sig)
{
	(void)sig;
}

static const char *exit_reason_name(uint32_t r)
{
	switch (r) {
	case KVM_EXIT_UNKNOWN:
		return "unknown";
	case KVM_EXIT_EXCEPTION:
		return "exception";
	case KVM_EXIT_IO:
		return "io";
	case KVM_EXIT_HLT:
		return "hlt";
	case KVM_EXIT_MMIO:
		return "mmio";
	case KVM_EXIT_SHUTDOWN:
		return "shutdown (triple fault)";
	case KVM_EXIT_FAIL_ENTRY:
		return "fail_entry";
	case KVM_EXIT_INTR:
		return "intr";
	case KVM_EXIT_INTERNAL_ERROR:
		return "internal_error";
	case KVM_EXIT_SYSTEM_EVENT:
		return "system_event";
	default:
		return "other";
	}
}

static const char *panic_name(uint32_t code)
{
	switch (code) {
	case TV_PANIC_MAGIC:
		return "bad mailbox magic or ABI version";
	case TV_PANIC_VCPU:
		return "vCPU index out of range";
	case TV_PANIC_PARAMS:
		return "bad fill kind, pattern or tsc_khz";
	case TV_PANIC_SLICE:
		return "slice outside RAM";
	default:
		return "unknown code";
	}
}

/* Record the first failure; the caller's thread then ends. */
static void vcpu_fail(struct tv_vcpu *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void vcpu_fail(struct tv_vcpu *v, const char *fmt, ...)
{
	struct tv_vm *vm = v->vm;
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&vm->lock);
	if (!vm->fatal[0])
		snprintf(vm->fatal, sizeof(vm->fatal), "vCPU %u: %s", v->idx, msg);
	pthread_mutex_unlock(&vm->lock);
	fprintf(stderr, "tern-vm: vCPU %u: %s\n", v->idx, msg);
}

static void vcpu_fail_exit(struct tv_vcpu *v, struct kvm_run *run)
{
	struct kg_vcpu *kv = &v->vm->kg.vcpu[v->idx];
	struct kvm_regs regs;
	uint64_t rip = 0;

	if (ioctl(kv->fd, KVM_GET_REGS, &regs) == 0)
		rip = regs.rip;
	switch (run->exit_reason) {
	case KVM_EXIT_FAIL_ENTRY:
		vcpu_fail(v, "exit %s, hardware reason %#llx, RIP %#" PRIx64, "fail_entry",
			  (unsigned long long)run->fail_entry.hardware_entry_failure_reason, rip);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		vcpu_fail(v, "exit internal_error, suberror %u, RIP %#" PRIx64,
			  run->internal.suberror, rip);
		break;
	case KVM_EXIT_MMIO:
		vcpu_fail(v, "exit mmio at guest-physical %#llx (outside RAM), RIP %#" PRIx64,
			  (unsigned long long)run->mmio.phys_addr, rip);
		break;
	default:
		vcpu_fail(v, "unexpected exit %u (%s), RIP %#" PRIx64, run->exit_reason,
			  exit_reason_name(run->exit_reason), rip);
		break;
	}
}

static void sleep_us(uint32_t us)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)us * 1000};

	nanosleep(&ts, NULL); /* EINTR: a pause is asking; the loop looks */
}

/*
 * One exit. @may_sleep is false while parking (finish the exit, never wait).
 * Return: 0 to go on, -1 when the vCPU failed.
 */
static int vcpu_handle_exit(struct tv_vcpu *v, struct kvm_run *run, bool may_sleep)
{
	struct tv_vm *vm = v->vm;
	uint32_t val;

	if (run->exit_reason == KVM_EXIT_INTR)
		return 0;
	if (run->exit_reason != KVM_EXIT_IO) {
		vcpu_fail_exit(v, run);
		return -1;
	}
	if (run->io.direction != KVM_EXIT_IO_OUT || run->io.size != 4 || run->io.count != 1 ||
	    run->io.data_offset > vm->kg.run_size - 4) {
		vcpu_fail(v, "unexpected I/O: port %#x, %s, size %u, count %u", run->io.port,
			  run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in", run->io.size,
			  run->io.count);
		return -1;
	}
	memcpy(&val, (uint8_t *)run + run->io.data_offset, 4);
	switch (run->io.port) {
	case TV_PORT_SLEEP:
		if (may_sleep)
			sleep_us(val < TV_SLEEP_MAX_US ? val : TV_SLEEP_MAX_US);
		return 0;
	case TV_PORT_FILL_DONE:
		if (val != v->idx) {
			vcpu_fail(v, "fill done reported for vCPU %u", val);
			return -1;
		}
		pthread_mutex_lock(&vm->lock);
		if (!v->fill_reported) {
			v->fill_reported = true;
			if (++vm->nfill_done == vm->kg.nvcpus)
				vm->fill_done_ns = tv_now_ns();
			pthread_cond_broadcast(&vm->cond);
		}
		pthread_mutex_unlock(&vm->lock);
		return 0;
	case TV_PORT_PANIC:
		vcpu_fail(v, "the guest panicked: %s (%u)", panic_name(val), val);
		return -1;
	default:
		vcpu_fail(v, "out to unknown port %#x, value %#x", run->io.port, val);
		return -1;
	}
}

/* Finish the pending exit, then wait for resume. Return: true on quit. */
static bool vcpu_park(struct tv_vcpu *v, struct kvm_run *run, int fd, bool *failed)
{
	struct tv_vm *vm = v->vm;
	bool quit;
	int i;

	/* KVM completes a pending `out` on entry, then sees immediate_exit. */
	for (i = 0; i < 4; i++) {
		__atomic_store_n(&run->immediate_exit, 1, __ATOMIC_RELEASE);
		if (ioctl(fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				break;
			vcpu_fail(v, "KVM_RUN (completing for pause): %s", strerror(errno));
			*failed = true;
			return true;
		}
		if (vcpu_handle_exit(v, run, false)) {
			*failed = true;
			return true;
		}
	}
	pthread_mutex_lock(&vm->lock);
	vm->nparked++;
	pthread_cond_broadcast(&vm->cond);
	while (vm->pause_req && !vm->quit)
		pthread_cond_wait(&vm->cond, &vm->lock);
	quit = vm->quit;
	if (!quit) {
		vm->nparked--;
		__atomic_store_n(&run->immediate_exit, 0, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&vm->lock);
	return quit;
}

static void *vcpu_main(void *arg)
{
	struct tv_vcpu *v = arg;
	struct tv_vm *vm = v->vm;
	struct kg_vcpu *kv = &vm->kg.vcpu[v->idx];
	struct kvm_run *run = kv->run;
	bool failed = false;

	for (;;) {
		if (__atomic_load_n(&vm->stop_req, __ATOMIC_ACQUIRE)) {
			if (vcpu_park(v, run, kv->fd, &failed))
				break;
			continue;
		}
		if (ioctl(kv->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			vcpu_fail(v, "KVM_RUN: %s", strerror(errno));
			failed = true;
			break;
		}
		if (vcpu_handle_exit(v, run, true)) {
			failed = true;
			break;
		}
	}
	if (failed) {
		/* an ended thread counts as parked: a pause must not wait for it */
		pthread_mutex_lock(&vm->lock);
		vm->nparked++;
		pthread_cond_broadcast(&vm->cond);
		pthread_mutex_unlock(&vm->lock);
	}
	return NULL;
}

/* ---- setup ----------------------------------------------------------------- */

static void mailbox_setup(struct tv_vm *vm)
{
	const struct tv_cfg *cfg = vm->cfg;
	struct tv_mailbox *mb = vm->mb;
	uint64_t work_pages = (cfg->ram - KG_WORK_GPA) / TV_PAGE_SIZE;
	uint64_t per = work_pages / cfg->vcpus, ws = cfg->dirty_ws / TV_PAGE_SIZE / cfg->vcpus;
	uint64_t rate = cfg->dirty_rate / cfg->vcpus;
	uint32_t i;

	mb->magic = TV_MAILBOX_MAGIC;
	mb->abi_version = TV_ABI_VERSION;
	mb->nvcpus = cfg->vcpus;
	mb->ram_size = cfg->ram;
	mb->fill = cfg->fill;
	mb->pattern = cfg->pattern;
	mb->zero_bp = cfg->zero_bp;
	mb->tsc_khz = vm->kg.tsc_khz;
	for (i = 0; i < cfg->vcpus; i++) {
		struct tv_vcpu_box *b = &mb->vcpu[i];
		bool last = i + 1 == cfg->vcpus;

		b->slice_gpa = KG_WORK_GPA + (uint64_t)i * per * TV_PAGE_SIZE;
		b->slice_pages = last ? work_pages - per * i : per;
		b->ws_pages = ws < b->slice_pages ? ws : b->slice_pages;
		/* the last vCPU takes the remainder, so the total is exact */
		b->dirty_rate = last ? cfg->dirty_rate - rate * i : rate;
		b->dirty_pages_max = cfg->dirty_pages / cfg->vcpus;
		if (cfg->dirty_pages && !b->dirty_pages_max)
			b->dirty_pages_max = 1;
		b->seed = TV_FILL_SEED ^ ((uint64_t)(i + 1) * 0xd1b54a32d192ed03ull);
	}
}

static int vm_caps(struct tv_vm *vm)
{
	int r;

	r = ioctl(vm->kg.vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE);
	if (r > 0) {
		vm->xsave_len = sizeof(struct kvm_xsave);
#ifdef KVM_CAP_XSAVE2
		r = ioctl(vm->kg.vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
		if (r > (int)sizeof(struct kvm_xsave)) {
			vm->xsave_len = (uint32_t)r;
			vm->xsave2 = true;
		}
#endif
	}
	vm->has_xcrs = ioctl(vm->kg.vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0;
	return 0;
}

int tv_vm_init(struct tv_vm *vm, const struct tv_cfg *cfg, bool source, struct tern_error *err)
{
	struct sigaction sa;
	uint32_t i;
	int ret;

	memset(vm, 0, sizeof(*vm));
	vm->cfg = cfg;
	/* what kg_vm_destroy() takes for "never opened", should we fail first */
	vm->kg.kvm_fd = vm->kg.vm_fd = -1;
	for (i = 0; i < KG_MAX_VCPUS; i++)
		vm->kg.vcpu[i].fd = -1;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	for (i = 0; i < KG_MAX_VCPUS; i++) {
		vm->vcpu[i].vm = vm;
		vm->vcpu[i].idx = i;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler; /* no SA_RESTART: the kick must interrupt */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL))
		return tv_err(err, -errno, "sigaction(SIGUSR1): %s", strerror(errno));

	ret = kg_vm_create(&vm->kg, cfg->ram, cfg->vcpus, err);
	if (ret)
		return ret;
	vm->mb = kg_gpa(&vm->kg, KG_MAILBOX_GPA);
	vm_caps(vm);
	if (!source)
		return 0; /* RAM stays untouched: it arrives with the migration */
	if (!vm->kg.tsc_khz)
		return tv_err(err, -ENODEV, "KVM reports no TSC frequency: the guest cannot pace");
	if (tv_guest_code_len > KG_CODE_MAX)
		return tv_err(err, -E2BIG, "guest code is %zu bytes, more than %llu",
			      tv_guest_code_len, KG_CODE_MAX);
	ret = kg_boot_setup(&vm->kg, tv_guest_code, tv_guest_code_len, err);
	if (ret)
		return ret;
	mailbox_setup(vm);
	for (i = 0; i < cfg->vcpus; i++) {
		ret = kg_vcpu_enter_long_mode(&vm->kg, i, KG_CODE_GPA, KG_MAILBOX_GPA, i, err);
		if (ret)
			return ret;
	}
	return 0;
}

void tv_vm_fini(struct tv_vm *vm)
{
	tv_vcpus_stop(vm);
	kg_vm_destroy(&vm->kg);
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->lock);
}

/* ---- control --------------------------------------------------------------- */

int tv_vcpus_start(struct tv_vm *vm, struct tern_error *err)
{
	uint32_t i;
	int ret;

	for (i = 0; i < vm->kg.nvcpus; i++) {
		struct tv_vcpu *v = &vm->vcpu[i];

		if (v->started)
			continue;
		ret = pthread_create(&v->thread, NULL, vcpu_main, v);
		if (ret)
			return tv_err(err, -ret, "starting vCPU %u's thread: %s", i, strerror(ret));
		pthread_mutex_lock(&vm->lock);
		v->started = true;
		vm->nstarted++;
		pthread_mutex_unlock(&vm->lock);
	}
	return 0;
}

/* Under ->lock: make every running thread look at stop_req soon. */
static void kick_all_locked(struct tv_vm *vm)
{
	uint32_t i;

	__atomic_store_n(&vm->stop_req, true, __ATOMIC_RELEASE);
	for (i = 0; i < vm->kg.nvcpus; i++) {
		if (!vm->vcpu[i].started)
			continue;
		__atomic_store_n(&vm->kg.vcpu[i].run->immediate_exit, 1, __ATOMIC_RELEASE);
		pthread_kill(vm->vcpu[i].thread, SIGUSR1);
	}
}

int tv_vcpus_pause(struct tv_vm *vm, struct tern_error *err)
{
	uint64_t deadline = tv_now_ns() + TV_PAUSE_TIMEOUT_MS * 1000000ull;
	struct timespec ts;
	int ret = 0;

	clock_gettime(CLOCK_REALTIME, &ts); /* pthread_cond_timedwait's clock */
	ts.tv_sec += TV_PAUSE_TIMEOUT_MS / 1000;
	pthread_mutex_lock(&vm->lock);
	vm->pause_req = true;
	kick_all_locked(vm);
	while (vm->nparked < vm->nstarted && tv_now_ns() < deadline)
		pthread_cond_timedwait(&vm->cond, &vm->lock, &ts);
	if (vm->fatal[0])
		ret = tv_err(err, -EIO, "cannot pause a failed guest: %s", vm->fatal);
	else if (vm->nparked < vm->nstarted)
		ret = tv_err(err, -ETIMEDOUT, "only %u of %u vCPUs paused within %u ms",
			     vm->nparked, vm->nstarted, TV_PAUSE_TIMEOUT_MS);
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

void tv_vcpus_resume(struct tv_vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->pause_req = false;
	__atomic_store_n(&vm->stop_req, vm->quit, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

void tv_vcpus_stop(struct tv_vm *vm)
{
	uint32_t i;

	pthread_mutex_lock(&vm->lock);
	vm->quit = true;
	kick_all_locked(vm);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	for (i = 0; i < vm->kg.nvcpus; i++) {
		if (vm->vcpu[i].started)
			pthread_join(vm->vcpu[i].thread, NULL);
		vm->vcpu[i].started = false;
	}
}

bool tv_vm_failed(struct tv_vm *vm, char *buf, size_t len)
{
	bool failed;

	pthread_mutex_lock(&vm->lock);
	failed = vm->fatal[0] != '\0';
	if (failed && buf)
		snprintf(buf, len, "%s", vm->fatal);
	pthread_mutex_unlock(&vm->lock);
	return failed;
}

bool tv_fill_done(struct tv_vm *vm, uint64_t *ret_ns)
{
	bool done;

	pthread_mutex_lock(&vm->lock);
	done = vm->nfill_done == vm->kg.nvcpus;
	if (done && ret_ns)
		*ret_ns = vm->fill_done_ns;
	pthread_mutex_unlock(&vm->lock);
	return done;
}

/* The guest writes these counters; aligned 64-bit loads are never torn. */
uint64_t tv_progress(struct tv_vm *vm)
{
	uint64_t sum = 0;
	uint32_t i;

	for (i = 0; i < vm->kg.nvcpus; i++)
		sum += __atomic_load_n(&vm->mb->vcpu[i].progress, __ATOMIC_RELAXED);
	return sum;
}
