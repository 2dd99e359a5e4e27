/* SPDX-License-Identifier: MIT */
/*
 * The tern-vm guest workload: freestanding 64-bit code that runs at CPL 3 in
 * an identity-mapped guest (guest virtual == guest physical), with no kernel
 * underneath. Every vCPU enters _start with RDI = the mailbox, RSI = its
 * index and RSP at the top of its own stack (see vm/kvm_guest.h).
 *
 * Two phases per vCPU:
 *   fill   write every page of its slice once (xorshift64 data or text made
 *          of dictionary words), leaving a hashed --zero-pct share of pages
 *          untouched (they read as zero), then report on TV_PORT_FILL_DONE;
 *   dirty  forever: write a few bytes into pages of its working set at
 *          dirty_rate bytes/s (a page written counts 4096 bytes), paced by
 *          RDTSC. Or, with dirty_rounds, driven by the migration instead of
 *          the clock: rewrite half of every working-set page once per
 *          migration round, for that many rounds, then idle; what a test
 *          then sees (each page re-sent once a round) holds at any guest
 *          speed. Ahead of the pace, or idle, it asks the VMM to sleep
 *          (TV_PORT_SLEEP) instead of spinning: source and destination may
 *          share two host cores. Time the VMM held the vCPU out of the
 *          guest (auto-converge's throttle, box->held_tsc) is not paced
 *          time: the guest does not write faster afterwards to make it up.
 *
 * What it must not do: hlt, int, syscall, anything that needs ring 0 (on
 * nested PVM KVM ring 0 is not available to this guest). rdtsc and `out` on
 * the ports of abi.h (open in the TSS's I/O bitmap) are fine. It keeps no global writable state:
 * everything lives in registers, on its stack or in its mailbox box.
 *
 * The progress counter rises with every page written and every sleep, so a
 * VMM can tell a running guest from a stopped one even when it is idle.
 */
#include <stddef.h>
#include <stdint.h>

#include "abi.h"

/* KG_WORK_GPA, repeated here so that the guest does not include the VMM's headers. */
#define GUEST_WORK_GPA 0x200000ull
#define WORDS_PER_PAGE (TV_PAGE_SIZE / 8)
#define BURST_PAGES 256 /* pages written between two TSC reads */

void guest_main(struct tv_mailbox *mb, uint64_t idx) __attribute__((noreturn, used));
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);

/* RIP = KG_CODE_GPA: the linker script puts this section first. Align the
 * stack ourselves before the call, whatever RSP the VMM chose, so that
 * guest_main() starts with the SysV ABI's alignment (RSP + 8 a multiple of 16). */
__asm__(".section .text.entry,\"ax\",@progbits\n"
	".globl _start\n"
	"_start:\n"
	"	andq $-16, %rsp\n"
	"	call guest_main\n"
	"1:	jmp 1b\n"
	".previous\n");

/* The compiler may turn loops into calls to these even when freestanding. */
void *memset(void *dst, int c, size_t n)
{
	void *d = dst;

	__asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	void *d = dst;

	__asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
	return dst;
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint64_t xorshift64(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return x;
}

/* splitmix64's finaliser: a page address in, a well-mixed word out. */
static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

/* Counters the VMM reads while we run: plain stores, never torn (aligned). */
static inline void count(volatile uint64_t *c, uint64_t n)
{
	*c = *c + n;
}

static void sleep_us(struct tv_vcpu_box *box, uint32_t us)
{
	outl(TV_PORT_SLEEP, us);
	count(&box->progress, 1);
}

static void __attribute__((noreturn)) panic(struct tv_vcpu_box *box, uint32_t code)
{
	outl(TV_PORT_PANIC, code);
	for (;;)
		if (box)
			sleep_us(box, TV_SLEEP_IDLE_US);
		else
			outl(TV_PORT_SLEEP, TV_SLEEP_IDLE_US);
}

/* ---- fill ------------------------------------------------------------------ */

static const char *const words[] = {
    "the",     "guest",	  "page",   "dirty",   "round",	   "channel", "migration", "kernel",
    "memory",  "vcpu",	  "host",   "switch",  "over",	   "bitmap",  "socket",	   "stream",
    "section", "load",	  "save",   "network", "time",	   "and",     "of",	   "a",
    "to",      "in",	  "is",	    "for",     "with",	   "that",    "data",	   "block",
    "write",   "read",	  "then",   "once",    "every",	   "while",   "after",	   "before",
    "source",  "target",  "state",  "device",  "register", "counter", "pause",	   "resume",
    "virtual", "machine", "paging", "table",   "entry",	   "address", "offset",	   "length",
    "value",   "number",  "thread", "queue",   "buffer",   "packet",  "header",	   "payload",
};

#define NWORDS (sizeof(words) / sizeof(words[0]))

static void fill_random(uint64_t *w, uint64_t *rng)
{
	uint64_t i;

	for (i = 0; i < WORDS_PER_PAGE; i++)
		w[i] = xorshift64(rng);
}

/* Prose-like bytes: words, spaces, a newline every ~72 columns. */
static void fill_text(char *p, uint64_t *rng)
{
	uint64_t i = 0, col = 0, r = 0, bits = 0;

	while (i < TV_PAGE_SIZE) {
		const char *wd;

		if (bits < 6) {
			r = xorshift64(rng);
			bits = 64;
		}
		wd = words[r % NWORDS];
		r >>= 6;
		bits -= 6;
		while (*wd && i < TV_PAGE_SIZE) {
			p[i++] = *wd++;
			col++;
		}
		if (i < TV_PAGE_SIZE) {
			p[i++] = col > 72 ? '\n' : ' ';
			col = col > 72 ? 0 : col + 1;
		}
	}
}

static void fill_slice(const struct tv_mailbox *mb, struct tv_vcpu_box *box, uint64_t *rng)
{
	uint64_t p, gpa;

	for (p = 0; p < box->slice_pages; p++) {
		gpa = box->slice_gpa + p * TV_PAGE_SIZE;
		count(&box->progress, 1);
		/* zero or not depends on the page only, not on the vCPU count */
		if (mb->zero_bp && mix64(gpa / TV_PAGE_SIZE) % 10000 < mb->zero_bp)
			continue;
		if (mb->fill == TV_FILL_TEXT)
			fill_text((char *)gpa, rng);
		else
			fill_random((uint64_t *)gpa, rng);
	}
	box->fill_done = 1;
	__asm__ volatile("" : : : "memory");
}

/* ---- dirty ----------------------------------------------------------------- */

/* Change the page for sure: XOR a non-zero value into its first word, and
 * scatter one more word somewhere inside it. */
static inline void touch_page(uint64_t gpa, uint64_t *rng)
{
	volatile uint64_t *w = (volatile uint64_t *)gpa;
	uint64_t v = xorshift64(rng);

	w[0] = w[0] ^ (v | 1);
	w[(v >> 20) % WORDS_PER_PAGE] = v;
}

struct picker {
	uint64_t ws, hot, next, written;
};

static uint64_t pick_page(const struct tv_mailbox *mb, struct picker *pk, uint64_t *rng)
{
	uint64_t r;

	switch (mb->pattern) {
	case TV_PATTERN_RANDOM:
		return xorshift64(rng) % pk->ws;
	case TV_PATTERN_HOT_COLD:
		r = xorshift64(rng);
		if (pk->hot == pk->ws || r % 100 < 80)
			return (r >> 8) % pk->hot;
		return pk->hot + (r >> 8) % (pk->ws - pk->hot);
	default:
		r = pk->next;
		pk->next = r + 1 == pk->ws ? 0 : r + 1;
		return r;
	}
}

static void __attribute__((noreturn))
dirty_loop(const struct tv_mailbox *mb, struct tv_vcpu_box *box, uint64_t *rng)
{
	const uint64_t khz = mb->tsc_khz, rate = box->dirty_rate;
	struct picker pk = {.ws = box->ws_pages, .hot = box->ws_pages / 5};
	volatile const uint64_t *held_p = &box->held_tsc;
	uint64_t t0 = rdtsc(), done = 0, held_seen = *held_p;

	if (!pk.hot)
		pk.hot = 1;
	for (;;) {
		uint64_t now, us, allowed, n, i, held;

		if (!rate || !pk.ws ||
		    (box->dirty_pages_max && box->pages_written >= box->dirty_pages_max)) {
			sleep_us(box, TV_SLEEP_IDLE_US);
			continue;
		}
		now = rdtsc();
		/* Held out by the VMM's throttle: move the window's start by that
		 * much, so the pace never counts it (were it counted, up to 10 ms
		 * of it would be caught up below after every hold). Past now, the
		 * check below starts a fresh window. */
		held = *held_p;
		if (held != held_seen) {
			t0 += held - held_seen;
			held_seen = held;
		}
		/* The TSC may jump (a migration restores it, a host may
		 * stop us): start a fresh pace window instead of catching up. */
		if (now < t0 || (now - t0) / khz > 2000) {
			t0 = now;
			done = 0;
			continue;
		}
		us = (now - t0) * 1000 / khz;
		allowed = rate * us / 1000000;
		if (us >= 1000000) {
			/* new window every second: keep a lead, and keep
			 * rate * us far from overflowing */
			done = done > allowed ? done - allowed : 0;
			t0 = now;
			continue;
		}
		/* Behind (starved, or write faults under dirty logging): forgive all
		 * but 10 ms of the lag, so the guest never bursts above its rate. */
		if (allowed > done + rate / 100)
			done = allowed - rate / 100;
		if (done >= allowed) {
			uint64_t wait = (done - allowed + TV_PAGE_SIZE) * 1000000 / rate;

			if (wait < TV_SLEEP_MIN_US)
				wait = TV_SLEEP_MIN_US;
			if (wait > TV_SLEEP_MAX_US)
				wait = TV_SLEEP_MAX_US;
			sleep_us(box, (uint32_t)wait);
			continue;
		}
		n = (allowed - done) / TV_PAGE_SIZE + 1;
		if (n > BURST_PAGES)
			n = BURST_PAGES;
		for (i = 0; i < n; i++) {
			touch_page(box->slice_gpa + pick_page(mb, &pk, rng) * TV_PAGE_SIZE, rng);
			if (++pk.written == pk.ws) {
				pk.written = 0;
				count(&box->passes, 1);
			}
		}
		done += n * TV_PAGE_SIZE;
		count(&box->pages_written, n);
		count(&box->progress, n);
	}
}

/*
 * The round-driven workload: each time the VMM publishes a new migration
 * round, rewrite the first half of every working-set page (fresh data, so
 * XBZRLE sees a delta of half a page), then say so in round_served (the
 * VMM's sync waits for it: vm/tv_rounds.c), until dirty_rounds rounds were
 * served. Between rounds, sleep at the shortest tick: a new round is seen
 * within TV_SLEEP_MIN_US of the VMM publishing it.
 */
static void __attribute__((noreturn))
round_loop(const struct tv_mailbox *mb, struct tv_vcpu_box *box, uint64_t *rng)
{
	volatile const uint64_t *round_p = &mb->round;
	uint64_t seen = *round_p, served = 0, p, i;

	for (;;) {
		uint64_t r = *round_p;

		if (r == seen || served >= box->dirty_rounds) {
			sleep_us(box,
				 served >= box->dirty_rounds ? TV_SLEEP_IDLE_US : TV_SLEEP_MIN_US);
			continue;
		}
		seen = r;
		for (p = 0; p < box->ws_pages; p++) {
			volatile uint64_t *w =
			    (volatile uint64_t *)(box->slice_gpa + p * TV_PAGE_SIZE);

			for (i = 0; i < WORDS_PER_PAGE / 2; i++)
				w[i] = xorshift64(rng);
		}
		served++;
		__asm__ volatile("" : : : "memory"); /* the pass, then the word */
		*(volatile uint64_t *)&box->round_served = r;
		count(&box->passes, 1);
		count(&box->pages_written, box->ws_pages);
		count(&box->progress, box->ws_pages + 1);
	}
}

/* ---- entry ----------------------------------------------------------------- */

void guest_main(struct tv_mailbox *mb, uint64_t idx)
{
	struct tv_vcpu_box *box;
	uint64_t rng, end;

	if (mb->magic != TV_MAILBOX_MAGIC || mb->abi_version != TV_ABI_VERSION)
		panic(NULL, TV_PANIC_MAGIC);
	if (idx >= mb->nvcpus || idx >= TV_MAX_VCPUS)
		panic(NULL, TV_PANIC_VCPU);
	box = &mb->vcpu[idx];
	if (mb->fill <= TV_FILL_INVALID || mb->fill >= TV_FILL_MAX ||
	    mb->pattern <= TV_PATTERN_INVALID || mb->pattern >= TV_PATTERN_MAX || !mb->tsc_khz ||
	    mb->zero_bp > 10000)
		panic(box, TV_PANIC_PARAMS);
	end = box->slice_gpa + box->slice_pages * TV_PAGE_SIZE;
	if (box->slice_gpa < GUEST_WORK_GPA || box->slice_gpa % TV_PAGE_SIZE ||
	    box->slice_pages > mb->ram_size / TV_PAGE_SIZE || end > mb->ram_size ||
	    end < box->slice_gpa || box->ws_pages > box->slice_pages)
		panic(box, TV_PANIC_SLICE);

	rng = box->seed | 1;
	if (!box->fill_done)
		fill_slice(mb, box, &rng);
	outl(TV_PORT_FILL_DONE, (uint32_t)idx);
	if (box->dirty_rounds)
		round_loop(mb, box, &rng);
	dirty_loop(mb, box, &rng);
}
