/*
 * dkim_key.c: DKIM private keys on disk (data_dir/dkim/DOMAIN/SELECTOR.pem,
 * PKCS#8 PEM, 0600 in 0700 directories) and the DNS TXT records that publish
 * their public halves. Trusts the key files only after checking they are
 * regular, private to their owner and usable keys (RSA of 1024 to 8192 bits,
 * RFC 8301; Ed25519, RFC 8463). RFC 6376 3.6.1 (the key record).
 */
#include "dkim/dkim_private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fsutil.h"

#define KEY_FILE_MAX (64 * 1024)
#define RSA_MIN_BITS 1024
#define RSA_MAX_BITS 8192
#define TXT_STRING_MAX 255

const char *
dkim_alg_name(enum dkim_alg alg)
{
	return alg == DKIM_ALG_ED25519_SHA256 ? "ed25519-sha256" : "rsa-sha256";
}

const char *
dkim_alg_key_type(enum dkim_alg alg)
{
	return alg == DKIM_ALG_ED25519_SHA256 ? "ed25519" : "rsa";
}

int
dkim_alg_parse(const char *name, enum dkim_alg *alg_r)
{
	if (strcmp(name, "rsa") == 0)
		*alg_r = DKIM_ALG_RSA_SHA256;
	else if (strcmp(name, "ed25519") == 0)
		*alg_r = DKIM_ALG_ED25519_SHA256;
	else
		return -1;
	return 0;
}

bool
dkim_key_name_valid(const char *name)
{
	size_t label = 0, len = strlen(name);

	if (len == 0 || len > 253)
		return false;
	for (const char *p = name; *p != '\0'; p++) {
		char c = *p;

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}

/* A malloc'd message for *error_r (NULL when even that fails). */
static char *
error_text(const char *fmt, ...) LOG_PRINTF(1, 2);

static char *
error_text(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

static char *
lower_dup(const char *s)
{
	char *d = strdup(s);

	for (char *p = d; p != NULL && *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return d;
}

/* Never ask for a passphrase: an encrypted key file is an error. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag, (void)u;
	return -1;
}

/* Check pkey is a key we sign with; NULL, or why not. */
static const char *
key_usable(EVP_PKEY *pkey, enum dkim_alg *alg_r)
{
	switch (EVP_PKEY_get_base_id(pkey)) {
	case EVP_PKEY_RSA:
		if (EVP_PKEY_get_bits(pkey) < RSA_MIN_BITS)
			return "RSA key shorter than 1024 bits (RFC 8301)";
		if (EVP_PKEY_get_bits(pkey) > RSA_MAX_BITS)
			return "RSA key longer than 8192 bits";
		*alg_r = DKIM_ALG_RSA_SHA256;
		return NULL;
	case EVP_PKEY_ED25519:
		*alg_r = DKIM_ALG_ED25519_SHA256;
		return NULL;
	default:
		return "not an RSA or Ed25519 key";
	}
}

int
dkim_key_load_file(const char *path, const char *domain, const char *selector,
    struct dkim_key **key_r, char **error_r)
{
	struct dkim_key *key = NULL;
	struct stat st;
	char *buf = NULL, ssl[256];
	const char *why;
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	size_t len = 0;
	enum dkim_alg alg;
	int fd;

	*key_r = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1) {
		*error_r = error_text("DKIM key %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		*error_r = error_text("DKIM key %s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		*error_r = error_text("DKIM key %s: not a regular file", path);
		goto fail;
	}
	if ((st.st_mode & 077) != 0) {
		*error_r = error_text("DKIM key %s: mode %04o lets others than its owner "
		    "read or change it (chmod 600 it)", path, (unsigned)(st.st_mode & 07777));
		goto fail;
	}
	if (st.st_size <= 0 || st.st_size > KEY_FILE_MAX) {
		*error_r = error_text("DKIM key %s: %s", path, st.st_size <= 0 ?
		    "empty file" : "too large to be a key");
		goto fail;
	}
	if ((buf = malloc((size_t)st.st_size)) == NULL) {
		*error_r = error_text("DKIM key %s: out of memory", path);
		goto fail;
	}
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);

		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			*error_r = error_text("DKIM key %s: %s", path,
			    n == 0 ? "shorter than its size" : strerror(errno));
			goto fail;
		}
		len += (size_t)n;
	}
	ERR_clear_error();
	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL ||
	    (pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)) == NULL) {
		*error_r = error_text("DKIM key %s: not a readable PEM private key (%s)", path,
		    dkim_buf_ssl_error(ssl, sizeof(ssl), "no key"));
		goto fail;
	}
	if ((why = key_usable(pkey, &alg)) != NULL) {
		*error_r = error_text("DKIM key %s: %s", path, why);
		goto fail;
	}
	if ((key = calloc(1, sizeof(*key))) == NULL ||
	    (key->domain = lower_dup(domain)) == NULL ||
	    (key->selector = strdup(selector)) == NULL ||
	    (key->path = strdup(path)) == NULL) {
		*error_r = error_text("DKIM key %s: out of memory", path);
		goto fail;
	}
	key->alg = alg;
	key->pkey = pkey;
	OPENSSL_cleanse(buf, len);
	free(buf);
	BIO_free(bio);
	close(fd);
	*key_r = key;
	return 0;
fail:
	if (key != NULL)
		key->pkey = NULL;
	dkim_key_free(&key);
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	if (buf != NULL)
		OPENSSL_cleanse(buf, len);
	free(buf);
	close(fd);
	return -1;
}

void
dkim_key_free(struct dkim_key **keyp)
{
	struct dkim_key *key = *keyp;

	if (key == NULL)
		return;
	EVP_PKEY_free(key->pkey);
	free(key->domain);
	free(key->selector);
	free(key->path);
	free(key);
	*keyp = NULL;
}

const char *
dkim_key_domain(const struct dkim_key *key)
{
	return key->domain;
}

const char *
dkim_key_selector(const struct dkim_key *key)
{
	return key->selector;
}

const char *
dkim_key_path(const struct dkim_key *key)
{
	return key->path;
}

enum dkim_alg
dkim_key_alg(const struct dkim_key *key)
{
	return key->alg;
}

/* RSA keys first (every verifier knows them), then by selector. */
static int
key_order(const void *a, const void *b)
{
	const struct dkim_key *ka = *(struct dkim_key *const *)a;
	const struct dkim_key *kb = *(struct dkim_key *const *)b;

	if (ka->alg != kb->alg)
		return ka->alg == DKIM_ALG_RSA_SHA256 ? -1 : 1;
	return strcmp(ka->selector, kb->selector);
}

int
dkim_keys_load(const char *data_dir, const char *domain, struct dkim_key ***keys_r,
    size_t *nkeys_r, char **error_r)
{
	struct dkim_key **keys = NULL;
	struct dirent *de;
	char dir[PATH_MAX], path[PATH_MAX], *ldomain = NULL;
	size_t n = 0;
	DIR *d;

	*keys_r = NULL;
	*nkeys_r = 0;
	if (!dkim_key_name_valid(domain)) {
		*error_r = error_text("DKIM: bad domain name");
		return -1;
	}
	if ((ldomain = lower_dup(domain)) == NULL ||
	    fs_path(dir, sizeof(dir), "%s/dkim/%s", data_dir, ldomain) != 0) {
		*error_r = error_text("DKIM keys of %s: %s", domain,
		    ldomain == NULL ? "out of memory" : "path too long");
		free(ldomain);
		return -1;
	}
	free(ldomain);
	if ((d = opendir(dir)) == NULL) {
		if (errno == ENOENT)
			return 0;
		*error_r = error_text("DKIM keys in %s: %s", dir, strerror(errno));
		return -1;
	}
	if ((keys = calloc(DKIM_MAX_KEYS, sizeof(*keys))) == NULL) {
		*error_r = error_text("DKIM keys in %s: out of memory", dir);
		goto fail;
	}
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		char selector[256];

		if (de->d_name[0] == '.' || len <= 4 ||
		    strcmp(de->d_name + len - 4, ".pem") != 0)
			continue;
		if (len - 4 >= sizeof(selector)) {
			*error_r = error_text("DKIM key %s/%s: the name is not a selector",
			    dir, de->d_name);
			goto fail;
		}
		memcpy(selector, de->d_name, len - 4);
		selector[len - 4] = '\0';
		if (!dkim_key_name_valid(selector)) {
			*error_r = error_text("DKIM key %s/%s: the name is not a selector",
			    dir, de->d_name);
			goto fail;
		}
		if (n == DKIM_MAX_KEYS) {
			*error_r = error_text("DKIM keys in %s: more than %d", dir, DKIM_MAX_KEYS);
			goto fail;
		}
		if (fs_path(path, sizeof(path), "%s/%s", dir, de->d_name) != 0) {
			*error_r = error_text("DKIM key %s/%s: path too long", dir, de->d_name);
			goto fail;
		}
		if (dkim_key_load_file(path, domain, selector, &keys[n], error_r) != 0)
			goto fail;
		n++;
		errno = 0;
	}
	if (errno != 0) {
		*error_r = error_text("DKIM keys in %s: %s", dir, strerror(errno));
		goto fail;
	}
	closedir(d);
	if (n == 0) {
		free(keys);
		return 0;
	}
	qsort(keys, n, sizeof(*keys), key_order);
	*keys_r = keys;
	*nkeys_r = n;
	return 0;
fail:
	closedir(d);
	dkim_keys_free(&keys, n);
	return -1;
}

void
dkim_keys_free(struct dkim_key ***keys, size_t nkeys)
{
	if (*keys == NULL)
		return;
	for (size_t i = 0; i < nkeys; i++)
		dkim_key_free(&(*keys)[i]);
	free(*keys);
	*keys = NULL;
}

char *
dkim_key_txt(const struct dkim_key *key)
{
	struct dkim_buf b = { 0 };
	unsigned char raw[32], *der = NULL;
	size_t rawlen = sizeof(raw);
	int derlen;

	dkim_buf_addf(&b, "v=DKIM1; k=%s; p=", dkim_alg_key_type(key->alg));
	if (key->alg == DKIM_ALG_ED25519_SHA256) {
		/* RFC 8463 3: the bare 32-byte public key. */
		if (EVP_PKEY_get_raw_public_key(key->pkey, raw, &rawlen) != 1 || rawlen != 32)
			goto fail;
		dkim_buf_base64(&b, raw, rawlen);
	} else {
		/* SubjectPublicKeyInfo, as OpenDKIM publishes and every verifier reads. */
		if ((derlen = i2d_PUBKEY(key->pkey, &der)) <= 0)
			goto fail;
		dkim_buf_base64(&b, der, (size_t)derlen);
		OPENSSL_free(der);
	}
	return dkim_buf_steal(&b);
fail:
	ERR_clear_error();
	dkim_buf_free(&b);
	return NULL;
}

char *
dkim_key_record(const struct dkim_key *key)
{
	struct dkim_buf b = { 0 };
	char *txt = dkim_key_txt(key);
	size_t len;

	if (txt == NULL)
		return NULL;
	len = strlen(txt);
	dkim_buf_addf(&b, "%s._domainkey.%s. IN TXT", key->selector, key->domain);
	for (size_t i = 0; i < len; i += TXT_STRING_MAX) {
		size_t n = len - i < TXT_STRING_MAX ? len - i : TXT_STRING_MAX;

		dkim_buf_adds(&b, " \"");
		dkim_buf_add(&b, txt + i, n);
		dkim_buf_addc(&b, '"');
	}
	free(txt);
	return dkim_buf_steal(&b);
}

/* A new private key of the kind alg; NULL after setting *error_r. */
static EVP_PKEY *
key_generate(enum dkim_alg alg, char **error_r)
{
	EVP_PKEY *pkey;
	char ssl[256];

	ERR_clear_error();
	if (alg == DKIM_ALG_RSA_SHA256)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)DKIM_RSA_BITS);
	else
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (pkey == NULL)
		*error_r = error_text("DKIM: cannot make a %s key: %s", dkim_alg_key_type(alg),
		    dkim_buf_ssl_error(ssl, sizeof(ssl), "key generation failed"));
	return pkey;
}

int
dkim_keygen(const char *data_dir, const char *domain, const char *selector,
    enum dkim_alg alg, char **record_r, char **error_r)
{
	struct dkim_key *key = NULL;
	struct stat st;
	char dir[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX], name[300], ssl[256];
	char *ldomain = NULL, *pem = NULL;
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	long pemlen;
	int saved;

	*record_r = NULL;
	if (!dkim_key_name_valid(domain)) {
		*error_r = error_text("DKIM: bad domain name (letters, digits, '-', '_' "
		    "and dots)");
		return -1;
	}
	if (!dkim_key_name_valid(selector)) {
		*error_r = error_text("DKIM: bad selector (letters, digits, '-', '_' and "
		    "dots, at most 63 between dots)");
		return -1;
	}
	if ((ldomain = lower_dup(domain)) == NULL) {
		*error_r = error_text("DKIM: out of memory");
		return -1;
	}
	if (fs_path(dir, sizeof(dir), "%s/dkim/%s", data_dir, ldomain) != 0 ||
	    fs_path(path, sizeof(path), "%s/%s.pem", dir, selector) != 0 ||
	    fs_path(name, sizeof(name), ".%s.pem.new", selector) != 0 ||
	    fs_path(tmp, sizeof(tmp), "%s/%s", dir, name) != 0) {
		*error_r = error_text("DKIM: the key's path is too long");
		goto fail;
	}
	if (lstat(path, &st) == 0 || errno != ENOENT) {
		*error_r = error_text("DKIM key %s exists: refusing to overwrite it (choose "
		    "another selector)", path);
		goto fail;
	}
	if (fs_mkdir_p(dir, 0700) != 0) {
		*error_r = error_text("DKIM: cannot create %s: %s", dir, strerror(errno));
		goto fail;
	}
	if ((pkey = key_generate(alg, error_r)) == NULL)
		goto fail;
	if ((bio = BIO_new(BIO_s_secmem())) == NULL ||
	    PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
	    (pemlen = BIO_get_mem_data(bio, &pem)) <= 0) {
		*error_r = error_text("DKIM: cannot encode the key: %s",
		    dkim_buf_ssl_error(ssl, sizeof(ssl), "PEM encoding failed"));
		goto fail;
	}
	/*
	 * Written in full under a temporary name, then linked to the final
	 * name: link(2) never replaces a key that appeared meanwhile.
	 */
	if (fs_write_file_durable(dir, name, pem, (size_t)pemlen, 0600) != 0) {
		*error_r = error_text("DKIM: cannot write %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (link(tmp, path) != 0) {
		saved = errno;
		(void)unlink(tmp);
		*error_r = saved == EEXIST ?
		    error_text("DKIM key %s exists: refusing to overwrite it (choose another "
		    "selector)", path) :
		    error_text("DKIM: cannot create %s: %s", path, strerror(saved));
		goto fail;
	}
	if (unlink(tmp) != 0 || fs_fsync_dir(dir) != 0) {
		*error_r = error_text("DKIM: %s written, but the directory could not be "
		    "synced: %s", path, strerror(errno));
		goto fail;
	}
	if ((key = calloc(1, sizeof(*key))) == NULL ||
	    (key->selector = strdup(selector)) == NULL ||
	    (key->path = strdup(path)) == NULL) {
		*error_r = error_text("DKIM: out of memory");
		goto fail;
	}
	key->domain = ldomain;
	ldomain = NULL;
	key->alg = alg;
	key->pkey = pkey;
	pkey = NULL;
	if ((*record_r = dkim_key_record(key)) == NULL) {
		*error_r = error_text("DKIM: out of memory");
		goto fail;
	}
	dkim_key_free(&key);
	BIO_free(bio);
	return 0;
fail:
	dkim_key_free(&key);
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	free(ldomain);
	return -1;
}
