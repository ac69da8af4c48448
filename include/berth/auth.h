/* Who is calling: a bearer token of the token file, a verified TLS client
 * certificate, or the peer of a unix socket. The HTTP front end gathers what
 * the connection shows (struct auth_peer); auth_identify names the caller or
 * says why there is none. Tokens are compared in constant time and never
 * logged; the caller's name is what the logs show. */
#ifndef BERTH_AUTH_H
#define BERTH_AUTH_H

#include <stddef.h>
#include <sys/types.h>

#include "berth/arena.h"
#include "berth/err.h"

struct auth_config {
    const char *token_file;  /* "" or NULL: no tokens */
    const char *allowed_ids; /* ;-separated certificate subjects / SPIFFE ids; "" = any */
    int client_ca;           /* 1 when a verified client certificate is required */
};

/* What one connection and request show about the caller. Every pointer is
 * borrowed for the call. */
struct auth_peer {
    const char *authorization; /* the Authorization header, or NULL */
    int tls_verified;          /* the client certificate chains to --tls-client-ca */
    const char *tls_subject;   /* its subject DN, or NULL */
    const char *tls_spiffe;    /* its spiffe:// URI SAN, or NULL */
    int unix_peer;             /* a unix socket connection: uid/pid below are set */
    uid_t uid;
    pid_t pid;
};

struct auth;

/* Read the token file (when given). *out owns a copy of every string. */
int auth_new(const struct auth_config *cfg, struct auth **out,
             struct berth_err *err) BERTH_MUST_USE;
/* Re-read the token file. On failure the set in use stays and -1 says why. */
int auth_reload(struct auth *a, struct berth_err *err) BERTH_MUST_USE;
/* The same from `path` (NULL: the file in use), which becomes the file of
 * later reloads once it loads. Tokens cannot be turned on or off here
 * (failed_precondition): whether a caller must show one is fixed at start.
 * Call from one thread at a time (the reloading one). */
int auth_reload_file(struct auth *a, const char *path, struct berth_err *err) BERTH_MUST_USE;
/* How many tokens are in use. */
size_t auth_token_count(struct auth *a);
/* Parse a token file without keeping it: *n tokens. The same checks as
 * auth_new, for --check-config. */
int auth_tokens_check(const char *path, size_t *n, struct berth_err *err) BERTH_MUST_USE;
/* 1 when a request must show a caller (tokens or client certificates). */
int auth_required(const struct auth *a);
/* Name the caller: *name (from the arena) is "token:<name>", the
 * certificate's SPIFFE id or subject, or "unix:uid=U,pid=P", or "anonymous"
 * when nothing is required. -1 with unauthenticated (a missing or unknown
 * token, no or an unverified certificate) or permission_denied (a
 * certificate not in allowed_ids). */
int auth_identify(struct auth *a, const struct auth_peer *peer, struct arena *arena,
                  const char **name, struct berth_err *err) BERTH_MUST_USE;
/* NULL does nothing. */
void auth_free(struct auth *a);

#endif
