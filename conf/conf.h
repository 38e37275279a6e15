/*
 * conf.h: pgcheckd's configuration, read from one ini file ([section], key = value, whole-line comments).
 * struct conf is a plain value: copy it, compare it, swap it; it owns nothing.
 * Errors name file:line, the key and what is wrong; nothing here exits.
 */
#ifndef PGCHECKD_CONF_H
#define PGCHECKD_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "conf_keys.h"

#define CONF_DEFAULT_PATH           "/etc/pgcheckd/pgcheckd.ini"
#define CONF_STR_MAX                4096 /* a text value's field; its longest value is one byte less, or the row's max */
#define CONF_LINE_MAX               8192 /* the longest line of the file, without its line end */
#define CONF_ERR_MAX                1280
#define CONF_ADD_SERVER_OPTIONS_MAX 2048 /* [haproxy] add_server_options: it must fit into one runtime API line */
#define CONF_ADDR_MAX               272
#define CONF_ADDR_LIST_MAX          16
#define CONF_PEERS_KEY_MIN          32   /* bytes of [peers] key_file: shorter is refused */
#define CONF_PEERS_KEY_MAX          1024 /* a key file holds one key, not more */
#define CONF_DCS_ENDPOINTS_MAX      8    /* [dcs] endpoints: as DCS_ENDPOINTS_MAX */
#define CONF_DCS_URL_MAX            256  /* one endpoint URL, with its NUL: as DCS_URL_MAX */
#define CONF_DCS_KEY_MAX            512  /* the leader key, with its NUL: as DCS_KEY_MAX */
#define CONF_DCS_NAME_MAX           128  /* [dcs] name, with its NUL: as DCS_NAME_MAX */
#define CONF_DCS_PASSWORD_MAX       256  /* [dcs] password_file's password, with its NUL: as DCS_PASSWORD_MAX */
#define CONF_HTTP_SECRET_MIN        16   /* bytes of an [http] credential file: shorter is refused */
#define CONF_HTTP_SECRET_MAX        512
#define CONF_HTTP_CREDENTIAL_MAX    (8 + 4 * ((CONF_HTTP_SECRET_MAX + 2) / 3) + 1)

/* What a request key names; shared by the agent line, HTTP paths and the config. */
enum request_kind {
	REQUEST_PRIMARY,
	REQUEST_REPLICA,
	REQUEST_READ_ONLY,
	REQUEST_HEALTH,
	REQUEST_SYNC,   /* a replica the primary counts as synchronous */
	REQUEST_ASYNC,  /* a replica the primary counts as asynchronous (or potential) */
	REQUEST_QUORUM, /* a replica the primary counts in a quorum (ANY) */
	REQUEST_KIND_COUNT
};
enum over_lag_action { OVER_LAG_DOWN, OVER_LAG_DRAIN, OVER_LAG_KEEP_BEST };
enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARNING, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };
enum conf_verify { CONF_VERIFY_NONE, CONF_VERIFY_REQUIRED };           /* [tls] verify_client */
enum conf_dcs_mode { CONF_DCS_OFF, CONF_DCS_PATRONI, CONF_DCS_LEASE }; /* [dcs] mode */

extern const char *const conf_request_names[];
extern const char *const conf_over_lag_names[];
extern const char *const conf_log_level_names[];
extern const char *const conf_verify_names[];
extern const char *const conf_dcs_mode_names[];

enum conf_type {
	CONF_INT,
	CONF_BYTES,
	CONF_DOUBLE,
	CONF_BOOL,
	CONF_STR,
	CONF_ENUM,
	CONF_LISTEN,
	CONF_ADDRLIST,
	CONF_APILIST,
	CONF_CIDRLIST
};

#define CONF_CTYPE_INT      int64_t
#define CONF_CTYPE_BYTES    int64_t
#define CONF_CTYPE_DOUBLE   double
#define CONF_CTYPE_BOOL     bool
#define CONF_CTYPE_STR      char
#define CONF_CTYPE_ENUM     int
#define CONF_CTYPE_LISTEN   char
#define CONF_CTYPE_ADDRLIST char
#define CONF_CTYPE_APILIST  char
#define CONF_CTYPE_CIDRLIST char
#define CONF_DIM_INT
#define CONF_DIM_BYTES
#define CONF_DIM_DOUBLE
#define CONF_DIM_BOOL
#define CONF_DIM_STR [CONF_STR_MAX]
#define CONF_DIM_ENUM
#define CONF_DIM_LISTEN   [CONF_STR_MAX]
#define CONF_DIM_ADDRLIST [CONF_STR_MAX]
#define CONF_DIM_APILIST  [CONF_STR_MAX]
#define CONF_DIM_CIDRLIST [CONF_STR_MAX]

struct conf {
#define CONF_FIELD(sec, name, type, def, min, max, reload, enums, help) CONF_CTYPE_##type sec##_##name CONF_DIM_##type;
	CONF_KEYS(CONF_FIELD)
#undef CONF_FIELD
	/* derived from listen */
	char listen_host[256];
	int listen_port;
	/* read from [peers] key_file (never logged): its bytes less trailing white space; 0 bytes: no key */
	unsigned char peers_key[CONF_PEERS_KEY_MAX];
	size_t peers_key_len;
	/* from [http] basic_auth_file and token_file (never logged): the Authorization header values that
	 * prove who asks ("Basic <base64 of user:password>", "Bearer <token>"); "" when not configured */
	char http_basic_expected[CONF_HTTP_CREDENTIAL_MAX];
	char http_bearer_expected[CONF_HTTP_CREDENTIAL_MAX];
	char dcs_password[CONF_DCS_PASSWORD_MAX]; /* [dcs] password_file's content; "" without one */
	unsigned http_protect_bits;               /* CONF_PROTECT_*: what needs a credential (when one is configured) */
};

/* [http] protect: what an HTTP client must prove itself for */
#define CONF_PROTECT_STATUS  0x1u /* /status */
#define CONF_PROTECT_METRICS 0x2u /* /metrics */
#define CONF_PROTECT_BODIES  0x4u /* the JSON body of a health path (its status code stays open) */
#define CONF_PROTECT_CHECKS  0x8u /* the health paths themselves (HAProxy must then send the credential) */

struct conf_key {
	const char *section;
	const char *name;
	enum conf_type type;
	const char *default_value;
	double min, max;
	bool reloadable;
	const char *const *enum_names;
	const char *help;
	size_t offset;
};

extern const struct conf_key conf_keys[];
extern const size_t conf_key_count;

/* conf_defaults fills c with every key's default. */
void conf_defaults(struct conf *c);

/*
 * conf_load reads path into c (starting from the defaults) and validates it. On failure it returns
 * false and writes one line into err: "FILE:LINE: [section] key: what is wrong".
 */
bool conf_load(const char *path, struct conf *c, char *err, size_t errlen);

/* conf_load_stream is conf_load on an open stream; name is used in messages. */
bool conf_load_stream(FILE *f, const char *name, struct conf *c, char *err, size_t errlen);

/*
 * conf_validate checks what involves more than one key; err as for conf_load, without a line
 * (conf_load names the line of the key to blame).
 */
bool conf_validate(struct conf *c, const char *name, char *err, size_t errlen);

/* conf_print_example writes an ini file with every key at its default, each with its help. */
void conf_print_example(FILE *out);

/* conf_print_keys writes one Markdown table row per key (section, key, default, range, reload, help). */
void conf_print_keys(FILE *out);

/* conf_print_man writes the key list in roff, for the pgcheckd.ini(5) man page. */
void conf_print_man(FILE *out);

/*
 * conf_keep_unreloadable copies into next the running values of the keys that cannot change at run
 * time, lists those that differed in kept ("[agent] listen") and returns how many.
 */
int conf_keep_unreloadable(const struct conf *running, struct conf *next, char *kept, size_t keptlen);

/*
 * conf_parse_bytes reads "16MB", "512kB", "1GB", "1024": digits, then no space, then an optional unit,
 * powers of 1024: B, k/kB/KB/kiB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB.
 */
bool conf_parse_bytes(const char *s, int64_t *out);

/*
 * Location labels ([agent] location, a request's prefer=): "KEY=VALUE", each part 1 to CONF_LABEL_MAX - 1
 * bytes in all of letters, digits and "_.:-". conf_label_ok checks one (len bytes); conf_labels_ok a list
 * separated by commas and spaces (an empty list is fine), pointing bad at the first label that is not one;
 * conf_labels_have says whether list holds label exactly (case-sensitive, as written).
 */
#define CONF_LABEL_MAX 64
bool conf_label_ok(const char *label, size_t len);
bool conf_labels_ok(const char *list, const char **bad, size_t *badlen);
bool conf_labels_have(const char *list, const char *label, size_t len);

/* conf_format_bytes writes bytes the way conf_parse_bytes reads them back ("16MB", "1536kB"). */
void conf_format_bytes(int64_t bytes, char *buf, size_t len);

/* conf_parse_listen splits "HOST:PORT", "*:PORT" or "[V6]:PORT". */
bool conf_parse_listen(const char *s, char *host, size_t hostlen, int *port);

/*
 * conf_list_next returns the next item of a list separated by commas, spaces or tabs, starting at
 * *cursor (which it advances), with its length in *len; NULL at the end.
 */
const char *conf_list_next(const char **cursor, size_t *len);

/* An address range, as "10.0.0.0/8", "::1" or "192.0.2.7" (a single address: the whole length). */
struct conf_cidr {
	int family;             /* AF_INET or AF_INET6 */
	unsigned char addr[16]; /* network order; 4 bytes for AF_INET */
	int prefix_bits;
};

#define CONF_CIDR_LIST_MAX 64

/* conf_parse_cidr_list splits "127.0.0.0/8, ::1" into at most max ranges; false on a bad entry. */
bool conf_parse_cidr_list(const char *list, struct conf_cidr *out, int max, int *count);

/*
 * conf_cidr_match tells whether the address (family AF_INET or AF_INET6, network order) is in one of
 * the ranges; an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is matched as the IPv4 address.
 */
bool conf_cidr_match(const struct conf_cidr *ranges, int count, int family, const unsigned char *addr);

/* conf_parse_addr_list splits "a:1, b:2" (HOST:PORT each, not "*") into at most max entries. */
bool conf_parse_addr_list(const char *list, char out[][CONF_ADDR_MAX], int max, int *count);

/*
 * conf_parse_pairs splits "a:b, c:d" into at most max NAME:VALUE pairs (each part non-empty, no
 * spaces); false on a bad entry.
 */
bool conf_parse_pairs(const char *list, char names[][64], char values[][64], int max, int *count);

/*
 * conf_conninfo_check checks a [pg] conninfo as libpq will read it (a URI or key=value pairs; a word
 * without '=' is a database name); on failure writes what is wrong into why, never the value or a part of it.
 */
bool conf_conninfo_check(const char *conninfo, char *why, size_t whylen);

/*
 * conf_secret_file_ok checks a file that holds a secret (a private key): a regular file that neither
 * group nor others may read, write or run, as libpq wants of .pgpass. On failure writes what is wrong
 * into why (the path and mode, never the content).
 */
bool conf_secret_file_ok(const char *path, char *why, size_t whylen);

/* conf_enum_index returns the index of word in names (case-insensitive), or -1. */
int conf_enum_index(const char *const *names, const char *word);

#endif
