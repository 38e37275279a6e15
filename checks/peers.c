/*
 * peers.c: reads the other nodes' pgcheckd state on a timer of its own. Per peer and per round: a
 * non-blocking connect, "peer-state\n" (with a key: a fresh nonce and a MAC, see peers.h), one line
 * back, close; the exchange has a deadline and a byte limit. Numeric addresses are used at once; names resolve on a
 * detached thread per list read, whose result comes back to the loop through an ev_async (no DNS on the loop). Never
 * touches PostgreSQL and never delays a check.
 */
#include "peers.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "conf.h"
#include "monoclock.h"

#define PEER_REPLY_MAX 256
#define PEER_KEY_MAX   16
#define PEER_VALUE_MAX (PEERS_MAC_HEX + 1) /* a nonce's and a MAC's 32 hex digits fit, no longer value */
#define PEER_HOST_MAX  256
#define PEER_MAC_BYTES (PEERS_MAC_HEX / 2) /* the first bytes of HMAC-SHA256's 32 */

const char *const peers_reject_names[PEERS_REJECT_COUNT] = {"none",           "no-mac",  "bad-mac",
                                                            "nonce-mismatch", "refused", "malformed"};

struct peer {
	struct peers *owner;
	struct peer_state st;
	char host[PEER_HOST_MAX];
	char service[16];
	struct sockaddr_storage sa;
	socklen_t salen;
	enum peers_addr_state addr_state;
	int fd;
	ev_io io;
	ev_timer deadline;
	bool sent;
	size_t len;
	char buf[PEER_REPLY_MAX];
	char nonce[PEERS_NONCE_HEX + 1]; /* the running exchange's challenge, with a key */
	enum peers_reject rejecting;     /* answers are being rejected, first for this reason; NONE when believed */
	enum peers_episode news;         /* not yet reported by peers_rejection_news */
	bool rejected_before_key;        /* rejecting when the key changed: the next believed answer is news */
	bool tried;                      /* a read of it ended (answered, failed or timed out) since the start */
	bool again;                      /* read again as soon as the running exchange ends */
	bool alert;                      /* the next read asks "peer-alert": the peer re-reads its peers at once */
};

/* One list's name lookups, shared by the resolver thread and the loop; the last one to let go frees it. */
struct peers_job {
	pthread_mutex_t lock;
	int refs;
	struct ev_loop *loop; /* NULL once the owner let go: then nothing is sent */
	ev_async *done;
	bool finished;
	int count;
	struct peers_lookup {
		char addr[CONF_ADDR_MAX];
		char host[PEER_HOST_MAX];
		char service[16];
		bool ok;
		struct sockaddr_storage sa;
		socklen_t salen;
	} lookup[PEERS_MAX];
};

struct peers {
	bool started; /* peers_new has returned: peers added later come from a reload */
	struct ev_loop *loop;
	struct peers_conf conf;
	ev_timer round;
	ev_async resolved;
	struct peers_job *job; /* the running lookups of the current list, or NULL */
	void (*changed)(void *arg);
	void *arg;
	int count;
	struct peer *peer[PEERS_MAX];
	int held_count; /* removed peers' last words, counted towards fencing until they age */
	struct peer_state held[PEERS_MAX];
	unsigned char key[CONF_PEERS_KEY_MAX]; /* [peers] key_file; key_len 0: none */
	size_t key_len;
	uint64_t rejected[PEERS_REJECT_COUNT];
};

static atomic_int peers_resolvers;

/* peers_parse_number reads n plain decimal digits (no sign, space or prefix) into *out, at most max. */
static bool
peers_parse_number(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	char digits[PEER_VALUE_MAX];
	char *end;
	unsigned long long v;

	if (n == 0 || n >= sizeof(digits))
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	memcpy(digits, s, n);
	digits[n] = '\0';
	errno = 0;
	v = strtoull(digits, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return false;
	*out = (uint64_t)v;
	return true;
}

static bool
peers_is_word(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '-'))
			return false;
	return n > 0;
}

/* What an answer says about its authentication: its nonce and MAC fields, and where the MAC begins. */
struct peers_auth_fields {
	bool have_nonce, have_mac;
	char nonce[PEERS_NONCE_HEX + 1];
	char mac[PEERS_MAC_HEX + 1];
	size_t signed_len; /* the line's bytes before " mac=": what the MAC covers */
};

static bool
peers_is_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* peers_parse_lsn reads an LSN as PostgreSQL writes it (1 to 8 hex digits, "/", 1 to 8), exactly n bytes. */
static bool
peers_parse_lsn(const char *s, size_t n, uint64_t *lsn)
{
	const char *slash = memchr(s, '/', n);
	uint64_t half[2] = {0, 0};
	size_t len[2];

	if (slash == NULL)
		return false;
	len[0] = (size_t)(slash - s);
	len[1] = n - len[0] - 1;
	for (int h = 0; h < 2; h++) {
		const char *d = h == 0 ? s : slash + 1;

		if (len[h] == 0 || len[h] > 8)
			return false;
		for (size_t i = 0; i < len[h]; i++) {
			char ch = d[i];
			unsigned v;

			if (ch >= '0' && ch <= '9')
				v = (unsigned)(ch - '0');
			else if (ch >= 'A' && ch <= 'F')
				v = (unsigned)(ch - 'A' + 10);
			else if (ch >= 'a' && ch <= 'f')
				v = (unsigned)(ch - 'a' + 10);
			else
				return false;
			half[h] = half[h] * 16 + v;
		}
	}
	*lsn = (half[0] << 32) | half[1];
	return true;
}

/* peers_is_name tells whether s (n bytes) is a shareable name: 1 to SAMPLE_NAME_MAX - 1 of [A-Za-z0-9._-]. */
static bool
peers_is_node_name(const char *s, size_t n)
{
	if (n == 0 || n >= SAMPLE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return false;
	return true;
}

char
peers_sync_code(enum sync_state state)
{
	switch (state) {
	case SYNC_SYNC:
		return 's';
	case SYNC_QUORUM:
		return 'q';
	case SYNC_POTENTIAL:
		return 'p';
	case SYNC_ASYNC:
		return 'a';
	default:
		return '?';
	}
}

/*
 * peers_parse_ext takes one optional field into ext. A field it does not know, one that does not read
 * (a newer version's form) or one said twice is left out: these fields never make an answer unbelievable,
 * so fencing hears a node whatever else it says.
 */
static void
peers_parse_ext(const char *key, size_t keylen, const char *value, size_t valuelen, struct peer_ext *ext)
{
	uint64_t number;

#define PEERS_KEY_IS(k) (keylen == sizeof(k) - 1 && memcmp(key, k, keylen) == 0)
	if (PEERS_KEY_IS("name")) {
		if (ext->name[0] == '\0' && peers_is_node_name(value, valuelen)) {
			memcpy(ext->name, value, valuelen);
			ext->name[valuelen] = '\0';
		}
	} else if (PEERS_KEY_IS("read")) {
		if (ext->read != PEER_READ_UNKNOWN)
			return;
		if (valuelen == 2 && memcmp(value, "up", 2) == 0)
			ext->read = PEER_READ_UP;
		else if (valuelen == 3 && memcmp(value, "lag", 3) == 0)
			ext->read = PEER_READ_LAG;
		else if (valuelen == 4 && memcmp(value, "down", 4) == 0)
			ext->read = PEER_READ_DOWN;
	} else if (PEERS_KEY_IS("weight")) {
		if (ext->weight_pct < 0 && peers_parse_number(value, valuelen, 100, &number))
			ext->weight_pct = (int)number;
	} else if (PEERS_KEY_IS("lsn")) {
		if (!ext->have_lsn)
			ext->have_lsn = peers_parse_lsn(value, valuelen, &ext->lsn);
	} else if (PEERS_KEY_IS("flush")) {
		if (!ext->have_flush)
			ext->have_flush = peers_parse_lsn(value, valuelen, &ext->flush_lsn);
	} else if (PEERS_KEY_IS("lag")) {
		if (!ext->have_lag && peers_parse_number(value, valuelen, INT64_MAX, &number)) {
			ext->have_lag = true;
			ext->lag_bytes = (int64_t)number;
		}
	} else if (PEERS_KEY_IS("lag_ms")) {
		if (!ext->have_lag_ms && peers_parse_number(value, valuelen, INT64_MAX, &number)) {
			ext->have_lag_ms = true;
			ext->lag_ms = (int64_t)number;
		}
	} else if (PEERS_KEY_IS("pg_port")) {
		if (ext->pg_port == 0 && peers_parse_number(value, valuelen, 65535, &number))
			ext->pg_port = (int)number;
	} else if (PEERS_KEY_IS("reason")) {
		if (ext->reason[0] == '\0' && valuelen < sizeof(ext->reason)) {
			memcpy(ext->reason, value, valuelen); /* printable, no space: checked by the caller */
			ext->reason[valuelen] = '\0';
		}
	} else if (PEERS_KEY_IS("tl_from")) {
		/* T:LSN, T a plain decimal timeline */
		const char *colon = memchr(value, ':', valuelen);
		size_t tlen = colon != NULL ? (size_t)(colon - value) : 0;

		if (ext->have_tl_from || colon == NULL || !peers_parse_number(value, tlen, UINT32_MAX, &number) ||
		    number == 0 || !peers_parse_lsn(colon + 1, valuelen - tlen - 1, &ext->tl_from_lsn))
			return;
		ext->tl_from_timeline = (uint32_t)number;
		ext->have_tl_from = true;
	} else if (PEERS_KEY_IS("sync_n")) {
		if (ext->standbys_total < 0 && peers_parse_number(value, valuelen, INT32_MAX, &number))
			ext->standbys_total = (int)number;
	} else if (PEERS_KEY_IS("sb")) {
		/* NAME:S, in the answer's order; past SAMPLE_STANDBYS_MAX left out (the list then counts as cut) */
		const char *colon = valuelen >= 3 ? value + valuelen - 2 : NULL;
		enum sync_state st = SYNC_UNKNOWN;

		if (colon == NULL || *colon != ':' || ext->standby_count >= SAMPLE_STANDBYS_MAX ||
		    !peers_is_node_name(value, valuelen - 2))
			return;
		for (int k = SYNC_ASYNC; k < SYNC_STATE_COUNT; k++)
			if (peers_sync_code((enum sync_state)k) == colon[1])
				st = (enum sync_state)k;
		if (st == SYNC_UNKNOWN)
			return;
		memcpy(ext->standby[ext->standby_count].name, value, valuelen - 2);
		ext->standby[ext->standby_count].name[valuelen - 2] = '\0';
		ext->standby[ext->standby_count].state = st;
		ext->standby_count++;
	}
#undef PEERS_KEY_IS
}

/*
 * peers_parse_fields is peers_parse_line that also knows the authentication fields: nonce (exactly
 * PEERS_NONCE_HEX lower-case hex digits) and mac (PEERS_MAC_HEX of them, the last field), each once.
 */
static bool
peers_parse_fields(const char *line, struct peer_state *st, struct peers_auth_fields *af)
{
	enum { HAVE_ROLE = 1, HAVE_TIMELINE = 2, HAVE_SYSID = 4, HAVE_FENCED = 8, HAVE_ALL = 15 };
	enum { HAVE_NONCE = 16, HAVE_MAC = 32 };
	struct peer_state out = *st;
	unsigned have = 0;
	const char *p;

	memset(af, 0, sizeof(*af));
	memset(&out.ext, 0, sizeof(out.ext)); /* every answer says it anew: nothing of an older one stays */
	out.ext.weight_pct = -1;
	out.ext.standbys_total = -1;

	if (strncmp(line, "state", 5) != 0 || (line[5] != ' ' && line[5] != '\n' && line[5] != '\0'))
		return false;
	for (p = line + 5; *p == ' ';) {
		const char *key, *value;
		size_t keylen = 0, valuelen = 0;
		unsigned field = 0;
		uint64_t number;

		while (*p == ' ')
			p++;
		if (*p == '\n' || *p == '\0')
			break;
		key = p;
		while ((key[keylen] >= 'a' && key[keylen] <= 'z') || key[keylen] == '_')
			keylen++;
		if (keylen == 0 || keylen >= PEER_KEY_MAX || key[keylen] != '=')
			return false;
		value = key + keylen + 1;
		while (value[valuelen] > ' ' && value[valuelen] < 0x7f)
			valuelen++;
		if (valuelen == 0 || valuelen >= PEER_VALUE_MAX ||
		    (value[valuelen] != ' ' && value[valuelen] != '\n' && value[valuelen] != '\0'))
			return false;
		p = value + valuelen;
		if (have & HAVE_MAC)
			return false; /* the MAC is the last field: nothing it does not cover may follow */
		if (keylen == 4 && memcmp(key, "role", 4) == 0) {
			if (!peers_is_word(value, valuelen))
				return false;
			out.primary = valuelen == 7 && memcmp(value, "primary", 7) == 0;
			out.replica = valuelen == 7 && memcmp(value, "replica", 7) == 0;
			field = HAVE_ROLE;
		} else if (keylen == 8 && memcmp(key, "timeline", 8) == 0) {
			if (!peers_parse_number(value, valuelen, UINT32_MAX, &number))
				return false;
			out.timeline = (uint32_t)number;
			field = HAVE_TIMELINE;
		} else if (keylen == 5 && memcmp(key, "sysid", 5) == 0) {
			if (!peers_parse_number(value, valuelen, UINT64_MAX, &number))
				return false;
			out.system_identifier = number;
			field = HAVE_SYSID;
		} else if (keylen == 6 && memcmp(key, "fenced", 6) == 0) {
			if (valuelen != 1 || (value[0] != '0' && value[0] != '1'))
				return false;
			out.fenced = value[0] == '1';
			field = HAVE_FENCED;
		} else if (keylen == 5 && memcmp(key, "nonce", 5) == 0) {
			if (valuelen != PEERS_NONCE_HEX || !peers_is_hex(value, valuelen))
				return false;
			memcpy(af->nonce, value, valuelen);
			field = HAVE_NONCE;
		} else if (keylen == 3 && memcmp(key, "mac", 3) == 0) {
			if (valuelen != PEERS_MAC_HEX || !peers_is_hex(value, valuelen) || key[-1] != ' ')
				return false;
			memcpy(af->mac, value, valuelen);
			af->signed_len = (size_t)(key - 1 - line);
			field = HAVE_MAC;
		} else {
			peers_parse_ext(key, keylen, value, valuelen,
			                &out.ext); /* the rest: optional, or a newer version's */
		}
		if (have & field)
			return false; /* given twice: which one would count? */
		have |= field;
	}
	if ((*p != '\n' && *p != '\0') || (have & HAVE_ALL) != HAVE_ALL)
		return false;
	if (out.primary && out.timeline == 0)
		return false; /* a primary knows its timeline */
	af->have_nonce = (have & HAVE_NONCE) != 0;
	af->have_mac = (have & HAVE_MAC) != 0;
	*st = out;
	return true;
}

bool
peers_parse_line(const char *line, struct peer_state *st)
{
	struct peers_auth_fields af;

	return peers_parse_fields(line, st, &af);
}

static void
peers_hex(const unsigned char *bytes, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[bytes[i] >> 4];
		out[2 * i + 1] = digits[bytes[i] & 15];
	}
	out[2 * n] = '\0';
}

static bool
peers_unhex(const char *hex, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v = 0;

		for (int j = 0; j < 2; j++) {
			char ch = hex[2 * i + (size_t)j];

			if (ch >= '0' && ch <= '9')
				v = v * 16 + (unsigned)(ch - '0');
			else if (ch >= 'a' && ch <= 'f')
				v = v * 16 + (unsigned)(ch - 'a' + 10);
			else
				return false;
		}
		out[i] = (unsigned char)v;
	}
	return true;
}

/*
 * peers_mac computes HMAC-SHA256(key, label || nonce_part || body), its first PEER_MAC_BYTES, into mac; false
 * when it does not fit or OpenSSL failed.
 */
static bool
peers_mac(const unsigned char *key, size_t key_len, const char *label, const char *nonce_part, const char *body,
          size_t body_len, unsigned char mac[PEER_MAC_BYTES])
{
	unsigned char data[64 + PEERS_NONCE_HEX + 1 + PEER_REPLY_MAX + PEERS_REQUEST_MAX];
	size_t llen = strlen(label), nlen = strlen(nonce_part), n = llen + nlen + body_len;
	unsigned char full[EVP_MAX_MD_SIZE];
	unsigned int mlen = 0;
	bool ok;

	if (key_len == 0 || key_len > INT_MAX || n > sizeof(data))
		return false;
	memcpy(data, label, llen);
	memcpy(data + llen, nonce_part, nlen);
	memcpy(data + llen + nlen, body, body_len);
	ok = HMAC(EVP_sha256(), key, (int)key_len, data, n, full, &mlen) != NULL && mlen >= PEER_MAC_BYTES;
	if (ok)
		memcpy(mac, full, PEER_MAC_BYTES);
	OPENSSL_cleanse(data, sizeof(data));
	OPENSSL_cleanse(full, sizeof(full));
	return ok;
}

bool
peers_new_nonce(char nonce[PEERS_NONCE_HEX + 1])
{
	unsigned char bytes[PEERS_NONCE_BYTES];

	if (RAND_bytes(bytes, (int)sizeof(bytes)) != 1) {
		nonce[0] = '\0';
		return false;
	}
	peers_hex(bytes, sizeof(bytes), nonce);
	return true;
}

size_t
peers_sign_request(const unsigned char *key, size_t key_len, const char *nonce, char *out, size_t outlen)
{
	unsigned char mac[PEER_MAC_BYTES];
	char hex[PEERS_MAC_HEX + 1];
	int n, m;

	if (strlen(nonce) != PEERS_NONCE_HEX || !peers_is_hex(nonce, PEERS_NONCE_HEX))
		return 0;
	n = snprintf(out, outlen, "peer-state nonce=%s", nonce);
	if (n < 0 || (size_t)n >= outlen || !peers_mac(key, key_len, PEERS_REQUEST_LABEL, "", out, (size_t)n, mac))
		return 0;
	peers_hex(mac, sizeof(mac), hex);
	m = snprintf(out + n, outlen - (size_t)n, " mac=%s\n", hex);
	if (m < 0 || (size_t)m >= outlen - (size_t)n)
		return 0;
	return (size_t)(n + m);
}

bool
peers_check_request(const unsigned char *key, size_t key_len, const char *buf, size_t len,
                    char nonce[PEERS_NONCE_HEX + 1])
{
	static const char head[] = "peer-state nonce=";
	const size_t hlen = sizeof(head) - 1, signed_len = hlen + PEERS_NONCE_HEX,
	             whole = signed_len + 5 + PEERS_MAC_HEX;
	unsigned char want[PEER_MAC_BYTES], got[PEER_MAC_BYTES];

	nonce[0] = '\0';
	if (len < whole || len > whole + 2 || memcmp(buf, head, hlen) != 0 ||
	    !peers_is_hex(buf + hlen, PEERS_NONCE_HEX) || memcmp(buf + signed_len, " mac=", 5) != 0)
		return false;
	if ((len == whole + 1 && buf[whole] != '\n') ||
	    (len == whole + 2 && (buf[whole] != '\r' || buf[whole + 1] != '\n')))
		return false;
	if (!peers_unhex(buf + signed_len + 5, got, sizeof(got)) ||
	    !peers_mac(key, key_len, PEERS_REQUEST_LABEL, "", buf, signed_len, want) ||
	    CRYPTO_memcmp(want, got, sizeof(want)) != 0)
		return false;
	memcpy(nonce, buf + hlen, PEERS_NONCE_HEX);
	nonce[PEERS_NONCE_HEX] = '\0';
	return true;
}

size_t
peers_sign_answer(const unsigned char *key, size_t key_len, const char *nonce, char *buf, size_t len, size_t cap)
{
	char nonce_part[PEERS_NONCE_HEX + 2], hex[PEERS_MAC_HEX + 1];
	unsigned char mac[PEER_MAC_BYTES];
	size_t n = len - 1;
	int m;

	if (len == 0 || buf[len - 1] != '\n' || strlen(nonce) != PEERS_NONCE_HEX || n >= cap)
		return 0;
	m = snprintf(buf + n, cap - n, " nonce=%s", nonce);
	if (m < 0 || (size_t)m >= cap - n)
		return 0;
	n += (size_t)m;
	snprintf(nonce_part, sizeof(nonce_part), "%s\n", nonce);
	if (!peers_mac(key, key_len, PEERS_ANSWER_LABEL, nonce_part, buf, n, mac))
		return 0;
	peers_hex(mac, sizeof(mac), hex);
	m = snprintf(buf + n, cap - n, " mac=%s\n", hex);
	if (m < 0 || (size_t)m >= cap - n)
		return 0;
	return n + (size_t)m;
}

enum peers_reject
peers_open_answer(const unsigned char *key, size_t key_len, const char *nonce, const char *line, struct peer_state *st)
{
	static const char refused[] = "down #unauthenticated";
	struct peer_state out = *st;
	struct peers_auth_fields af;
	char nonce_part[PEERS_NONCE_HEX + 2];
	unsigned char want[PEER_MAC_BYTES], got[PEER_MAC_BYTES];

	if (!peers_parse_fields(line, &out, &af))
		return strncmp(line, refused, sizeof(refused) - 1) == 0 ? PEERS_REJECT_REFUSED : PEERS_REJECT_MALFORMED;
	if (key_len > 0) {
		if (!af.have_mac)
			return PEERS_REJECT_NO_MAC;
		if (nonce == NULL || !af.have_nonce || strcmp(af.nonce, nonce) != 0)
			return PEERS_REJECT_NONCE_MISMATCH;
		snprintf(nonce_part, sizeof(nonce_part), "%s\n", nonce);
		if (!peers_unhex(af.mac, got, sizeof(got)) ||
		    !peers_mac(key, key_len, PEERS_ANSWER_LABEL, nonce_part, line, af.signed_len, want) ||
		    CRYPTO_memcmp(want, got, sizeof(want)) != 0)
			return PEERS_REJECT_BAD_MAC;
	}
	*st = out;
	return PEERS_REJECT_NONE;
}

static void
peers_end(struct peer *pe)
{
	struct peers *p = pe->owner;

	ev_timer_stop(p->loop, &pe->deadline);
	if (pe->fd >= 0) {
		ev_io_stop(p->loop, &pe->io);
		close(pe->fd);
		pe->fd = -1;
	}
	pe->tried = true;
	pe->st.answered = false; /* until peers_record_answer believes what came */
}

bool
peers_record_answer(struct peers *p, int i, const char *nonce, const char *line, int64_t now_ms)
{
	struct peer *pe;
	struct peer_state st;
	enum peers_reject why;
	bool news;

	if (p == NULL || i < 0 || i >= p->count)
		return false;
	pe = p->peer[i];
	st = pe->st;
	why = peers_open_answer(p->key, p->key_len, nonce, line, &st);
	if (why != PEERS_REJECT_NONE) {
		/* not heard from: its last believed word stands and ages, as if it had been silent */
		p->rejected[why]++;
		if (pe->rejecting == PEERS_REJECT_NONE) {
			pe->rejecting = why;
			pe->rejected_before_key = false;
			pe->news = PEERS_EPISODE_BEGAN;
			if (p->changed != NULL)
				p->changed(p->arg);
		}
		return false;
	}
	if (st.system_identifier == 0 && pe->st.seen && pe->st.system_identifier != 0)
		return false; /* it no longer says which cluster it is in: no answer, the last word ages */
	news = !pe->st.seen || st.primary != pe->st.primary || st.timeline != pe->st.timeline ||
	       st.fenced != pe->st.fenced || st.system_identifier != pe->st.system_identifier;
	if (pe->rejecting != PEERS_REJECT_NONE || pe->rejected_before_key) {
		pe->rejecting = PEERS_REJECT_NONE;
		pe->rejected_before_key = false;
		pe->news = PEERS_EPISODE_ENDED;
		news = true;
	}
	st.seen = true;
	st.seen_ms = now_ms;
	st.answered = true;
	pe->st = st;
	if (news && p->changed != NULL)
		p->changed(p->arg);
	return true;
}

enum peers_episode
peers_rejection_news(struct peers *p, int i, enum peers_reject *why)
{
	enum peers_episode news;

	if (p == NULL || i < 0 || i >= p->count)
		return PEERS_EPISODE_NONE;
	news = p->peer[i]->news;
	p->peer[i]->news = PEERS_EPISODE_NONE;
	*why = p->peer[i]->rejecting;
	return news;
}

static int
peers_index(const struct peers *p, const struct peer *pe)
{
	for (int i = 0; i < p->count; i++)
		if (p->peer[i] == pe)
			return i;
	return -1;
}

static void peers_again(struct peers *p, struct peer *pe);

static void
peers_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct peer *pe = w->data;
	struct peers *p = pe->owner;
	ssize_t n;

	(void)revents;
	if (!pe->sent) {
		int err = 0;
		socklen_t elen = sizeof(err);
		char req[PEERS_REQUEST_MAX] = "peer-state\n";
		size_t rlen = strlen(req);

		pe->nonce[0] = '\0';
		if (p->key_len > 0) {
			/* a fresh challenge per read: an answer to any other is not believed */
			rlen = peers_new_nonce(pe->nonce)
			           ? peers_sign_request(p->key, p->key_len, pe->nonce, req, sizeof(req))
			           : 0;
			if (rlen == 0) {
				peers_end(pe); /* no request without a fresh nonce: the peer ages, as one unreachable */
				return;
			}
		}
		if (pe->alert) {
			/* the same request under the other word (as long): the MAC is over "peer-state ..." */
			memcpy(req, PEERS_ALERT_WORD, sizeof(PEERS_ALERT_WORD) - 1);
			pe->alert = false;
		}
		if (getsockopt(pe->fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err != 0 ||
		    send(pe->fd, req, rlen, MSG_NOSIGNAL) != (ssize_t)rlen) {
			peers_end(pe);
			return;
		}
		pe->sent = true;
		ev_io_stop(loop, &pe->io);
		ev_io_set(&pe->io, pe->fd, EV_READ);
		ev_io_start(loop, &pe->io);
		return;
	}
	n = recv(pe->fd, pe->buf + pe->len, sizeof(pe->buf) - 1 - pe->len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		pe->len += (size_t)n;
		if (memchr(pe->buf, '\n', pe->len) == NULL && pe->len < sizeof(pe->buf) - 1)
			return;
	}
	pe->buf[pe->len] = '\0';
	peers_end(pe);
	/* only a whole line is an answer: one cut by the byte limit or the peer's close is none */
	if (memchr(pe->buf, '\n', pe->len) != NULL)
		(void)peers_record_answer(p, peers_index(p, pe), p->key_len > 0 ? pe->nonce : NULL, pe->buf,
		                          monoclock_ms());
	pe->nonce[0] = '\0'; /* used once */
	peers_again(p, pe);
}

static void
peers_on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct peer *pe = w->data;

	(void)loop;
	(void)revents;
	peers_end(pe);
	peers_again(pe->owner, pe);
}

static void peers_start_one(struct peers *p, struct peer *pe);

/* peers_again starts the read asked for while the last exchange ran (peers_read_now). */
static void
peers_again(struct peers *p, struct peer *pe)
{
	if (!pe->again)
		return;
	pe->again = false;
	peers_start_one(p, pe);
}

static void
peers_start_one(struct peers *p, struct peer *pe)
{
	if (pe->fd >= 0 || pe->addr_state != PEERS_ADDR_RESOLVED)
		return; /* the last exchange is still running, or the name did not resolve (yet) */
	pe->fd = socket(pe->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (pe->fd < 0) {
		pe->tried = true;
		pe->st.answered = false;
		return;
	}
	if (connect(pe->fd, (struct sockaddr *)&pe->sa, pe->salen) != 0 && errno != EINPROGRESS) {
		close(pe->fd);
		pe->fd = -1;
		pe->tried = true;
		pe->st.answered = false;
		return;
	}
	pe->sent = false;
	pe->len = 0;
	ev_io_set(&pe->io, pe->fd, EV_WRITE);
	ev_io_start(p->loop, &pe->io);
	ev_timer_set(&pe->deadline, (double)p->conf.timeout_ms / 1000.0, 0.);
	ev_timer_start(p->loop, &pe->deadline);
}

static void
peers_on_round(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct peers *p = w->data;

	(void)loop;
	(void)revents;
	for (int i = 0; i < p->count; i++)
		peers_start_one(p, p->peer[i]);
}

/* peers_job_release lets go of a job, on the loop or on its thread; the last one out frees it. */
static void
peers_job_release(struct peers_job *job, bool owner)
{
	bool last;

	pthread_mutex_lock(&job->lock);
	if (owner)
		job->loop = NULL;
	last = --job->refs == 0;
	pthread_mutex_unlock(&job->lock);
	if (last) {
		pthread_mutex_destroy(&job->lock);
		free(job);
	}
}

/* peers_resolver is a job's thread: every name in turn, then a wake-up for the loop if it still cares. */
static void *
peers_resolver(void *arg)
{
	struct peers_job *job = arg;

	for (int i = 0; i < job->count; i++) {
		struct peers_lookup *l = &job->lookup[i];
		struct addrinfo hints, *res = NULL;

		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_NUMERICSERV;
		if (getaddrinfo(l->host, l->service, &hints, &res) == 0 && res != NULL &&
		    res->ai_addrlen <= sizeof(l->sa)) {
			memcpy(&l->sa, res->ai_addr, res->ai_addrlen);
			l->salen = res->ai_addrlen;
			l->ok = true;
		}
		if (res != NULL)
			freeaddrinfo(res);
	}
	pthread_mutex_lock(&job->lock);
	job->finished = true;
	if (job->loop != NULL)
		ev_async_send(job->loop, job->done); /* the owner is alive while it holds the lock to let go */
	pthread_mutex_unlock(&job->lock);
	peers_job_release(job, false);
	atomic_fetch_sub(&peers_resolvers, 1);
	return NULL;
}

/* peers_apply_lookups hands a finished job's addresses to the peers that still have those names. */
static void
peers_apply_lookups(struct peers *p, const struct peers_job *job)
{
	for (int j = 0; j < job->count; j++) {
		const struct peers_lookup *l = &job->lookup[j];

		for (int i = 0; i < p->count; i++) {
			struct peer *pe = p->peer[i];

			if (strcmp(pe->st.addr, l->addr) != 0)
				continue;
			if (l->ok) {
				memcpy(&pe->sa, &l->sa, l->salen);
				pe->salen = l->salen;
			}
			pe->addr_state = l->ok ? PEERS_ADDR_RESOLVED : PEERS_ADDR_FAILED;
			peers_start_one(p, pe);
		}
	}
}

static void
peers_on_resolved(struct ev_loop *loop, ev_async *w, int revents)
{
	struct peers *p = w->data;
	struct peers_job *job = p->job;
	bool finished;

	(void)loop;
	(void)revents;
	if (job == NULL)
		return;
	pthread_mutex_lock(&job->lock);
	finished = job->finished;
	pthread_mutex_unlock(&job->lock);
	if (!finished)
		return; /* a wake-up from a job let go of before */
	peers_apply_lookups(p, job);
	p->job = NULL;
	peers_job_release(job, true);
	if (p->changed != NULL)
		p->changed(p->arg);
}

/* peers_is_name tells whether host needs a lookup (it is not a numeric address). */
static bool
peers_is_name(const char *host)
{
	struct addrinfo hints, *res = NULL;
	bool numeric;

	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST;
	numeric = getaddrinfo(host, NULL, &hints, &res) == 0;
	if (res != NULL)
		freeaddrinfo(res);
	return !numeric;
}

/* peers_resolve_names starts one thread that looks up every name of the list; false when it could not start. */
static bool
peers_resolve_names(struct peers *p)
{
	struct peers_job *job;
	pthread_attr_t attr;
	pthread_t thread;
	sigset_t all, old;
	int rc;

	if (p->job != NULL) {
		peers_job_release(p->job, true); /* the old list's lookups: their answers no longer matter */
		p->job = NULL;
	}
	job = calloc(1, sizeof(*job));
	if (job == NULL)
		return false;
	for (int i = 0; i < p->count; i++) {
		struct peer *pe = p->peer[i];
		struct peers_lookup *l = &job->lookup[job->count];

		if (pe->addr_state == PEERS_ADDR_RESOLVED && !peers_is_name(pe->host))
			continue;
		/* asked again: a stayed name that resolved keeps its old address meanwhile, one that failed waits */
		if (pe->addr_state == PEERS_ADDR_FAILED)
			pe->addr_state = PEERS_ADDR_RESOLVING;
		memcpy(l->addr, pe->st.addr, sizeof(l->addr));
		memcpy(l->host, pe->host, sizeof(l->host));
		memcpy(l->service, pe->service, sizeof(l->service));
		job->count++;
	}
	if (job->count == 0) {
		free(job);
		return true;
	}
	pthread_mutex_init(&job->lock, NULL);
	job->refs = 2;
	job->loop = p->loop;
	job->done = &p->resolved;
	p->job = job;
	atomic_fetch_add(&peers_resolvers, 1);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old); /* signals stay with the loop's thread */
	rc = pthread_attr_init(&attr);
	if (rc == 0) {
		(void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		rc = pthread_create(&thread, &attr, peers_resolver, job);
		pthread_attr_destroy(&attr);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		atomic_fetch_sub(&peers_resolvers, 1);
		p->job = NULL;
		job->refs = 1; /* no thread holds it */
		peers_job_release(job, true);
		return false;
	}
	return true;
}

/* peers_hold keeps a removed peer's last word, replacing the oldest when full. */
static void
peers_hold(struct peers *p, const struct peer_state *st)
{
	int slot = p->held_count;

	if (!st->seen)
		return;
	if (slot == PEERS_MAX) {
		slot = 0;
		for (int i = 1; i < PEERS_MAX; i++)
			if (p->held[i].seen_ms < p->held[slot].seen_ms)
				slot = i;
	} else
		p->held_count++;
	p->held[slot] = *st;
}

/* peers_take_held gives back (and forgets) the held word of addr, if any. */
static bool
peers_take_held(struct peers *p, const char *addr, struct peer_state *st)
{
	for (int i = 0; i < p->held_count; i++) {
		if (strcmp(p->held[i].addr, addr) != 0)
			continue;
		*st = p->held[i];
		p->held[i] = p->held[--p->held_count];
		return true;
	}
	return false;
}

static struct peer *
peers_peer_new(struct peers *p, const char *addr)
{
	struct peer *pe = calloc(1, sizeof(*pe));
	struct addrinfo hints, *res = NULL;
	int port = 0;

	if (pe == NULL)
		return NULL;
	pe->owner = p;
	pe->fd = -1;
	memcpy(pe->st.addr, addr, sizeof(pe->st.addr)); /* same size, NUL-terminated by conf */
	(void)peers_take_held(p, addr, &pe->st);
	ev_io_init(&pe->io, peers_on_io, -1, EV_WRITE);
	pe->io.data = pe;
	ev_timer_init(&pe->deadline, peers_on_deadline, 0., 0.);
	pe->deadline.data = pe;
	(void)conf_parse_listen(addr, pe->host, sizeof(pe->host), &port); /* checked by conf */
	snprintf(pe->service, sizeof(pe->service), "%d", port);
	pe->addr_state = PEERS_ADDR_RESOLVING;
	/* a numeric address needs no lookup: this cannot wait, so it is done here, on the loop */
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(pe->host, pe->service, &hints, &res) == 0 && res != NULL && res->ai_addrlen <= sizeof(pe->sa)) {
		memcpy(&pe->sa, res->ai_addr, res->ai_addrlen);
		pe->salen = res->ai_addrlen;
		pe->addr_state = PEERS_ADDR_RESOLVED;
	}
	if (res != NULL)
		freeaddrinfo(res);
	return pe;
}

bool
peers_reconfigure(struct peers *p, const struct peers_conf *pc)
{
	char list[PEERS_MAX][CONF_ADDR_MAX];
	struct peer *next[PEERS_MAX] = {NULL};
	bool fresh[PEERS_MAX] = {false};
	int count;

	if (!conf_parse_addr_list(pc->addresses, list, PEERS_MAX, &count))
		return false;
	for (int i = 0; i < count; i++) {
		for (int j = 0; j < p->count && next[i] == NULL; j++) {
			if (p->peer[j] != NULL && strcmp(p->peer[j]->st.addr, list[i]) == 0) {
				next[i] = p->peer[j]; /* stays: its state, address and running exchange with it */
				p->peer[j] = NULL;
			}
		}
	}
	for (int j = 0; j < p->count; j++) {
		if (p->peer[j] == NULL)
			continue;
		peers_end(p->peer[j]);
		peers_hold(p, &p->peer[j]->st);
		free(p->peer[j]);
	}
	for (int i = 0; i < count; i++) {
		if (next[i] != NULL)
			continue;
		next[i] = peers_peer_new(p, list[i]);
		/* added by a reload: it cannot hold the primary down (it fences once heard) */
		if (next[i] != NULL && p->started)
			next[i]->tried = true;
		fresh[i] = true;
	}
	p->count = 0;
	for (int i = 0; i < count; i++)
		if (next[i] != NULL) /* out of memory: that peer stays unknown, as one unreachable */
			p->peer[p->count++] = next[i];
	if (pc->key_len != p->key_len || (pc->key_len > 0 && CRYPTO_memcmp(pc->key, p->key, pc->key_len) != 0)) {
		/* another key: a rejection with it is a new episode; a believed answer ends the old one */
		for (int i = 0; i < p->count; i++) {
			struct peer *pe = p->peer[i];

			pe->rejected_before_key = pe->rejected_before_key || pe->rejecting != PEERS_REJECT_NONE;
			pe->rejecting = PEERS_REJECT_NONE;
			pe->news = PEERS_EPISODE_NONE;
		}
		OPENSSL_cleanse(p->key, sizeof(p->key));
		p->key_len = pc->key_len <= sizeof(p->key) ? pc->key_len : 0; /* conf holds at most that */
		if (p->key_len > 0)
			memcpy(p->key, pc->key, p->key_len);
	}
	p->conf = *pc;
	p->conf.addresses = NULL;
	p->conf.key = NULL;
	p->round.repeat = (double)pc->interval_ms / 1000.0;
	ev_timer_again(p->loop, &p->round);
	if (!peers_resolve_names(p))
		for (int i = 0; i < p->count; i++)
			if (p->peer[i]->addr_state == PEERS_ADDR_RESOLVING)
				p->peer[i]->addr_state = PEERS_ADDR_FAILED;
	for (int i = 0; i < count; i++)
		if (fresh[i] && next[i] != NULL)
			peers_start_one(p, next[i]); /* a new peer is read at once */
	return true;
}

struct peers *
peers_new(struct ev_loop *loop, const struct peers_conf *pc, void (*changed)(void *arg), void *arg)
{
	char list[PEERS_MAX][CONF_ADDR_MAX];
	struct peers *p;
	int count;

	if (!conf_parse_addr_list(pc->addresses, list, PEERS_MAX, &count) || count == 0)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	p->loop = loop;
	p->changed = changed;
	p->arg = arg;
	ev_timer_init(&p->round, peers_on_round, 0., (double)pc->interval_ms / 1000.0);
	p->round.data = p;
	ev_async_init(&p->resolved, peers_on_resolved);
	p->resolved.data = p;
	ev_async_start(loop, &p->resolved);
	(void)peers_reconfigure(p, pc);
	p->started = true; /* from now on a new peer comes from a reload */
	return p;
}

void
peers_free(struct peers *p)
{
	if (p == NULL)
		return;
	if (p->job != NULL)
		peers_job_release(p->job, true); /* a lookup still running frees its own job */
	ev_async_stop(p->loop, &p->resolved);
	for (int i = 0; i < p->count; i++) {
		peers_end(p->peer[i]);
		free(p->peer[i]);
	}
	ev_timer_stop(p->loop, &p->round);
	OPENSSL_cleanse(p->key, sizeof(p->key));
	free(p);
}

void
peers_read_now(struct peers *p, bool alert)
{
	if (p == NULL)
		return;
	for (int i = 0; i < p->count; i++) {
		struct peer *pe = p->peer[i];

		pe->alert |= alert;
		if (pe->fd >= 0)
			pe->again = true; /* an answer already on its way may be older than what changed */
		else
			peers_start_one(p, pe);
	}
}

int
peers_resolvers_running(void)
{
	return atomic_load(&peers_resolvers);
}

int
peers_count(const struct peers *p)
{
	return p != NULL ? p->count : 0;
}

const struct peer_state *
peers_state(const struct peers *p, int i)
{
	return p != NULL && i >= 0 && i < p->count ? &p->peer[i]->st : NULL;
}

enum peers_addr_state
peers_address_state(const struct peers *p, int i)
{
	return p != NULL && i >= 0 && i < p->count ? p->peer[i]->addr_state : PEERS_ADDR_FAILED;
}

/* peers_counts tells whether st is heard from (fresh and of this cluster, as far as can be told). */
static bool
peers_counts(const struct peer_state *st, int64_t now_ms, int64_t fresh_ms, uint64_t system_identifier)
{
	if (!st->seen || now_ms - st->seen_ms > fresh_ms)
		return false;
	return system_identifier == 0 || st->system_identifier == system_identifier;
}

static void
peers_count_primary(const struct peer_state *st, int my_timeline, bool read_still, struct peer_summary *out)
{
	int tl = st->timeline > INT_MAX ? INT_MAX : (int)st->timeline;

	if (!st->primary)
		return; /* a fenced peer primary still counts: two fenced primaries stay fenced */
	/* the newest primaries' floor: said by each, the same, from the timeline just before theirs */
	bool floor = st->ext.have_tl_from && tl < INT_MAX && st->ext.tl_from_timeline + 1 == st->timeline;

	if (tl > out->newest_primary_timeline) {
		out->newest_primary_timeline = tl;
		out->have_floor = floor;
		out->floor_timeline = floor ? tl - 1 : 0;
		out->floor_lsn = floor ? st->ext.tl_from_lsn : 0;
	} else if (tl == out->newest_primary_timeline && out->have_floor &&
	           (!floor || st->ext.tl_from_lsn != out->floor_lsn)) {
		out->have_floor = false; /* two primaries on it that do not agree: which one is right? */
		out->floor_timeline = 0;
		out->floor_lsn = 0;
	}
	if (tl == my_timeline)
		out->primaries_on_timeline++;
	/* a primary this node superseded that still takes writes, as its latest answer says (only a peer
	   still read: a removed one's word cannot change, it holds no handover) */
	if (read_still && tl < my_timeline && !st->fenced && st->answered)
		out->older_primaries_up++;
}

void
peers_summary(const struct peers *p, int64_t now_ms, int64_t fresh_ms, uint64_t system_identifier, int my_timeline,
              struct peer_summary *out)
{
	memset(out, 0, sizeof(*out));
	out->configured = peers_count(p);
	if (p != NULL)
		memcpy(out->rejected, p->rejected, sizeof(out->rejected));
	for (int i = 0; i < out->configured; i++) {
		const struct peer_state *st = &p->peer[i]->st;

		if (!p->peer[i]->tried && p->peer[i]->addr_state != PEERS_ADDR_FAILED)
			out->unheard++;
		if (!peers_counts(st, now_ms, fresh_ms, system_identifier)) {
			if (st->seen && now_ms - st->seen_ms <= fresh_ms && system_identifier != 0 &&
			    st->system_identifier != 0)
				out->foreign++; /* another cluster's: ignored */
			continue;
		}
		out->fresh++;
		if (st->seen_ms > out->last_fresh_ms)
			out->last_fresh_ms = st->seen_ms;
		peers_count_primary(st, my_timeline, true, out);
	}
	/* a removed peer's last word: it fences as it would have, but is no contact (isolation) */
	for (int i = 0; p != NULL && i < p->held_count; i++)
		if (peers_counts(&p->held[i], now_ms, fresh_ms, system_identifier))
			peers_count_primary(&p->held[i], my_timeline, false, out);
}

/* peers_ahead tells whether lagging peer st stands before this node for keep-best (unknown: it does). */
static bool
peers_ahead(const struct peer_state *st, const char *my_name, uint64_t my_lsn)
{
	if (!st->ext.have_lsn)
		return true; /* where it stands is not said: this node does not take the place */
	if (st->ext.lsn != my_lsn)
		return st->ext.lsn > my_lsn;
	return strcmp(st->ext.name, my_name) < 0; /* as far: the lower name (equal names: neither yields) */
}

void
peers_cluster(const struct peers *p, int64_t now_ms, int64_t fresh_ms, uint64_t system_identifier, const char *my_name,
              uint64_t my_lsn, struct peer_cluster *out)
{
	const struct peer_state *primary = NULL;
	int newest = 0, primaries = 0;

	memset(out, 0, sizeof(*out));
	out->my_sync = SYNC_UNKNOWN;
	for (int i = 0; i < peers_count(p); i++) {
		const struct peer_state *st = &p->peer[i]->st;

		if (!peers_counts(st, now_ms, fresh_ms, system_identifier))
			continue;
		if (st->primary && !st->fenced) {
			int tl = st->timeline > INT_MAX ? INT_MAX : (int)st->timeline;

			if (tl > newest) {
				newest = tl;
				primary = st;
				primaries = 1;
			} else if (tl == newest) {
				primaries++;
			}
		}
		if (!st->replica)
			continue;
		out->replicas_fresh++;
		switch (st->ext.read) {
		case PEER_READ_UP:
			out->replicas_up++;
			break;
		case PEER_READ_LAG:
			out->replicas_lagging++;
			if (peers_ahead(st, my_name, my_lsn))
				out->lagging_ahead = true;
			break;
		case PEER_READ_DOWN:
			break;
		default:
			out->replicas_unsure++;
			break;
		}
	}
	if (primaries != 1 || primary->ext.standbys_total < 0 || my_name[0] == '\0')
		return; /* no one primary that says: unknown */
	for (int k = 0; k < primary->ext.standby_count; k++) {
		if (strcmp(primary->ext.standby[k].name, my_name) != 0)
			continue;
		if (out->my_sync != SYNC_UNKNOWN) {
			out->my_sync = SYNC_UNKNOWN; /* two standbys by this name: which one is this node? */
			return;
		}
		out->my_sync = primary->ext.standby[k].state;
	}
	if (out->my_sync == SYNC_UNKNOWN && primary->ext.standby_count >= primary->ext.standbys_total)
		out->my_sync = SYNC_NONE; /* its whole list, and this node is not in it */
}
