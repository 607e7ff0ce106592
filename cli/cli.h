/*
 * cli.h - the ferry command's subcommands and their shared helpers:
 * processes and options (cli_util.c), clients of a scheduler and its
 * status (cli_client.c).
 */
#ifndef FERRY_CLI_H
#define FERRY_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <msgpack.h>

#include "conf.h"
#include "ferry/ferry.h"

/* The address of this user's default cluster (config/local.yaml's):
 * ipc://RUNTIME/local.sock, RUNTIME being util_runtime_dir(). */
#define CLI_DEFAULT_ADDRESS cli_default_address()

/* CLI_DEFAULT_ADDRESS, computed (a static buffer).  Exits with status 2
 * and a message when FERRY_RUNTIME_DIR is not an absolute path or the
 * socket path would be too long. */
const char *cli_default_address(void);

/*
 * Make this user's runtime directory ready when one of the n URLs is an
 * ipc:// path inside it (a scheduler is about to listen there): create
 * it (mode 0700) and check it is this user's own (owned by them, not
 * writable by others, and no other user can swap it or a directory
 * above it).  Returns 0, or -1 after printing why.
 */
int cli_runtime_dir_ready(const char *const *urls, size_t n);

/* submit and status: how long to keep dialing an address where nothing
 * listens before saying "no scheduler at ADDRESS" (a scheduler started a
 * moment earlier is still found), and their exit statuses for "nothing
 * answers there" and "the scheduler refused us, or the connection could
 * not be set up" */
#define CLI_NO_SCHEDULER_MS 800
#define CLI_EXIT_NO_SCHEDULER 3
#define CLI_EXIT_REFUSED 4

#define CLI_STR_(x) #x
#define CLI_STR(x) CLI_STR_(x)

/* The end of the "Exit status:" paragraph of submit's and status's
 * --help: the statuses of cli_client_connect(). */
#define CLI_CONNECT_EXITS                                                \
	CLI_STR(CLI_EXIT_NO_SCHEDULER) " if no scheduler answers at the "     \
	"address\n(\"no scheduler at ADDRESS: connection refused\", said "    \
	"within a second\nwhen nothing listens there), "                     \
	CLI_STR(CLI_EXIT_REFUSED) " if the scheduler refused the "            \
	"connection\nor it could not be set up (token, TLS).\n"

/* Subcommands, one file each (cmd_NAME.c; cluster.c, bench.c): each
 * takes argc/argv starting at its own name and returns the process exit
 * status. */
int cmd_scheduler(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_worker_process(int argc, char **argv);
int cmd_cluster(int argc, char **argv);
int cmd_submit(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* ---- processes and options (cli_util.c; cli_self_exe in main.c) ---- */

/* The path of the running ferry binary (for spawning its subcommands). */
const char *cli_self_exe(void);

/* Number of online processors (at least 1). */
int cli_ncpu(void);

/* Load a cluster file, printing its error to stderr.  Returns 0 or -1. */
int cli_load_conf(const char *path, struct conf *c);

/*
 * Start `self_exe argv...` in the background, in a new session, with
 * stdout and stderr appended to log_path (or inherited if NULL).  Returns
 * the pid, or -1 after printing why.
 */
pid_t cli_spawn(const char *const *argv, const char *log_path);

/*
 * A process is known by its pid and its start time, in clock ticks after
 * boot (util_proc_stat()'s start): a pid that was reused by another
 * process has another start time.
 */

/* Whether pid is alive (not a zombie) and is the process that started
 * at start; start 0 (not known) is never.  Reaps pid if it is our child
 * that exited. */
int cli_pid_is(pid_t pid, uint64_t start);

/* Wait up to timeout_ms for the process that is pid now (not necessarily
 * our child) to exit; returns 0 if it did.  Reaps it if it is our child. */
int cli_wait_gone(pid_t pid, int timeout_ms);

/* Print the last lines of a log file to stderr, indented. */
void cli_tail_log(const char *path, int lines);

/* Resolve the scheduler address from -f FILE, --connect URL,
 * $FERRY_ADDRESS or the default, into buf. */
int cli_address(const char *file, const char *url, char *buf, size_t len);

/* Parse a non-negative integer option; exits with a message if bad. */
long cli_parse_long(const char *opt, const char *val, long min, long max);

/* Parse a size option of at least min bytes (conf_parse_size: "4096",
 * "512MiB", "4GiB", "500MB"); exits with status 2 and a message if bad. */
size_t cli_parse_size(const char *opt, const char *val, size_t min);

/*
 * Look ahead in argv for option ch (getopt_long with shortopts and
 * longopts, quietly): its last value, "" for one without a value, or
 * NULL when it is not given.  Leaves getopt ready to parse argv again
 * from the start.  Commands read -f FILE first and then apply every
 * flag over the file's settings.
 */
const char *cli_opt_value(int argc, char **argv, const char *shortopts,
    const struct option *longopts, int ch);

/* ---- clients of a scheduler (cli_client.c) ---- */

/* The security flags of commands that connect as clients (submit,
 * status): long options, their help, and where they are kept. */
enum {
	CLI_OPT_TLS_CA = 2000,
	CLI_OPT_TLS_CERTKEY,
	CLI_OPT_TLS_NAME,
	CLI_OPT_TOKEN_FILE,
};

#define CLI_SEC_OPTIONS                                                  \
	{ "tls-ca", required_argument, NULL, CLI_OPT_TLS_CA },               \
	    { "tls-cert-key", required_argument, NULL, CLI_OPT_TLS_CERTKEY },\
	    { "tls-server-name", required_argument, NULL, CLI_OPT_TLS_NAME },\
	    { "token-file", required_argument, NULL, CLI_OPT_TOKEN_FILE }

/* The help of -f and -c (printf: the default address is its %s). */
#define CLI_ADDRESS_HELP                                                 \
	"  -f, --file FILE      take the scheduler address from a cluster "   \
	"file\n"                                                             \
	"  -c, --connect URL    scheduler address (default $FERRY_ADDRESS "   \
	"or\n"                                                               \
	"                       %s)\n"

#define CLI_SEC_HELP                                                     \
	"      --tls-ca FILE    CA (PEM) that signed the scheduler's "        \
	"certificate\n"                                                      \
	"                       (needed for tls+tcp:// addresses)\n"         \
	"      --tls-cert-key FILE  own certificate and key (PEM), for "      \
	"mutual TLS\n"                                                       \
	"      --tls-server-name NAME  name the scheduler's certificate "     \
	"must carry\n"                                                       \
	"      --token-file FILE  the cluster's token (with -f: the file's "  \
	"security\n"                                                         \
	"                       section gives these four)\n"

/* The options of every command that reaches a scheduler: -f FILE, -c
 * URL, the security flags and --help; the end of its option list. */
#define CLI_CLIENT_OPTIONS                                               \
	{ "file", required_argument, NULL, 'f' },                            \
	    { "connect", required_argument, NULL, 'c' }, CLI_SEC_OPTIONS,    \
	    { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 }

struct cli_sec {
	const char *tls_ca, *tls_cert_key, *tls_server_name, *token_file;
};

/* Take one security flag (ch, val) into sec; 0 if ch is not one. */
int cli_sec_flag(struct cli_sec *sec, int ch, const char *val);

struct ferry_client;

/* ferry_client_connect() to url with the TLS and token settings of c's
 * security section (c may be NULL: none).  Returns a ferry_error; on
 * failure err (errlen bytes; may be NULL) says why when the client knows
 * more than the code (a file, the TLS handshake), else is empty. */
int cli_connect_conf(const struct conf *c, const char *url, int timeout_ms,
    struct ferry_client **out, char *err, size_t errlen);

/*
 * Connect a client for command who ("ferry submit"): the address from
 * url, else the cluster file, else $FERRY_ADDRESS, else the default; TLS
 * and token settings from the flags in sec, else the cluster file's
 * security section.  Writes the address into addr.  Returns 0, or an
 * exit status after printing why: CLI_EXIT_NO_SCHEDULER when nothing
 * answers at the address (known within CLI_NO_SCHEDULER_MS),
 * CLI_EXIT_REFUSED when the scheduler refused us or the connection could
 * not be set up (token, TLS files), 2 for a bad cluster file.
 */
int cli_client_connect(const char *who, const char *file, const char *url,
    const struct cli_sec *sec, int timeout_ms, char *addr, size_t addrlen,
    struct ferry_client **out);

/* The value of string key in msgpack map (NULL if absent or not a map). */
const msgpack_object *cli_obj_get(const msgpack_object *map,
    const char *key);

/* The unsigned integer at key of map, or 0. */
uint64_t cli_obj_uint(const msgpack_object *map, const char *key);

/* The string at key of map copied into buf ("-" when it is not one). */
const char *cli_obj_str(const msgpack_object *map, const char *key,
    char *buf, size_t len);

/* The array at key of map, or NULL. */
const msgpack_object *cli_obj_array(const msgpack_object *map,
    const char *key);

/* Print msgpack data (len bytes) as one line of JSON; if it is not valid
 * msgpack, say "WHO: WHAT is not valid msgpack: WHY" and return -1. */
int cli_print_json(const char *who, const char *what, const void *data,
    size_t len);

/*
 * The scheduler's status as it came (no JSON in between): st holds the
 * numbers of the counter table (common/status_fields.h), doc the whole
 * document (docs/protocol.md 3.12: the counters, worker_list,
 * recent_failures, unserved_functions), unpacked.
 */
struct cli_status {
	struct ferry_status st;
	msgpack_object      doc;
	void               *bytes; /* the msgpack document, len bytes */
	size_t              len;
	msgpack_zone        zone;
};

/* Ask c for its status into s.  Returns a ferry_error; on success the
 * caller frees s with cli_status_free(). */
int cli_status_get(struct ferry_client *c, int timeout_ms,
    struct cli_status *s);

void cli_status_free(struct cli_status *s);

/* ---- ferry bench (bench.c; bench_graph.c) ---- */

/* A private cluster: a scheduler and one worker supervisor of the
 * example library, on a fresh ipc path named after this process (one at
 * a time). */
struct private_cluster {
	pid_t       sched, worker;
	char        url[256];
	char        log[256];
	const char *journal;         /* sync mode; NULL or "none": none */
	const char *journal_parent;  /* where its journal goes (a fresh
	                              * directory in it, removed at stop) */
	char        journal_dir[512];
};

/* Start pc (zeroed, or with journal set) with W worker processes,
 * prefetch (-1: default) and object_root (NULL: none), and wait until
 * every worker has registered.  0, or -1 after printing why; stop it
 * with bench_cluster_stop() either way. */
int bench_cluster_start(struct private_cluster *pc, long workers,
    long prefetch, const char *object_root);

void bench_cluster_stop(struct private_cluster *pc);

/* qsort comparison of doubles */
int bench_cmp_double(const void *a, const void *b);

/* `ferry bench graph` (argv[1] is "graph"): the exit status. */
int bench_graph(int argc, char **argv);

#endif
