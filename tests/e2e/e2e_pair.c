/* SPDX-License-Identifier: MIT */
/*
 * The e2e two-process harness: a forked destination that loads the
 * migration into fresh memory and reports back (its stats, its device
 * sections and its whole RAM) on a socketpair, and the source's setup:
 * RAM fill, session, device sections, the writer thread that stands in for
 * the guest, and the VMM callbacks that pause, resume and throttle it.
 *
 *   parent (source)                         child (destination)
 *   ---------------                         -------------------
 *   fill RAM (random, --zero-pct zero)      fresh untouched RAM, "ram0"
 *                                           sections "cpu"/0 v2 min1, "dev"/1 v1 min1
 *                              <-- URI ---  tern_incoming(), tern_incoming_uri()
 *   "ram0", same sections, writer thread
 *   tern_migrate() ... pause: writer parks
 *   save: counter at pause + derived bytes  load: keep what was read
 *   COMPLETED: the guest stays paused,      COMPLETED, resume called
 *   so RAM is frozen at switchover
 *                              <-- report -- stats, section contents, whole RAM
 *   memcmp chunk by chunk, compare sections
 *
 * Public API only (tern/tern.h), like a VMM.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tern/tern.h>

#include "e2e.h"

static const struct e2e_section section_templates[E2E_NSECTIONS] = {
    {.name = "cpu", .instance = 0, .version = 2, .min_version = 1, .salt = 0xc0ffee},
    {.name = "dev", .instance = 1, .version = 1, .min_version = 1, .salt = 0xdecade},
};

struct e2e_dst {
	struct e2e_section sec[E2E_NSECTIONS];
	bool resumed; /* load thread writes, main thread reads (atomics) */
};

static void log_to_stderr(void *opaque, int level, const char *msg)
{
	fprintf(stderr, "[%s lib] %s\n", (const char *)opaque, msg);
}

bool e2e_status_final(enum tern_status st)
{
	return st == TERN_STATUS_COMPLETED || st == TERN_STATUS_FAILED ||
	       st == TERN_STATUS_CANCELLED;
}

enum tern_status e2e_wait_final(struct tern_session *s, unsigned int timeout_s, bool *ret_timed_out)
{
	uint64_t deadline = e2e_now_ns() + (uint64_t)timeout_s * 1000000000ull;
	enum tern_status st;

	*ret_timed_out = false;
	for (;;) {
		st = tern_wait(s, 1000);
		if (e2e_status_final(st))
			return st;
		if (e2e_now_ns() > deadline)
			break;
	}
	*ret_timed_out = true;
	e2e_note("no end after %u s (status %s): cancelling", timeout_s, tern_status_name(st));
	tern_cancel(s);
	return tern_wait(s, 30000);
}

static int session_params(struct tern_session *s, const struct e2e_cfg *cfg, const char *side,
			  struct tern_error *err)
{
	int ret;

	tern_set_log_fn(s, log_to_stderr, (void *)side, cfg->log_level);
	ret = tern_param_set(s, "multifd-channels", cfg->channels, err);
	if (!ret)
		ret = tern_param_set(s, "downtime-limit", cfg->downtime_limit, err);
	if (!ret && cfg->max_bandwidth)
		ret = tern_param_set(s, "max-bandwidth", cfg->max_bandwidth, err);
	if (!ret && cfg->avail_switchover_bandwidth)
		ret = tern_param_set(s, "avail-switchover-bandwidth",
				     cfg->avail_switchover_bandwidth, err);
	if (!ret && cfg->verify)
		ret = tern_cap_set(s, "verify-ram", true, err);
	/* the destination follows the method the source's HELLO names */
	if (!ret && !strcmp(side, "src"))
		ret = tern_param_set_str(s, "multifd-compression", cfg->codec, err);
	if (!ret && cfg->xbzrle_cache)
		ret = tern_param_set(s, "xbzrle-cache-size", cfg->xbzrle_cache, err);
	if (!ret && cfg->rdma_pin_all)
		ret = tern_cap_set(s, "rdma-pin-all", true, err);
	if (!ret && cfg->rdma_pin_limit)
		ret = tern_param_set(s, "rdma-pin-limit", cfg->rdma_pin_limit, err);
	if (!ret && cfg->zero_copy_send && !strcmp(side, "src"))
		ret = tern_cap_set(s, "zero-copy-send", true, err);
	return ret;
}

/* ---- sections ----------------------------------------------------------- */

static void section_payload(struct e2e_section *sec, uint64_t counter)
{
	uint64_t rng = e2e_mix64(counter ^ sec->salt);

	sec->counter = counter;
	sec->len = 2048 + (uint32_t)(e2e_mix64(rng) % 4096);
	free(sec->data);
	sec->data = malloc(sec->len);
	if (sec->data)
		e2e_fill_random(sec->data, sec->len, &rng);
}

static int section_save(void *opaque, struct tern_section_writer *wr, struct tern_error *err)
{
	struct e2e_section *sec = opaque;
	int ret;

	sec->calls++;
	if (!e2e_writer_is_parked(sec->writer)) {
		snprintf(sec->err, sizeof(sec->err), "save(%s) called while the guest runs",
			 sec->name);
		return -EBUSY;
	}
	pthread_mutex_lock(&sec->writer->lock);
	section_payload(sec, sec->writer->paused_iter);
	pthread_mutex_unlock(&sec->writer->lock);
	if (!sec->data)
		return -ENOMEM;
	ret = tern_section_put_u64(wr, sec->counter);
	if (!ret)
		ret = tern_section_put_u32(wr, sec->len);
	if (!ret)
		ret = tern_section_put(wr, sec->data, sec->len);
	if (ret < 0)
		snprintf(sec->err, sizeof(sec->err), "save(%s): put: %s", sec->name,
			 strerror(-ret));
	return ret;
}

static int section_load(void *opaque, struct tern_section_reader *r, uint32_t version,
			struct tern_error *err)
{
	struct e2e_section *sec = opaque;
	uint64_t counter;
	uint32_t len;
	int ret;

	sec->calls++;
	sec->loaded_version = version;
	ret = tern_section_get_u64(r, &counter);
	if (!ret)
		ret = tern_section_get_u32(r, &len);
	if (ret < 0) {
		snprintf(sec->err, sizeof(sec->err), "load(%s): header: %s", sec->name,
			 strerror(-ret));
		return ret;
	}
	if (tern_section_remaining(r) != len) {
		snprintf(sec->err, sizeof(sec->err), "load(%s): length %u but %zu bytes remain",
			 sec->name, len, tern_section_remaining(r));
		return -EPROTO;
	}
	free(sec->data);
	sec->data = malloc(len ? len : 1);
	if (!sec->data)
		return -ENOMEM;
	ret = tern_section_get(r, sec->data, len);
	if (ret < 0) {
		snprintf(sec->err, sizeof(sec->err), "load(%s): get: %s", sec->name,
			 strerror(-ret));
		return ret;
	}
	sec->counter = counter;
	sec->len = len;
	return 0;
}

static const struct tern_section_ops section_ops = {
    .save = section_save,
    .load = section_load,
};

static int sections_register(struct tern_session *s, struct e2e_section *secs,
			     struct e2e_writer *writer, struct tern_error *err)
{
	int i, ret;

	for (i = 0; i < E2E_NSECTIONS; i++) {
		secs[i] = section_templates[i];
		secs[i].writer = writer;
		ret = tern_section_register(s, secs[i].name, secs[i].instance, secs[i].version,
					    secs[i].min_version, &section_ops, &secs[i], err);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* ---- destination (child) ------------------------------------------------ */

static void dst_resume(void *opaque)
{
	struct e2e_dst *d = opaque;

	__atomic_store_n(&d->resumed, true, __ATOMIC_RELEASE);
}

static int dst_send_report(int fd, struct e2e_dst *d, struct e2e_report *rep, const uint8_t *ram,
			   uint64_t size)
{
	uint64_t off;
	int i, ret;

	ret = e2e_write_full(fd, rep, sizeof(*rep));
	for (i = 0; !ret && i < E2E_NSECTIONS; i++)
		if (rep->sec[i].len)
			ret = e2e_write_full(fd, d->sec[i].data, rep->sec[i].len);
	/* reading untouched pages maps the shared zero page: nothing is allocated */
	for (off = 0; !ret && rep->ram_follows && off < size; off += E2E_CHUNK) {
		uint64_t n = size - off < E2E_CHUNK ? size - off : E2E_CHUNK;

		ret = e2e_write_full(fd, ram + off, n);
	}
	return ret;
}

static int run_destination(const struct e2e_cfg *cfg, int fd)
{
	static const struct tern_vmm_ops ops = {.resume = dst_resume};
	char uri[E2E_URI_MAX], bound[E2E_URI_MAX];
	struct e2e_report rep = {0};
	struct tern_error err = {0};
	struct tern_session *s = NULL;
	struct e2e_names names = {0};
	struct e2e_dst d;
	bool timed_out;
	uint64_t cpu0;
	uint8_t *ram;
	int i, ret;

	e2e_side = "dst";
	memset(&d, 0, sizeof(d));
	memset(&rep, 0, sizeof(rep));
	memset(bound, 0, sizeof(bound));
	rep.magic = E2E_REPORT_MAGIC;

	ram = e2e_ram_alloc(cfg->ram);
	if (!ram) {
		e2e_note("cannot allocate %" PRIu64 " bytes", cfg->ram);
		return 2;
	}
	/* fresh memory, deliberately not touched: the library lands pages in it */
	if (!strcmp(cfg->transport, "unix")) {
		snprintf(uri, sizeof(uri), "unix:/tmp/tern-e2e-%d.sock", (int)getpid());
		unlink(uri + 5);
	} else if (!strcmp(cfg->transport, "rdma")) {
		snprintf(uri, sizeof(uri),
			 strchr(cfg->rdma_addr, ':') ? "rdma:[%s]:0" : "rdma:%s:0", cfg->rdma_addr);
	} else {
		snprintf(uri, sizeof(uri), "tcp:127.0.0.1:0");
	}

	ret = tern_session_new(&ops, &d, &s, &err);
	if (!ret)
		ret = session_params(s, cfg, "dst", &err);
	if (!ret)
		ret = tern_ram_register(s, "ram0", ram, cfg->ram, NULL, &err);
	if (!ret)
		ret = sections_register(s, d.sec, NULL, &err);
	if (!ret)
		ret = e2e_names_start(&names);
	cpu0 = e2e_process_cpu_us();
	if (!ret)
		ret = tern_incoming(s, uri, &err);
	if (!ret)
		ret = tern_incoming_uri(s, bound, sizeof(bound));
	if (ret < 0) {
		e2e_note("setup failed: %s (%s)", err.msg[0] ? err.msg : "-", strerror(-ret));
		e2e_names_stop(&names);
		tern_session_free(s);
		return 2; /* the parent sees EOF instead of a URI */
	}
	bound[sizeof(bound) - 1] = '\0';
	if (e2e_write_full(fd, bound, sizeof(bound)) < 0) {
		e2e_names_stop(&names);
		tern_session_free(s);
		return 2;
	}

	/* the source's own guard fires first; this one only stops an orphan */
	e2e_wait_final(s, cfg->timeout_s + 30, &timed_out);
	rep.proc_cpu_us = e2e_process_cpu_us() - cpu0;
	e2e_names_stop(&names);
	e2e_names_list(&names, rep.names, sizeof(rep.names));
	tern_stats_get(s, &rep.stats);
	if (rep.stats.status == TERN_STATUS_COMPLETED) {
		/* resume may run just after the state changed; give it a moment */
		uint64_t until = e2e_now_ns() + 5000000000ull;

		while (!__atomic_load_n(&d.resumed, __ATOMIC_ACQUIRE) && e2e_now_ns() < until)
			usleep(1000);
	}
	rep.resumed = __atomic_load_n(&d.resumed, __ATOMIC_ACQUIRE);
	rep.ram_follows = rep.stats.status == TERN_STATUS_COMPLETED;
	for (i = 0; i < E2E_NSECTIONS; i++) {
		rep.sec[i].calls = d.sec[i].calls;
		rep.sec[i].version = d.sec[i].loaded_version;
		rep.sec[i].counter = d.sec[i].counter;
		rep.sec[i].len = d.sec[i].data ? d.sec[i].len : 0;
		if (d.sec[i].err[0] && !rep.msg[0])
			snprintf(rep.msg, sizeof(rep.msg), "%s", d.sec[i].err);
	}
	if (timed_out && !rep.msg[0])
		snprintf(rep.msg, sizeof(rep.msg), "destination timed out");
	ret = dst_send_report(fd, &d, &rep, ram, cfg->ram);
	if (ret < 0)
		e2e_note("sending the report: %s", strerror(-ret));

	tern_session_free(s);
	if (!strcmp(cfg->transport, "unix"))
		unlink(uri + 5);
	for (i = 0; i < E2E_NSECTIONS; i++)
		free(d.sec[i].data);
	munmap(ram, cfg->ram);
	return ret < 0 || rep.stats.status != TERN_STATUS_COMPLETED ? 1 : 0;
}

/* ---- source (parent) ---------------------------------------------------- */

static void ram_fill(uint8_t *ram, const struct e2e_cfg *cfg, struct e2e_fill_counts *c)
{
	uint64_t rng = e2e_mix64(cfg->seed);
	uint64_t zrng = e2e_mix64(cfg->seed ^ 0x5a5a5a5a);
	uint64_t thresh = (uint64_t)(cfg->zero_pct * 100.0 + 0.5); /* per 10000 */
	uint64_t i, ws_pages = cfg->ws / cfg->page_size;

	memset(c, 0, sizeof(*c));
	c->pages = cfg->ram / cfg->page_size;
	for (i = 0; i < c->pages; i++) {
		bool zero = thresh && e2e_xorshift64(&zrng) % 10000 < thresh;

		/* a partial-rewrite writer works on data pages only */
		if (cfg->dirty_bytes && i < ws_pages)
			zero = false;
		if (zero) {
			c->zero++;
			if (i >= ws_pages)
				c->zero_outside_ws++;
			continue;
		}
		e2e_fill_random(ram + i * cfg->page_size, cfg->page_size, &rng);
		if (i >= ws_pages)
			c->data_outside_ws++;
	}
}

static int src_pause(void *opaque, struct tern_error *err)
{
	struct e2e_src *src = opaque;

	e2e_writer_pause(&src->writer);
	return 0;
}

static void src_resume(void *opaque)
{
	struct e2e_src *src = opaque;

	e2e_writer_resume(&src->writer);
}

/* auto-converge: keep the writer off @percent % of the time, and log it */
static void src_throttle(void *opaque, unsigned int percent)
{
	struct e2e_src *src = opaque;
	unsigned int n = __atomic_load_n(&src->throttle_calls, __ATOMIC_RELAXED);

	e2e_writer_throttle(&src->writer, percent);
	if (n < E2E_MAX_THROTTLE_CALLS)
		src->throttle_pct[n] = percent;
	__atomic_store_n(&src->throttle_calls, n + 1, __ATOMIC_RELEASE);
}

const struct tern_vmm_ops e2e_src_ops = {
    .pause = src_pause,
    .resume = src_resume,
    .throttle = src_throttle,
};

static int read_uri(int fd, char *uri, size_t len)
{
	int ret = e2e_read_full(fd, uri, len);

	if (ret < 0)
		return ret;
	uri[len - 1] = '\0';
	return uri[0] ? 0 : -EPROTO;
}

int e2e_src_setup(struct e2e_src *src, const struct e2e_cfg *cfg, int fd)
{
	struct tern_error err = {0};
	int ret;

	e2e_side = "src";
	src->cfg = cfg;
	e2e_writer_init(&src->writer);
	src->ram = e2e_ram_alloc(cfg->ram);
	if (!src->ram) {
		e2e_note("cannot allocate %" PRIu64 " bytes", cfg->ram);
		return -1;
	}
	madvise(src->ram, cfg->ram, MADV_HUGEPAGE);
	ram_fill(src->ram, cfg, &src->fc);

	ret = read_uri(fd, src->uri, sizeof(src->uri));
	if (ret < 0) {
		e2e_note("the destination did not start (%s)", strerror(-ret));
		return -1;
	}

	ret = tern_session_new(&e2e_src_ops, src, &src->s, &err);
	if (!ret)
		ret = session_params(src->s, cfg, "src", &err);
	if (!ret)
		ret = tern_ram_register(src->s, "ram0", src->ram, cfg->ram, &src->block, &err);
	if (!ret)
		ret = sections_register(src->s, src->sec, &src->writer, &err);
	if (!ret) {
		src->writer.ram = src->ram;
		src->writer.ws = cfg->ws;
		src->writer.rate = cfg->dirty_rate;
		src->writer.page_size = cfg->page_size;
		src->writer.zero_one_in = cfg->no_zero_writes ? 0 : 4;
		src->writer.dirty_bytes = cfg->dirty_bytes;
		src->writer.max_writes = cfg->max_writes;
		src->writer.sequential = cfg->sequential;
		src->writer.block = src->block;
		src->writer.seed = e2e_mix64(cfg->seed ^ 0x77777777);
		ret = e2e_writer_start(&src->writer);
	}
	if (ret < 0) {
		e2e_note("setup failed: %s (%s)", err.msg[0] ? err.msg : "-", strerror(-ret));
		return -1;
	}
	return 0;
}

/* The destination did not complete: drain what it sent of its sections. */
static void skip_sections(struct e2e_src *src, int fd, const struct e2e_report *rep)
{
	uint8_t buf[4096];
	int i;

	for (i = 0; i < E2E_NSECTIONS; i++) {
		uint64_t left = rep->sec[i].len;

		while (left) {
			size_t n = left < sizeof(buf) ? (size_t)left : sizeof(buf);

			if (e2e_read_full(fd, buf, n) < 0)
				return;
			left -= n;
		}
	}
}

int e2e_src_report(struct e2e_src *src, int fd, struct e2e_report *rep, bool expect_complete)
{
	int ret = e2e_read_full(fd, rep, sizeof(*rep));

	if (ret < 0 || rep->magic != E2E_REPORT_MAGIC) {
		e2e_fail(&src->failures, "no report from the destination (%s)",
			 ret < 0 ? strerror(-ret) : "bad magic");
		rep->magic = 0;
		return -1;
	}
	if (!expect_complete) {
		if (rep->stats.status == TERN_STATUS_COMPLETED)
			e2e_fail(&src->failures, "the destination completed");
		if (rep->resumed)
			e2e_fail(&src->failures, "the destination's resume callback ran: two "
						 "guests would run");
		skip_sections(src, fd, rep);
		return 0;
	}
	if (rep->msg[0])
		e2e_fail(&src->failures, "destination: %s", rep->msg);
	if (rep->stats.status != TERN_STATUS_COMPLETED)
		e2e_fail(&src->failures, "destination ended %s: %s",
			 tern_status_name(rep->stats.status),
			 rep->stats.error[0] ? rep->stats.error : "(no message)");
	else if (!rep->resumed)
		e2e_fail(&src->failures, "destination completed but its resume callback never ran");
	if (src->cfg->verify && !rep->stats.verified)
		e2e_fail(&src->failures,
			 "verify-ram on but the destination did not report verified");
	e2e_compare_sections(src, fd, rep);
	if (rep->ram_follows)
		e2e_compare_ram(src, fd, src->ram);
	return 0;
}

void e2e_src_free(struct e2e_src *src)
{
	int i;

	/* the guest first (a cancelled migration left it writing, and its RAM
	 * block goes with the session), then the library's threads, whose
	 * callbacks find it stopped */
	e2e_writer_stop(&src->writer);
	tern_session_free(src->s);
	src->s = NULL;
	e2e_writer_destroy(&src->writer);
	for (i = 0; i < E2E_NSECTIONS; i++) {
		free(src->sec[i].data);
		src->sec[i].data = NULL;
	}
	if (src->ram)
		munmap(src->ram, src->cfg->ram);
	src->ram = NULL;
}

int e2e_run_pair(const struct e2e_cfg *cfg,
		 int (*source)(const struct e2e_cfg *cfg, int fd, pid_t child, void *arg),
		 void *arg, bool dst_must_complete)
{
	int sv[2], ret, status = 0;
	pid_t pid;

	signal(SIGPIPE, SIG_IGN);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		perror("socketpair");
		return 2;
	}
	fflush(NULL);
	pid = fork(); /* before any thread exists */
	if (pid < 0) {
		perror("fork");
		return 2;
	}
	if (pid == 0) {
		close(sv[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(run_destination(cfg, sv[1]));
	}
	close(sv[1]);
	{
		/* a hang guard for the report stream too */
		struct timeval tv = {.tv_sec = cfg->timeout_s + 60};

		setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	ret = source(cfg, sv[0], pid, arg);
	close(sv[0]);
	if (waitpid(pid, &status, 0) == pid && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		if (WIFSIGNALED(status)) {
			fprintf(stderr, "[src] destination killed by signal %d\n",
				WTERMSIG(status));
			if (!ret)
				ret = 1;
		} else if (dst_must_complete || WEXITSTATUS(status) > 1) {
			fprintf(stderr, "[src] destination exited with %d\n", WEXITSTATUS(status));
			if (!ret)
				ret = 1;
		}
	}
	return ret ? 1 : 0;
}
