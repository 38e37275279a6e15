/*
 * registrar.h: this node puts itself into running HAProxy instances through their runtime API —
 * a free server-template slot, or "add server" — keeps that registration true on a timer (HAProxy
 * reloads forget runtime changes) and withdraws on shutdown. It runs in a thread of its own with
 * blocking, bounded I/O: a missing or hung HAProxy never touches the checks. It never answers checks
 * and never changes what a check answers.
 */
#ifndef PGCHECKD_REGISTRAR_H
#define PGCHECKD_REGISTRAR_H

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"

struct registrar;

/* registrar_new starts the thread when c asks for registration; NULL when it does not (or on failure, logged). */
struct registrar *registrar_new(const struct conf *c);

/*
 * registrar_reconfigure hands the thread a new configuration and wakes it; it never waits for the
 * thread. When the registration settings changed (registrar_settings_changed), the thread withdraws
 * what the old ones registered before it registers with the new ones (none: it withdraws and idles).
 */
void registrar_reconfigure(struct registrar *r, const struct conf *c);

/*
 * registrar_free stops the thread, which withdraws from every HAProxy; it waits for that until
 * deadline_ms (monoclock) at most, then leaves the thread to finish alone (it frees itself).
 */
void registrar_free(struct registrar *r, int64_t deadline_ms);

/* registrar_settings_changed: a and b register differently (what a registered must be withdrawn). Pure. */
bool registrar_settings_changed(const struct conf *a, const struct conf *b);

/*
 * registrar_pick_slot chooses which free slot to claim among count: spread by a hash of who claims, so
 * nodes starting together rarely try the same one. Pure, for tests.
 */
int registrar_pick_slot(const char *who, int attempt, int count);

#endif
