/* SPDX-License-Identifier: MIT */
/*
 * e2e_converge: the harness. The source serves its management socket and
 * the test talks to it as an operator would; the destination is e2e_pair's.
 * Per run: set up, let the scenario set caps and parameters, migrate, let
 * it drive, wait for the end (bounded), then check what every scenario
 * must hold:
 *
 *   completes: both sides `completed`, the destination resumed once, RAM
 *     and sections equal to the source's at switchover, the source guest
 *     paused once and never resumed, the downtime breakdown adds up;
 *   otherwise: the source `cancelled`, its guest running (not parked,
 *     still writing), the destination neither completed nor resumed.
 *
 * and for both: no callback after the end, the throttle back at 0 if it was
 * ever set. Waits are bounded; nothing is timed (the figures printed are
 * for people).
 * Exit status: 0 pass, 1 fail, 2 bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "e2e_converge.h"

static const struct e2e_scenario *const scenarios[] = {
    &e2e_scen_bandwidth,    &e2e_scen_downtime,		  &e2e_scen_timeout_cancel,
    &e2e_scen_converge,	    &e2e_scen_timeout_force,	  &e2e_scen_pause_continue,
    &e2e_scen_pause_cancel, &e2e_scen_switchover_learned, &e2e_scen_switchover_declared,
};

void e2e_sleep_ms(unsigned int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static bool reply_check(struct e2e_conv *c, const char *req, struct json_object *r)
{
	if (!r) {
		e2e_fail(&c->src.failures, "%s: no reply from the management socket", req);
		return false;
	}
	if (!e2e_mgmt_ok(r)) {
		e2e_fail(&c->src.failures, "%s: %s", req, e2e_mgmt_error(r));
		return false;
	}
	return true;
}

static bool request_ok(struct e2e_conv *c, const char *req)
{
	struct json_object *r = e2e_mgmt_request(&c->m, req);
	bool ok = reply_check(c, req, r);

	json_object_put(r);
	return ok;
}

bool e2e_conv_set(struct e2e_conv *c, const char *name, uint64_t value)
{
	char req[200];

	snprintf(req, sizeof(req), "{\"cmd\":\"set\",\"name\":\"%s\",\"value\":%" PRIu64 "}", name,
		 value);
	return request_ok(c, req);
}

bool e2e_conv_set_str(struct e2e_conv *c, const char *name, const char *value)
{
	char req[200];

	snprintf(req, sizeof(req), "{\"cmd\":\"set\",\"name\":\"%s\",\"value\":\"%s\"}", name,
		 value);
	return request_ok(c, req);
}

bool e2e_conv_cap(struct e2e_conv *c, const char *name, bool on)
{
	char req[200];

	snprintf(req, sizeof(req), "{\"cmd\":\"caps\",\"name\":\"%s\",\"on\":%s}", name,
		 on ? "true" : "false");
	return request_ok(c, req);
}

void e2e_conv_expect(struct e2e_conv *c, const char *req, bool ok, const char *needle)
{
	struct json_object *r = e2e_mgmt_request(&c->m, req);

	if (!r)
		e2e_fail(&c->src.failures, "%s: no reply from the management socket", req);
	else if (e2e_mgmt_ok(r) != ok)
		e2e_fail(&c->src.failures, "%s: expected %s, got %s", req, ok ? "ok" : "an error",
			 json_object_to_json_string(r));
	else if (!ok && needle && !strstr(e2e_mgmt_error(r), needle))
		e2e_fail(&c->src.failures, "%s: error '%s' does not say '%s'", req,
			 e2e_mgmt_error(r), needle);
	json_object_put(r);
}

bool e2e_conv_wait_status(struct e2e_conv *c, enum tern_status status, unsigned int timeout_ms,
			  struct tern_stats *st)
{
	uint64_t deadline = e2e_now_ns() + (uint64_t)timeout_ms * 1000000ull;

	for (;;) {
		tern_stats_get(c->src.s, st);
		if (st->status == status)
			return true;
		if (e2e_status_final(st->status) || e2e_now_ns() > deadline)
			return false;
		e2e_sleep_ms(5);
	}
}

bool e2e_conv_writer_runs(struct e2e_conv *c, unsigned int timeout_ms)
{
	uint64_t deadline = e2e_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	uint64_t iter = e2e_writer_iter(&c->src.writer);

	while (e2e_now_ns() < deadline) {
		e2e_sleep_ms(10);
		if (e2e_writer_iter(&c->src.writer) != iter)
			return true;
	}
	return false;
}

static uint64_t ev_u64(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_uint64(v) : 0;
}

void e2e_conv_note_rounds(struct e2e_conv *c, uint64_t from)
{
	size_t i, n;

	e2e_mgmt_wait_event(&c->m, "state", "completed", 2000);
	n = json_object_array_length(c->m.events);
	for (i = 0; i < n; i++) {
		struct json_object *o = json_object_array_get_idx(c->m.events, i), *v;

		if (!json_object_object_get_ex(o, "event", &v) ||
		    strcmp(json_object_get_string(v), "round") || ev_u64(o, "round") <= from)
			continue;
		e2e_note("round %" PRIu64 ": ram_remaining %" PRIu64 ", bandwidth_bps %" PRIu64
			 ", expected_downtime_ms %" PRIu64,
			 ev_u64(o, "round"), ev_u64(o, "ram_remaining"), ev_u64(o, "bandwidth_bps"),
			 ev_u64(o, "expected_downtime_ms"));
	}
}

void e2e_conv_pauses(struct e2e_conv *c, unsigned int *ret_pauses, unsigned int *ret_resumes)
{
	pthread_mutex_lock(&c->src.writer.lock);
	*ret_pauses = c->src.writer.pauses;
	*ret_resumes = c->src.writer.resumes;
	pthread_mutex_unlock(&c->src.writer.lock);
}

unsigned int e2e_conv_throttle_calls(struct e2e_conv *c)
{
	return __atomic_load_n(&c->src.throttle_calls, __ATOMIC_ACQUIRE);
}

/* ---- the source ----------------------------------------------------------- */

/* What every scenario must hold once the migration ended. */
static void check_end(struct e2e_conv *c)
{
	const struct tern_stats *st = &c->st;
	struct e2e_writer *w = &c->src.writer;
	unsigned int n = e2e_conv_throttle_calls(c), pauses, resumes;

	e2e_conv_pauses(c, &pauses, &resumes);
	if (c->sc->completes) {
		if (st->status != TERN_STATUS_COMPLETED)
			e2e_fail(&c->src.failures, "source ended %s: %s",
				 tern_status_name(st->status), st->error[0] ? st->error : "-");
		if (pauses != 1 || resumes)
			e2e_fail(&c->src.failures,
				 "completed: paused %u time(s), resumed %u (expected 1, 0)", pauses,
				 resumes);
		e2e_check_breakdown(&c->src, st, c->waited_us, c->sc->pending);
	} else {
		if (st->status != TERN_STATUS_CANCELLED)
			e2e_fail(&c->src.failures, "source ended %s (%s), expected cancelled",
				 tern_status_name(st->status), st->error[0] ? st->error : "-");
		if (pauses != resumes)
			e2e_fail(&c->src.failures,
				 "cancelled: paused %u time(s) but resumed %u: the guest stays "
				 "stopped",
				 pauses, resumes);
		if (e2e_writer_is_parked(w) || !e2e_conv_writer_runs(c, 5000))
			e2e_fail(&c->src.failures,
				 "cancelled, yet the source guest does not run (writer stuck at "
				 "%" PRIu64 " pages)",
				 e2e_writer_iter(w));
	}
	if (n > E2E_MAX_THROTTLE_CALLS) {
		e2e_fail(&c->src.failures, "throttle called %u times", n);
	} else if (n && c->src.throttle_pct[n - 1]) {
		e2e_fail(&c->src.failures,
			 "the last throttle call asked %u%%: the guest stays throttled after the "
			 "end",
			 c->src.throttle_pct[n - 1]);
	}
	if (st->cpu_throttle_percent)
		e2e_fail(&c->src.failures, "stats: cpu_throttle_percent %u after the end",
			 st->cpu_throttle_percent);
}

static int run_source(const struct e2e_cfg *cfg, int fd, pid_t child, void *arg)
{
	struct e2e_conv *c = arg;
	struct e2e_report rep = {0};
	struct tern_error err = {0};
	unsigned int pauses, resumes, throttles, p2, r2;
	bool timed_out = false;
	int ret;

	c->m.fd = -1;
	if (e2e_src_setup(&c->src, cfg, fd) < 0)
		goto setup_failed;
	snprintf(c->sock, sizeof(c->sock), "/tmp/tern-e2e-mgmt-%d.sock", (int)getpid());
	unlink(c->sock);
	ret = tern_mgmt_listen(c->src.s, c->sock, &err);
	if (ret) {
		e2e_note("tern_mgmt_listen(%s): %s", c->sock, err.msg);
		goto setup_failed;
	}
	ret = e2e_mgmt_open(&c->m, c->sock);
	if (ret) {
		e2e_note("connecting to %s: %s", c->sock, strerror(-ret));
		goto setup_failed;
	}
	if (!request_ok(c, "{\"cmd\":\"subscribe\"}") || (c->sc->before && c->sc->before(c)))
		goto setup_failed;
	c->start_ns = e2e_now_ns();
	ret = tern_migrate(c->src.s, c->src.uri, &err);
	if (ret) {
		e2e_note("tern_migrate: %s", err.msg);
		goto setup_failed;
	}
	e2e_note("%s: %" PRIu64 " MiB, writer %" PRIu64 " MiB/s over %" PRIu64
		 " MiB%s, max-bandwidth %" PRIu64 " MiB/s, downtime-limit %" PRIu64 " ms",
		 c->sc->name, cfg->ram / MiB, cfg->dirty_rate / MiB, cfg->ws / MiB,
		 cfg->sequential ? " in order" : "", cfg->max_bandwidth / MiB, cfg->downtime_limit);

	if (c->sc->drive)
		c->sc->drive(c);
	e2e_wait_final(c->src.s, cfg->timeout_s, &timed_out);
	c->end_ns = e2e_now_ns();
	e2e_conv_pauses(c, &pauses, &resumes);
	throttles = e2e_conv_throttle_calls(c);
	tern_stats_get(c->src.s, &c->st);
	if (timed_out) {
		e2e_fail(&c->src.failures, "no end after %u s: cancelled (status %s then)",
			 cfg->timeout_s, tern_status_name(c->st.status));
		kill(child, SIGKILL);
		goto out;
	}
	check_end(c);
	if (e2e_src_report(&c->src, fd, &rep, c->sc->completes) == 0 && c->sc->after)
		c->sc->after(c, &rep);
	/* tern.h: no callback runs after tern_wait() returned a final status */
	e2e_conv_pauses(c, &p2, &r2);
	if (p2 != pauses || r2 != resumes || e2e_conv_throttle_calls(c) != throttles)
		e2e_fail(&c->src.failures,
			 "callbacks after the end: pause %u -> %u, resume %u -> %u, throttle %u -> "
			 "%u",
			 pauses, p2, resumes, r2, throttles, e2e_conv_throttle_calls(c));

out:
	e2e_mgmt_close(&c->m);
	e2e_src_free(&c->src);
	printf("e2e_converge %s: %s status=%s/%s rounds=%" PRIu64 " ram_transferred=%" PRIu64
	       " wire=%" PRIu64 " downtime=%" PRIu64 "ms total=%" PRIu64
	       "ms throttle_calls=%u failures=%u\n",
	       c->sc->name, c->src.failures ? "FAIL" : "PASS", tern_status_name(c->st.status),
	       tern_status_name(rep.magic == E2E_REPORT_MAGIC ? rep.stats.status
							      : TERN_STATUS_INVALID),
	       c->st.rounds, c->st.ram_transferred, c->st.wire_bytes, c->st.downtime_ms,
	       c->st.total_ms, e2e_conv_throttle_calls(c), c->src.failures);
	fflush(stdout);
	return c->src.failures ? 1 : 0;

setup_failed:
	e2e_mgmt_close(&c->m);
	e2e_src_free(&c->src);
	kill(child, SIGKILL);
	return 2;
}

/* ---- main ------------------------------------------------------------------ */

static void usage(FILE *f, const char *prog)
{
	size_t i;

	fprintf(f,
		"usage: %s --scenario NAME [--timeout S] [-v|-q]\n"
		"  --timeout S   hang guard: cancel and fail after S s (default 120)\n"
		"scenarios:",
		prog);
	for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		fprintf(f, " %s", scenarios[i]->name);
	fputc('\n', f);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"scenario", required_argument, NULL, 'S'}, {"timeout", required_argument, NULL, 'T'},
	    {"verbose", no_argument, NULL, 'v'},	{"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},		{NULL, 0, NULL, 0},
	};
	struct e2e_cfg cfg = {
	    .transport = "tcp",
	    .channels = 2,
	    .ram = 64 * MiB,
	    .zero_pct = 50,
	    .ws = 8 * MiB,
	    .downtime_limit = 300,
	    .timeout_s = 120,
	    .seed = 1,
	    .log_level = LOG_INFO,
	    .codec = "none",
	};
	struct e2e_conv conv = {0};
	int c, log_level = LOG_INFO;
	unsigned long timeout = 0;
	size_t i;

	while ((c = getopt_long(argc, argv, "vqh", longopts, NULL)) != -1) {
		switch (c) {
		case 'S':
			for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
				if (!strcmp(optarg, scenarios[i]->name))
					conv.sc = scenarios[i];
			if (!conv.sc) {
				usage(stderr, argv[0]);
				return 2;
			}
			break;
		case 'T':
			timeout = strtoul(optarg, NULL, 10);
			break;
		case 'v':
			log_level = LOG_DEBUG;
			break;
		case 'q':
			log_level = LOG_WARNING;
			break;
		case 'h':
			usage(stdout, argv[0]);
			return 0;
		default:
			usage(stderr, argv[0]);
			return 2;
		}
	}
	if (!conv.sc) {
		usage(stderr, argv[0]);
		return 2;
	}
	cfg.page_size = (size_t)sysconf(_SC_PAGESIZE);
	conv.sc->configure(&cfg);
	cfg.log_level = log_level;
	if (timeout)
		cfg.timeout_s = (unsigned int)timeout;
	cfg.ws -= cfg.ws % cfg.page_size;
	return e2e_run_pair(&cfg, run_source, &conv, conv.sc->completes);
}
