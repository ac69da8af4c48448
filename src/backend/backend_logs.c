/* Log lines in berthd's terms (berth/backend.h): the list every backend
 * fills, with the one place lines are made valid UTF-8 and the one place a
 * query's filters are applied. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/backend.h"
#include "berth/utf8.h"

#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */

void backend_log_list_release(struct backend_log_list *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->items[i].line);
    free(l->items);
    l->items = NULL;
    l->n = 0;
    l->truncated = 0;
}

int backend_log_list_add(struct backend_log_list *l, int64_t time_unix_ns,
                         enum backend_log_stream stream, const char *line, size_t len,
                         struct berth_err *err)
{
    struct backend_log_entry *items;
    char *out;
    size_t o = 0;

    if (len > 0 && line[len - 1] == '\r')
        len--;
    /* Each byte becomes at most three (one invalid byte -> U+FFFD). */
    if (len > (SIZE_MAX - 1) / 3)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "log line too long");
    out = malloc(len * 3 + 1);
    if (out == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    for (size_t i = 0; i < len;) {
        size_t n = line[i] == '\0' ? 0 : utf8_seq_len(line + i, len - i);

        if (n == 0) {
            memcpy(out + o, REPLACEMENT, 3);
            o += 3;
            i++;
        } else {
            memcpy(out + o, line + i, n);
            o += n;
            i += n;
        }
    }
    out[o] = '\0';
    items = realloc(l->items, (l->n + 1) * sizeof(*items));
    if (items == NULL) {
        free(out);
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    }
    l->items = items;
    items[l->n].time_unix_ns = time_unix_ns;
    items[l->n].stream = stream;
    items[l->n].line = out;
    items[l->n].len = o;
    l->n++;
    return 0;
}

static int log_wanted(const struct backend_log_entry *e, const struct backend_log_query *q)
{
    if (q->streams != 0 && (q->streams & (unsigned)e->stream) == 0)
        return 0;
    if (q->since_unix_ms > 0 && e->time_unix_ns < q->since_unix_ms * 1000000)
        return 0;
    return 1;
}

void backend_log_list_filter(struct backend_log_list *l, const struct backend_log_query *q)
{
    size_t kept = 0, first = 0, bytes = 0;

    for (size_t i = 0; i < l->n; i++) {
        if (log_wanted(&l->items[i], q))
            l->items[kept++] = l->items[i];
        else
            free(l->items[i].line);
    }
    l->n = kept;
    if (q->tail_lines > 0 && l->n > q->tail_lines)
        first = l->n - q->tail_lines;
    if (q->max_bytes > 0) {
        size_t i = l->n;

        while (i > first && bytes + l->items[i - 1].len <= q->max_bytes) {
            bytes += l->items[i - 1].len;
            i--;
        }
        if (i > first)
            l->truncated = 1;
        first = i;
    }
    if (first == 0)
        return;
    for (size_t i = 0; i < first; i++)
        free(l->items[i].line);
    memmove(l->items, l->items + first, (l->n - first) * sizeof(*l->items));
    l->n -= first;
}
