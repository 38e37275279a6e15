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

#include "conf.h"

struct registrar;

/* registrar_new starts the thread when c asks for registration; NULL when it does not (or on failure, logged). */
struct registrar *registrar_new(const struct conf *c);

/* registrar_reconfigure hands the thread a new configuration and wakes it. */
void registrar_reconfigure(struct registrar *r, const struct conf *c);

/* registrar_free withdraws from every HAProxy (bounded by the API timeout) and stops the thread. */
void registrar_free(struct registrar *r);

/*
 * registrar_pick_slot chooses which free slot to claim among count: spread by a hash of who claims, so
 * nodes starting together rarely try the same one. Pure, for tests.
 */
int registrar_pick_slot(const char *who, int attempt, int count);

#endif
