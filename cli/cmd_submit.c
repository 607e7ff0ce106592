/*
 * cmd_submit.c - `ferry submit`: run one task and print its result as
 * JSON.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "json.h"
#include "util.h"

static void
submit_usage(FILE *out)
{
	fprintf(out,
	    "usage: ferry submit [-f FILE | -c URL] [--wait DURATION] "
	    "[--args JSON]\n"
	    "                    [--retries N] [--timeout DURATION] "
	    "[--backoff DURATION]\n"
	    "                    [--backoff-max DURATION] [--retry-errors] "
	    "FN [ARG...]\n"
	    "\n"
	    "Run task function FN once and print its result as JSON.  The\n"
	    "arguments are sent as a msgpack array of the ARGs, each parsed "
	    "as\n"
	    "JSON when it is valid JSON and taken as a string otherwise.  "
	    "An ARG\n"
	    "that starts like JSON ([, {, \", a digit, or - and a digit) "
	    "must be\n"
	    "valid JSON: one that is not is an error with the byte offset "
	    "(quote\n"
	    "text that starts so as a JSON string: '\"2024-01-01\"'):\n"
	    "\n"
	    "    ferry submit add 2 3          # args [2, 3]  -> 5\n"
	    "    ferry submit echo hello       # args [\"hello\"]\n"
	    "    ferry submit --args '{\"n\": 4}' fn   # args exactly {\"n\": "
	    "4}\n"
	    "    ferry submit wordcount @/data/big.txt 0 4096\n"
	    "                    # @PATH (or @LOADER:PATH) is an object "
	    "reference:\n"
	    "                    # the worker loads the file itself; \"@@x\" "
	    "is \"@x\"\n"
	    "\n"
	    CLI_ADDRESS_HELP
	    "  -w, --wait DURATION  give up waiting for the result after "
	    "DURATION\n"
	    "                       (250ms, 30s, 5m; default 60s; the task "
	    "goes on)\n"
	    "  -a, --args JSON      send this JSON value as the arguments\n"
	    "\n"
	    "Failure handling (default: the scheduler's task_defaults):\n"
	    "      --retries N      run it again up to N times (0 ... 1000) "
	    "after a\n"
	    "                       crash or timeout\n"
	    "      --retry-errors   also retry errors the task function "
	    "reports\n"
	    "      --timeout DURATION\n"
	    "                       kill a run that takes longer (0: no "
	    "timeout)\n"
	    "      --backoff DURATION\n"
	    "                       wait this long before the first retry; "
	    "doubles\n"
	    "                       per retry\n"
	    "      --backoff-max DURATION\n"
	    "                       cap of that wait\n"
	    CLI_SEC_HELP
	    "  -h, --help           show this help\n"
	    "\n"
	    "A task that failed or was quarantined (it killed worker "
	    "processes) prints\n"
	    "its error and how many times it ran to stderr; a task that "
	    "succeeded\n"
	    "after retries says so on stderr.\n"
	    "\n"
	    "Exit status: 0 on success, 1 if the task failed or no result "
	    "came in\n"
	    "time (its error is printed), 2 on bad usage,\n" CLI_CONNECT_EXITS,
	    CLI_DEFAULT_ADDRESS);
}

/* Pack "@[LOADER:]PATH" (without the @) as an object reference. */
static int
pack_object_arg(msgpack_packer *pk, const char *spec)
{
	char        loader[64] = "", path[4096];
	const char *colon      = strchr(spec, ':');
	uint8_t     ref[4300];
	size_t      n;

	if (colon != NULL && spec[0] != '/' && colon - spec < 64) {
		memcpy(loader, spec, (size_t)(colon - spec));
		loader[colon - spec] = '\0';
		spec                 = colon + 1;
	}
	if (spec[0] != '/' && realpath(".", path) != NULL) {
		/* relative to where the command runs: make it absolute, the
		 * worker's directory is not ours */
		size_t l = strlen(path);
		snprintf(path + l, sizeof(path) - l, "/%s", spec);
	} else {
		util_strlcpy(path, spec, sizeof(path));
	}
	if (ferry_object_ref(ref, sizeof(ref), &n, path,
	        loader[0] ? loader : NULL, 0, NULL) != 0) {
		fprintf(stderr, "ferry submit: bad object reference '@%s'\n",
		    spec);
		return -1;
	}
	msgpack_pack_ext(pk, n, FERRY_EXT_OBJECT);
	msgpack_pack_ext_body(pk, ref, n);
	return 0;
}

/* Parse a --OPT DURATION ("500ms", "2s", a bare number of ms). */
static int
submit_duration(const char *opt, const char *val, uint32_t *ms)
{
	if (conf_parse_duration(val, ms) != 0) {
		fprintf(stderr, "ferry submit: %s: '%s' is not a duration "
		                "(500ms, 2s, 5m, 1h or milliseconds)\n",
		    opt, val);
		return -1;
	}
	return 0;
}

/* --timeout, --backoff or --backoff-max (ch) into its int option of
 * struct ferry_task_opts. */
static int
submit_task_ms(struct ferry_task_opts *t, int ch, const char *val)
{
	const char *opt = ch == 'T' ? "--timeout"
	    : ch == 'B'             ? "--backoff"
	                            : "--backoff-max";
	int        *out = ch == 'T' ? &t->timeout_ms
	    : ch == 'B'             ? &t->backoff_ms
	                            : &t->backoff_max_ms;
	uint32_t    ms;

	if (submit_duration(opt, val, &ms) != 0)
		return -1;
	if (ms > INT32_MAX) {
		fprintf(stderr, "ferry submit: %s: '%s' is too long\n", opt,
		    val);
		return -1;
	}
	*out = (int)ms;
	return 0;
}

/* Whether a submit ARG starts like a JSON array, object, string or
 * number ('[', '{', '"', a digit, '-' and a digit, after JSON's
 * whitespace), so that one that does not parse is a mistake to report,
 * not a word to send as a string. */
static int
submit_looks_json(const char *arg)
{
	arg += strspn(arg, " \t\r\n");
	return arg[0] == '[' || arg[0] == '{' || arg[0] == '"' ||
	    (arg[0] >= '0' && arg[0] <= '9') ||
	    (arg[0] == '-' && arg[1] >= '0' && arg[1] <= '9');
}

/* Pack the task's arguments: the JSON of --args as it is, else an array
 * of the ARGs.  0, or -1 after saying why. */
static int
submit_pack_args(msgpack_packer *pk, msgpack_sbuffer *sb,
    const char *args_json, int argc, char **argv)
{
	char err[512];

	if (args_json != NULL) {
		if (json_to_msgpack(args_json, strlen(args_json), pk, err,
		        sizeof(err)) == 0)
			return 0;
		fprintf(stderr, "ferry submit: --args: %s\n", err);
		return -1;
	}
	msgpack_pack_array(pk, (size_t)argc);
	for (int i = 0; i < argc; i++) {
		size_t before = sb->size;
		if (argv[i][0] == '@' && argv[i][1] != '@') {
			if (pack_object_arg(pk, argv[i] + 1) != 0)
				return -1;
			continue;
		}
		if (argv[i][0] == '@') { /* "@@x" is the string "@x" */
			msgpack_pack_str(pk, strlen(argv[i]) - 1);
			msgpack_pack_str_body(pk, argv[i] + 1,
			    strlen(argv[i]) - 1);
			continue;
		}
		if (json_to_msgpack(argv[i], strlen(argv[i]), pk, err,
		        sizeof(err)) == 0)
			continue;
		sb->size = before;
		if (submit_looks_json(argv[i])) {
			/* meant as JSON, mistyped: say where */
			fprintf(stderr,
			    "ferry submit: argument %d '%.80s%s' starts like "
			    "JSON but is not valid JSON: %s\n"
			    "(to send it as a string, quote it as one: "
			    "'\"...\"')\n",
			    i + 1, argv[i], strlen(argv[i]) > 80 ? "..." : "",
			    err);
			return -1;
		}
		/* a plain word: a string */
		msgpack_pack_str(pk, strlen(argv[i]));
		msgpack_pack_str_body(pk, argv[i], strlen(argv[i]));
	}
	return 0;
}

/* Print the outcome of task fn (f, done); returns the exit status. */
static int
submit_report(ferry_future *f, const char *fn)
{
	const void *data;
	size_t      len;
	uint32_t    attempts = ferry_future_attempts(f);
	int         rv       = ferry_future_result(f, &data, &len);

	if (rv == 0 && attempts > 1)
		fprintf(stderr, "ferry submit: %s succeeded on attempt %" PRIu32
		                "\n",
		    fn, attempts);
	if (rv == 0) {
		return cli_print_json("ferry submit", "result", data, len) != 0;
	} else {
		const char *msg      = ferry_future_error(f);
		char        runs[64] = "";
		if (attempts > 0)
			snprintf(runs, sizeof(runs), " (ran %" PRIu32 " time%s)",
			    attempts, attempts == 1 ? "" : "s");
		fprintf(stderr, "ferry submit: %s %s: %s%s%s%s\n", fn,
		    ferry_future_state(f) == FERRY_DEAD ? "is dead (quarantined)"
		                                        : "failed",
		    ferry_strerror(rv), msg ? ": " : "", msg ? msg : "", runs);
		return 1;
	}
}

/* Submit fn with the packed arguments and wait up to wait_ms for its
 * outcome; returns the exit status. */
static int
submit_run(ferry_client *c, const char *fn, const msgpack_sbuffer *sb,
    const struct ferry_task_opts *topts, uint32_t wait_ms)
{
	ferry_future *f;
	int           rv, rc;

	if ((rv = ferry_submit_opts(c, fn, sb->data, sb->size, topts, &f)) !=
	    0) {
		fprintf(stderr, "ferry submit: %s\n", ferry_strerror(rv));
		return 2;
	}
	if (ferry_future_wait(f, (int)wait_ms) != 0) {
		fprintf(stderr,
		    "ferry submit: no result within %" PRIu32 " ms (task %" PRIu64
		    " of session %016" PRIx64 " is still pending)\n",
		    wait_ms, ferry_future_id(f), ferry_client_session(c));
		rc = 1;
	} else {
		rc = submit_report(f, fn);
	}
	ferry_future_free(f);
	return rc;
}

static const struct option submit_opts[] = {
	{ "wait", required_argument, NULL, 'w' },
	{ "args", required_argument, NULL, 'a' },
	{ "retries", required_argument, NULL, 'R' },
	{ "timeout", required_argument, NULL, 'T' },
	{ "backoff", required_argument, NULL, 'B' },
	{ "backoff-max", required_argument, NULL, 'M' },
	{ "retry-errors", no_argument, NULL, 'E' },
	CLI_CLIENT_OPTIONS,
};

/* What submit's flags set. */
struct submit_flags {
	const char            *file, *url, *args_json;
	uint32_t               wait_ms;
	struct ferry_task_opts topts;
	struct cli_sec         sec;
};

/* Take the flags of argv into s; -1 when they are all taken, else the
 * exit status (0 after --help). */
static int
submit_flags(int argc, char **argv, struct submit_flags *s)
{
	int ch;

	while ((ch = getopt_long(argc, argv, "+f:c:w:a:h", submit_opts,
	            NULL)) != -1) {
		switch (ch) {
		case 'f': s->file = optarg; break;
		case 'c': s->url = optarg; break;
		case 'w':
			if (submit_duration("--wait", optarg, &s->wait_ms) != 0)
				return 2;
			if (s->wait_ms == 0 || s->wait_ms > INT32_MAX) {
				fprintf(stderr, "ferry submit: --wait: must be "
				                "between 1ms and 24 days\n");
				return 2;
			}
			break;
		case 'a': s->args_json = optarg; break;
		case 'R':
			s->topts.retries = (int)cli_parse_long("--retries",
			    optarg, 0, 1000);
			break;
		case 'T':
		case 'B':
		case 'M':
			if (submit_task_ms(&s->topts, ch, optarg) != 0)
				return 2;
			break;
		case 'E': s->topts.retry_errors = 1; break;
		case 'h':
			submit_usage(stdout);
			return 0;
		default:
			if (cli_sec_flag(&s->sec, ch, optarg))
				break;
			submit_usage(stderr);
			return 2;
		}
	}
	return -1;
}

int
cmd_submit(int argc, char **argv)
{
	struct submit_flags s = { .wait_ms = 60000 };
	char                addr[1024];
	const char         *fn;
	int                 rc;
	msgpack_sbuffer     sb;
	msgpack_packer      pk;
	ferry_client       *c;

	ferry_task_opts_init(&s.topts);
	if ((rc = submit_flags(argc, argv, &s)) >= 0)
		return rc;
	if (optind >= argc) {
		fprintf(stderr, "ferry submit: missing the function name\n");
		submit_usage(stderr);
		return 2;
	}
	fn = argv[optind++];
	if (s.args_json != NULL && optind < argc) {
		fprintf(stderr, "ferry submit: give either --args or ARGs, "
		                "not both\n");
		return 2;
	}
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (submit_pack_args(&pk, &sb, s.args_json, argc - optind,
	        argv + optind) != 0)
		rc = 2;
	else if ((rc = cli_client_connect("ferry submit", s.file, s.url,
	              &s.sec, 10000, addr, sizeof(addr), &c)) == 0) {
		rc = submit_run(c, fn, &sb, &s.topts, s.wait_ms);
		ferry_client_close(c);
	}
	msgpack_sbuffer_destroy(&sb);
	return rc;
}
