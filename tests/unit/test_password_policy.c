/*
 * test_password_policy.c: the password rules (password_policy_check) and the
 * argon2id hashing (password_hash, password_verify). Each refusal asserts the
 * rule named in its reason, not only the verdict; the incident's admin123
 * and password1 are here under the default policy and a weakened one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "core/config.h"
#include "directory/directory.h"

#define REASON_SHORT "password too short"
#define REASON_COMPLEX "(security_policy.require_password_complexity); missing: "
#define REASON_NAME "password contains the account name"
#define REASON_COMMON "password is in the list of most common passwords"

struct policy_case {
	const char *name;
	int min_length;          /* 0: the default, 12 */
	bool no_complexity;      /* true: require_password_complexity: false */
	const char *address;     /* NULL: admin@mail.sethlakowske.com */
	const char *password;
	bool ok;
	const char *reason;      /* substring of the reason when refused */
};

static const struct policy_case policy_cases[] = {
	/* The incident's passwords: with the defaults, length fires first. */
	{ .name = "incident admin123", .password = "admin123",
	  .reason = "password too short: 8 characters, security_policy.minimum_password_length is 12" },
	{ .name = "incident password1", .address = "test1@mail.sethlakowske.com",
	  .password = "password1",
	  .reason = "password too short: 9 characters, security_policy.minimum_password_length is 12" },
	/* ...and with the length lowered, the common list still refuses them. */
	{ .name = "admin123 short policy", .min_length = 6, .password = "admin123",
	  .reason = REASON_COMMON },
	{ .name = "password1 short policy", .min_length = 6,
	  .address = "test1@mail.sethlakowske.com", .password = "password1",
	  .reason = REASON_COMMON },
	{ .name = "admin123 no complexity", .min_length = 6, .no_complexity = true,
	  .password = "admin123", .reason = REASON_COMMON },
	{ .name = "password1 no rules but common", .min_length = 1, .no_complexity = true,
	  .password = "password1", .reason = REASON_COMMON },

	/* Common passwords in disguise. */
	{ .name = "Password123!", .password = "Password123!", .reason = REASON_COMMON },
	{ .name = "P@ssw0rd2024!", .password = "P@ssw0rd2024!", .reason = REASON_COMMON },
	{ .name = "Passw0rd!", .min_length = 8, .password = "Passw0rd!", .reason = REASON_COMMON },
	{ .name = "upper case", .min_length = 6, .password = "QWERTY", .reason = REASON_COMMON },
	{ .name = "leading symbols", .password = "!!Dragon2024#", .reason = REASON_COMMON },
	{ .name = "look-alike at the end", .min_length = 5, .no_complexity = true,
	  .password = "hell0", .reason = REASON_COMMON },
	{ .name = "1 for l", .min_length = 6, .password = "Wi11iam!", .reason = REASON_COMMON },
	{ .name = "$ and 3", .min_length = 6, .password = "$ecr3t2025!", .reason = REASON_COMMON },
	{ .name = "season and year", .password = "Summer2025!!", .reason = REASON_COMMON },
	{ .name = "welcome", .password = "Welcome1234!", .reason = REASON_COMMON },
	{ .name = "iloveyou", .min_length = 8, .password = "iloveyou", .reason = REASON_COMMON },
	{ .name = "digits only", .min_length = 6, .password = "123456789", .reason = REASON_COMMON },
	{ .name = "keyboard walk", .password = "1qaz2wsx!!!!", .reason = REASON_COMMON },
	{ .name = "changeme", .password = "Changeme2024?", .reason = REASON_COMMON },

	/* The account name. */
	{ .name = "local part", .address = "alice@example.test",
	  .password = "Alice-Horse-Battery-9", .reason = REASON_NAME },
	{ .name = "local part upper case", .address = "Alice@example.test",
	  .password = "xxALICExx-Battery-9", .reason = REASON_NAME },
	{ .name = "local part look-alikes", .address = "alice@example.test",
	  .password = "@l1ce-Horse-Battery-9", .reason = REASON_NAME },
	{ .name = "piece of the local part", .address = "john.smith@example.test",
	  .password = "Smith-Horse-Battery-9", .reason = REASON_NAME },
	{ .name = "domain label", .address = "bob@example.test",
	  .password = "Example-Horse-Battery-9", .reason = REASON_NAME },
	{ .name = "incident domain", .password = "Sethlakowske-Horse-9", .reason = REASON_NAME },
	{ .name = "admin in a longer password", .password = "MyAdmin-Horse-Battery-9",
	  .reason = REASON_NAME },
	{ .name = "short name piece ignored", .address = "jo@ex.test",
	  .password = "Jo-Horse-Battery-99", .ok = true },
	{ .name = "top-level label ignored", .address = "bob@example.test",
	  .password = "Testing-Horse-Battery-9", .ok = true },

	/* Complexity. */
	{ .name = "all lower", .password = "correcthorsebatterystaple",
	  .reason = REASON_COMPLEX "upper-case, digit, special" },
	{ .name = "no lower", .password = "CORRECT-HORSE-7",
	  .reason = REASON_COMPLEX "lower-case" },
	{ .name = "no special", .password = "CorrectHorse77",
	  .reason = "password needs an upper-case letter, a lower-case letter, a digit "
	  "and a special character (security_policy.require_password_complexity); missing: special" },
	{ .name = "no digit", .password = "Correct-Horse-Battery",
	  .reason = REASON_COMPLEX "digit" },
	{ .name = "complexity off", .no_complexity = true,
	  .password = "correcthorsebatterystaple", .ok = true },
	{ .name = "non-ASCII counts as special", .password = "Correct7Horseß", .ok = true },

	/* Length counts characters, not bytes. */
	{ .name = "utf-8 twelve characters", .password = "\xc3\x9c" "n" "\xc3\xaf" "c" "\xc3\xb6" "d" "\xc3\xa9" "-Pw-9",
	  .ok = true },
	{ .name = "utf-8 ten characters, fourteen bytes",
	  .password = "\xc3\x9c" "n" "\xc3\xaf" "c" "\xc3\xb6" "d" "\xc3\xa9" "-P9",
	  .reason = "password too short: 10 characters," },
	{ .name = "one character", .password = "Z", .reason = "password too short: 1 character," },

	/* Bytes that are no password. */
	{ .name = "empty", .password = "", .reason = "password is empty" },
	{ .name = "bad utf-8", .password = "\xff\xfe" "Abcdefgh1!xyz",
	  .reason = "not valid UTF-8" },
	{ .name = "overlong utf-8", .password = "\xc0\xaf" "Abcdefgh1!xyz",
	  .reason = "not valid UTF-8" },
	{ .name = "tab", .password = "Abcdefgh1!\txyz", .reason = "control character" },

	/* Good ones. */
	{ .name = "strong", .password = "Correct-Horse-Battery-9", .ok = true },
	{ .name = "strong short policy", .min_length = 8, .password = "Tr0ub4dor&3", .ok = true },
};

static struct config_security_policy
default_policy(void)
{
	return (struct config_security_policy){
		.require_email_confirmation = true,
		.max_failed_login_attempts = 3,
		.account_lockout_duration_minutes = 60,
		.minimum_password_length = 12,
		.require_password_complexity = true,
		.disable_smtp_auth_for_unconfirmed = true,
	};
}

static void
test_policy_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(policy_cases) / sizeof(policy_cases[0]); i++) {
		const struct policy_case *c = &policy_cases[i];
		struct config_security_policy p = default_policy();
		const char *address = c->address != NULL ? c->address :
		    "admin@mail.sethlakowske.com";
		const char *reason = "(unset)";
		int rc;

		if (c->min_length != 0)
			p.minimum_password_length = c->min_length;
		if (c->no_complexity)
			p.require_password_complexity = false;
		rc = password_policy_check(&p, address, c->password, &reason);
		if (c->ok) {
			if (rc != 0)
				fail_msg("case '%s': refused: %s", c->name, reason);
			continue;
		}
		if (rc != -1)
			fail_msg("case '%s': accepted, expected '%s'", c->name, c->reason);
		if (reason == NULL || strstr(reason, c->reason) == NULL)
			fail_msg("case '%s': reason '%s', expected '%s'", c->name,
			    reason != NULL ? reason : "(null)", c->reason);
		if (strchr(reason, '\n') != NULL)
			fail_msg("case '%s': reason spans lines", c->name);
		/* The password itself never shows up in a reason. */
		if (strlen(c->password) >= 5 && strstr(reason, c->password) != NULL)
			fail_msg("case '%s': reason repeats the password", c->name);
	}
}

static void
test_policy_too_long(void **state)
{
	struct config_security_policy p = default_policy();
	char pw[1100];
	const char *reason = NULL;

	(void)state;
	memset(pw, 'a', sizeof(pw) - 1);
	pw[sizeof(pw) - 1] = '\0';
	memcpy(pw, "Aa1!", 4);
	assert_int_equal(password_policy_check(&p, "x@example.test", pw, &reason), -1);
	assert_non_null(strstr(reason, "password too long"));
	pw[1024] = '\0';
	assert_int_equal(password_policy_check(&p, "x@example.test", pw, &reason), 0);
}

static void
test_policy_no_address(void **state)
{
	struct config_security_policy p = default_policy();
	const char *reason = NULL;

	(void)state;
	assert_int_equal(password_policy_check(&p, NULL, "Correct-Horse-Battery-9",
	    &reason), 0);
	assert_int_equal(password_policy_check(&p, NULL, "admin123", &reason), -1);
	assert_non_null(strstr(reason, REASON_SHORT));
}

static void
test_hash_verify(void **state)
{
	char hash[crypto_pwhash_STRBYTES], small[16];
	const char *pw = "Correct-Horse-Battery-9";

	(void)state;
	assert_int_equal(password_hash(pw, hash, sizeof(hash)), 0);
	assert_memory_equal(hash, "$argon2id$", 10);
	assert_int_equal(password_verify(hash, pw), 1);
	assert_int_equal(password_verify(hash, "Correct-Horse-Battery-8"), 0);
	assert_int_equal(password_verify(hash, ""), 0);
	/* Salted: the same password hashes differently each time. */
	char again[crypto_pwhash_STRBYTES];
	assert_int_equal(password_hash(pw, again, sizeof(again)), 0);
	assert_string_not_equal(hash, again);
	assert_int_equal(password_verify(again, pw), 1);
	/* Malformed hashes and short buffers are errors, not mismatches. */
	assert_int_equal(password_verify("", pw), -1);
	assert_int_equal(password_verify("plain-text", pw), -1);
	assert_int_equal(password_verify(NULL, pw), -1);
	assert_int_equal(password_hash(pw, small, sizeof(small)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_table),
		cmocka_unit_test(test_policy_too_long),
		cmocka_unit_test(test_policy_no_address),
		cmocka_unit_test(test_hash_verify),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
