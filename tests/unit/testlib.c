/* See testlib.h. */
#include "testlib.h"

int test_failures;
int test_checks;

int test_summary(const char *name)
{
    fprintf(stderr, "%s: %d checks, %d failed\n", name, test_checks, test_failures);
    /* A run that checked nothing proved nothing: its cases were skipped or
     * never reached their CHECKs, which must not pass as green. */
    if (test_checks == 0) {
        fprintf(stderr, "%s: no checks ran; failing the run\n", name);
        return 1;
    }
    return test_failures ? 1 : 0;
}
