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
 * Pause, resume, pause again works at any pace: libtern rehearses a pause
 * and a resume at setup, then pauses for switchover. A thread that has not
 * left the park when the next pause comes sees pause_req again and stays,
 * still counted in nparked.
 *
 * The throttle (libtern's auto-converge, tv_vm_throttle()): a thread of its
 * own cuts time into periods of 100 ms; at p % it lets the vCPUs run for
 * the first (100 - p) % of each period and holds them out for the rest:
 *   1. at the hold's start, under ->lock: hold_req = true, and the same kick
 *      as a pause (immediate_exit = 1, SIGUSR1), so that a vCPU busy in the
 *      guest, which may never exit on its own, comes out on time;
 *   2. each thread sees hold_req and waits on ->cond until the period ends
 *      (hold_req = false, broadcast), or a pause or quit wants it: those
 *      broadcast too, and it goes on to park or end;
 *   3. it adds the time it was held to its box's held_tsc, which the guest's
 *      pacing leaves out (guest/abi.h): time lost is not made up;
 *   4. before it runs the guest again it resets immediate_exit under ->lock,
 *      only when no pause, quit or hold wants it out: every writer of those
 *      flags sets immediate_exit under ->lock too, so no kick is lost, and a
 *      kick that came too late for its hold costs one empty KVM_RUN.
 * The throttle thread never touches pause_req: a paused vCPU stays parked
 * whatever the throttle does, and a cancelled (quit) VM is never held.
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
#define TV_THROTTLE_PERIOD_NS 100000000ull /* 100 ms */
#define TV_FILL_SEED 0x9e3779b97f4a7c15ull

extern const unsigned char tv_guest_code[];
extern const size_t tv_guest_code_len;

static void kick_handler(int sig)
{
	(void)sig;
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
	char msg[320];
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

/* An exit the guest did not ask for: say what, where, and the likely cause. */
static void vcpu_fail_exit(struct tv_vcpu *v, struct kvm_run *run)
{
	char why[320];

	if (kg_explain_fault(&v->vm->kg, v->idx, run->exit_reason, !v->exits, why, sizeof(why)))
		snprintf(why, sizeof(why), "unexpected exit %u (%s)", run->exit_reason,
			 kg_exit_name(run->exit_reason));
	vcpu_fail(v, "%s", why);
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
	v->exits++;
	switch (run->io.port) {
	case TV_PORT_SLEEP:
		/* a kick that came just before would not cut the sleep short */
		if (may_sleep && !__atomic_load_n(&vm->stop_req, __ATOMIC_ACQUIRE) &&
		    !__atomic_load_n(&vm->hold_req, __ATOMIC_ACQUIRE))
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

/* Step 4 of the throttle (and after any kick): run the guest again unless
 * a pause, a quit or a hold still wants this thread out. */
static void vcpu_rearm(struct tv_vm *vm, struct kvm_run *run)
{
	pthread_mutex_lock(&vm->lock);
	if (!vm->pause_req && !vm->quit && !vm->hold_req)
		__atomic_store_n(&run->immediate_exit, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&vm->lock);
}

/*
 * Add @tsc to a box's held_tsc. Guest RAM that libtern's workers may be
 * sending right now: that race is live migration's own, made right by
 * tern_ram_mark_dirty() after the write (the page goes again). ThreadSanitizer
 * cannot know that, so this one store is not instrumented.
 */
static __attribute__((no_sanitize_thread)) void held_add(struct tv_vcpu_box *box, uint64_t tsc)
{
	volatile uint64_t *h = &box->held_tsc;

	*h = *h + tsc; /* aligned: never torn; the guest (this vCPU) is out */
}

/* Held out by the throttle: steps 2 and 3 at the top of the file. */
static void vcpu_hold(struct tv_vcpu *v, struct kvm_run *run)
{
	struct tv_vm *vm = v->vm;
	struct tv_vcpu_box *box = &vm->mb->vcpu[v->idx];
	struct tern_ram_block *b;
	uint64_t t0 = tv_now_ns(), ns, tsc;

	pthread_mutex_lock(&vm->lock);
	while (vm->hold_req && !vm->pause_req && !vm->quit)
		pthread_cond_wait(&vm->cond, &vm->lock);
	if (!vm->pause_req && !vm->quit && !vm->hold_req)
		__atomic_store_n(&run->immediate_exit, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&vm->lock);
	ns = tv_now_ns() - t0;
	__atomic_add_fetch(&vm->held_ns, ns, __ATOMIC_RELAXED);
	tsc = ns / 1000 * vm->kg.tsc_khz / 1000;
	if (!tsc)
		return;
	/* KVM's dirty log does not see this write: tell libtern, after it */
	held_add(box, tsc);
	/* under the lock: tv_vm_set_block(vm, NULL) must not return while a
	 * mark is on its way to a block whose session is about to be freed */
	pthread_mutex_lock(&vm->lock);
	b = __atomic_load_n(&vm->block, __ATOMIC_ACQUIRE);
	if (b)
		tern_ram_mark_dirty(b, (uint64_t)((uint8_t *)&box->held_tsc - vm->kg.ram),
				    sizeof(box->held_tsc));
	pthread_mutex_unlock(&vm->lock);
}

static void *vcpu_main(void *arg)
{
	struct tv_vcpu *v = arg;
	struct tv_vm *vm = v->vm;
	struct kg_vcpu *kv = &vm->kg.vcpu[v->idx];
	struct kvm_run *run = kv->run;
	bool failed = false;
	char name[16];

	snprintf(name, sizeof(name), "vcpu/%u", v->idx);
	pthread_setname_np(pthread_self(), name);
	for (;;) {
		if (__atomic_load_n(&vm->stop_req, __ATOMIC_ACQUIRE)) {
			if (vcpu_park(v, run, kv->fd, &failed))
				break;
			continue;
		}
		if (__atomic_load_n(&vm->hold_req, __ATOMIC_ACQUIRE)) {
			vcpu_hold(v, run);
			continue;
		}
		if (ioctl(kv->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				vcpu_rearm(vm, run);
				continue;
			}
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
		b->dirty_rounds = cfg->dirty_rounds;
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
	pthread_condattr_t ca;
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
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* tv_now_ns()'s clock */
	pthread_cond_init(&vm->throttle_cond, &ca);
	pthread_condattr_destroy(&ca);
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
	if (!ret) /* the guest's ports, and no others */
		ret = kg_boot_allow_ports(&vm->kg, TV_PORT_FIRST, TV_PORT_COUNT, err);
	if (ret)
		return ret;
	mailbox_setup(vm);
	for (i = 0; i < cfg->vcpus; i++) {
		ret = kg_vcpu_enter_long_mode(&vm->kg, i, KG_CODE_GPA, KG_MAILBOX_GPA, i, err);
		if (ret)
			return ret;
	}
	if (vm->has_xcrs) {
		/* how many the "cpu" section will carry: its size hook says it */
		struct kvm_xcrs x;

		memset(&x, 0, sizeof(x));
		if (ioctl(vm->kg.vcpu[0].fd, KVM_GET_XCRS, &x) == 0 && x.nr_xcrs <= KVM_MAX_XCRS)
			vm->nxcrs = x.nr_xcrs;
	}
	return 0;
}

void tv_vm_fini(struct tv_vm *vm)
{
	tv_vcpus_stop(vm);
	kg_vm_destroy(&vm->kg);
	pthread_cond_destroy(&vm->throttle_cond);
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

/* Under ->lock: get every running thread out of KVM_RUN (or a guest's sleep) soon. */
static void kick_threads_locked(struct tv_vm *vm)
{
	uint32_t i;

	for (i = 0; i < vm->kg.nvcpus; i++) {
		if (!vm->vcpu[i].started)
			continue;
		__atomic_store_n(&vm->kg.vcpu[i].run->immediate_exit, 1, __ATOMIC_RELEASE);
		pthread_kill(vm->vcpu[i].thread, SIGUSR1);
	}
}

/* Under ->lock: make every running thread look at stop_req soon. */
static void kick_all_locked(struct tv_vm *vm)
{
	__atomic_store_n(&vm->stop_req, true, __ATOMIC_RELEASE);
	kick_threads_locked(vm);
	pthread_cond_broadcast(&vm->cond); /* a held thread waits there */
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
	bool throttling;
	uint32_t i;

	pthread_mutex_lock(&vm->lock);
	vm->quit = true;
	kick_all_locked(vm);
	pthread_cond_broadcast(&vm->cond);
	pthread_cond_signal(&vm->throttle_cond);
	throttling = vm->throttle_started; /* none starts after quit */
	pthread_mutex_unlock(&vm->lock);
	if (throttling) {
		pthread_join(vm->throttle_thread, NULL);
		vm->throttle_started = false;
	}
	for (i = 0; i < vm->kg.nvcpus; i++) {
		if (vm->vcpu[i].started)
			pthread_join(vm->vcpu[i].thread, NULL);
		vm->vcpu[i].started = false;
	}
}

/* ---- the throttle ------------------------------------------------------------ */

/* Under ->lock: start or end a hold (steps 1 and 2 at the top of the file). */
static void hold_set_locked(struct tv_vm *vm, bool on)
{
	if (vm->hold_req == on)
		return;
	__atomic_store_n(&vm->hold_req, on, __ATOMIC_RELEASE);
	if (on)
		kick_threads_locked(vm);
	else
		pthread_cond_broadcast(&vm->cond);
}

static void timespec_at(struct timespec *ts, uint64_t ns)
{
	ts->tv_sec = (time_t)(ns / 1000000000ull);
	ts->tv_nsec = (long)(ns % 1000000000ull);
}

/* The throttle thread: holds the vCPUs out for the last p % of each period. */
static void *throttle_main(void *arg)
{
	struct tv_vm *vm = arg;
	uint64_t start = tv_now_ns();

	pthread_setname_np(pthread_self(), "tv-throttle");
	pthread_mutex_lock(&vm->lock);
	while (!vm->quit) {
		uint64_t now = tv_now_ns(), off_at, until;
		uint32_t p = vm->throttle_pct;
		struct timespec ts;

		if (!p) {
			hold_set_locked(vm, false);
			pthread_cond_wait(&vm->throttle_cond, &vm->lock);
			start = tv_now_ns(); /* a new throttle starts with running */
			continue;
		}
		if (now - start >= TV_THROTTLE_PERIOD_NS)
			start += (now - start) / TV_THROTTLE_PERIOD_NS * TV_THROTTLE_PERIOD_NS;
		off_at = start + TV_THROTTLE_PERIOD_NS * (100 - p) / 100;
		hold_set_locked(vm, now >= off_at);
		until = now >= off_at ? start + TV_THROTTLE_PERIOD_NS : off_at;
		timespec_at(&ts, until);
		/* woken early by a new percentage or quit: the loop looks again */
		pthread_cond_timedwait(&vm->throttle_cond, &vm->lock, &ts);
	}
	hold_set_locked(vm, false);
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

/* libtern's throttle callback, on its migration thread. */
void tv_vm_throttle(struct tv_vm *vm, unsigned int percent)
{
	int ret;

	if (percent > 99)
		percent = 99; /* the guest must keep running */
	pthread_mutex_lock(&vm->lock);
	vm->throttle_pct = percent;
	if (percent > vm->throttle_max)
		vm->throttle_max = percent;
	if (percent && !vm->throttle_started && !vm->quit) {
		ret = pthread_create(&vm->throttle_thread, NULL, throttle_main, vm);
		if (ret)
			tv_log(vm->cfg, 3, "cannot start the throttle thread: %s", strerror(ret));
		else
			vm->throttle_started = true;
	}
	pthread_cond_signal(&vm->throttle_cond);
	pthread_mutex_unlock(&vm->lock);
}

void tv_throttle_stats(struct tv_vm *vm, uint32_t *ret_now, uint32_t *ret_max,
		       uint64_t *ret_held_ms)
{
	pthread_mutex_lock(&vm->lock);
	*ret_now = vm->throttle_pct;
	*ret_max = vm->throttle_max;
	pthread_mutex_unlock(&vm->lock);
	*ret_held_ms = __atomic_load_n(&vm->held_ns, __ATOMIC_RELAXED) / 1000000ull;
}

/*
 * Where the vCPU threads report their own writes. With NULL, before
 * tern_session_free(): the block dies with the session (tern.h, "Lifetime")
 * and the vCPUs run on. Under ->lock, so that once this returns no vCPU is
 * between loading the old block and marking it. The migration thread's own
 * reader (tv_rounds.c) needs no lock: the free joins it first.
 */
void tv_vm_set_block(struct tv_vm *vm, struct tern_ram_block *b)
{
	pthread_mutex_lock(&vm->lock);
	__atomic_store_n(&vm->block, b, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&vm->lock);
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
