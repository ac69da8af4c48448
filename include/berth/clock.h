/* Monotonic time and deadlines. A deadline is a monotonic time in ms;
 * BERTH_NO_DEADLINE means none. */
#ifndef BERTH_CLOCK_H
#define BERTH_CLOCK_H

#include <stdint.h>

#define BERTH_NO_DEADLINE INT64_MAX

int64_t berth_now_ms(void);  /* monotonic */
int64_t berth_now_us(void);  /* monotonic, in microseconds: for timing short calls */
int64_t berth_unix_ms(void); /* wall clock */
/* ms left until deadline, 0 when it passed, INT64_MAX for none. */
int64_t berth_deadline_left_ms(int64_t deadline);
/* The earlier of a deadline and now+ms. */
int64_t berth_deadline_min(int64_t deadline, int64_t ms_from_now);

#endif
