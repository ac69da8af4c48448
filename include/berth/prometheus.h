/* GET /metrics: the Prometheus text exposition (format 0.0.4) of berthd's
 * own counters (RPCs, the backend's Engine calls, the collector), the VMs by state, the
 * gateways and deployments with their replicas, and the cached resource
 * metrics of every running VM. Everything but the gateway and deployment
 * list is read from memory; that list is one Engine call per kind, skipped
 * (and counted) when it fails. */
#ifndef BERTH_PROMETHEUS_H
#define BERTH_PROMETHEUS_H

#include <stdint.h>

#include "berth/backend.h"
#include "berth/buf.h"
#include "berth/collector.h"
#include "berth/err.h"
#include "berth/http_server.h"
#include "berth/router.h"
#include "berth/vm_registry.h"

#define PROMETHEUS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Where the numbers come from; all borrowed and read-only here, and all
 * must outlive the prometheus object. NULL members are left out (their
 * series read as zero or are absent). */
struct prometheus_sources {
    struct router *router;
    struct vm_registry *vms;
    const struct backend *backend; /* gateway and deployment lists, engine call counters */
    struct collector *collector;
    int64_t list_timeout_ms; /* per backend list call at scrape time */
};

struct prometheus;

/* *out is the caller's, freed with prometheus_free(). NULL when out of memory. */
struct prometheus *prometheus_new(const struct prometheus_sources *src);
void prometheus_free(struct prometheus *p);

/* Append the whole exposition to `out`. -1 only when `out` hits its cap or
 * memory runs out (err says so); a failing backend list is skipped. */
int prometheus_render(struct prometheus *p, struct buf *out, struct berth_err *err) BERTH_MUST_USE;

/* Answer GET /metrics (other methods: 405), gzip-compressed when the
 * request's Accept-Encoding takes gzip; Vary: Accept-Encoding either way. */
void prometheus_serve(struct prometheus *p, const struct http_request *req,
                      struct http_response *resp);

/* Append `s` escaped as a label value (backslash, double quote, newline). */
int prometheus_append_label_value(struct buf *out, const char *s,
                                  struct berth_err *err) BERTH_MUST_USE;

#endif
