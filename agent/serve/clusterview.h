/*
 * clusterview.h: the cluster at a glance, from this node's view and its peers' last believed answers:
 * /cluster (JSON), `pgcheckd ctl cluster` (a table, or the JSON with --json) and /cluster/replica
 * (which node can serve a read now). Renderings only: every up/down of this node comes from
 * verdict_for(), every word of a peer from its answer; nothing here asks anyone anything.
 */
#ifndef PGCHECKD_CLUSTERVIEW_H
#define PGCHECKD_CLUSTERVIEW_H

#include <stdbool.h>
#include <stddef.h>

#include "request.h"
#include "verdict.h"

/* clusterview_json writes {"nodes":[this node, then each peer]}; 0 when buf is too small. */
size_t clusterview_json(const struct node_view *v, const struct policy *p, char *buf, size_t len);

/* clusterview_table writes the same as a table for people (`pgcheckd ctl cluster`); 0 when too small. */
size_t clusterview_table(const struct node_view *v, const struct policy *p, char *buf, size_t len);

/*
 * clusterview_replica writes which node can serve request r's read now (a fresh replica whose answer is
 * up with a weight, kept by keep-best included, that has replayed r's min_lsn: the highest weight, then
 * the most replayed, then the lowest name; else the primary) as JSON into buf, its length in *n; false
 * (and {"node":null}) when none can. r's lag limits apply to this node's own verdict only.
 */
bool clusterview_replica(const struct node_view *v, const struct policy *p, const struct request *r, char *buf,
                         size_t len, size_t *n);

#endif
