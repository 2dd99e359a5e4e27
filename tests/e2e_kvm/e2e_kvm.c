/* SPDX-License-Identifier: MIT */
/*
 * End-to-end and fault tests with real KVM guests: pairs of tern-vm
 * processes (the reference VMM), driven directly or through tern-bench, and
 * judged on their final JSON lines (see the tern-vm contract).
 *
 *   e2e_kvm --vm TERN_VM --bench TERN_BENCH CASE [ARGS]
 *
 *   migrate TRANSPORT CHANNELS   512 MiB guest dirtying 64 MiB at 100 MB/s,
 *                                through `tern-bench --json`: completed,
 *                                verified, >= 2 rounds, destination guest
 *                                running (its progress rises).
 *   ram-mismatch                 destination with half the RAM: refused at the
 *                                handshake, the source guest keeps running.
 *   dest-killed                  destination SIGKILLed mid-migration (a slow
 *                                link): the source fails with a message, its
 *                                guest keeps running.
 *   cancel STATE                 source --cancel-on setup|active|device: the
 *                                source ends cancelled with its guest running;
 *                                the destination ends failed, never resumed.
 *   timeout-cancel               a guest that dirties its working set faster
 *                                than the link (max-bandwidth) moves it, no
 *                                auto-converge, migration-timeout with policy
 *                                cancel: the source ends cancelled with the
 *                                timeout named, its guest running and never
 *                                throttled; the destination never resumed.
 *   auto-converge                the same guest and link with auto-converge:
 *                                completed, verified, the vCPUs were throttled
 *                                (tern-vm's throttle_max_percent, and time held
 *                                out of the guest) and set free at the end.
 *   pause-before-switchover      both sides with --mgmt: the source waits in
 *                                pre-switchover (query after query, the
 *                                destination still active) until `continue`
 *                                arrives on its socket, then completes,
 *                                verified, with downtime_wait_us > 0.
 *
 * Slow hosts (KVM nested in QEMU/TCG: scripts/kvm-in-qemu/run-suite.sh):
 *   TERN_KVM_TEST_RAM=SIZE          the guest RAM the figures above are for
 *                                   (default 512M; a multiple of 4M, 8M..64G,
 *                                   K M G = 1024^n). Working sets, dirty rates,
 *                                   the bandwidth cap and the RSS growth that
 *                                   means "pages are landing" scale with it.
 *   TERN_KVM_TEST_TIMEOUT_SCALE=X   multiplies every deadline (default 1).
 *
 * Without a usable /dev/kvm every case exits 77 (meson: SKIP). The tests
 * assert outcomes, never times; the deadlines only bound a hang.
 *
 * This file: the settings, the cases and main(); the pair runner is in
 * kvm_pair.c, the management-socket client in kvm_mgmt.c.
 */
#include "e2e_kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- cases ----------------------------------------------------------------------------- */

static void case_migrate(const char *transport, const char *channels, const char *codec)
{
	/* A compressing codec moves RAM at its encoder's pace (zlib: tens of
	 * MB/s on one core), so its guest fills text (what compresses) and
	 * dirties at a fifth of the rate: still throughout, but convergent. */
	bool plain = !strcmp(codec, "none");
	char ram[24], rate[24], ws[24];
	char *argv[] = {(char *)bench_path,
			"--json",
			"--vm",
			(char *)vm_path,
			"--fill",
			plain ? "random" : "text",
			"--ram",
			(char *)scaled_arg(ram, BASE_RAM, true),
			"--dirty-rate",
			(char *)scaled_arg(rate, plain ? 100000000 : 20000000, false),
			"--dirty-ws",
			(char *)scaled_arg(ws, 64u << 20, true),
			"--channels",
			(char *)channels,
			"--transport",
			(char *)transport,
			"--codec",
			(char *)codec,
			"--verify",
			"--timeout",
			vm_timeout,
			NULL};
	struct bench_proc b;
	struct bench_proc *const one[1] = {&b};
	json_object *r;
	int ret, code;

	ret = bench_proc_spawn(&b, "tern-bench", argv);
	if (ret)
		die("cannot start %s: %s", bench_path, strerror(-ret));
	/* tern-bench bounds its own run (timeout + 30 s); this only catches a hung tern-bench. */
	CHECK(bench_proc_pump(one, 1, deadline_in(PAIR_DEADLINE_S + 60)),
	      "tern-bench still running: killed");
	r = last_object(&b, false);
	bench_proc_fini(&b);
	code = bench_proc_exit_code(&b);

	CHECK(r, "no JSON line from tern-bench");
	CHECK(code == 0, "tern-bench exit code %d", code);
	CHECK(jbool(r, "ok") == 1, "run not ok");
	CHECK(streq(jstr(r, "status"), "completed"), "status %s (%s)", jstr(r, "status"),
	      jstr(r, "error"));
	CHECK(jbool(r, "verified") == 1, "verified %d", jbool(r, "verified"));
	CHECK(jnum(r, "rounds") >= 2, "rounds %.0f: the guest dirtied memory throughout, want >= 2",
	      jnum(r, "rounds"));
	CHECK(streq(jstr(r, "dest_status"), "completed"), "destination status %s (%s)",
	      jstr(r, "dest_status"), jstr(r, "dest_error"));
	CHECK(jbool(r, "progress_rising") == 1, "the guest does not run on the destination");
	CHECK(jnum(r, "channels") == atoi(channels), "channels %.0f", jnum(r, "channels"));
	CHECK(streq(jstr(r, "transport"), transport), "transport %s", jstr(r, "transport"));
	CHECK(streq(jstr(r, "codec"), codec), "codec %s, asked for %s", jstr(r, "codec"), codec);
	CHECK(jnum(r, "ram_bytes") == (double)test_ram, "ram_bytes %.0f, want %" PRIu64,
	      jnum(r, "ram_bytes"), test_ram);
	CHECK(jnum(r, "normal_pages") > 0, "normal_pages %.0f", jnum(r, "normal_pages"));
	/*
	 * "rounds" counts dirty-log syncs (at least 3 even for an idle guest), so
	 * the proof that the guest's writes reached the precopy through the KVM
	 * dirty log is pages sent more than once: more than the handful of
	 * page-table pages KVM reports on every pass with NPT/EPT.
	 */
	CHECK(jnum(r, "normal_pages") + jnum(r, "zero_pages") > (double)(test_ram / 4096) + 64,
	      "%.0f normal + %.0f zero pages for %" PRIu64 " pages of RAM: no page dirtied "
	      "during the migration was sent again",
	      jnum(r, "normal_pages"), jnum(r, "zero_pages"), test_ram / 4096);
	json_object_put(r);
}

/* Where a pair's guest dirties 32 MiB at 50 MB/s (at BASE_RAM). */
static char dirty_rate[24], dirty_ws[24];

static void case_ram_mismatch(void)
{
	const char *const dirty_args[] = {"--dirty-rate", dirty_rate, "--dirty-ws", dirty_ws, NULL};
	char src_ram[24], dst_ram[24];
	struct pair_cfg c = {.src_ram = scaled_arg(src_ram, BASE_RAM, true),
			     .dst_ram = scaled_arg(dst_ram, BASE_RAM / 2, true),
			     .transport = "tcp",
			     .channels = "2",
			     .src_extra = dirty_args};
	struct pair p;
	const char *err;

	run_pair(&c, &p);
	expect_source_guest_running(&p);
	CHECK(streq(jstr(p.sj, "status"), "failed"), "source status %s", jstr(p.sj, "status"));
	err = jstr(p.sj, "error");
	CHECK(err && (strcasestr(err, "layout") || strcasestr(err, "size")),
	      "the source's error does not mention the RAM layout or size: %s", err);
	expect_dest_never_resumed(&p, p.dst_termed);
	pair_fini(&p);
}

static void case_dest_killed(void)
{
	char bw[24], rate[24], ram[24];
	const char *const extra[] = {"--max-bandwidth",
				     scaled_arg(bw, 50000000, false),
				     "--dirty-rate",
				     scaled_arg(rate, 20000000, false),
				     "--dirty-ws",
				     dirty_ws,
				     NULL};
	struct pair_cfg c = {.src_ram = scaled_arg(ram, BASE_RAM, true),
			     .dst_ram = ram,
			     .transport = "tcp",
			     .channels = "2",
			     .src_extra = extra,
			     .kill_dest_mid = true};
	struct pair p;
	const char *err;

	run_pair(&c, &p);
	CHECK(p.dst_killed_mid, "the destination was not killed mid-migration");
	expect_source_guest_running(&p);
	CHECK(streq(jstr(p.sj, "status"), "failed"), "source status %s", jstr(p.sj, "status"));
	err = jstr(p.sj, "error");
	CHECK(err && *err, "the source failed without a message");
	pair_fini(&p);
}

static void case_cancel(const char *state)
{
	const char *extra[] = {"--cancel-on", state, "--dirty-rate", dirty_rate, "--dirty-ws",
			       dirty_ws,      NULL};
	char ram[24];
	struct pair_cfg c = {.src_ram = scaled_arg(ram, BASE_RAM / 2, true),
			     .dst_ram = ram,
			     .transport = "tcp",
			     .channels = "2",
			     .src_extra = extra};
	struct pair p;

	if (strcmp(state, "setup") && strcmp(state, "active") && strcmp(state, "device"))
		die("cancel: unknown state '%s'", state);
	/* Cancelled in setup before its HELLO, the source was a stray to the
	 * destination, which keeps listening for a real one: no need to wait
	 * long for it to end by itself. */
	if (!strcmp(state, "setup"))
		c.dest_grace_s = 3;
	run_pair(&c, &p);
	expect_source_guest_running(&p);
	CHECK(streq(jstr(p.sj, "status"), "cancelled"), "source status %s (%s)",
	      jstr(p.sj, "status"), jstr(p.sj, "error"));
	/*
	 * Cancelled in setup, the source may not have sent its HELLO yet: then
	 * the destination waits until we SIGTERM it, which cancels its side.
	 */
	expect_dest_never_resumed(&p, p.dst_termed);
	pair_fini(&p);
}

/*
 * A guest that dirties its working set faster than the link moves it. At
 * BASE_RAM: an 8 MB/s link (max-bandwidth), 160 MB/s of writes into 8 MiB,
 * 97 % of RAM zero so that the first pass is short, downtime-limit 100 ms.
 * What each round leaves is what the guest rewrote while it was sent: as
 * long as the guest writes faster than the link, the whole working set, ten
 * times the threshold (link x 100 ms), so only slowing the vCPUs down lets
 * it converge. It writes faster by far even in the QEMU/TCG VM at 64M
 * (1 MB/s link, 1 MiB set), where a guest under dirty logging manages only
 * 4-7 MB/s (each first write to a page after a sync costs a write-protection
 * fault there): the timeout case ends with the whole set still to send.
 * @extra: more source arguments (NULL-terminated, at most 12).
 */
static void converge_pair(const char *const *extra, struct pair *p)
{
	static char bw[24], rate[24], ws[24], ram[24];
	/* max-bandwidth stands for the link: the switchover gets no more
	 * (learned on loopback it would get GB/s, and converge unthrottled) */
	const char *src[32] = {"--max-bandwidth",
			       scaled_arg(bw, 8000000, false),
			       "--avail-switchover-bandwidth",
			       bw,
			       "--dirty-rate",
			       scaled_arg(rate, 160000000, false),
			       "--dirty-ws",
			       scaled_arg(ws, 8u << 20, true),
			       "--zero-pct",
			       "97",
			       "--downtime-limit",
			       "100",
			       "--verify"};
	struct pair_cfg c = {.src_ram = scaled_arg(ram, BASE_RAM, true),
			     .dst_ram = ram,
			     .transport = "tcp",
			     .channels = "2",
			     .src_extra = src};
	unsigned int n = 13, i;

	for (i = 0; extra[i]; i++) {
		if (n + 2 > sizeof(src) / sizeof(src[0]))
			die("converge_pair: too many arguments");
		src[n++] = extra[i];
	}
	src[n] = NULL;
	run_pair(&c, p);
}

static void case_timeout_cancel(void)
{
	char timeout[24];
	const char *const extra[] = {"--migration-timeout", timeout, "--timeout-policy", "cancel",
				     NULL};
	struct pair p;
	const char *err;

	/* long enough for a few rounds; it only has to come before tern-vm's own --timeout */
	snprintf(timeout, sizeof(timeout), "%u", (unsigned int)(6 * time_scale + 0.999));
	converge_pair(extra, &p);
	expect_source_guest_running(&p);
	CHECK(streq(jstr(p.sj, "status"), "cancelled"), "source status %s (%s): want cancelled",
	      jstr(p.sj, "status"), jstr(p.sj, "error"));
	err = jstr(p.sj, "error");
	CHECK(err && strstr(err, "migration-timeout"),
	      "the source's error does not name migration-timeout: %s", err ? err : "(none)");
	CHECK(jnum(p.sj, "throttle_max_percent") == 0 && jnum(p.sj, "throttle_held_ms") == 0,
	      "without auto-converge the guest was throttled: max %.0f %%, held %.0f ms",
	      jnum(p.sj, "throttle_max_percent"), jnum(p.sj, "throttle_held_ms"));
	expect_dest_never_resumed(&p, p.dst_termed);
	pair_fini(&p);
}

static void case_auto_converge(void)
{
	const char *const extra[] = {"--auto-converge",
				     "--cpu-throttle-initial",
				     "30",
				     "--cpu-throttle-increment",
				     "20",
				     NULL};
	struct pair p;

	converge_pair(extra, &p);
	CHECK(p.sj, "no final line from the source");
	CHECK(streq(jstr(p.sj, "status"), "completed"), "source status %s (%s)",
	      jstr(p.sj, "status"), jstr(p.sj, "error"));
	CHECK(jbool(p.sj, "verified") == 1, "source verified %d", jbool(p.sj, "verified"));
	CHECK(p.src_code == 0, "source exit code %d", p.src_code);
	/* tern-vm's own record of the throttle callback, and of its vCPUs held out */
	CHECK(jnum(p.sj, "throttle_max_percent") >= 30,
	      "the throttle never reached cpu-throttle-initial: max %.0f %%",
	      jnum(p.sj, "throttle_max_percent"));
	CHECK(jnum(p.sj, "throttle_held_ms") > 0, "no vCPU was held out of the guest");
	CHECK(jnum(p.sj, "throttle_end_percent") == 0,
	      "the throttle was not lifted when the migration ended: %.0f %%",
	      jnum(p.sj, "throttle_end_percent"));
	CHECK(jnum(p.sj, "cpu_throttle_percent") == 0, "final cpu_throttle_percent %.0f",
	      jnum(p.sj, "cpu_throttle_percent"));
	CHECK(p.dj, "no final line from the destination");
	CHECK(streq(jstr(p.dj, "status"), "completed"), "destination status %s (%s)",
	      jstr(p.dj, "status"), jstr(p.dj, "error"));
	CHECK(jbool(p.dj, "progress_rising") == 1, "the guest does not run on the destination");
	fprintf(stderr,
		"e2e_kvm auto-converge: throttle up to %.0f %%, vCPUs held out %.0f ms, %.0f "
		"rounds\n",
		jnum(p.sj, "throttle_max_percent"), jnum(p.sj, "throttle_held_ms"),
		jnum(p.sj, "rounds"));
	pair_fini(&p);
}

/*
 * Postcopy with a real KVM guest (issue 13): the converge scenario's guest,
 * which outruns its 8 MB/s link, switched to postcopy a second after the
 * start. Its vCPUs then run on the destination while pages are missing:
 * a vCPU's access to one goes through KVM's get_user_pages into
 * userfaultfd, and the page is fetched. Whether a vCPU happens to fault
 * before the bulk stream brings a page depends on how fast the guest
 * runs, so the case asserts only what does not: both completed through
 * postcopy, pages were left for it and every one arrived, the source
 * paused no longer than its downtime-limit (scaled with the deadlines in
 * the QEMU/TCG VM), and the guest runs there.
 */
static void case_postcopy(const char *channels)
{
	static char bw[24], rate[24], ws[24], ram[24];
	const char *const src[] = {"--max-bandwidth",
				   scaled_arg(bw, 8000000, false),
				   "--avail-switchover-bandwidth",
				   bw,
				   "--dirty-rate",
				   scaled_arg(rate, 160000000, false),
				   "--dirty-ws",
				   scaled_arg(ws, 8u << 20, true),
				   "--zero-pct",
				   "97",
				   "--downtime-limit",
				   "300",
				   "--postcopy-after",
				   "1000",
				   NULL};
	const char *const dst[] = {"--postcopy", NULL};
	struct pair_cfg c = {.src_ram = scaled_arg(ram, BASE_RAM, true),
			     .dst_ram = ram,
			     .transport = "tcp",
			     .channels = channels,
			     .src_extra = src,
			     .dst_extra = dst};
	struct pair p;

	run_pair(&c, &p);
	CHECK(p.sj, "no final line from the source");
	CHECK(streq(jstr(p.sj, "status"), "completed"), "source status %s (%s)",
	      jstr(p.sj, "status"), jstr(p.sj, "error"));
	CHECK(jbool(p.sj, "postcopy") == 1, "the source never switched to postcopy");
	CHECK(jnum(p.sj, "postcopy_missing_pages") > 0, "no page was left for postcopy");
	/* in the QEMU/TCG VM everything is slower, the pause too */
	CHECK(jnum(p.sj, "downtime_ms") <= 300 * time_scale, "the source paused %.0f ms > %.0f",
	      jnum(p.sj, "downtime_ms"), 300 * time_scale);
	CHECK(p.dj, "no final line from the destination");
	CHECK(streq(jstr(p.dj, "status"), "completed"), "destination status %s (%s)",
	      jstr(p.dj, "status"), jstr(p.dj, "error"));
	CHECK(jnum(p.dj, "postcopy_remaining_pages") == 0, "%.0f pages never arrived",
	      jnum(p.dj, "postcopy_remaining_pages"));
	CHECK(jbool(p.dj, "progress_rising") == 1, "the guest does not run on the destination");
	fprintf(stderr,
		"e2e_kvm postcopy ch%s: %.0f pages left at the switch, %.0f faults, %.0f "
		"requested, p99 %.0f us, %.0f ms in postcopy\n",
		channels, jnum(p.sj, "postcopy_missing_pages"), jnum(p.dj, "postcopy_faults"),
		jnum(p.dj, "postcopy_requests"), jnum(p.dj, "postcopy_latency_p99_us"),
		jnum(p.sj, "postcopy_ms"));
	pair_fini(&p);
}

struct pbs_ctx {
	char src_sock[96], dst_sock[96];
	bool continued;
};

/* While the pair runs: wait for pre-switchover, see it wait, send continue. */
static void pbs_during(struct pair *p, void *arg, uint64_t deadline)
{
	struct pbs_ctx *x = arg;
	struct mgmt src, dst;
	json_object *r;
	char st[32], dst_st[32];
	int i;

	CHECK(mgmt_connect(&src, x->src_sock, p, &p->src, deadline),
	      "cannot connect to the source's management socket %s", x->src_sock);
	CHECK(mgmt_connect(&dst, x->dst_sock, p, &p->dst, deadline),
	      "cannot connect to the destination's management socket %s", x->dst_sock);
	if (src.fd < 0 || dst.fd < 0)
		goto out;
	for (;;) {
		mgmt_status(&src, p, deadline, st, sizeof(st));
		if (!st[0] || !strcmp(st, "pre-switchover") || !strcmp(st, "completed") ||
		    !strcmp(st, "failed") || !strcmp(st, "cancelled") || bench_now_ns() >= deadline)
			break;
		pair_pump(p, 100);
	}
	CHECK(!strcmp(st, "pre-switchover"), "the source never reached pre-switchover: status '%s'",
	      st);
	if (strcmp(st, "pre-switchover"))
		goto out;
	/* It stays there, query after query, and the destination is not done. */
	for (i = 0; i < 3; i++) {
		pair_pump(p, 200);
		mgmt_status(&src, p, deadline, st, sizeof(st));
		CHECK(!strcmp(st, "pre-switchover"),
		      "the source left pre-switchover on its own: %s", st);
	}
	mgmt_status(&dst, p, deadline, dst_st, sizeof(dst_st));
	CHECK(!strcmp(dst_st, "active"),
	      "destination status '%s' while the source waits, want active", dst_st);
	r = mgmt_call(&src, "{\"cmd\":\"continue\",\"id\":7}\n", p, deadline);
	CHECK(r && jbool(r, "ok") == 1, "continue: %s", r ? jstr(r, "error") : "no reply");
	x->continued = r && jbool(r, "ok") == 1;
	json_object_put(r);
out:
	mgmt_close(&src);
	mgmt_close(&dst);
}

static void case_pause_before_switchover(void)
{
	struct pbs_ctx x = {.continued = false};
	const char *const src_extra[] = {"--dirty-rate", dirty_rate, "--dirty-ws",
					 dirty_ws,	 "--verify", "--pause-before-switchover",
					 "--mgmt",	 x.src_sock, NULL};
	const char *const dst_extra[] = {"--mgmt", x.dst_sock, NULL};
	char ram[24];
	struct pair_cfg c = {.src_ram = scaled_arg(ram, BASE_RAM / 2, true),
			     .dst_ram = ram,
			     .transport = "tcp",
			     .channels = "2",
			     .src_extra = src_extra,
			     .dst_extra = dst_extra,
			     .during = pbs_during,
			     .ctx = &x};
	struct pair p;

	snprintf(x.src_sock, sizeof(x.src_sock), "/tmp/tern-e2e-kvm-%d-src.mgmt", (int)getpid());
	snprintf(x.dst_sock, sizeof(x.dst_sock), "/tmp/tern-e2e-kvm-%d-dst.mgmt", (int)getpid());
	unlink(x.src_sock);
	unlink(x.dst_sock);
	run_pair(&c, &p);
	CHECK(x.continued, "continue was not accepted");
	CHECK(p.sj, "no final line from the source");
	CHECK(streq(jstr(p.sj, "status"), "completed"), "source status %s (%s)",
	      jstr(p.sj, "status"), jstr(p.sj, "error"));
	CHECK(jbool(p.sj, "verified") == 1, "source verified %d", jbool(p.sj, "verified"));
	CHECK(jnum(p.sj, "downtime_wait_us") > 0, "downtime_wait_us %.0f, want > 0",
	      jnum(p.sj, "downtime_wait_us"));
	CHECK(p.src_code == 0, "source exit code %d", p.src_code);
	CHECK(p.dj, "no final line from the destination");
	CHECK(streq(jstr(p.dj, "status"), "completed"), "destination status %s (%s)",
	      jstr(p.dj, "status"), jstr(p.dj, "error"));
	CHECK(jbool(p.dj, "progress_rising") == 1, "the guest does not run on the destination");
	fprintf(stderr, "e2e_kvm pause-before-switchover: waited %.0f us of %.0f ms downtime\n",
		jnum(p.sj, "downtime_wait_us"), jnum(p.sj, "downtime_ms"));
	pair_fini(&p);
	/* tern-vm removed them with its session; a killed one may have left them */
	unlink(x.src_sock);
	unlink(x.dst_sock);
}

static void usage(void)
{
	fprintf(stderr, "usage: e2e_kvm --vm TERN_VM --bench TERN_BENCH "
			"migrate TRANSPORT CHANNELS [CODEC] | xbzrle-hits | ram-mismatch | "
			"dest-killed | cancel STATE | timeout-cancel | auto-converge | "
			"pause-before-switchover | postcopy CHANNELS\n");
	exit(2);
}

/*
 * The XBZRLE scenario, driven by the migration rather than the clock: the
 * guest (tern-vm --dirty-rounds, vm/tv_rounds.c) rewrites half of every page
 * of its working set once in each of the first XB_ROUNDS migration rounds,
 * each round's sync waiting for that pass, then idles. Most of RAM is zero
 * (zero pages are no cache misses). What the test sees is then set by the
 * workload at any guest speed, from TCG to a 16-core host: each
 * working-set page is sent once on first sight (a miss) and re-sent once a
 * round after that (a hit), and the migration cannot converge while the
 * whole working set is dirty at every sync: at max-bandwidth its re-send
 * takes far longer than downtime-limit (1 ms). The round after the guest
 * stops is the first that fits.
 */
#define XB_ROUNDS 6

static uint64_t xb_ws(void)
{
	return scaled(8u << 20, true); /* 8 MiB at BASE_RAM: 2048 pages */
}

/* One pair of tern-vm with @codec; the source's final line (a reference). */
static json_object *xbzrle_run(const char *codec, struct pair *p)
{
	char ram[24], ws[24], bw[24], rounds[24];
	const char *const src_extra[] = {"--zero-pct",
					 "99",
					 "--dirty-ws",
					 ws,
					 "--dirty-rounds",
					 rounds,
					 "--downtime-limit",
					 "1",
					 "--max-bandwidth",
					 bw,
					 "--codec",
					 codec,
					 "--avail-switchover-bandwidth",
					 bw,
					 "--verify",
					 NULL};
	struct pair_cfg c = {.src_ram = scaled_arg(ram, BASE_RAM, true),
			     .dst_ram = ram,
			     .transport = "tcp",
			     .channels = "2",
			     .src_extra = src_extra};

	snprintf(ws, sizeof(ws), "%" PRIu64, xb_ws());
	snprintf(rounds, sizeof(rounds), "%d", XB_ROUNDS);
	scaled_arg(bw, 32000000, false);
	run_pair(&c, p);
	CHECK(p->sj, "%s: no final line from the source", codec);
	if (!p->sj)
		return NULL;
	CHECK(streq(jstr(p->sj, "status"), "completed"), "%s: status %s (%s)", codec,
	      jstr(p->sj, "status"), jstr(p->sj, "error"));
	CHECK(jbool(p->sj, "verified") == 1, "%s: not verified", codec);
	CHECK(p->dj && jbool(p->dj, "progress_rising") == 1,
	      "%s: the guest does not run on the destination", codec);
	/* the bulk round, one per rewrite, and the one that found it idle */
	CHECK(jnum(p->sj, "rounds") >= XB_ROUNDS + 1,
	      "%s: %.0f rounds, want >= %d: the migration converged while the guest "
	      "still rewrote its working set every round",
	      codec, jnum(p->sj, "rounds"), XB_ROUNDS + 1);
	return p->sj;
}

/*
 * The case XBZRLE exists for: pages re-sent round after round with part of
 * them changed. The same scenario with codec none, in the same test: XBZRLE
 * must find the re-sent pages in its cache and put fewer bytes on the wire.
 */
static void case_xbzrle_hits(void)
{
	struct pair pn, px;
	json_object *none = xbzrle_run("none", &pn), *xb = xbzrle_run("xbzrle", &px);
	double ws_pages = (double)(xb_ws() / 4096);

	if (none && xb) {
		CHECK(jnum(xb, "xbzrle_cache_hit_rate") > 0.5,
		      "XBZRLE cache hit rate %.3f (hits %.0f, misses %.0f), want > 0.5",
		      jnum(xb, "xbzrle_cache_hit_rate"), jnum(xb, "xbzrle_cache_hits"),
		      jnum(xb, "xbzrle_cache_misses"));
		/* every rewrite but the first is re-sent from a cached copy (the
		 * working set's pages were zero at the bulk round: the first
		 * rewrite is their first send, a miss), at any guest speed. The
		 * cache is hashed and a channel never waits for a slot another
		 * holds, so a few re-sends miss: allow one rewrite's worth. */
		CHECK(jnum(xb, "xbzrle_cache_hits") >= (XB_ROUNDS - 2) * ws_pages,
		      "XBZRLE cache hits %.0f, want >= %.0f (%d rewrites of %.0f pages, the "
		      "first a miss, one more allowed)",
		      jnum(xb, "xbzrle_cache_hits"), (XB_ROUNDS - 2) * ws_pages, XB_ROUNDS,
		      ws_pages);
		CHECK(jnum(xb, "transferred_bytes") < jnum(none, "transferred_bytes"),
		      "XBZRLE put %.0f bytes on the wire, codec none %.0f",
		      jnum(xb, "transferred_bytes"), jnum(none, "transferred_bytes"));
		fprintf(
		    stderr,
		    "e2e_kvm xbzrle-hits: hit rate %.3f (hits %.0f, misses %.0f), rounds %.0f, "
		    "wire %.0f bytes (none: %.0f, %.0f rounds), normal pages %.0f (none: %.0f)\n",
		    jnum(xb, "xbzrle_cache_hit_rate"), jnum(xb, "xbzrle_cache_hits"),
		    jnum(xb, "xbzrle_cache_misses"), jnum(xb, "rounds"),
		    jnum(xb, "transferred_bytes"), jnum(none, "transferred_bytes"),
		    jnum(none, "rounds"), jnum(xb, "normal_pages"), jnum(none, "normal_pages"));
	}
	pair_fini(&pn);
	pair_fini(&px);
}

int main(int argc, char **argv)
{
	const char *what;
	int i = 1, fd;

	while (i + 1 < argc && argv[i][0] == '-') {
		if (!strcmp(argv[i], "--vm"))
			vm_path = argv[i + 1];
		else if (!strcmp(argv[i], "--bench"))
			bench_path = argv[i + 1];
		else
			usage();
		i += 2;
	}
	if (!vm_path || !bench_path || i >= argc)
		usage();
	what = argv[i++];
	e2e_read_env();
	scaled_arg(dirty_rate, 50000000, false);
	scaled_arg(dirty_ws, 32u << 20, true);
	if (test_ram != BASE_RAM || time_scale != 1)
		fprintf(stderr, "e2e_kvm: guest RAM %" PRIu64 " MiB, deadlines x %g\n",
			test_ram >> 20, time_scale);

	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		printf("SKIP: /dev/kvm: %s (these tests run real KVM guests)\n", strerror(errno));
		return EXIT_SKIP;
	}
	close(fd);
	if (access(vm_path, X_OK))
		die("%s: %s", vm_path, strerror(errno));
	signal(SIGPIPE, SIG_IGN);

	if (!strcmp(what, "migrate") && i + 2 == argc)
		case_migrate(argv[i], argv[i + 1], "none");
	else if (!strcmp(what, "migrate") && i + 3 == argc)
		case_migrate(argv[i], argv[i + 1], argv[i + 2]);
	else if (!strcmp(what, "xbzrle-hits") && i == argc)
		case_xbzrle_hits();
	else if (!strcmp(what, "ram-mismatch") && i == argc)
		case_ram_mismatch();
	else if (!strcmp(what, "dest-killed") && i == argc)
		case_dest_killed();
	else if (!strcmp(what, "cancel") && i + 1 == argc)
		case_cancel(argv[i]);
	else if (!strcmp(what, "timeout-cancel") && i == argc)
		case_timeout_cancel();
	else if (!strcmp(what, "auto-converge") && i == argc)
		case_auto_converge();
	else if (!strcmp(what, "postcopy") && i + 1 == argc)
		case_postcopy(argv[i]);
	else if (!strcmp(what, "pause-before-switchover") && i == argc)
		case_pause_before_switchover();
	else
		usage();

	if (failures) {
		fprintf(stderr, "e2e_kvm %s: %d check(s) failed\n", what, failures);
		return 1;
	}
	printf("e2e_kvm %s: ok\n", what);
	return 0;
}
