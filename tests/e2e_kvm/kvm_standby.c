/* SPDX-License-Identifier: MIT */
/*
 * A VM the operator migrates later (issue 9.6): tern-vm with only --mgmt runs
 * its guest and waits; three `migrate` requests through its socket follow.
 *
 *   1. to a Unix path nobody listens on: failed, the guest runs on;
 *   2. to a destination (--incoming, --mgmt) with max-bandwidth capped by
 *      `set` so that round 1 alone takes many seconds: cancelled once pages
 *      are moving; the destination fails and its guest never runs;
 *   3. max-bandwidth back to unlimited, to a fresh destination: completed,
 *      verified (verify-ram), the destination's guest running.
 *
 * Each failed or cancelled attempt is an event line on the source's stdout,
 * and the guest's progress counter rises from one to the next: it ran all
 * along. Nothing here depends on the guest's speed: attempt 2 is slow by the
 * bandwidth cap, not by the guest, and every wait is for a state.
 *
 *   e2e_kvm_standby --vm TERN_VM
 *
 * Its own program (not an e2e_kvm case) with the settings e2e_kvm reads
 * (TERN_KVM_TEST_RAM, TERN_KVM_TEST_TIMEOUT_SCALE), the pair runner's helpers
 * (kvm_pair.c) and the management client (kvm_mgmt.c).
 */
#include "e2e_kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the case -------------------------------------------------------------------- */

/* p->src is the standing VM; p->dst the destination of the moment (or not running). */
static struct pair p;
static struct mgmt src;
static uint64_t deadline;

/* The source's stdout line that begins with @head (NULL at EOF or the deadline). */
static json_object *source_line(const char *head)
{
	char *line = bench_proc_find_line(&p.src, false, head, deadline);
	json_object *o;

	if (!line)
		return NULL;
	fprintf(stderr, "source: %s\n", line);
	o = json_tokener_parse(line);
	free(line);
	return o;
}

/* A request that must succeed. */
static void call_ok(const char *req)
{
	json_object *r = mgmt_call(&src, req, &p, deadline);

	CHECK(r && jbool(r, "ok") == 1, "%s -> %s", req,
	      r ? json_object_to_json_string(r) : "none");
	json_object_put(r);
}

/* Query until the status is one of @want (space-separated words); return it. */
static const char *wait_status(const char *want, char *buf, size_t len)
{
	while (bench_now_ns() < deadline && bench_proc_running(&p.src)) {
		char w[64];

		mgmt_status(&src, &p, deadline, buf, len);
		snprintf(w, sizeof(w), " %s ", buf);
		if (buf[0] && strstr(want, w))
			return buf;
		pair_pump(&p, 50);
	}
	return buf;
}

/* Start a destination tern-vm; its URI into @uri. */
static void start_dest(const char *ram, const char *sock, char *uri, size_t len)
{
	char *argv[] = {(char *)vm_path, "--ram",	    (char *)ram, "--timeout",  vm_timeout,
			"--incoming",	 "tcp:127.0.0.1:0", "--mgmt",	 (char *)sock, NULL};
	json_object *ev;
	char *line;

	unlink(sock);
	if (bench_proc_spawn(&p.dst, "destination", argv))
		die("cannot start %s", vm_path);
	line = bench_proc_first_line(&p.dst, deadline);
	if (!line)
		die("the destination printed no listening line");
	ev = json_tokener_parse(line);
	if (!streq(jstr(ev, "event"), "listening") || !jstr(ev, "uri"))
		die("not a listening line: %s", line);
	snprintf(uri, len, "%s", jstr(ev, "uri"));
	json_object_put(ev);
	free(line);
}

/* Wait for the destination to end (SIGTERM after a grace); its final line. */
static json_object *end_dest(void)
{
	struct bench_proc *const one[1] = {&p.dst};
	json_object *o;

	if (!bench_proc_pump(one, 1, deadline_in(DEST_GRACE_S))) {
		bench_proc_signal(&p.dst, SIGTERM);
		bench_proc_pump(one, 1, deadline);
	}
	o = last_object(&p.dst, true);
	bench_proc_fini(&p.dst);
	p.dst_code = bench_proc_exit_code(&p.dst);
	return o;
}

static void case_standby(void)
{
	char ram[24], rate[24], ws[24], cap[128], req[512], st[32], uri[256];
	char sock[96], dsock[96], gone[96];
	char *argv[] = {(char *)vm_path,
			"--ram",
			(char *)scaled_arg(ram, BASE_RAM / 2, true),
			"--dirty-rate",
			(char *)scaled_arg(rate, 20000000, false),
			"--dirty-ws",
			(char *)scaled_arg(ws, 16u << 20, true),
			"--verify",
			"--timeout",
			vm_timeout,
			"--mgmt",
			sock,
			NULL};
	json_object *ev, *dj;
	double progress[2] = {0, 0};

	snprintf(sock, sizeof(sock), "/tmp/tern-e2e-standby-%d-src.mgmt", (int)getpid());
	snprintf(dsock, sizeof(dsock), "/tmp/tern-e2e-standby-%d-dst.mgmt", (int)getpid());
	snprintf(gone, sizeof(gone), "/tmp/tern-e2e-standby-%d-nobody.sock", (int)getpid());
	unlink(sock);
	unlink(gone);
	memset(&p, 0, sizeof(p));
	p.src.out_fd = p.dst.out_fd = -1;
	deadline = deadline_in(PAIR_DEADLINE_S);

	if (bench_proc_spawn(&p.src, "source", argv))
		die("cannot start %s", vm_path);
	ev = source_line("{\"event\":\"ready\"");
	CHECK(ev && streq(jstr(ev, "mgmt"), sock), "no ready line naming %s", sock);
	json_object_put(ev);
	if (!mgmt_connect(&src, sock, &p, &p.src, deadline))
		die("cannot connect to %s", sock);

	/* 1: nobody listens: failed, and said why */
	snprintf(req, sizeof(req), "{\"cmd\":\"migrate\",\"uri\":\"unix:%s\"}\n", gone);
	call_ok(req);
	CHECK(!strcmp(wait_status(" failed ", st, sizeof(st)), "failed"), "attempt 1: %s", st);
	ev = source_line("{\"event\":\"migration\",\"status\":\"failed\"");
	CHECK(streq(jstr(ev, "status"), "failed") && jstr(ev, "error") &&
		  strstr(jstr(ev, "error"), gone),
	      "attempt 1's line: %s", ev ? json_object_to_json_string(ev) : "none");
	progress[0] = jnum(ev, "progress");
	json_object_put(ev);

	/* 2: capped so that round 1 takes >= 16 s: cancelled with pages moving */
	start_dest(ram, dsock, uri, sizeof(uri));
	snprintf(cap, sizeof(cap),
		 "{\"cmd\":\"set\",\"name\":\"max-bandwidth\",\"value\":%" PRIu64 "}\n",
		 scaled(BASE_RAM / 2, true) / 16);
	call_ok(cap);
	snprintf(req, sizeof(req), "{\"cmd\":\"migrate\",\"uri\":\"%s\"}\n", uri);
	call_ok(req);
	CHECK(!strcmp(wait_status(" active failed completed ", st, sizeof(st)), "active"),
	      "attempt 2: %s", st);
	while (bench_now_ns() < deadline) {
		json_object *r = mgmt_call(&src, "{\"cmd\":\"query\"}\n", &p, deadline),
			    *ret = NULL;
		double moved = -1;

		if (r && json_object_object_get_ex(r, "return", &ret))
			moved = jnum(ret, "ram_transferred");
		json_object_put(r);
		if (moved != 0)
			break;
		pair_pump(&p, 50);
	}
	/* a second start while this one runs is refused */
	{
		json_object *r = mgmt_call(&src, req, &p, deadline);

		CHECK(r && jbool(r, "ok") == 0 && strstr(jstr(r, "error"), "running"),
		      "a second migrate: %s", r ? json_object_to_json_string(r) : "none");
		json_object_put(r);
	}
	call_ok("{\"cmd\":\"cancel\"}\n");
	CHECK(!strcmp(wait_status(" cancelled failed completed ", st, sizeof(st)), "cancelled"),
	      "attempt 2: %s", st);
	ev = source_line("{\"event\":\"migration\",\"status\":\"cancelled\"");
	CHECK(streq(jstr(ev, "status"), "cancelled") && jnum(ev, "ram_transferred") > 0,
	      "attempt 2's line: %s", ev ? json_object_to_json_string(ev) : "none");
	progress[1] = jnum(ev, "progress");
	CHECK(progress[1] > progress[0], "the guest did not run between attempts: %.0f -> %.0f",
	      progress[0], progress[1]);
	json_object_put(ev);
	p.dj = end_dest();
	expect_dest_never_resumed(&p, true);
	json_object_put(p.dj);
	p.dj = NULL;

	/* 3: unlimited again, a fresh destination: completed, verified */
	start_dest(ram, dsock, uri, sizeof(uri));
	call_ok("{\"cmd\":\"set\",\"name\":\"max-bandwidth\",\"value\":0}\n");
	snprintf(req, sizeof(req), "{\"cmd\":\"migrate\",\"uri\":\"%s\"}\n", uri);
	call_ok(req);
	mgmt_close(&src);
	{
		struct bench_proc *const both[2] = {&p.src, &p.dst};

		if (!bench_proc_pump(both, 1, deadline))
			CHECK(0, "the source still runs after attempt 3");
	}
	p.sj = last_object(&p.src, false);
	bench_proc_fini(&p.src);
	p.src_code = bench_proc_exit_code(&p.src);
	dj = end_dest();
	CHECK(streq(jstr(p.sj, "status"), "completed"), "source status %s (%s)",
	      jstr(p.sj, "status"), jstr(p.sj, "error"));
	CHECK(jbool(p.sj, "verified") == 1, "source verified %d", jbool(p.sj, "verified"));
	CHECK(streq(jstr(p.sj, "transport"), "tcp"), "transport %s", jstr(p.sj, "transport"));
	CHECK(p.src_code == 0, "source exit code %d", p.src_code);
	CHECK(streq(jstr(dj, "status"), "completed"), "destination status %s (%s)",
	      jstr(dj, "status"), jstr(dj, "error"));
	CHECK(jbool(dj, "progress_rising") == 1, "the guest does not run on the destination");
	CHECK(p.dst_code == 0, "destination exit code %d", p.dst_code);
	json_object_put(dj);
	json_object_put(p.sj);
	unlink(sock);
	unlink(dsock);
}

int main(int argc, char **argv)
{
	int fd;

	if (argc != 3 || strcmp(argv[1], "--vm"))
		die("usage: e2e_kvm_standby --vm TERN_VM");
	vm_path = argv[2];
	e2e_read_env();
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		printf("SKIP: /dev/kvm: %s (this test runs real KVM guests)\n", strerror(errno));
		return EXIT_SKIP;
	}
	close(fd);
	if (access(vm_path, X_OK))
		die("%s: %s", vm_path, strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	case_standby();
	if (failures) {
		fprintf(stderr, "e2e_kvm_standby: %d check(s) failed\n", failures);
		return 1;
	}
	printf("e2e_kvm_standby: ok\n");
	return 0;
}
