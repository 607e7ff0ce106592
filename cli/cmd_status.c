/*
 * cmd_status.c - `ferry status`: the scheduler's workers, queue and
 * counters.
 *
 * The numbers come straight from the counter table
 * (common/status_fields.h) through struct ferry_status, the lists
 * (workers, recent failures, waiting functions) from the status document
 * as msgpack; nothing is turned into JSON except for --json.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "status_fields.h"

/* The counter table, and where struct ferry_status keeps each number. */
static const struct counter {
	const char *name;
	const char *kind; /* "COUNTER" or "GAUGE" */
	const char *doc;
	size_t      off, size;
} counters[] = {
#define X(name, kind, width, doc)                                         \
	{ #name, #kind, doc, offsetof(struct ferry_status, name),           \
	    sizeof(((struct ferry_status *)0)->name) },
	FERRY_STATUS_FIELDS(X)
#undef X
};

#define N_COUNTERS (sizeof(counters) / sizeof(counters[0]))

/* The value of counter k in st. */
static uint64_t
counter_value(const struct ferry_status *st, const struct counter *k)
{
	const char *p = (const char *)st + k->off;
	uint32_t    u32;
	uint64_t    u64;

	if (k->size == sizeof(u32)) {
		memcpy(&u32, p, sizeof(u32));
		return u32;
	}
	memcpy(&u64, p, sizeof(u64));
	return u64;
}

/* The counter named by name (len bytes), or NULL. */
static const struct counter *
counter_find(const char *name, size_t len)
{
	for (size_t i = 0; i < N_COUNTERS; i++) {
		if (strlen(counters[i].name) == len &&
		    memcmp(counters[i].name, name, len) == 0)
			return &counters[i];
	}
	return NULL;
}

/*
 * The summary's counter lines: a label, and a sentence in which {NAME}
 * stands for the value of counter NAME of the table.
 */
static const struct {
	const char *label;
	const char *text;
} summary[] = {
	{ "queue", "{queued} queued, {waiting} waiting for their inputs, "
	           "{busy} held by workers, {results_stored} result(s) "
	           "awaiting clients" },
	{ "tasks", "{submitted} submitted, {done} done, {failed} failed, "
	           "{cancelled} cancelled, {requeued} re-queued, {rejected} "
	           "rejected" },
	{ "failures", "{retried} retried, {dead} dead (quarantined), "
	              "{delayed} waiting to retry, {kills} process(es) "
	              "killed by tasks ({timeouts} timed out, {memory_kills} "
	              "over memory)" },
	{ "clients", "{clients} connected, {supervisors} supervisor(s), "
	             "{late_results} late result(s) dropped" },
	{ "security", "{auth_failures} authentication failure(s), "
	              "{bad_messages} bad message(s)" },
};

/* Print text with each {NAME} replaced by counter NAME's value. */
static void
print_counters(const struct ferry_status *st, const char *text)
{
	const char *p = text, *open;

	while ((open = strchr(p, '{')) != NULL) {
		size_t                len = strcspn(open + 1, "}");
		const struct counter *k   = counter_find(open + 1, len);

		fwrite(p, 1, (size_t)(open - p), stdout);
		if (k != NULL)
			printf("%" PRIu64, counter_value(st, k));
		else
			printf("{%.*s?}", (int)len, open + 1);
		p = open + 1 + len + (open[1 + len] == '}');
	}
	fputs(p, stdout);
}

/* The slots of worker entry w that are busy. */
static uint64_t
worker_busy(const msgpack_object *w)
{
	uint64_t held = cli_obj_uint(w, "held"), s = cli_obj_uint(w, "slots");

	return held < s ? held : s;
}

/* "journal" line: a scheduler with a journal has written at least its
 * first batch before it listened; none, and the line says so. */
static void
print_journal(const struct ferry_status *st)
{
	if (st->journal_commits == 0) {
		printf("journal    none: a restart of the scheduler loses its "
		       "queue\n");
		return;
	}
	printf("journal    %s, %.1f MiB on disk, %" PRIu64 " write(s), %" PRIu64
	       " record(s), %" PRIu64 " task(s) restored at start\n",
	    st->journal_trouble ? "IN TROUBLE (submissions refused; see the "
	                          "scheduler's log)"
	                        : "ok",
	    (double)st->journal_bytes / (1024.0 * 1024.0),
	    st->journal_commits, st->journal_records, st->restored);
}

/* "waiting" line: queued tasks for functions no connected worker runs. */
static void
print_waiting(const struct cli_status *s)
{
	const msgpack_object *uf = cli_obj_array(&s->doc, "unserved_functions");

	if (s->st.waiting_function == 0)
		return;
	printf("waiting    %" PRIu64 " queued task(s) for a function no "
	       "connected worker runs:",
	    s->st.waiting_function);
	for (uint32_t i = 0; uf != NULL && i < uf->via.array.size; i++) {
		const msgpack_object *e = &uf->via.array.ptr[i];
		char                  fn[300];
		printf("%s %s (%" PRIu64 ", %.1f s%s)", i ? "," : "",
		    cli_obj_str(e, "fn", fn, sizeof(fn)),
		    cli_obj_uint(e, "queued"),
		    (double)cli_obj_uint(e, "waiting_ms") / 1000.0,
		    cli_obj_uint(e, "known") ? "" : ", never registered");
	}
	printf("\n");
}

static void
print_failures(const struct cli_status *s)
{
	const msgpack_object *rf = cli_obj_array(&s->doc, "recent_failures");

	if (rf == NULL || rf->via.array.size == 0)
		return;
	printf("\nRECENT FAILURES (newest first)\n");
	for (uint32_t i = 0; i < rf->via.array.size; i++) {
		const msgpack_object *e = &rf->via.array.ptr[i];
		char                  fn[80], st[16], why[300];
		printf("  task %" PRIu64 " %s: %s after %" PRIu64
		       " run(s): %s\n",
		    cli_obj_uint(e, "id"), cli_obj_str(e, "fn", fn, sizeof(fn)),
		    cli_obj_str(e, "state", st, sizeof(st)),
		    cli_obj_uint(e, "attempts"),
		    cli_obj_str(e, "reason", why, sizeof(why)));
	}
}

static void
print_workers(const msgpack_object *wl)
{
	if (wl == NULL || wl->via.array.size == 0)
		return;
	printf("\n%-24s %7s %-8s %5s %4s %5s %9s %6s %8s %5s %8s %6s %6s "
	       "%5s\n",
	    "WORKER", "PID", "GROUP", "SLOTS", "BUSY", "HELD", "DONE",
	    "FAILED", "LASTSEEN", "OBJS", "CACHE_MB", "LOADS", "HITS",
	    "EVICT");
	for (uint32_t i = 0; i < wl->via.array.size; i++) {
		const msgpack_object *w     = &wl->via.array.ptr[i];
		const msgpack_object *cache = cli_obj_get(w, "cache");
		char                  name[128], group[64];
		printf("%-24s %7" PRIu64 " %-8s %5" PRIu64 " %4" PRIu64
		       " %5" PRIu64 " %9" PRIu64 " %6" PRIu64 " %6" PRIu64
		       "ms %5" PRIu64 " %8.1f %6" PRIu64 " %6" PRIu64
		       " %5" PRIu64 "\n",
		    cli_obj_str(w, "name", name, sizeof(name)),
		    cli_obj_uint(w, "pid"),
		    cli_obj_str(w, "group", group, sizeof(group)),
		    cli_obj_uint(w, "slots"), worker_busy(w),
		    cli_obj_uint(w, "held"), cli_obj_uint(w, "done"),
		    cli_obj_uint(w, "failed"), cli_obj_uint(w, "last_seen_ms"),
		    cli_obj_uint(cache, "objects"),
		    (double)cli_obj_uint(cache, "bytes") / 1048576.0,
		    cli_obj_uint(cache, "loads"), cli_obj_uint(cache, "hits"),
		    cli_obj_uint(cache, "evictions"));
	}
}

/* The human status: the scheduler, its workers' slots, the counter
 * lines, what waits, recent failures, and one line per worker. */
static void
print_status(const char *addr, const struct cli_status *s)
{
	const msgpack_object *wl = cli_obj_array(&s->doc, "worker_list");
	uint64_t              busy = 0;
	char                  version[64];

	for (uint32_t i = 0; wl != NULL && i < wl->via.array.size; i++)
		busy += worker_busy(&wl->via.array.ptr[i]);
	printf("scheduler  %s  up %.1f s  version %s\n", addr,
	    (double)s->st.uptime_ms / 1000.0,
	    cli_obj_str(&s->doc, "version", version, sizeof(version)));
	printf("workers    %" PRIu32 " process(es), %" PRIu32 " slot(s): %" PRIu64
	       " busy, %" PRIu64 " free\n",
	    s->st.workers, s->st.slots, busy, s->st.slots - busy);
	for (size_t i = 0; i < sizeof(summary) / sizeof(summary[0]); i++) {
		printf("%-10s ", summary[i].label);
		print_counters(&s->st, summary[i].text);
		printf("\n");
	}
	print_journal(&s->st);
	print_waiting(s);
	print_failures(s);
	print_workers(wl);
}

/* Every counter of the table with its value and what it counts. */
static void
print_table(const struct cli_status *s)
{
	printf("%-18s %-7s %12s  %s\n", "COUNTER", "KIND", "VALUE", "MEANING");
	for (size_t i = 0; i < N_COUNTERS; i++) {
		const struct counter *k = &counters[i];
		printf("%-18s %-7s %12" PRIu64 "  ", k->name,
		    strcmp(k->kind, "GAUGE") == 0 ? "gauge" : "counter",
		    counter_value(&s->st, k));
		for (const char *d = k->doc; *d != '\0'; d++) {
			if (*d != '`') /* markdown quoting */
				putchar(*d);
		}
		putchar('\n');
	}
}

static void
status_usage(FILE *out)
{
	fprintf(out,
	    "usage: ferry status [-f FILE | -c URL] [--json | --counters]\n"
	    "\n"
	    "Show the scheduler's workers (slots busy and free), queue depth "
	    "and\n"
	    "task counters.\n"
	    "\n"
	    CLI_ADDRESS_HELP
	    "  -j, --json           print the full status as one JSON "
	    "object\n"
	    "      --counters       print every counter of the status with "
	    "its\n"
	    "                       value and what it counts\n"
	    CLI_SEC_HELP
	    "  -h, --help           show this help\n"
	    "\n"
	    "Exit status: 0 when the scheduler answered, 1 if the status "
	    "request\n"
	    "failed, 2 on bad usage, " CLI_CONNECT_EXITS,
	    CLI_DEFAULT_ADDRESS);
}

int
cmd_status(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "counters", no_argument, NULL, 'C' },
		CLI_CLIENT_OPTIONS,
	};
	struct cli_sec    sec  = { 0 };
	const char       *file = NULL, *url = NULL;
	char              addr[1024];
	int               ch, rv, view = 0;
	ferry_client     *c;
	struct cli_status s;

	while ((ch = getopt_long(argc, argv, "f:c:jh", opts, NULL)) != -1) {
		switch (ch) {
		case 'f': file = optarg; break;
		case 'c': url = optarg; break;
		case 'j':
		case 'C':
			if (view != 0 && view != ch) {
				fprintf(stderr, "ferry status: give --json or "
				                "--counters, not both\n");
				return 2;
			}
			view = ch;
			break;
		case 'h':
			status_usage(stdout);
			return 0;
		default:
			if (cli_sec_flag(&sec, ch, optarg))
				break;
			status_usage(stderr);
			return 2;
		}
	}
	if ((rv = cli_client_connect("ferry status", file, url, &sec, 5000,
	         addr, sizeof(addr), &c)) != 0)
		return rv;
	if ((rv = cli_status_get(c, 5000, &s)) != 0) {
		fprintf(stderr, "ferry status: %s\n", ferry_strerror(rv));
		ferry_client_close(c);
		return 1;
	}
	if (view == 'j')
		rv = cli_print_json("ferry status", "the status", s.bytes,
		         s.len) != 0;
	else if (view == 'C')
		print_table(&s);
	else
		print_status(addr, &s);
	cli_status_free(&s);
	ferry_client_close(c);
	return rv;
}
