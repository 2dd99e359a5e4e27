/* SPDX-License-Identifier: MIT */
/*
 * The fault tests' harness; see fault_util.h. Assertions here run on the
 * test's main thread only (cmocka longjmps out of a failed check); the
 * callbacks that run on the library's threads only count and signal.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "fault_util.h"

/* ---- guest RAM --------------------------------------------------------------- */

void guarded_ram_alloc(struct guarded_ram *r, size_t size)
{
	uint8_t *m;

	memset(r, 0, sizeof(*r));
	r->map_len = size + 2 * (size_t)GUARD_SIZE;
	m = mmap(NULL, r->map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(m != MAP_FAILED);
	assert_rc_equal(mprotect(m + GUARD_SIZE, size, PROT_READ | PROT_WRITE), 0);
	r->map = m;
	r->host = m + GUARD_SIZE;
	r->size = size;
}

void guarded_ram_free(struct guarded_ram *r)
{
	if (r->map)
		munmap(r->map, r->map_len);
	memset(r, 0, sizeof(*r));
}

void ram_fill_pattern(uint8_t *p, size_t size, uint32_t seed)
{
	uint64_t x = 0x9e3779b97f4a7c15ull ^ seed;
	size_t i;

	for (i = 0; i + 8 <= size; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
	/* xorshift never yields 0, so no page is all zero */
}

bool ram_is_zero(const uint8_t *p, size_t size)
{
	size_t i;

	for (i = 0; i < size; i++)
		if (p[i])
			return false;
	return true;
}

/* ---- the VMM stand-in ------------------------------------------------------- */

static int probe_pause(void *opaque, struct tern_error *err)
{
	struct vmm_probe *p = opaque;

	pthread_mutex_lock(&p->lock);
	p->pauses++;
	p->in_pause = true;
	pthread_cond_broadcast(&p->cond);
	while (p->hold_pause && !p->pause_release)
		pthread_cond_wait(&p->cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static void probe_resume(void *opaque)
{
	struct vmm_probe *p = opaque;

	pthread_mutex_lock(&p->lock);
	p->resumes++;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static void probe_state(void *opaque, enum tern_status from, enum tern_status to)
{
	struct vmm_probe *p = opaque;

	fprintf(stderr, "[%s] %s -> %s\n", p->side, tern_status_name(from), tern_status_name(to));
}

const struct tern_vmm_ops probe_ops = {
    .pause = probe_pause,
    .resume = probe_resume,
    .state_changed = probe_state,
};

void probe_init(struct vmm_probe *p, const char *side)
{
	memset(p, 0, sizeof(*p));
	p->side = side;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
}

void probe_fini(struct vmm_probe *p)
{
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
}

unsigned int probe_pauses(struct vmm_probe *p)
{
	unsigned int n;

	pthread_mutex_lock(&p->lock);
	n = p->pauses;
	pthread_mutex_unlock(&p->lock);
	return n;
}

unsigned int probe_resumes(struct vmm_probe *p)
{
	unsigned int n;

	pthread_mutex_lock(&p->lock);
	n = p->resumes;
	pthread_mutex_unlock(&p->lock);
	return n;
}

static void deadline_in(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

bool probe_wait_in_pause(struct vmm_probe *p, int timeout_ms)
{
	struct timespec ts;
	bool in;
	int rc = 0;

	deadline_in(&ts, timeout_ms);
	pthread_mutex_lock(&p->lock);
	while (!p->in_pause && rc == 0)
		rc = pthread_cond_timedwait(&p->cond, &p->lock, &ts);
	in = p->in_pause;
	pthread_mutex_unlock(&p->lock);
	return in;
}

void probe_release_pause(struct vmm_probe *p)
{
	pthread_mutex_lock(&p->lock);
	p->pause_release = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

/* ---- sections ---------------------------------------------------------------- */

static int sec_save(void *opaque, struct tern_section_writer *w, struct tern_error *err)
{
	const struct sec_spec *ss = opaque;
	int ret;

	if (ss->fail_save) {
		if (err && !err->code) {
			err->code = -EIO;
			snprintf(err->msg, sizeof(err->msg), "%s", FAULT_SAVE_MSG);
		}
		return -EIO;
	}
	ret = tern_section_put_u32(w, ss->version);
	if (!ret)
		ret = tern_section_put_u64(w, 0x5ec7105ec7105ec7ull);
	return ret;
}

static int sec_load(void *opaque, struct tern_section_reader *r, uint32_t version,
		    struct tern_error *err)
{
	uint8_t buf[256];

	while (tern_section_remaining(r)) {
		size_t n = tern_section_remaining(r);

		if (n > sizeof(buf))
			n = sizeof(buf);
		if (tern_section_get(r, buf, n))
			return -EPROTO;
	}
	return 0;
}

static const struct tern_section_ops sec_ops = {
    .save = sec_save,
    .load = sec_load,
};

/* ---- sessions -------------------------------------------------------------- */

static void log_stderr(void *opaque, int level, const char *msg)
{
	fprintf(stderr, "[%s lib] %s\n", (const char *)opaque, msg);
}

static int log_level(void)
{
	const char *e = getenv("FAULT_LOG");

	return e ? atoi(e) : LOG_ERR;
}

void peer_new(struct peer *p, bool source, const struct ram_spec *rs, unsigned int nram,
	      const struct sec_spec *ss, unsigned int nsecs)
{
	struct tern_error err = {0};
	unsigned int i;

	memset(p, 0, sizeof(*p));
	assert_true(nram <= PEER_MAX_RAM && nsecs <= PEER_MAX_SECS);
	probe_init(&p->probe, source ? "src" : "dst");
	assert_rc_equal(tern_session_new(&probe_ops, &p->probe, &p->s, &err), 0);
	tern_set_log_fn(p->s, log_stderr, source ? "src" : "dst", log_level());
	for (i = 0; i < nram; i++) {
		guarded_ram_alloc(&p->ram[i], rs[i].size);
		if (source)
			ram_fill_pattern(p->ram[i].host, rs[i].size, i + 1);
		if (tern_ram_register(p->s, rs[i].name, p->ram[i].host, rs[i].size, &p->blocks[i],
				      &err))
			fail_msg("tern_ram_register: %s", err.msg);
		p->nram++;
	}
	for (i = 0; i < nsecs; i++) {
		p->secs[i] = ss[i];
		if (tern_section_register(p->s, ss[i].name, ss[i].instance, ss[i].version,
					  ss[i].min_version, &sec_ops, &p->secs[i], &err))
			fail_msg("tern_section_register: %s", err.msg);
		p->nsecs++;
	}
}

void peer_param(struct peer *p, const char *name, uint64_t v)
{
	struct tern_error err = {0};

	if (tern_param_set(p->s, name, v, &err))
		fail_msg("tern_param_set %s: %s", name, err.msg);
}

void peer_listen(struct peer *p, const char *listen_uri)
{
	struct tern_error err = {0};

	if (tern_incoming(p->s, listen_uri, &err))
		fail_msg("tern_incoming %s: %s", listen_uri, err.msg);
	assert_rc_equal(tern_incoming_uri(p->s, p->uri, sizeof(p->uri)), 0);
	fprintf(stderr, "[dst] listening on %s\n", p->uri);
}

void peer_free(struct peer *p)
{
	unsigned int i;

	tern_session_free(p->s);
	p->s = NULL;
	for (i = 0; i < p->nram; i++)
		guarded_ram_free(&p->ram[i]);
	p->nram = 0;
	probe_fini(&p->probe);
}

static uint64_t ones[(64u << 20) / 4096 / 64];

static int dirty_sync(void *opaque, struct tern_error *err)
{
	struct peer *p = opaque;
	unsigned int i;
	int ret;

	for (i = 0; i < p->nram; i++) {
		uint64_t npages = tern_ram_block_size(p->blocks[i]) / (uint64_t)getpagesize();

		if (npages > sizeof(ones) * 8)
			npages = sizeof(ones) * 8;
		ret = tern_dirty_report(p->blocks[i], 0, ones, npages);
		if (ret)
			return ret;
	}
	return 0;
}

static const struct tern_dirty_source_ops always_dirty_ops = {
    .name = "always-dirty",
    .sync = dirty_sync,
};

void peer_add_always_dirty(struct peer *p)
{
	struct tern_error err = {0};

	memset(ones, 0xff, sizeof(ones));
	if (tern_dirty_source_add(p->s, &always_dirty_ops, p, &err))
		fail_msg("tern_dirty_source_add: %s", err.msg);
}

static bool final(enum tern_status st)
{
	return st == TERN_STATUS_COMPLETED || st == TERN_STATUS_FAILED ||
	       st == TERN_STATUS_CANCELLED;
}

void peer_wait_final(struct peer *p, struct tern_stats *st)
{
	enum tern_status s = tern_wait(p->s, FAULT_WAIT_MS);

	if (!final(s))
		fail_msg("%s: still %s after %d ms", p->probe.side, tern_status_name(s),
			 FAULT_WAIT_MS);
	tern_stats_get(p->s, st);
}

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

bool peer_wait_status(struct peer *p, enum tern_status want, int timeout_ms)
{
	struct tern_stats st;
	int waited;

	for (waited = 0; waited <= timeout_ms; waited += 5) {
		tern_stats_get(p->s, &st);
		if (st.status == want)
			return true;
		if (final(st.status))
			return false;
		sleep_ms(5);
	}
	return false;
}

bool peer_wait_transferred(struct peer *p, uint64_t bytes, int timeout_ms)
{
	struct tern_stats st;
	int waited;

	for (waited = 0; waited <= timeout_ms; waited += 5) {
		tern_stats_get(p->s, &st);
		if (st.ram_transferred >= bytes)
			return true;
		if (final(st.status))
			return false;
		sleep_ms(5);
	}
	return false;
}

bool peer_wait_channel_joined(struct peer *p, uint32_t index, int timeout_ms)
{
	struct tern_stats st;
	int waited;

	for (waited = 0; waited <= timeout_ms; waited += 5) {
		tern_stats_get(p->s, &st);
		if (st.channel_wire_bytes[index]) /* its hello, counted at the join */
			return true;
		if (final(st.status))
			return false;
		sleep_ms(5);
	}
	return false;
}

void expect_final(struct peer *p, enum tern_status want, const char *needle)
{
	struct tern_stats st;

	peer_wait_final(p, &st);
	fprintf(stderr, "[%s] ended %s: %s\n", p->probe.side, tern_status_name(st.status),
		st.error);
	if (st.status != want)
		fail_msg("%s: status %s, expected %s (error: %s)", p->probe.side,
			 tern_status_name(st.status), tern_status_name(want), st.error);
	assert_str_contains(st.error, needle);
}

void unix_uri(char *buf, size_t len)
{
	static unsigned int n;

	snprintf(buf, len, "unix:/tmp/tern-fault-%d-%u.sock", (int)getpid(), n++);
}

/* ---- running one case ------------------------------------------------------ */

static int count_threads(void)
{
	struct dirent *e;
	DIR *d = opendir("/proc/self/task");
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/*
 * Threads that may run after a case: main, and under ThreadSanitizer its
 * background thread, which it starts at the first pthread_create().
 */
#if defined(__SANITIZE_THREAD__)
#define TSAN_ON 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN_ON 1
#endif
#endif
#ifdef TSAN_ON
static const int baseline_threads = 2;
#else
static const int baseline_threads = 1;
#endif

int fault_teardown(void **state)
{
	int i, n = count_threads();

	/* A joined thread may take a moment to leave the task list. */
	for (i = 0; i < 100 && n > baseline_threads; i++) {
		sleep_ms(10);
		n = count_threads();
	}
	if (n > baseline_threads) {
		fprintf(stderr, "fault: %d threads still run after the case\n",
			n - baseline_threads);
		return -1;
	}
	return 0;
}

static void watchdog(int sig)
{
	static const char msg[] = "fault: watchdog: the case hung, failing it\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing more to do */
	}
	_exit(1);
}

int fault_main(const char *group, const struct CMUnitTest *tests, size_t ntests, int argc,
	       char **argv)
{
	size_t i;

	signal(SIGALRM, watchdog);
	alarm(FAULT_WATCHDOG_S);
	if (argc < 2)
		return _cmocka_run_group_tests(group, tests, ntests, NULL, NULL);
	for (i = 0; i < ntests; i++)
		if (!strcmp(tests[i].name, argv[1]))
			return _cmocka_run_group_tests(argv[1], &tests[i], 1, NULL, NULL);
	fprintf(stderr, "%s: no case named '%s'; cases:\n", group, argv[1]);
	for (i = 0; i < ntests; i++)
		fprintf(stderr, "  %s\n", tests[i].name);
	return 2;
}
