/* SPDX-License-Identifier: MIT */
/*
 * Include this instead of <cmocka.h>: it brings in what cmocka.h needs first
 * (it does not include its own dependencies), and keeps the 1.x / 2.x
 * differences in one place. Debian 12 ships cmocka 1.1.5; 2.0 has typed
 * assertions (assert_uint_equal, check_expected_int, will_return_int) and
 * deprecates the untyped ones. Write tests against the typed names; on 1.x
 * they map to the untyped ones here.
 *
 * Integer assertions in 1.x print negative numbers as huge unsigned ones, so
 * return codes are best checked with assert_rc_equal(), which prints them
 * signed, with their errno name.
 */
#ifndef TERN_CMOCKA_COMPAT_H
#define TERN_CMOCKA_COMPAT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>

/*
 * fail() never returns: it longjmps out of the test (or exits). 1.x does not
 * say so, which sends static analyzers down paths that cannot happen.
 */
void _fail(const char *const file, const int line) __attribute__((noreturn));

/* cmocka 2.x defines these in cmocka_version.h; 1.x has no version macro. */
#ifndef CMOCKA_VERSION_MAJOR
#define CMOCKA_VERSION_MAJOR 1
#endif

#if CMOCKA_VERSION_MAJOR < 2
#ifndef assert_uint_equal
#define assert_uint_equal(a, b) assert_int_equal(a, b)
#endif
#ifndef assert_uint_not_equal
#define assert_uint_not_equal(a, b) assert_int_not_equal(a, b)
#endif
#ifndef check_expected_int
#define check_expected_int(p) check_expected(p)
#endif
#ifndef check_expected_uint
#define check_expected_uint(p) check_expected(p)
#endif
#ifndef will_return_int
#define will_return_int(f, v) will_return(f, v)
#endif
#ifndef will_return_uint
#define will_return_uint(f, v) will_return(f, v)
#endif
#ifndef expect_int_value
#define expect_int_value(f, p, v) expect_value(f, p, v)
#endif
#ifndef expect_uint_value
#define expect_uint_value(f, p, v) expect_value(f, p, v)
#endif
#endif /* CMOCKA_VERSION_MAJOR < 2 */

/*
 * assert_rc_equal() - a return code (0, positive, or a negative errno)
 * equals @expected; on failure both are printed signed, with strerror.
 */
#define assert_rc_equal(rc, expected)                                                              \
	do {                                                                                       \
		long long _rc = (long long)(rc), _ex = (long long)(expected);                      \
		if (_rc != _ex) {                                                                  \
			print_error("%s = %lld (%s), expected %lld (%s)\n", #rc, _rc,              \
				    _rc < 0 ? strerror((int)-_rc) : "ok", _ex,                     \
				    _ex < 0 ? strerror((int)-_ex) : "ok");                         \
			fail();                                                                    \
		}                                                                                  \
	} while (0)

/* assert_str_contains() - @needle occurs in the string @hay. */
#define assert_str_contains(hay, needle)                                                           \
	do {                                                                                       \
		const char *_h = (hay), *_n = (needle);                                            \
		if (!_h || !strstr(_h, _n)) {                                                      \
			print_error("\"%s\" does not contain \"%s\"\n", _h ? _h : "(null)", _n);   \
			fail();                                                                    \
		}                                                                                  \
	} while (0)

#endif /* TERN_CMOCKA_COMPAT_H */
