/* SPDX-License-Identifier: MIT */
/*
 * e2e_migrate: one live migration over loopback between two processes, with
 * a guest that keeps writing, checked byte for byte.
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
 *   memcmp chunk by chunk, compare sections, check the stats
 *
 * The writer rewrites pseudo-random pages of the first --ws bytes, some with
 * random data and some with zeros (so pages go from data to zero), and calls
 * tern_ram_mark_dirty() after each write. The downtime limit is small so that
 * the migration needs several rounds; the test asserts --min-rounds.
 *
 * No timing assertion: the wall-clock limit (--timeout) is a hang guard.
 * Exit status: 0 pass, 1 fail (a setup error is a failure too), 2 bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <syslog.h>
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

static bool status_final(enum tern_status st)
{
	return st == TERN_STATUS_COMPLETED || st == TERN_STATUS_FAILED ||
	       st == TERN_STATUS_CANCELLED;
}

/* Wait for a final status; after @timeout_s, cancel. Returns the status. */
static enum tern_status wait_final(struct tern_session *s, unsigned int timeout_s,
				   bool *ret_timed_out)
{
	uint64_t deadline = e2e_now_ns() + (uint64_t)timeout_s * 1000000000ull;
	enum tern_status st;

	*ret_timed_out = false;
	for (;;) {
		st = tern_wait(s, 1000);
		if (status_final(st))
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
	if (!ret && cfg->verify)
		ret = tern_cap_set(s, "verify-ram", true, err);
	/* the destination follows the method the source's HELLO names */
	if (!ret && !strcmp(side, "src"))
		ret = tern_param_set_str(s, "multifd-compression", cfg->codec, err);
	if (!ret && cfg->xbzrle_cache)
		ret = tern_param_set(s, "xbzrle-cache-size", cfg->xbzrle_cache, err);
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
	struct e2e_dst d;
	bool timed_out;
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
		ret = tern_incoming(s, uri, &err);
	if (!ret)
		ret = tern_incoming_uri(s, bound, sizeof(bound));
	if (ret < 0) {
		e2e_note("setup failed: %s (%s)", err.msg[0] ? err.msg : "-", strerror(-ret));
		tern_session_free(s);
		return 2; /* the parent sees EOF instead of a URI */
	}
	bound[sizeof(bound) - 1] = '\0';
	if (e2e_write_full(fd, bound, sizeof(bound)) < 0) {
		tern_session_free(s);
		return 2;
	}

	/* the source's own guard fires first; this one only stops an orphan */
	wait_final(s, cfg->timeout_s + 30, &timed_out);
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

static int read_uri(int fd, char *uri, size_t len)
{
	int ret = e2e_read_full(fd, uri, len);

	if (ret < 0)
		return ret;
	uri[len - 1] = '\0';
	return uri[0] ? 0 : -EPROTO;
}

static int run_source(const struct e2e_cfg *cfg, int fd, pid_t child)
{
	static const struct tern_vmm_ops ops = {.pause = src_pause, .resume = src_resume};
	struct e2e_src src = {.cfg = cfg};
	struct e2e_fill_counts fc;
	struct e2e_report rep = {0};
	struct tern_error err = {0};
	struct tern_stats st = {0};
	struct tern_session *s = NULL;
	struct tern_ram_block *block = NULL;
	char uri[E2E_URI_MAX];
	uint64_t writes = 0;
	bool timed_out = false;
	uint8_t *ram;
	int i, ret;

	e2e_side = "src";
	e2e_writer_init(&src.writer);
	ram = e2e_ram_alloc(cfg->ram);
	if (!ram) {
		e2e_note("cannot allocate %" PRIu64 " bytes", cfg->ram);
		return 2;
	}
	madvise(ram, cfg->ram, MADV_HUGEPAGE);
	ram_fill(ram, cfg, &fc);

	ret = read_uri(fd, uri, sizeof(uri));
	if (ret < 0) {
		e2e_note("the destination did not start (%s)", strerror(-ret));
		return 2;
	}

	ret = tern_session_new(&ops, &src, &s, &err);
	if (!ret)
		ret = session_params(s, cfg, "src", &err);
	if (!ret)
		ret = tern_ram_register(s, "ram0", ram, cfg->ram, &block, &err);
	if (!ret)
		ret = sections_register(s, src.sec, &src.writer, &err);
	if (!ret) {
		src.writer.ram = ram;
		src.writer.ws = cfg->ws;
		src.writer.rate = cfg->dirty_rate;
		src.writer.page_size = cfg->page_size;
		src.writer.zero_one_in = 4;
		src.writer.dirty_bytes = cfg->dirty_bytes;
		src.writer.max_writes = cfg->max_writes;
		src.writer.block = block;
		src.writer.seed = e2e_mix64(cfg->seed ^ 0x77777777);
		ret = e2e_writer_start(&src.writer);
	}
	if (!ret)
		ret = tern_migrate(s, uri, &err);
	if (ret < 0) {
		e2e_note("setup failed: %s (%s)", err.msg[0] ? err.msg : "-", strerror(-ret));
		tern_session_free(s);
		e2e_writer_stop(&src.writer);
		kill(child, SIGKILL);
		return 2;
	}
	e2e_note("migrating %" PRIu64 " MiB to %s, %u channel(s), %" PRIu64
		 " zero pages, writer %" PRIu64 " B/s over %" PRIu64 " MiB",
		 cfg->ram >> 20, uri, cfg->channels, fc.zero, cfg->dirty_rate, cfg->ws >> 20);

	wait_final(s, cfg->timeout_s, &timed_out);
	tern_stats_get(s, &st);
	writes = __atomic_load_n(&src.writer.iter, __ATOMIC_RELAXED);
	if (timed_out) {
		e2e_fail(&src.failures, "no end after %u s: cancelled (status %s then)",
			 cfg->timeout_s, tern_status_name(st.status));
		kill(child, SIGKILL);
		goto out;
	}
	if (st.status != TERN_STATUS_COMPLETED)
		e2e_fail(&src.failures, "source ended %s: %s", tern_status_name(st.status),
			 st.error[0] ? st.error : "(no message)");
	if (src.writer.pauses != 1)
		e2e_fail(&src.failures, "pause called %u times, expected once", src.writer.pauses);
	if (st.status == TERN_STATUS_COMPLETED && src.writer.resumes)
		e2e_fail(&src.failures, "completed, yet the source guest was resumed %u time(s)",
			 src.writer.resumes);

	ret = e2e_read_full(fd, &rep, sizeof(rep));
	if (ret < 0 || rep.magic != E2E_REPORT_MAGIC) {
		e2e_fail(&src.failures, "no report from the destination (%s)",
			 ret < 0 ? strerror(-ret) : "bad magic");
		goto out;
	}
	if (rep.msg[0])
		e2e_fail(&src.failures, "destination: %s", rep.msg);
	if (rep.stats.status != TERN_STATUS_COMPLETED)
		e2e_fail(&src.failures, "destination ended %s: %s",
			 tern_status_name(rep.stats.status),
			 rep.stats.error[0] ? rep.stats.error : "(no message)");
	else if (!rep.resumed)
		e2e_fail(&src.failures, "destination completed but its resume callback never ran");
	if (cfg->verify && !rep.stats.verified)
		e2e_fail(&src.failures,
			 "verify-ram on but the destination did not report verified");
	e2e_compare_sections(&src, fd, &rep);
	if (rep.ram_follows)
		e2e_compare_ram(&src, fd, ram);
	if (st.status == TERN_STATUS_COMPLETED)
		e2e_check_stats(&src, &st, &fc, writes);
	if (st.status == TERN_STATUS_COMPLETED && rep.stats.status == TERN_STATUS_COMPLETED)
		e2e_check_codecs(&src, &st, &rep.stats);

out:
	/* join the library's threads first: no callback may run after this */
	tern_session_free(s);
	e2e_writer_stop(&src.writer);
	printf("e2e %s codec=%s channels=%u ram=%" PRIu64 "MiB zero=%g%%: %s status=%s/%s "
	       "rounds=%" PRIu64 " normal=%" PRIu64 " zero=%" PRIu64 " ram_transferred=%" PRIu64
	       " wire=%" PRIu64 " downtime=%" PRIu64 "ms total=%" PRIu64 "ms writes=%" PRIu64
	       " zero_writes=%" PRIu64 " paused_at=%" PRIu64 " failures=%u\n",
	       cfg->transport, cfg->codec, cfg->channels, cfg->ram >> 20, cfg->zero_pct,
	       src.failures ? "FAIL" : "PASS", tern_status_name(st.status),
	       tern_status_name(rep.magic == E2E_REPORT_MAGIC ? rep.stats.status
							      : TERN_STATUS_INVALID),
	       st.rounds, st.normal_pages, st.zero_pages, st.ram_transferred, st.wire_bytes,
	       st.downtime_ms, st.total_ms, writes, src.writer.zero_writes, src.writer.paused_iter,
	       src.failures);
	fflush(stdout);
	for (i = 0; i < E2E_NSECTIONS; i++)
		free(src.sec[i].data);
	munmap(ram, cfg->ram);
	return src.failures ? 1 : 0;
}

/* ---- main --------------------------------------------------------------- */

static void usage(FILE *f, const char *prog)
{
	fprintf(
	    f,
	    "usage: %s [options]\n"
	    "  --transport tcp|unix    (default tcp)\n"
	    "  --channels N            (default 2)\n"
	    "  --ram SIZE              (default 256M)\n"
	    "  --zero-pct P            pages left zero (default 30)\n"
	    "  --ws SIZE               writer working set (default 32M)\n"
	    "  --dirty-rate B/s        writer pace (default 64M; 0: idle guest)\n"
	    "  --downtime-limit MS     (default 5)\n"
	    "  --max-bandwidth B/s     (default unlimited)\n"
	    "  --min-rounds N          assert at least N rounds (default 3)\n"
	    "  --timeout S             cancel and fail after S s (default 120)\n"
	    "  --verify                verify-ram capability as well\n"
	    "  --seed N                fill seed (default 1)\n"
	    "  --codec NAME            multifd-compression: none (default), zlib, zstd, xbzrle, "
	    "auto\n"
	    "  --xbzrle-cache SIZE     xbzrle-cache-size\n"
	    "  --dirty-bytes N         the writer rewrites N bytes of a page, not all of it\n"
	    "                          (the working set then holds no zero page)\n"
	    "  --max-writes N          the writer stops after N page writes\n"
	    "  --expect-xbzrle-hits    assert XBZRLE hit rate > 50%% and wire bytes < page bytes\n"
	    "  -v / -q                 library log at LOG_DEBUG / LOG_WARNING (default LOG_INFO)\n",
	    prog);
}

static uint64_t opt_size(const char *opt, const char *arg)
{
	uint64_t v;

	if (e2e_parse_size(arg, &v)) {
		fprintf(stderr, "%s: bad size '%s'\n", opt, arg);
		exit(2);
	}
	return v;
}

static unsigned long opt_uint(const char *opt, const char *arg, unsigned long max)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(arg, &end, 0);
	if (errno || end == arg || *end || v > max) {
		fprintf(stderr, "%s: bad value '%s' (0..%lu)\n", opt, arg, max);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"transport", required_argument, NULL, 't'},
	    {"channels", required_argument, NULL, 'c'},
	    {"ram", required_argument, NULL, 'r'},
	    {"zero-pct", required_argument, NULL, 'z'},
	    {"ws", required_argument, NULL, 'w'},
	    {"dirty-rate", required_argument, NULL, 'd'},
	    {"downtime-limit", required_argument, NULL, 'D'},
	    {"max-bandwidth", required_argument, NULL, 'B'},
	    {"min-rounds", required_argument, NULL, 'R'},
	    {"timeout", required_argument, NULL, 'T'},
	    {"verify", no_argument, NULL, 'V'},
	    {"seed", required_argument, NULL, 's'},
	    {"codec", required_argument, NULL, 'C'},
	    {"xbzrle-cache", required_argument, NULL, 'X'},
	    {"dirty-bytes", required_argument, NULL, 'b'},
	    {"max-writes", required_argument, NULL, 'W'},
	    {"expect-xbzrle-hits", no_argument, NULL, 'H'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct e2e_cfg cfg = {
	    .transport = "tcp",
	    .channels = 2,
	    .ram = 256ull << 20,
	    .zero_pct = 30,
	    .ws = 32ull << 20,
	    .dirty_rate = 64ull << 20,
	    .downtime_limit = 5,
	    .timeout_s = 120,
	    .min_rounds = 3,
	    .seed = 1,
	    .log_level = LOG_INFO,
	    .codec = "none",
	};
	int sv[2], c, ret, status = 0;
	pid_t pid;

	while ((c = getopt_long(argc, argv, "vqh", longopts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (strcmp(optarg, "tcp") && strcmp(optarg, "unix")) {
				fprintf(stderr, "--transport: tcp or unix\n");
				return 2;
			}
			cfg.transport = optarg;
			break;
		case 'c':
			cfg.channels =
			    (unsigned int)opt_uint("--channels", optarg, TERN_MAX_CHANNELS);
			break;
		case 'r':
			cfg.ram = opt_size("--ram", optarg);
			break;
		case 'z': {
			char *end;

			cfg.zero_pct = strtod(optarg, &end);
			if (end == optarg || *end || cfg.zero_pct < 0 || cfg.zero_pct > 100) {
				fprintf(stderr, "--zero-pct: 0..100\n");
				return 2;
			}
			break;
		}
		case 'w':
			cfg.ws = opt_size("--ws", optarg);
			break;
		case 'd':
			cfg.dirty_rate = opt_size("--dirty-rate", optarg);
			break;
		case 'D':
			cfg.downtime_limit = opt_uint("--downtime-limit", optarg, 2000000);
			break;
		case 'B':
			cfg.max_bandwidth = opt_size("--max-bandwidth", optarg);
			break;
		case 'R':
			cfg.min_rounds = (unsigned int)opt_uint("--min-rounds", optarg, 1000000);
			break;
		case 'T':
			cfg.timeout_s = (unsigned int)opt_uint("--timeout", optarg, 86400);
			break;
		case 'V':
			cfg.verify = true;
			break;
		case 's':
			cfg.seed = opt_uint("--seed", optarg, ~0ul);
			break;
		case 'C':
			cfg.codec = optarg;
			break;
		case 'X':
			cfg.xbzrle_cache = opt_size("--xbzrle-cache", optarg);
			break;
		case 'b':
			cfg.dirty_bytes = opt_uint("--dirty-bytes", optarg, 65536);
			break;
		case 'W':
			cfg.max_writes = opt_uint("--max-writes", optarg, ~0ul);
			break;
		case 'H':
			cfg.expect_xbzrle_hits = true;
			break;
		case 'v':
			cfg.log_level = LOG_DEBUG;
			break;
		case 'q':
			cfg.log_level = LOG_WARNING;
			break;
		case 'h':
			usage(stdout, argv[0]);
			return 0;
		default:
			usage(stderr, argv[0]);
			return 2;
		}
	}
	cfg.page_size = (size_t)sysconf(_SC_PAGESIZE);
	if (!cfg.channels || !cfg.ram || cfg.ram % cfg.page_size) {
		fprintf(stderr, "--channels >= 1, --ram a non-zero multiple of %zu\n",
			cfg.page_size);
		return 2;
	}
	if (cfg.dirty_bytes >= cfg.page_size) {
		fprintf(stderr, "--dirty-bytes: less than a page (%zu)\n", cfg.page_size);
		return 2;
	}
	if (cfg.ws > cfg.ram)
		cfg.ws = cfg.ram;
	cfg.ws -= cfg.ws % cfg.page_size;

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
		_exit(run_destination(&cfg, sv[1]));
	}
	close(sv[1]);
	{
		/* a hang guard for the report stream too */
		struct timeval tv = {.tv_sec = cfg.timeout_s + 60};

		setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	ret = run_source(&cfg, sv[0], pid);
	close(sv[0]);
	if (waitpid(pid, &status, 0) == pid && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		if (WIFSIGNALED(status))
			fprintf(stderr, "[src] destination killed by signal %d\n",
				WTERMSIG(status));
		else
			fprintf(stderr, "[src] destination exited with %d\n", WEXITSTATUS(status));
		if (!ret)
			ret = 1;
	}
	return ret ? 1 : 0;
}
