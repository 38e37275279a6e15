/*
 * test_conf_tls.c: the [tls] keys as the file is read: a key file that group or others may read is
 * refused with file:line and the key named (conf_secret_file_ok), and TLS that cannot work is an error
 * at start, not a surprise at the first handshake.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf.h"

static char key_path[64];

static int
make_key(void **state)
{
	int fd;

	(void)state;
	snprintf(key_path, sizeof(key_path), "/tmp/pgcheckd-test-key-XXXXXX");
	fd = mkstemp(key_path);
	if (fd < 0)
		return -1;
	if (write(fd, "secret\n", 7) != 7) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int
remove_key(void **state)
{
	(void)state;
	unlink(key_path);
	return 0;
}

static bool
load_text(const char *text, struct conf *c, char *err, size_t errlen)
{
	FILE *f = fmemopen((void *)(uintptr_t)text, strlen(text), "r");
	bool ok;

	assert_non_null(f);
	ok = conf_load_stream(f, "t.ini", c, err, errlen);
	fclose(f);
	return ok;
}

static void
test_secret_file_readable_by_group_or_others_is_refused(void **state)
{
	static const mode_t refused[] = {0644, 0640, 0604, 0660, 0606, 0610, 0601};
	char why[512];

	(void)state;
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		char mode[8];

		assert_int_equal(chmod(key_path, refused[i]), 0);
		assert_false(conf_secret_file_ok(key_path, why, sizeof(why)));
		snprintf(mode, sizeof(mode), "%04o", (unsigned)refused[i]);
		assert_non_null(strstr(why, mode));
		assert_non_null(strstr(why, "chmod 600"));
		assert_null(strstr(why, "secret\n")); /* never the content */
	}
	assert_int_equal(chmod(key_path, 0600), 0);
	assert_true(conf_secret_file_ok(key_path, why, sizeof(why)));
	assert_int_equal(chmod(key_path, 0400), 0);
	assert_true(conf_secret_file_ok(key_path, why, sizeof(why)));
}

static void
test_secret_file_missing_or_not_a_file_is_refused(void **state)
{
	char why[512];

	(void)state;
	assert_false(conf_secret_file_ok("/nonexistent/key.pem", why, sizeof(why)));
	assert_string_equal(why, "/nonexistent/key.pem: No such file or directory");
	assert_false(conf_secret_file_ok("/tmp", why, sizeof(why)));
	assert_string_equal(why, "/tmp is not a regular file");
}

static void
test_tls_key_file_others_may_read_names_line_and_key(void **state)
{
	struct conf c;
	char text[512], err[CONF_ERR_MAX], want[512];

	(void)state;
	assert_int_equal(chmod(key_path, 0644), 0);
	snprintf(text, sizeof(text), "[tls]\nagent = true\ncert_file = /etc/c.pem\nkey_file = %s\n", key_path);
	assert_false(load_text(text, &c, err, sizeof(err)));
	snprintf(want, sizeof(want),
	         "t.ini:4: [tls] key_file: %s has mode 0644: group or others may read it, and it holds a secret "
	         "(refused, as libpq refuses a loose .pgpass): chmod 600 %s, owned by pgcheckd's user",
	         key_path, key_path);
	assert_string_equal(err, want);
	assert_int_equal(chmod(key_path, 0600), 0);
	assert_true(load_text(text, &c, err, sizeof(err)));
	assert_true(c.tls_agent);
	assert_false(c.tls_http);
	assert_int_equal(c.tls_verify_client, CONF_VERIFY_NONE);
}

static void
test_tls_that_cannot_work_is_an_error(void **state)
{
	struct conf c;
	char text[512], err[CONF_ERR_MAX];

	(void)state;
	assert_false(load_text("[tls]\nagent = true\n", &c, err, sizeof(err)));
	assert_string_equal(err, "t.ini:2: [tls] agent: TLS is on ([tls] agent or http) but cert_file or key_file is "
	                         "empty");
	snprintf(text, sizeof(text), "[tls]\ncert_file = /etc/c.pem\nkey_file = %s\n", key_path);
	assert_false(load_text(text, &c, err, sizeof(err)));
	assert_string_equal(err, "t.ini:2: [tls] cert_file: set, but no port uses TLS: set [tls] agent = true or "
	                         "[tls] http = true");
	snprintf(text, sizeof(text), "[tls]\nhttp = true\ncert_file = /etc/c.pem\nkey_file = %s\n", key_path);
	assert_false(load_text(text, &c, err, sizeof(err)));
	assert_string_equal(err, "t.ini:2: [tls] http: true, but there is no HTTP port ([agent] http_listen is empty)");
	snprintf(text, sizeof(text),
	         "[agent]\nhttp_listen = 127.0.0.1:8008\n[tls]\nhttp = true\ncert_file = /etc/c.pem\nkey_file = "
	         "%s\nverify_client = required\n",
	         key_path);
	assert_false(load_text(text, &c, err, sizeof(err)));
	assert_string_equal(err, "t.ini:7: [tls] verify_client: 'required' needs [tls] ca_file, the CA that signs the "
	                         "clients' certificates");
	snprintf(text, sizeof(text),
	         "[agent]\nhttp_listen = 127.0.0.1:8008\n[tls]\nhttp = true\ncert_file = /etc/c.pem\nkey_file = "
	         "%s\nverify_client = required\nca_file = /etc/ca.pem\n",
	         key_path);
	assert_true(load_text(text, &c, err, sizeof(err)));
	assert_int_equal(c.tls_verify_client, CONF_VERIFY_REQUIRED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_secret_file_readable_by_group_or_others_is_refused),
	    cmocka_unit_test(test_secret_file_missing_or_not_a_file_is_refused),
	    cmocka_unit_test(test_tls_key_file_others_may_read_names_line_and_key),
	    cmocka_unit_test(test_tls_that_cannot_work_is_an_error),
	};

	return cmocka_run_group_tests(tests, make_key, remove_key);
}
