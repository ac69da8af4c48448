/* A test binary whose cases never reach a CHECK: its summary must fail the
 * run (see the unit.testlib_no_checks ctest). */
#include "testlib.h"

int main(void)
{
    return test_summary("testlib_no_checks");
}
