/*
 * registry.c - task libraries: finding, loading and registering them.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ferry/ferry.h"
#include "log.h"
#include "util.h"
#include "worker.h"

#ifndef FERRY_LIBDIR
#define FERRY_LIBDIR "/usr/local/lib/ferry"
#endif

static uint64_t
name_hash(const char *s, size_t n)
{
	return util_hash_bytes(s, n);
}

void
wrk_registry_init(struct ferry_registry *r, const struct wrk_options *opts)
{
	memset(r, 0, sizeof(*r));
	r->opts = opts;
}

void
wrk_registry_fini(struct ferry_registry *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->fns[i].name);
	free(r->fns);
	free(r->table);
	free(r->fail);
	/* libraries stay mapped until exit: a task library may have
	 * registered atexit handlers or threads that still use its code */
	memset(r, 0, sizeof(*r));
}

static int
valid_name(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 255)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		        (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		        c == ':' || c == '-'))
			return 0;
	}
	return 1;
}

static int
table_rebuild(struct ferry_registry *r, size_t cap)
{
	size_t *t = calloc(cap, sizeof(*t));
	if (t == NULL)
		return -1;
	for (size_t i = 0; i < r->n; i++) {
		size_t j = r->fns[i].hash & (cap - 1);
		while (t[j] != 0)
			j = (j + 1) & (cap - 1);
		t[j] = i + 1;
	}
	free(r->table);
	r->table     = t;
	r->table_cap = cap;
	return 0;
}

ferry_task_fn
wrk_registry_find(const struct ferry_registry *r, const char *name, size_t len)
{
	uint64_t h;
	if (r->table_cap == 0)
		return NULL;
	h = name_hash(name, len);
	for (size_t j = h & (r->table_cap - 1); r->table[j] != 0;
	     j        = (j + 1) & (r->table_cap - 1)) {
		const struct wrk_fn *f = &r->fns[r->table[j] - 1];
		if (f->hash == h && strlen(f->name) == len &&
		    memcmp(f->name, name, len) == 0)
			return f->fn;
	}
	return NULL;
}

__attribute__((visibility("default"))) int
ferry_register(ferry_registry *r, const char *name, ferry_task_fn fn)
{
	if (r == NULL || name == NULL || fn == NULL)
		return -1;
	if (!valid_name(name)) {
		log_error("%s: invalid task name '%.64s' (1-255 bytes of "
		          "[A-Za-z0-9_.:-])",
		    r->loading ? r->loading : "library", name);
		return -1;
	}
	if (wrk_registry_find(r, name, strlen(name)) != NULL) {
		log_error("%s: task '%s' is already registered",
		    r->loading ? r->loading : "library", name);
		return -1;
	}
	if (util_grow(&r->fns, &r->cap, r->n, sizeof(*r->fns), 32) != 0)
		return -1;
	if ((r->fns[r->n].name = strdup(name)) == NULL)
		return -1;
	r->fns[r->n].fn   = fn;
	r->fns[r->n].hash = name_hash(name, strlen(name));
	r->n++;
	if (r->n * 2 > r->table_cap)
		return table_rebuild(r, r->table_cap ? r->table_cap * 2 : 64);
	return table_rebuild(r, r->table_cap);
}

__attribute__((visibility("default"))) int
ferry_register_loader(ferry_registry *r, const char *name,
    ferry_loader_fn load, ferry_unloader_fn unload)
{
	size_t n = name != NULL ? strlen(name) : 0;
	if (r == NULL || load == NULL || n == 0 || n > 63)
		return -1;
	for (size_t i = 0; i < r->n_loaders; i++)
		if (strcmp(r->loaders[i].name, name) == 0) {
			log_error("%s: loader '%s' is already registered",
			    r->loading ? r->loading : "library", name);
			return -1;
		}
	if (r->n_loaders == WRK_MAX_LOADERS) {
		log_error("%s: too many loaders (limit %d)",
		    r->loading ? r->loading : "library", WRK_MAX_LOADERS);
		return -1;
	}
	memcpy(r->loaders[r->n_loaders].name, name, n + 1);
	r->loaders[r->n_loaders].load   = load;
	r->loaders[r->n_loaders].unload = unload;
	r->n_loaders++;
	return 0;
}

__attribute__((visibility("default"))) const char *
ferry_registry_setting(const ferry_registry *r, const char *key, size_t i)
{
	const struct wrk_options *o = r != NULL ? r->opts : NULL;

	if (o == NULL || key == NULL)
		return NULL;
	if (strcmp(key, "python.module") == 0)
		return i < o->n_python_modules ? o->python_modules[i] : NULL;
	if (strcmp(key, "python.path") == 0)
		return i < o->n_python_path ? o->python_path[i] : NULL;
	return NULL;
}

__attribute__((visibility("default"))) int
ferry_registry_fail(ferry_registry *r, const char *fmt, ...)
{
	va_list ap;
	char   *msg = NULL;

	if (r == NULL)
		return -1;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	free(r->fail);
	r->fail = msg; /* NULL (out of memory): the generic message */
	return -1;
}

static int
exists(const char *path)
{
	return access(path, R_OK) == 0;
}

static int
try_dir(const char *dir, const char *name, char *out, size_t outlen)
{
	static const char *pre[] = { "lib", "", "" };
	static const char *suf[] = { ".so", ".so", "" };
	for (size_t i = 0; i < 3; i++) {
		int n = snprintf(
		    out, outlen, "%s/%s%s%s", dir, pre[i], name, suf[i]);
		if (n > 0 && (size_t)n < outlen && exists(out))
			return 1;
	}
	return 0;
}

int
wrk_library_resolve(const char *spec, const char *base_dir, char *out,
    size_t outlen, char *err, size_t errlen)
{
	const char *env;
	char        exe[PATH_MAX], dir[PATH_MAX + 32];
	ssize_t     n;

	if (strchr(spec, '/') != NULL) {
		if (spec[0] == '/' || base_dir == NULL)
			snprintf(out, outlen, "%s", spec);
		else
			snprintf(out, outlen, "%s/%s", base_dir, spec);
		if (!exists(out)) {
			snprintf(err, errlen, "task library '%s': %s: %s", spec,
			    out, strerror(errno));
			return -1;
		}
		return 0;
	}
	if ((env = getenv("FERRY_LIBRARY_PATH")) != NULL) {
		char *copy = strdup(env), *save = NULL, *d;
		for (d = copy ? strtok_r(copy, ":", &save) : NULL; d != NULL;
		     d = strtok_r(NULL, ":", &save)) {
			if (try_dir(d, spec, out, outlen)) {
				free(copy);
				return 0;
			}
		}
		free(copy);
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		char *slash;
		exe[n] = '\0';
		if ((slash = strrchr(exe, '/')) != NULL)
			*slash = '\0';
		snprintf(dir, sizeof(dir), "%s/../examples", exe);
		if (try_dir(dir, spec, out, outlen))
			return 0;
		snprintf(dir, sizeof(dir), "%s/../python/worker", exe);
		if (try_dir(dir, spec, out, outlen))
			return 0;
		snprintf(dir, sizeof(dir), "%s/../lib/ferry", exe);
		if (try_dir(dir, spec, out, outlen))
			return 0;
	}
	if (try_dir(FERRY_LIBDIR, spec, out, outlen))
		return 0;
	snprintf(err, errlen,
	    "task library '%s' not found: looked for lib%s.so in "
	    "$FERRY_LIBRARY_PATH, next to the ferry binary and in %s",
	    spec, spec, FERRY_LIBDIR);
	return -1;
}

int
wrk_library_load(struct ferry_registry *r, const char *path, char *err,
    size_t errlen)
{
	void *h;
	int (*abi)(void);
	int (*init)(ferry_registry *);
	size_t before = r->n;

	if (r->n_handles == WRK_MAX_LIBRARIES) {
		snprintf(err, errlen, "%s: too many task libraries (limit %d)",
		    path, WRK_MAX_LIBRARIES);
		return -1;
	}
	if ((h = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		snprintf(err, errlen, "cannot load task library: %s",
		    dlerror());
		return -1;
	}
	for (size_t i = 0; i < r->n_handles; i++)
		if (r->handles[i] == h) {
			/* named twice (by two paths, or as a library and by
			 * the python settings): its functions are in already */
			log_info("%s: already loaded", path);
			dlclose(h);
			return 0;
		}
	*(void **)&abi  = dlsym(h, "ferry_library_abi");
	*(void **)&init = dlsym(h, "ferry_library_init");
	if (abi == NULL || init == NULL) {
		snprintf(err, errlen,
		    "%s is not a Ferry task library: it does not define "
		    "FERRY_LIBRARY_INIT (ferry_library_init)",
		    path);
		dlclose(h);
		return -1;
	}
	if (abi() != FERRY_TASK_ABI) {
		snprintf(err, errlen,
		    "%s was built for task ABI %d, this worker speaks %d", path,
		    abi(), FERRY_TASK_ABI);
		dlclose(h);
		return -1;
	}
	r->loading = path;
	if (init(r) != 0) {
		r->loading = NULL;
		if (r->fail != NULL)
			snprintf(err, errlen, "%s", r->fail);
		else
			snprintf(err, errlen,
			    "%s: ferry_library_init failed (see the messages "
			    "above)",
			    path);
		free(r->fail);
		r->fail = NULL;
		return -1; /* keep it mapped: it may have registered some */
	}
	r->loading                  = NULL;
	r->handles[r->n_handles++]  = h;
	log_info("loaded %s: %zu task function(s)", path, r->n - before);
	return 0;
}
