/* The command-line client in the same binary: `berthd vm ls`, `berthd logs
 * web-1 -f`, ... call a running berthd over its Connect API (src/cli/). */
#ifndef BERTH_CLI_H
#define BERTH_CLI_H

/* Is argv[1] a client command (or a client-only global option)? */
int cli_is_command(const char *arg);

/* Run the client on argv (argv[0] is the first argument after the program
 * name); returns the process exit status: 0, or the Connect code of the
 * failure (3 for a command line that cannot be understood). */
int cli_main(int argc, char **argv);

#endif
