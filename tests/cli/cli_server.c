/* SPDX-License-Identifier: MIT */
/*
 * The server side of tests/cli/cli_test.c: @npairs pairs of tern sessions
 * (a source with some data in its RAM, a destination with zeroed RAM of the
 * same size), each serving the management protocol at DIR/srcN.sock and
 * DIR/dstN.sock. It prints "ready" once every socket listens, then serves
 * until its stdin closes, and frees everything (which removes the sockets).
 *
 * usage: cli_server DIR NPAIRS
 *
 * Public API only, linked against libtern like any VMM. No dirty-log
 * provider: nothing writes the RAM while it migrates, so every migration
 * converges after its first round.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tern/tern.h"

#define RAM_SIZE (1u << 20)
#define MAX_PAIRS 8

static int vm_pause(void *opaque, struct tern_error *err)
{
	return 0;
}

static void vm_resume(void *opaque)
{
}

static const struct tern_vmm_ops ops = {.pause = vm_pause, .resume = vm_resume};

static struct tern_session *serve(const char *dir, const char *role, int i, bool fill)
{
	struct tern_session *s = NULL;
	struct tern_error err = {0};
	char path[108];
	void *ram;

	ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (ram == MAP_FAILED) {
		perror("cli_server: mmap");
		exit(1);
	}
	if (fill)
		memset(ram, 0x5a, RAM_SIZE / 2);
	snprintf(path, sizeof(path), "%s/%s%d.sock", dir, role, i);
	if (tern_session_new(&ops, NULL, &s, &err) ||
	    tern_ram_register(s, "ram", ram, RAM_SIZE, NULL, &err) ||
	    tern_mgmt_listen(s, path, &err)) {
		fprintf(stderr, "cli_server: %s: %s\n", path, err.msg);
		exit(1);
	}
	/* The RAM stays mapped until exit: the session may use it until freed. */
	return s;
}

int main(int argc, char **argv)
{
	struct tern_session *s[2 * MAX_PAIRS];
	char buf[64];
	int n, i;

	if (argc != 3 || (n = atoi(argv[2])) < 1 || n > MAX_PAIRS) {
		fprintf(stderr, "usage: cli_server DIR NPAIRS (1..%d)\n", MAX_PAIRS);
		return 2;
	}
	for (i = 0; i < n; i++) {
		s[2 * i] = serve(argv[1], "src", i, true);
		s[2 * i + 1] = serve(argv[1], "dst", i, false);
	}
	printf("ready\n");
	fflush(stdout);
	while (read(STDIN_FILENO, buf, sizeof(buf)) > 0)
		;
	for (i = 0; i < 2 * n; i++)
		tern_session_free(s[i]);
	return 0;
}
