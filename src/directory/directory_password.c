/*
 * directory_password.c: the password rules of security_policy and the
 * argon2id hashing behind them (libsodium). Trusts nothing about the
 * password: any bytes may arrive, from the CLI or later from a web form.
 * Passwords never reach a log or a reason string; reasons name the rule.
 * The incident (INCIDENT.md) had admin123 and password1: both are refused.
 */
#include "directory/directory.h"

#include <ctype.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "directory/directory_private.h"

/* Longer than any passphrase a person types; bounds the work per attempt. */
#define PASSWORD_MAX_BYTES 1024
/* Name pieces shorter than this are too common to refuse ("jo", "mx"). */
#define NAME_PIECE_MIN 3
/* Candidate forms are compared with the list only below this length. */
#define COMMON_MAX 64

/*
 * The most common passwords (breach-corpus top lists, plus the incident's
 * and the usual admin/test defaults), lower-case. A password also counts as
 * common when it equals one of these after lower-casing, removing leading or
 * trailing digits and symbols, and undoing look-alike substitutions, so the
 * list need not spell "Password123!" or "P@ssw0rd2024!".
 */
static const char *const common_passwords[] = {
	"123456", "password", "12345678", "qwerty", "123456789", "12345",
	"1234", "111111", "1234567", "dragon", "123123", "baseball", "abc123",
	"football", "monkey", "letmein", "696969", "shadow", "master", "666666",
	"qwertyuiop", "123321", "mustang", "1234567890", "michael", "654321",
	"superman", "1qaz2wsx", "7777777", "121212", "000000", "qazwsx",
	"123qwe", "killer", "trustno1", "jordan", "jennifer", "zxcvbnm",
	"asdfgh", "hunter", "hunter2", "buster", "soccer", "harley", "batman",
	"andrew", "tigger", "sunshine", "iloveyou", "fuckyou", "2000",
	"charlie", "robert", "thomas", "hockey", "ranger", "daniel", "starwars",
	"klaster", "112233", "george", "computer", "michelle", "jessica",
	"pepper", "1111", "zxcvbn", "555555", "11111111", "131313", "freedom",
	"777777", "pass", "maggie", "159753", "aaaaaa", "ginger", "princess",
	"joshua", "cheese", "amanda", "summer", "winter", "spring", "autumn",
	"love", "ashley", "nicole", "chelsea", "biteme", "matthew", "access",
	"yankees", "987654321", "dallas", "austin", "thunder", "taylor",
	"matrix", "minecraft", "william", "corvette", "hello", "martin",
	"heather", "secret", "merlin", "diamond", "1234qwer", "gfhjkm",
	"hammer", "silver", "222222", "88888888", "anthony", "justin", "test",
	"bailey", "q1w2e3r4t5", "patrick", "internet", "scooter", "orange",
	"11111", "golfer", "cookie", "richard", "samantha", "bigdog", "guitar",
	"jackson", "whatever", "mickey", "chicken", "sparky", "snoopy",
	"maverick", "phoenix", "camaro", "peanut", "morgan", "welcome",
	"falcon", "cowboy", "ferrari", "samsung", "andrea", "smokey", "steelers",
	"joseph", "mercedes", "dakota", "arsenal", "eagles", "melissa",
	"boomer", "booboo", "spider", "nascar", "monster", "tigers", "yellow",
	"xxxxxx", "123123123", "gateway", "marina", "diablo", "bulldog",
	"qwer1234", "compaq", "purple", "hardcore", "banana", "junior",
	"hannah", "123654", "porsche", "lakers", "iceman", "money", "cowboys",
	"987654", "london", "tennis", "999999", "ncc1701", "coffee", "scooby",
	"0000", "miller", "boston", "q1w2e3r4", "brandon", "yamaha", "chester",
	"mother", "forever", "johnny", "edward", "333333", "oliver", "redsox",
	"player", "nikita", "knight", "fender", "barney", "midnight", "please",
	"brandy", "chicago", "badboy", "slayer", "rangers", "charles", "angel",
	"flower", "rabbit", "wizard", "jasper", "rainbow", "passw0rd",
	"p@ssw0rd", "password1", "password123", "qwerty123", "1q2w3e4r",
	"1q2w3e", "zaq12wsx", "zaq1zaq1", "asdfghjkl", "qazwsxedc", "abcd1234",
	"aa123456", "abcdef", "abcdefg", "admin", "admin123", "administrator",
	"root", "toor", "changeme", "default", "guest", "user", "test123",
	"testing", "demo", "login", "letmein1", "welcome1", "iloveyou1",
	"qwerty1", "baseball1", "football1", "sunshine1", "princess1",
	"mail", "email", "postmaster", "webmaster", "server", "linux",
	"ubuntu", "debian", "raspberry", "system", "temp", "temppass",
	"secret123", "master123", "superuser", "support", "office", "company",
};

static const char *const *
common_end(void)
{
	return common_passwords + sizeof(common_passwords) / sizeof(common_passwords[0]);
}

/* Reasons that carry numbers live here: one per thread, until its next call. */
static _Thread_local char reason_buf[256];

/*
 * Walk the password as UTF-8: count code points and note the classes of
 * characters. Returns -1 on malformed UTF-8 (overlong forms and surrogates
 * included) or a control character: they are artefacts, not choices, and
 * SASL PLAIN cannot carry a NUL anyway.
 */
struct pw_scan {
	size_t chars;
	bool upper, lower, digit, special;
};

static int
pw_scan(const char *pw, struct pw_scan *scan)
{
	const unsigned char *p = (const unsigned char *)pw;

	memset(scan, 0, sizeof(*scan));
	while (*p != '\0') {
		unsigned c = *p;
		size_t len;
		unsigned cp;

		if (c < 0x80) {
			if (c < 0x20 || c == 0x7f)
				return -1;
			if (c >= 'A' && c <= 'Z')
				scan->upper = true;
			else if (c >= 'a' && c <= 'z')
				scan->lower = true;
			else if (c >= '0' && c <= '9')
				scan->digit = true;
			else
				scan->special = true;
			p++;
			scan->chars++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			len = 2;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4;
			cp = c & 0x07;
		} else {
			return -1;
		}
		for (size_t i = 1; i < len; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return -1;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0))
			return -1;
		/* Letters outside ASCII have no case we can judge here: special. */
		scan->special = true;
		scan->chars++;
		p += len;
	}
	return 0;
}

static void
ascii_lower(char *dst, const char *src, size_t dstlen)
{
	size_t i;

	for (i = 0; i + 1 < dstlen && src[i] != '\0'; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[i] = '\0';
}

/* Undo look-alike substitutions; one_as is what '1' stands for ('i' or 'l'). */
static void
unleet(char *s, char one_as)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '@': case '4': *s = 'a'; break;
		case '0': *s = 'o'; break;
		case '1': *s = one_as; break;
		case '3': *s = 'e'; break;
		case '$': case '5': *s = 's'; break;
		case '7': *s = 't'; break;
		default: break;
		}
	}
}

/* Remove trailing (and, if both, leading) bytes that are not ASCII letters. */
static void
strip_nonletters(char *s, bool both)
{
	size_t len = strlen(s), start = 0;

	while (len > 0 && !islower((unsigned char)s[len - 1]))
		len--;
	s[len] = '\0';
	if (both) {
		while (start < len && !islower((unsigned char)s[start]))
			start++;
		memmove(s, s + start, len - start + 1);
	}
}

static bool
in_common_list(const char *candidate)
{
	if (candidate[0] == '\0')
		return false;
	for (const char *const *w = common_passwords; w < common_end(); w++)
		if (strcmp(candidate, *w) == 0)
			return true;
	return false;
}

/*
 * Is the password a common one in disguise? Tries the lower-cased password,
 * then forms with the ends stripped and look-alikes undone, in both orders:
 * stripping first keeps "P@ssw0rd2024!" from becoming "passwordzoz4",
 * undoing first keeps "hell0" from losing its "o".
 */
static bool
password_is_common(const char *pw)
{
	static const char ones[] = { 'i', 'l' };
	char lower[COMMON_MAX], c[COMMON_MAX];

	if (strlen(pw) >= COMMON_MAX)
		return false;
	ascii_lower(lower, pw, sizeof(lower));
	if (in_common_list(lower))
		return true;
	for (int both = 0; both <= 1; both++) {
		memcpy(c, lower, sizeof(c));
		strip_nonletters(c, both);
		if (in_common_list(c))
			return true;
		for (size_t i = 0; i < sizeof(ones); i++) {
			/* stripped, then look-alikes undone */
			memcpy(c, lower, sizeof(c));
			strip_nonletters(c, both);
			unleet(c, ones[i]);
			if (in_common_list(c))
				return true;
			/* look-alikes undone, then stripped */
			memcpy(c, lower, sizeof(c));
			unleet(c, ones[i]);
			if (in_common_list(c))
				return true;
			strip_nonletters(c, both);
			if (in_common_list(c))
				return true;
		}
	}
	return false;
}

/* Does the password (lower-cased, and with look-alikes undone) contain piece? */
static bool
contains_piece(const char *lower, const char *leet_i, const char *leet_l,
    const char *piece, size_t piecelen)
{
	char p[256];

	if (piecelen < NAME_PIECE_MIN || piecelen >= sizeof(p))
		return false;
	for (size_t i = 0; i < piecelen; i++)
		p[i] = (char)tolower((unsigned char)piece[i]);
	p[piecelen] = '\0';
	return strstr(lower, p) != NULL || strstr(leet_i, p) != NULL ||
	    strstr(leet_l, p) != NULL;
}

/*
 * Does the password contain the account name: the local part, its pieces
 * between . - _ +, or a label of the domain other than the last? The
 * top-level label is left out on purpose: refusing every password with
 * "com" or "net" in it ("welcome", "internet") would be noise, and those
 * are in the common list where it matters.
 */
static bool
password_has_name(const char *address, const char *pw)
{
	char local[65], domain[256];
	char lower[PASSWORD_MAX_BYTES + 1], leet_i[sizeof(lower)], leet_l[sizeof(lower)];
	const char *p, *end;

	if (address == NULL || directory_split_address(address, local, sizeof(local),
	    domain, sizeof(domain)) != 0)
		return false;
	ascii_lower(lower, pw, sizeof(lower));
	memcpy(leet_i, lower, sizeof(lower));
	unleet(leet_i, 'i');
	memcpy(leet_l, lower, sizeof(lower));
	unleet(leet_l, 'l');

	if (contains_piece(lower, leet_i, leet_l, local, strlen(local)))
		return true;
	for (p = local; *p != '\0'; p = *end != '\0' ? end + 1 : end) {
		end = p + strcspn(p, ".-_+");
		if (contains_piece(lower, leet_i, leet_l, p, (size_t)(end - p)))
			return true;
	}
	for (p = domain; (end = strchr(p, '.')) != NULL; p = end + 1)
		if (contains_piece(lower, leet_i, leet_l, p, (size_t)(end - p)))
			return true;
	return false;
}

int
password_policy_check(const struct config_security_policy *policy,
    const char *address, const char *password, const char **reason_r)
{
	struct pw_scan scan;
	char missing[64];

	if (password == NULL || password[0] == '\0') {
		*reason_r = "password is empty";
		return -1;
	}
	if (strlen(password) > PASSWORD_MAX_BYTES) {
		snprintf(reason_buf, sizeof(reason_buf),
		    "password too long: more than %d bytes", PASSWORD_MAX_BYTES);
		*reason_r = reason_buf;
		return -1;
	}
	if (pw_scan(password, &scan) != 0) {
		*reason_r = "password is not valid UTF-8 or contains a control character";
		return -1;
	}
	if (policy->minimum_password_length > 0 &&
	    scan.chars < (size_t)policy->minimum_password_length) {
		snprintf(reason_buf, sizeof(reason_buf),
		    "password too short: %zu character%s, "
		    "security_policy.minimum_password_length is %d",
		    scan.chars, scan.chars == 1 ? "" : "s",
		    policy->minimum_password_length);
		*reason_r = reason_buf;
		return -1;
	}
	/* Before complexity: decorating a common word does not make it rare. */
	if (password_is_common(password)) {
		*reason_r = "password is in the list of most common passwords "
		    "(case, look-alikes such as @ for a, and leading or trailing "
		    "digits and symbols are ignored)";
		return -1;
	}
	if (password_has_name(address, password)) {
		*reason_r = "password contains the account name (its local part or "
		    "a label of its domain)";
		return -1;
	}
	if (policy->require_password_complexity &&
	    !(scan.upper && scan.lower && scan.digit && scan.special)) {
		missing[0] = '\0';
		if (!scan.upper)
			strcat(missing, ", upper-case");
		if (!scan.lower)
			strcat(missing, ", lower-case");
		if (!scan.digit)
			strcat(missing, ", digit");
		if (!scan.special)
			strcat(missing, ", special");
		snprintf(reason_buf, sizeof(reason_buf),
		    "password needs an upper-case letter, a lower-case letter, a "
		    "digit and a special character "
		    "(security_policy.require_password_complexity); missing: %s",
		    missing + 2);
		*reason_r = reason_buf;
		return -1;
	}
	*reason_r = NULL;
	return 0;
}

int
password_hash(const char *password, char *hash_r, size_t hashlen)
{
	if (hashlen < crypto_pwhash_STRBYTES || sodium_init() < 0)
		return -1;
	if (crypto_pwhash_str_alg(hash_r, password, strlen(password),
	    crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE,
	    crypto_pwhash_ALG_ARGON2ID13) != 0)
		return -1; /* out of memory: the 64 MiB the hash needs */
	return 0;
}

int
password_verify(const char *hash, const char *password)
{
	if (hash == NULL || strncmp(hash, "$argon2", 7) != 0 ||
	    strnlen(hash, crypto_pwhash_STRBYTES) >= crypto_pwhash_STRBYTES)
		return -1;
	if (sodium_init() < 0)
		return -1;
	return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0 ? 1 : 0;
}

/*
 * The dummy hash: a random password's hash, made once for the process
 * (every handle and thread shares it). directory_auth() makes sure it exists
 * before it looks at the account, so making it never lengthens the answer
 * for unknown users only.
 */
static pthread_mutex_t dummy_lock = PTHREAD_MUTEX_INITIALIZER;
static char dummy_hash[crypto_pwhash_STRBYTES];
static bool dummy_made;

int
password_dummy_prepare(void)
{
	unsigned char random[16];
	char text[sizeof(random) * 2 + 1];
	bool made;

	pthread_mutex_lock(&dummy_lock);
	if (!dummy_made) {
		randombytes_buf(random, sizeof(random));
		sodium_bin2hex(text, sizeof(text), random, sizeof(random));
		dummy_made = password_hash(text, dummy_hash, sizeof(dummy_hash)) == 0;
		sodium_memzero(text, sizeof(text));
		sodium_memzero(random, sizeof(random));
	}
	made = dummy_made;
	pthread_mutex_unlock(&dummy_lock);
	return made ? 0 : -1;
}

int
password_verify_dummy(const char *password)
{
	if (password_dummy_prepare() != 0)
		return -1;
	/* The hash never changes once made: verify outside the lock. */
	(void)password_verify(dummy_hash, password);
	return 0;
}
