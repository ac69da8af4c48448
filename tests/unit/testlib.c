/* See testlib.h. */
#include "testlib.h"

int test_failures;
int test_checks;

int test_summary(const char *name)
{
    fprintf(stderr, "%s: %d checks, %d failed\n", name, test_checks, test_failures);
    return test_failures ? 1 : 0;
}
