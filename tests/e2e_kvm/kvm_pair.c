/* SPDX-License-Identifier: MIT */
/*
 * The tern-vm pair runner: start a destination tern-vm (--incoming), read the
 * URI from its listening line, start a source tern-vm (--migrate-to) against
 * it, optionally SIGKILL the destination mid-migration or run a case's hook
 * while both run, then wait for both (the destination gets a grace after the
 * source, then SIGTERM) and keep their final JSON lines. Also the checks every
 * failed or cancelled pair must pass.
 */
#include "e2e_kvm.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

json_object *last_object(struct bench_proc *p, bool skip_first)
{
	char *line = bench_proc_last_object(p, skip_first);
	json_object *o = NULL;

	if (line) {
		fprintf(stderr, "%s: %s\n", p->name, line);
		o = json_tokener_parse(line);
		if (o && !json_object_is_type(o, json_type_object)) {
			json_object_put(o);
			o = NULL;
		}
	}
	free(line);
	return o;
}

static void argv_add(char **v, unsigned int *n, const char *s)
{
	if (*n + 2 > 48)
		die("too many arguments");
	v[(*n)++] = (char *)s;
	v[*n] = NULL;
}

/*
 * Wait until the destination's RSS grew by an eighth of the guest (pages are
 * landing), then 1 s more (scaled with the deadlines).
 */
static void kill_dest_mid(struct pair *p, uint64_t deadline)
{
	struct bench_proc *const both[2] = {&p->src, &p->dst};
	uint64_t base = bench_proc_rss(&p->dst), rss = base;
	uint64_t grow = scaled(64u << 20, true);
	uint64_t until;

	while (bench_now_ns() < deadline && bench_proc_running(&p->dst) &&
	       bench_proc_running(&p->src)) {
		bench_proc_pump(both, 2, bench_now_ns() + 20 * 1000000u);
		rss = bench_proc_rss(&p->dst);
		if (rss >= base + grow)
			break;
	}
	fprintf(stderr, "e2e_kvm: destination RSS %llu KiB -> %llu KiB (kill at +%llu KiB)\n",
		(unsigned long long)(base >> 10), (unsigned long long)(rss >> 10),
		(unsigned long long)(grow >> 10));
	CHECK(rss >= base + grow, "the migration never started landing pages");
	until = deadline_in(1);
	bench_proc_pump(both, 2, until < deadline ? until : deadline);
	CHECK(bench_proc_running(&p->dst), "the destination ended before it could be killed");
	CHECK(bench_proc_running(&p->src), "the source ended before the destination was killed");
	fprintf(stderr, "e2e_kvm: SIGKILL to the destination (pid %d)\n", (int)p->dst.pid);
	bench_proc_signal(&p->dst, SIGKILL);
	p->dst_killed_mid = true;
}

void run_pair(const struct pair_cfg *c, struct pair *p)
{
	unsigned int grace;
	struct bench_proc *const both[2] = {&p->src, &p->dst};
	uint64_t deadline = deadline_in(PAIR_DEADLINE_S);
	char *dv[48], *sv[48], uri[256];
	const char *listen = "tcp:127.0.0.1:0";
	unsigned int dn = 0, sn = 0, i;
	uint64_t src_end = 0;
	json_object *ev;
	char *line;
	int ret;

	memset(p, 0, sizeof(*p));
	p->src.out_fd = p->dst.out_fd = -1;
	if (!strcmp(c->transport, "unix")) {
		snprintf(p->sock, sizeof(p->sock), "unix:/tmp/tern-e2e-kvm-%d.sock", (int)getpid());
		unlink(p->sock + 5);
		listen = p->sock;
	}

	argv_add(dv, &dn, vm_path);
	argv_add(dv, &dn, "--ram");
	argv_add(dv, &dn, c->dst_ram);
	argv_add(dv, &dn, "--channels");
	argv_add(dv, &dn, c->channels);
	argv_add(dv, &dn, "--timeout");
	argv_add(dv, &dn, vm_timeout);
	argv_add(dv, &dn, "--incoming");
	argv_add(dv, &dn, listen);
	for (i = 0; c->dst_extra && c->dst_extra[i]; i++)
		argv_add(dv, &dn, c->dst_extra[i]);
	ret = bench_proc_spawn(&p->dst, "destination", dv);
	if (ret)
		die("cannot start %s: %s", vm_path, strerror(-ret));
	line = bench_proc_first_line(&p->dst, deadline);
	if (!line)
		die("the destination printed no listening line");
	fprintf(stderr, "destination: %s\n", line);
	ev = json_tokener_parse(line);
	if (!streq(jstr(ev, "event"), "listening") || !jstr(ev, "uri") ||
	    strncmp(jstr(ev, "uri"), c->transport, strlen(c->transport)))
		die("the destination's first line is not a listening event: %s", line);
	snprintf(uri, sizeof(uri), "%s", jstr(ev, "uri"));
	json_object_put(ev);
	free(line);

	argv_add(sv, &sn, vm_path);
	argv_add(sv, &sn, "--ram");
	argv_add(sv, &sn, c->src_ram);
	argv_add(sv, &sn, "--channels");
	argv_add(sv, &sn, c->channels);
	argv_add(sv, &sn, "--timeout");
	argv_add(sv, &sn, vm_timeout);
	argv_add(sv, &sn, "--migrate-to");
	argv_add(sv, &sn, uri);
	for (i = 0; c->src_extra && c->src_extra[i]; i++)
		argv_add(sv, &sn, c->src_extra[i]);
	ret = bench_proc_spawn(&p->src, "source", sv);
	if (ret)
		die("cannot start %s: %s", vm_path, strerror(-ret));

	if (c->kill_dest_mid)
		kill_dest_mid(p, deadline);
	if (c->during)
		c->during(p, c->ctx, deadline);

	/* The source first; then the destination gets a grace, then SIGTERM (it cancels). */
	grace = c->dest_grace_s ? c->dest_grace_s : DEST_GRACE_S;
	while (!bench_proc_pump(both, 2, bench_now_ns() + NS_PER_S)) {
		uint64_t now = bench_now_ns();

		if (now >= deadline) {
			CHECK(0, "still running %.0f s after the start: killed",
			      PAIR_DEADLINE_S * time_scale);
			break;
		}
		if (bench_proc_running(&p->src))
			continue;
		if (!src_end)
			src_end = now;
		if (!p->dst_termed && now >= src_end + (uint64_t)(grace * time_scale * NS_PER_S)) {
			fprintf(stderr,
				"e2e_kvm: destination still running %.0f s after the source: "
				"SIGTERM\n",
				grace * time_scale);
			bench_proc_signal(&p->dst, SIGTERM);
			p->dst_termed = true;
		}
	}
	p->sj = last_object(&p->src, false);
	p->dj = last_object(&p->dst, true);
	bench_proc_fini(&p->src);
	bench_proc_fini(&p->dst);
	p->src_code = bench_proc_exit_code(&p->src);
	p->dst_code = bench_proc_exit_code(&p->dst);
	if (p->sock[0])
		unlink(p->sock + 5);
}

void pair_fini(struct pair *p)
{
	json_object_put(p->sj);
	json_object_put(p->dj);
}

/* What every failed or cancelled migration owes: the source guest runs on. */
void expect_source_guest_running(const struct pair *p)
{
	CHECK(p->sj, "no final line from the source");
	CHECK(streq(jstr(p->sj, "side"), "source"), "side: %s", jstr(p->sj, "side"));
	CHECK(jbool(p->sj, "progress_rising") == 1,
	      "the source guest did not keep running: progress %.0f -> %.0f",
	      jnum(p->sj, "progress_at_resume"), jnum(p->sj, "progress_after"));
	CHECK(p->src_code > 0, "source exit code %d, want non-zero (not completed)", p->src_code);
}

/* The destination guest must never have run: no data may be lost on either side. */
void expect_dest_never_resumed(const struct pair *p, bool allow_cancelled)
{
	const char *st = jstr(p->dj, "status");

	CHECK(p->dj, "no final line from the destination");
	CHECK(streq(st, "failed") || (allow_cancelled && streq(st, "cancelled")),
	      "destination status %s, want failed", st ? st : "(none)");
	CHECK(jnum(p->dj, "progress_at_resume") == 0, "destination progress_at_resume %.0f",
	      jnum(p->dj, "progress_at_resume"));
	CHECK(jnum(p->dj, "progress_after") == 0, "destination progress_after %.0f",
	      jnum(p->dj, "progress_after"));
	CHECK(jbool(p->dj, "progress_rising") == 0, "destination progress_rising %d",
	      jbool(p->dj, "progress_rising"));
	CHECK(p->dst_code > 0, "destination exit code %d, want non-zero", p->dst_code);
}

/* Read the pair's pipes for up to @ms (their stdout must not fill up while we talk). */
void pair_pump(struct pair *p, unsigned int ms)
{
	struct bench_proc *const both[2] = {&p->src, &p->dst};

	bench_proc_pump(both, 2, bench_now_ns() + (uint64_t)ms * 1000000u);
}
