/* SPDX-License-Identifier: MIT */
/*
 * One migration side of tern-loopback: a session set up from the options,
 * the source (fill, writer, tern_migrate()) or the destination (fresh
 * memory, tern_incoming()), the wait for the end with the --timeout cancel,
 * and the checks that turn the final stats into an exit status. Each runs
 * alone (--migrate-to, --incoming) or in one of the two processes of the
 * default mode.
 *
 * The destination allocates fresh memory and never touches it: landing
 * pages into untouched memory fast is part of what is measured. Only the
 * library decides how that memory is advised.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <syslog.h>
#include <unistd.h>

#include "lb.h"

struct lb_dest_ctx {
	bool resumed; /* set on the load thread, read after tern_wait() */
	/* postcopy: the destination's guest, started when it resumes -- while
	 * pages are still missing, so it faults on them */
	struct lb_writer guest;
	int guest_err;
};

static void dst_resume(void *opaque)
{
	struct lb_dest_ctx *d = opaque;

	if (d->guest.ram)
		d->guest_err = lb_writer_start(&d->guest);
	__atomic_store_n(&d->resumed, true, __ATOMIC_RELEASE);
}

static bool status_final(enum tern_status st)
{
	return st == TERN_STATUS_COMPLETED || st == TERN_STATUS_FAILED ||
	       st == TERN_STATUS_CANCELLED;
}

/* Wait for the end, cancelling after --timeout. Returns the final status. */
static enum tern_status wait_final(struct tern_session *s, const struct lb_cfg *cfg,
				   const char *side, uint64_t postcopy_at_ns, bool *ret_timed_out)
{
	uint64_t deadline = cfg->timeout_s ? lb_now_ns() + cfg->timeout_s * 1000000000ull : 0;
	enum tern_status st;

	*ret_timed_out = false;
	for (;;) {
		int ms = 1000;

		if (postcopy_at_ns) {
			uint64_t now = lb_now_ns();

			if (now >= postcopy_at_ns) {
				struct tern_error err = {0};

				postcopy_at_ns = 0;
				if (tern_postcopy_start(s, &err) && err.msg[0])
					fprintf(stderr, "%s: %s: %s\n", lb_prog, side, err.msg);
			} else if ((postcopy_at_ns - now) / 1000000 < (uint64_t)ms) {
				ms = (int)((postcopy_at_ns - now) / 1000000) + 1;
			}
		}
		st = tern_wait(s, ms);
		if (status_final(st))
			return st;
		if (deadline && lb_now_ns() > deadline)
			break;
	}
	fprintf(stderr, "%s: %s: no end after %u s (status %s), cancelling\n", lb_prog, side,
		cfg->timeout_s, tern_status_name(st));
	*ret_timed_out = true;
	tern_cancel(s);
	return tern_wait(s, 30000);
}

static int session_setup(struct tern_session *s, const struct lb_cfg *cfg, const char *side,
			 struct tern_error *err)
{
	int ret;

	if (cfg->log_level >= 0)
		tern_set_log_fn(s, lb_log_to_stderr, (void *)side, cfg->log_level);
	ret = tern_param_set(s, "multifd-channels", cfg->channels, err);
	if (!ret && cfg->downtime_limit)
		ret = tern_param_set(s, "downtime-limit", cfg->downtime_limit, err);
	if (!ret && cfg->max_bandwidth)
		ret = tern_param_set(s, "max-bandwidth", cfg->max_bandwidth, err);
	if (!ret && cfg->avail_switchover_bandwidth)
		ret = tern_param_set(s, "avail-switchover-bandwidth",
				     cfg->avail_switchover_bandwidth, err);
	if (!ret && cfg->verify)
		ret = tern_cap_set(s, "verify-ram", true, err);
	if (!ret && cfg->postcopy)
		ret = tern_cap_set(s, "postcopy-ram", true, err);
	if (!ret && cfg->pc_recover_timeout_ms)
		ret =
		    tern_param_set(s, "postcopy-recover-timeout", cfg->pc_recover_timeout_ms, err);
	if (!ret && cfg->io_timeout_ms)
		ret = tern_param_set(s, "io-timeout", cfg->io_timeout_ms, err);
	/* the destination follows what the source's HELLO says */
	if (!ret && !strcmp(side, "src"))
		ret = tern_param_set_str(s, "multifd-compression", cfg->codec, err);
	if (!ret && cfg->zlib_level)
		ret = tern_param_set(s, "multifd-zlib-level", cfg->zlib_level, err);
	if (!ret && cfg->zstd_level)
		ret = tern_param_set(s, "multifd-zstd-level", cfg->zstd_level, err);
	if (!ret && cfg->xbzrle_cache)
		ret = tern_param_set(s, "xbzrle-cache-size", cfg->xbzrle_cache, err);
	if (!ret && cfg->rdma_pin_all)
		ret = tern_cap_set(s, "rdma-pin-all", true, err);
	if (!ret && cfg->rdma_pin_limit)
		ret = tern_param_set(s, "rdma-pin-limit", cfg->rdma_pin_limit, err);
	if (strcmp(side, "src"))
		return ret;
	if (!ret && cfg->zero_copy_send)
		ret = tern_cap_set(s, "zero-copy-send", true, err);
	if (!ret)
		ret = converge_opts_apply(s, &cfg->conv, err);
	return ret;
}

const char *lb_uri_transport(const char *uri)
{
	if (!strncmp(uri, "unix:", 5))
		return "unix";
	if (!strncmp(uri, "rdma:", 5))
		return "rdma";
	return "tcp";
}

/*
 * The destination. @uri_fd: where to send the bound URI (-1: print it on
 * stderr); @mgmt: its management socket, or NULL. Returns the exit status.
 */
int lb_run_destination(const struct lb_cfg *cfg, const char *uri, int uri_fd, const char *mgmt)
{
	static const struct tern_vmm_ops ops = {.resume = dst_resume};
	struct lb_dest_ctx ctx = {0};
	struct tern_error err = {0};
	struct tern_stats st = {0};
	struct tern_session *s = NULL;
	char bound[LB_URI_MAX] = "";
	bool timed_out = false;
	const char *msg = NULL;
	uint8_t *ram;
	int ret;

	ram = lb_ram_alloc(cfg->ram);
	if (!ram)
		lb_die("destination: cannot allocate %" PRIu64 " bytes", cfg->ram);
	/* fresh memory: not touched here, the library advises it */
	pthread_mutex_init(&ctx.guest.lock, NULL);
	pthread_cond_init(&ctx.guest.cond, NULL);
	if (cfg->postcopy) {
		ctx.guest.ram = ram;
		ctx.guest.ws = (cfg->dirty_ws < cfg->ram ? cfg->dirty_ws : cfg->ram);
		ctx.guest.ws -= ctx.guest.ws % cfg->page_size;
		ctx.guest.rate = cfg->dirty_rate;
		ctx.guest.page_size = cfg->page_size;
		ctx.guest.fill = cfg->fill;
		ctx.guest.read_only = cfg->dest_read;
		ctx.guest.seed =
		    (cfg->seed ? cfg->seed : 0x2545f4914f6cdd1dull) ^ 0x9e3779b97f4a7c15ull;
	}
	ret = tern_session_new(&ops, &ctx, &s, &err);
	if (!ret)
		ret = session_setup(s, cfg, "dst", &err);
	if (!ret)
		ret = tern_ram_register(s, "ram0", ram, cfg->ram, NULL, &err);
	lb_cpu_mark();
	if (!ret)
		ret = tern_incoming(s, uri, &err);
	if (!ret)
		ret = tern_incoming_uri(s, bound, sizeof(bound));
	if (!ret && mgmt)
		ret = tern_mgmt_listen(s, mgmt, &err);
	if (ret < 0) {
		if (!err.code)
			snprintf(err.msg, sizeof(err.msg), "destination setup: %s", strerror(-ret));
		if (uri_fd >= 0)
			close(uri_fd);
		st.status = TERN_STATUS_FAILED;
		lb_print_json("destination", lb_uri_transport(uri), cfg, &st, NULL, err.msg);
		tern_session_free(s);
		return 1;
	}
	if (uri_fd >= 0) {
		size_t len = strlen(bound) + 1;

		if (write(uri_fd, bound, len) != (ssize_t)len)
			perror("write uri");
		close(uri_fd);
	} else {
		fprintf(stderr, "%s: listening on %s\n", lb_prog, bound);
	}

	wait_final(s, cfg, "destination", 0, &timed_out);
	tern_stats_get(s, &st);
	/* The session first: a postcopy that failed leaves the guest waiting
	 * in a fault on a page that will not come, and only the session's
	 * end (userfaultfd unregistered) lets it go. It calls nothing of the
	 * library's, so it may outlive the session. */
	tern_session_free(s);
	s = NULL;
	lb_writer_stop(&ctx.guest);
	if (timed_out)
		msg = "timed out";
	else if (st.status == TERN_STATUS_COMPLETED &&
		 !__atomic_load_n(&ctx.resumed, __ATOMIC_ACQUIRE))
		msg = "completed but the resume callback was not called";
	else if (ctx.guest_err)
		msg = "the destination's guest thread did not start";
	lb_print_json("destination", lb_uri_transport(bound), cfg, &st,
		      cfg->postcopy ? &ctx.guest : NULL, msg);
	tern_session_free(s);
	lb_writer_fini(&ctx.guest);
	if (!strncmp(bound, "unix:", 5))
		unlink(bound + 5);
	munmap(ram, cfg->ram);
	return lb_side_ok(&st, cfg) && !msg ? 0 : 1;
}

int lb_run_source(const struct lb_cfg *cfg, const char *uri)
{
	static const struct tern_vmm_ops ops = {
	    .pause = lb_writer_pause, .resume = lb_writer_resume, .throttle = lb_writer_throttle};
	struct lb_writer w = {0};
	struct tern_error err = {0};
	struct tern_stats st = {0};
	struct tern_session *s = NULL;
	struct tern_ram_block *block = NULL;
	char mgmt_err[sizeof(err.msg) + 16] = "";
	bool timed_out = false;
	const char *msg = NULL;
	uint64_t t_migrate;
	uint8_t *ram;
	int ret;

	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	ram = lb_ram_alloc(cfg->ram);
	if (!ram)
		lb_die("source: cannot allocate %" PRIu64 " bytes", cfg->ram);
	madvise(ram, cfg->ram, MADV_HUGEPAGE);
	lb_ram_fill(ram, cfg);

	ret = tern_session_new(&ops, &w, &s, &err);
	if (!ret)
		ret = session_setup(s, cfg, "src", &err);
	if (!ret)
		ret = tern_ram_register(s, "ram0", ram, cfg->ram, &block, &err);
	if (!ret) {
		w.ram = ram;
		w.ws = cfg->dirty_ws < cfg->ram ? cfg->dirty_ws : cfg->ram;
		w.ws -= w.ws % cfg->page_size;
		w.rate = cfg->dirty_rate;
		w.page_size = cfg->page_size;
		w.fill = cfg->fill;
		w.dirty_bytes = cfg->dirty_bytes;
		w.block = block;
		w.seed = (cfg->seed ? cfg->seed : 0x2545f4914f6cdd1dull) ^ 0xd1b54a32d192ed03ull;
		ret = lb_writer_start(&w);
		if (ret < 0)
			snprintf(err.msg, sizeof(err.msg), "writer thread: %s", strerror(-ret));
	}
	lb_cpu_mark();
	t_migrate = lb_now_ns();
	if (!ret)
		ret = tern_migrate(s, uri, &err);
	if (!ret && cfg->mgmt && tern_mgmt_listen(s, cfg->mgmt, &err)) {
		/* running already: cancel it, and say why */
		snprintf(mgmt_err, sizeof(mgmt_err), "--mgmt: %s", err.msg);
		tern_cancel(s);
	}
	if (ret < 0) {
		if (!err.msg[0])
			snprintf(err.msg, sizeof(err.msg), "source setup: %s", strerror(-ret));
		st.status = TERN_STATUS_FAILED;
		lb_print_json("source", lb_uri_transport(uri), cfg, &st, NULL, err.msg);
		lb_writer_stop(&w);
		tern_session_free(s);
		lb_writer_fini(&w);
		return 1;
	}

	wait_final(s, cfg, "source",
		   cfg->postcopy_after_ms ? t_migrate + cfg->postcopy_after_ms * 1000000ull : 0,
		   &timed_out);
	tern_stats_get(s, &st);
	/*
	 * The writer first: it marks pages on the session's block, which dies
	 * with the session (tern.h, "Lifetime"). Then the library's threads:
	 * no callback runs after tern_session_free(), so the writer's lock and
	 * condition may go.
	 */
	lb_writer_stop(&w);
	tern_session_free(s);
	lb_writer_fini(&w);
	if (mgmt_err[0])
		msg = mgmt_err;
	else if (timed_out)
		msg = "timed out";
	else if (st.status == TERN_STATUS_COMPLETED && w.pauses == 0)
		msg = "completed but the pause callback was not called";
	else if (st.status == TERN_STATUS_COMPLETED && w.pauses <= w.resumes)
		/* the library rehearses a pause and a resume at setup: the last
		 * pause, for switchover, must have no resume after it */
		msg = "completed but the source guest was resumed";
	lb_print_json("source", lb_uri_transport(uri), cfg, &st, &w, msg);
	if (cfg->log_level >= LOG_INFO && cfg->dirty_rate)
		fprintf(stderr, "%s: writer dirtied %" PRIu64 " pages\n", lb_prog, w.pages_written);
	munmap(ram, cfg->ram);
	return lb_side_ok(&st, cfg) && !msg ? 0 : 1;
}
