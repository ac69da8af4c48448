/* Image references and registry credentials for the Docker backend: parse a
 * reference ([host[:port]/]path[:tag][@digest]) the way the Engine does, and
 * find the credential for its registry in a Docker client config file
 * (`auths`, `credHelpers`, `credsStore`), as the X-Registry-Auth header of a
 * pull. Credentials never reach a log line or an error message. */
#ifndef BERTH_REGISTRY_AUTH_H
#define BERTH_REGISTRY_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "berth/err.h"

/* The registry every reference without a host names. */
#define IMAGE_REF_DEFAULT_HOST "docker.io"
#define IMAGE_REF_MAX 1024

/* A parsed reference; every string points into `storage`. */
struct image_ref {
    const char *host;   /* "docker.io", "127.0.0.1:5000", "ghcr.io" */
    const char *path;   /* "library/nginx", "team/app" */
    const char *tag;    /* "latest" when neither tag nor digest was given; "" with a digest only */
    const char *digest; /* "sha256:<64 hex>", or "" */
    char storage[IMAGE_REF_MAX + 64];
};

/* Parse `text`. A malformed reference is invalid_argument naming `field`
 * (e.g. "config.container.image") and saying what is wrong. */
int image_ref_parse(const char *text, const char *field, struct image_ref *out,
                    struct berth_err *err) BERTH_MUST_USE;
/* Did the reference name no tag, or the tag "latest" (and no digest)? */
int image_ref_is_latest(const struct image_ref *ref);

struct registry_auth;

/* Read a Docker client config file (JSON). A missing file gives an empty
 * set when `optional`; a file that cannot be read or parsed is
 * invalid_argument naming the path, never quoting its contents. */
int registry_auth_load(const char *path, int optional, struct registry_auth **out,
                       struct berth_err *err) BERTH_MUST_USE;
void registry_auth_free(struct registry_auth *ra);
/* Entries (auths plus helpers) the file held; for logs and tests. */
size_t registry_auth_count(const struct registry_auth *ra);

/* The X-Registry-Auth value (base64url of the Engine's JSON auth config)
 * for `host`, malloc'd into *out, or *out = NULL when the file has nothing
 * for it (anonymous pull). A credential helper is run as
 * `docker-credential-<name> get` (found on PATH) with the host on stdin,
 * and must answer before `deadline` (berth/clock.h); its failure is
 * unavailable, naming the helper and the host only. */
int registry_auth_header(const struct registry_auth *ra, const char *host, int64_t deadline,
                         char **out, struct berth_err *err) BERTH_MUST_USE;

#endif
