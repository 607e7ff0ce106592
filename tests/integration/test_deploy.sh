#!/bin/bash
# test_deploy.sh - validate deploy/ as far as this machine allows.
#
#   test_deploy.sh SOURCE_DIR FERRY_BINARY
#
# Checks, each printing what it checked:
#   scripts      shellcheck on every shell script in deploy/, scripts/, here
#   systemd      `systemd-analyze verify` of each unit (ExecStart rewritten
#                to FERRY_BINARY in a temporary copy), then the units'
#                ExecStart lines run for real against a copy of
#                deploy/systemd/cluster.yaml (addresses made local)
#   kubernetes   every manifest parses, has apiVersion/kind/metadata.name,
#                containers have image/command/probes/resources, names that
#                volumes and flags refer to exist; the ConfigMap's cluster
#                file is loaded by the real binary, and the probe commands
#                are run against a live scheduler and worker (exit 0 when
#                they should pass, non-zero when they should fail);
#                `kubectl kustomize` builds the kustomization (offline);
#                `kubectl apply --dry-run=client` when a cluster answers
#   container    Containerfile structure (stages, COPY --from, USER,
#                ENTRYPOINT), its apt packages exist (apt-cache), and its
#                runtime packages provide every library FERRY_BINARY and
#                the task library need (ldd + dpkg -S)
#   slurm        ferry.sbatch run end to end with stub srun/scontrol that
#                start its "nodes" on this host
# A missing tool is a SKIP, said so; exit 1 on any failure, 77 when
# everything was skipped, else 0.
set -u

src=${1:?usage: test_deploy.sh SOURCE_DIR FERRY_BINARY}
ferry=${2:?usage: test_deploy.sh SOURCE_DIR FERRY_BINARY}
src=$(cd "$src" && pwd)
ferry=$(readlink -f "$ferry")
deploy=$src/deploy
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-deploy.XXXXXX")
export FERRY_PARENT_DEATHSIG=1   # our ferry processes die with us
unset FERRY_ADDRESS

n_ok=0 n_fail=0 n_skip=0
pids=()

ok() { n_ok=$((n_ok + 1)); printf 'ok: %s\n' "$*"; }
fail() { n_fail=$((n_fail + 1)); printf 'FAIL: %s\n' "$*"; }
skip() { n_skip=$((n_skip + 1)); printf 'SKIP: %s\n' "$*"; }
have() { command -v "$1" >/dev/null 2>&1; }

# a python3 with PyYAML (pyenv's python3 may lack it; Debian's has
# python3-yaml)
py=""
for p in python3 /usr/bin/python3; do
	if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import yaml' 2>/dev/null; then
		py=$p
		break
	fi
done

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

# Run FILE's lines "ok: ...", "FAIL: ...", "SKIP: ..." through the counters.
tally() {
	local line
	while IFS= read -r line; do
		case $line in
		ok:\ *) ok "${line#ok: }" ;;
		FAIL:\ *) fail "${line#FAIL: }" ;;
		SKIP:\ *) skip "${line#SKIP: }" ;;
		*) printf '%s\n' "$line" ;;
		esac
	done <"$1"
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_status URL EXPR TIMEOUT_S: until `ferry status --json` at URL
# matches the grep -E EXPR
wait_status() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		if "$ferry" status --connect "$1" --json 2>/dev/null |
		    grep -Eq "$2"; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# stop PID: SIGTERM, wait; its exit status in $stop_rc
stop_rc=0
stop() {
	kill -TERM "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	stop_rc=$?
}

# ------------------------------------------------------------ shellcheck
echo "== shellcheck"
scripts=()
while IFS= read -r f; do
	case $f in
	*.sh | *.sbatch | *.bash) scripts+=("$f") ;;
	*)
		if head -n 1 "$f" 2>/dev/null | grep -Eq '^#!.*\b(ba|da)?sh\b'; then
			scripts+=("$f")
		fi
		;;
	esac
done < <(find "$deploy" "$src/scripts" -type f | sort)
scripts+=("$src/tests/integration/test_deploy.sh")
if ! have shellcheck; then
	skip "shellcheck not installed (apt-get install shellcheck): ${#scripts[@]} script(s) unchecked"
else
	for f in "${scripts[@]}"; do
		if out=$(shellcheck -x "$f" 2>&1); then
			ok "shellcheck ${f#"$src"/}"
		else
			fail "${f#"$src"/}: shellcheck:"
			printf '%s\n' "$out"
		fi
	done
fi

# ---------------------------------------------------------------- systemd
echo "== systemd"
units=("$deploy"/systemd/*.service)
if ! have systemd-analyze; then
	skip "systemd-analyze not installed: ${#units[@]} unit(s) unverified"
else
	mkdir -p "$tmp/units"
	for u in "${units[@]}"; do
		name=$(basename "$u")
		if ! grep -q '^ExecStart=/usr/local/bin/ferry ' "$u"; then
			fail "$name: ExecStart does not run /usr/local/bin/ferry (the meson install --prefix=/usr/local layout)"
			continue
		fi
		# each unit alone in its directory, so verify reports only its own
		# problems (it loads units a unit names if they are beside it)
		mkdir -p "$tmp/units/$name"
		sed "s#/usr/local/bin/ferry#$ferry#g" "$u" >"$tmp/units/$name/$name"
		inst=$name
		case $name in *@.service) inst=${name%@.service}@default.service ;; esac
		# verify prints warnings (unknown keys, bad values) but may still
		# exit 0: any output counts as a failure
		if out=$(cd "$tmp/units/$name" && systemd-analyze verify "./$inst" 2>&1) &&
		    [ -z "$out" ]; then
			ok "systemd-analyze verify $name (as $inst, ExecStart=$ferry)"
		else
			fail "deploy/systemd/$name: systemd-analyze verify:"
			printf '%s\n' "$out"
		fi
	done
fi

# Run the units' ExecStart lines for real (the CLI flags and the cluster
# file they name), with the file's addresses made local.
port=$(free_port)
cf=$tmp/systemd-cluster.yaml
mkdir -p "$tmp/sd-data"
sed -e "s#tcp://0.0.0.0:7710#tcp://127.0.0.1:$port#" \
	-e "s#ipc:///run/ferry/ferry.sock#ipc://$tmp/sd.sock#" \
	-e "s#address: tcp://[^ ]*#address: tcp://127.0.0.1:$port#" \
	-e "s#/srv/ferry/data#$tmp/sd-data#" \
	"$deploy/systemd/cluster.yaml" >"$cf"
execstart() { # UNIT -> the ExecStart words with paths made local
	sed -n 's/^ExecStart=//p' "$deploy/systemd/$1" |
		sed -e "s#/usr/local/bin/ferry#$ferry#" \
			-e "s#/etc/ferry/cluster.yaml#$cf#" -e 's#%i#default#g'
}
read -r -a sched_cmd <<<"$(execstart ferry-scheduler.service)"
read -r -a worker_cmd <<<"$(execstart ferry-worker@.service)"
"${sched_cmd[@]}" >"$tmp/sd-sched.log" 2>&1 &
sp=$!
pids+=("$sp")
if wait_status "tcp://127.0.0.1:$port" '"workers":' 10 &&
    "$ferry" status --connect "ipc://$tmp/sd.sock" >/dev/null 2>&1; then
	ok "ferry-scheduler.service ExecStart runs with deploy/systemd/cluster.yaml (tcp and ipc listeners answer)"
	"${worker_cmd[@]}" --processes 1 >"$tmp/sd-worker.log" 2>&1 &
	wp=$!
	pids+=("$wp")
	if ! wait_status "tcp://127.0.0.1:$port" '"workers":1,' 15; then
		fail "deploy/systemd/ferry-worker@.service: ExecStart did not register a worker:"
		tail -n 20 "$tmp/sd-worker.log"
	elif sum=$("$ferry" submit --connect "tcp://127.0.0.1:$port" add 2 3 2>&1) &&
	    [ "$sum" = 5 ]; then
		ok "ferry-worker@.service ExecStart (group default) registers and runs a task"
	else
		fail "deploy/systemd/ferry-worker@.service: its worker registered, but add 2 3 gave: $sum"
		tail -n 20 "$tmp/sd-worker.log" "$tmp/sd-sched.log"
	fi
	stop "$wp"
	if [ "$stop_rc" = 0 ]; then
		ok "ferry worker drains and exits 0 on SIGTERM (KillSignal=SIGTERM)"
	else
		fail "deploy/systemd/ferry-worker@.service: worker exited $stop_rc on SIGTERM"
		tail -n 20 "$tmp/sd-worker.log"
	fi
else
	fail "deploy/systemd/ferry-scheduler.service: ExecStart with deploy/systemd/cluster.yaml does not answer:"
	tail -n 20 "$tmp/sd-sched.log"
fi
stop "$sp"

# ------------------------------------------------------------- kubernetes
echo "== kubernetes"
if [ -z "$py" ]; then
	skip "python3 with PyYAML not installed (apt-get install python3-yaml): manifests unchecked"
else
	"$py" - "$deploy/kubernetes" "$tmp" >"$tmp/k8s.out" 2>&1 <<'PY'
import os, sys, yaml
d, tmp = sys.argv[1], sys.argv[2]
docs = []
for f in sorted(os.listdir(d)):
    if not f.endswith((".yaml", ".yml")):
        continue
    p = os.path.join(d, f)
    try:
        loaded = [x for x in yaml.safe_load_all(open(p)) if x is not None]
    except yaml.YAMLError as e:
        print("FAIL: deploy/kubernetes/%s: not YAML: %s" % (f, e))
        continue
    print("ok: deploy/kubernetes/%s parses as YAML (%d document(s))" % (f, len(loaded)))
    for x in loaded:
        docs.append((f, x))

def bad(f, msg):
    print("FAIL: deploy/kubernetes/%s: %s" % (f, msg))

objs = {}
for f, x in docs:
    if not isinstance(x, dict) or not x.get("apiVersion") or not x.get("kind"):
        bad(f, "a document without apiVersion or kind"); continue
    if x["kind"] == "Kustomization":
        for r in x.get("resources", []):
            if not os.path.exists(os.path.join(d, r)):
                bad(f, "resource %s does not exist" % r)
        print("ok: %s: Kustomization resources exist" % f)
        continue
    name = (x.get("metadata") or {}).get("name")
    if not name:
        bad(f, "%s without metadata.name" % x["kind"]); continue
    objs[(x["kind"], name)] = (f, x)
    print("ok: %s: %s/%s has apiVersion, kind, metadata.name" % (f, x["kind"], name))

def probe_cmd(p):
    return " ".join(p.get("exec", {}).get("command", []))

probes = {}
for (kind, name), (f, x) in objs.items():
    if kind != "Deployment":
        continue
    spec = x["spec"]; pod = spec["template"]["spec"]
    sel = spec.get("selector", {}).get("matchLabels", {})
    labels = spec["template"].get("metadata", {}).get("labels", {})
    if not sel or any(labels.get(k) != v for k, v in sel.items()):
        bad(f, "%s: selector does not match the pod labels" % name)
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    for c in pod["containers"]:
        where = "%s container %s" % (name, c.get("name"))
        miss = [k for k in ("image", "command", "readinessProbe", "livenessProbe", "resources") if not c.get(k)]
        if miss:
            bad(f, "%s lacks %s" % (where, ", ".join(miss))); continue
        r = c["resources"]
        if not r.get("requests") or not r.get("limits"):
            bad(f, "%s: resources need requests and limits" % where)
        if c["command"][0] != "ferry":
            bad(f, "%s: command does not start with ferry" % where)
        sc = c.get("securityContext", {})
        if pod.get("securityContext", {}).get("runAsNonRoot") is not True:
            bad(f, "%s: pod does not set runAsNonRoot" % name)
        for pn in ("readinessProbe", "livenessProbe"):
            p = c[pn]; cmd = probe_cmd(p)
            if not cmd:
                bad(f, "%s: %s is not an exec probe" % (where, pn))
            # ferry status gives up connecting after 5 s
            if "ferry status" in cmd and p.get("timeoutSeconds", 1) <= 5:
                bad(f, "%s: %s runs ferry status (5 s connect timeout) with timeoutSeconds %s" % (where, pn, p.get("timeoutSeconds", 1)))
            probes["%s.%s" % (c["command"][1], pn)] = p["exec"]["command"]
        for m in c.get("volumeMounts", []):
            if m["name"] not in vols:
                bad(f, "%s mounts undefined volume %s" % (where, m["name"]))
        print("ok: %s: %s has image, command, both probes, requests and limits, mounts defined volumes" % (f, where))
    for v in vols.values():
        for key, kind2, ref in (("configMap", "ConfigMap", "name"), ("secret", "Secret", "secretName"),
                                ("persistentVolumeClaim", "PersistentVolumeClaim", "claimName")):
            if key in v:
                n = v[key][ref]
                if (kind2, n) not in objs:
                    bad(f, "%s: volume %s refers to %s %s, defined nowhere" % (name, v["name"], kind2, n))
                elif kind2 == "Secret" and not v[key].get("optional"):
                    bad(f, "%s: the token Secret must be optional (token auth is optional)" % name)
    if c["command"][1] == "scheduler":
        if spec.get("replicas") != 1 or spec.get("strategy", {}).get("type") != "Recreate":
            bad(f, "%s: the scheduler keeps its state in memory: replicas 1, strategy Recreate" % name)
        else:
            print("ok: %s: scheduler Deployment has 1 replica, strategy Recreate" % f)
    if c["command"][1] == "worker":
        args = c["command"]
        url = args[args.index("--connect") + 1] if "--connect" in args else ""
        host, _, port = url.replace("tcp://", "").partition(":")
        svc = objs.get(("Service", host))
        if not svc or not any(str(p["port"]) == port for p in svc[1]["spec"]["ports"]):
            bad(f, "%s: --connect %s names no Service port" % (name, url))
        else:
            print("ok: %s: worker --connect %s is Service %s port %s" % (f, url, host, port))
        if "--processes" not in args:
            bad(f, "%s: worker command without --processes" % name)

cm = objs.get(("ConfigMap", "ferry-cluster"))
if cm:
    open(os.path.join(tmp, "k8s-cluster.yaml"), "w").write(cm[1]["data"]["cluster.yaml"])
else:
    bad("configmap.yaml", "no ConfigMap ferry-cluster")
with open(os.path.join(tmp, "k8s-probes.sh"), "w") as out:
    for k, v in sorted(probes.items()):
        out.write("%s=(%s)\n" % (k.replace(".", "_"), " ".join("'%s'" % a.replace("'", "'\\''") for a in v)))
PY
	tally "$tmp/k8s.out"

	# The ConfigMap's cluster file through the real loader, and the
	# probes against a live scheduler and worker.
	if [ -f "$tmp/k8s-cluster.yaml" ] && [ -f "$tmp/k8s-probes.sh" ]; then
		port=$(free_port)
		url=tcp://127.0.0.1:$port
		mkdir -p "$tmp/k8s-data"
		"$ferry" scheduler -f "$tmp/k8s-cluster.yaml" --listen "$url" \
			>"$tmp/k8s-sched.log" 2>&1 &
		sp=$!
		pids+=("$sp")
		# probe NAME EXPECT(0|nonzero): run a probe command with the pod's
		# addresses (and PID 1) replaced by the local ones
		probe() {
			local -a cmd
			eval "cmd=(\"\${$1[@]}\")"
			cmd=("${cmd[@]//tcp:\/\/127.0.0.1:7710/$url}")
			cmd=("${cmd[@]//\/proc\/1\//\/proc\/${wp:-1}\/}")
			(PATH=$(dirname "$ferry"):$PATH FERRY_ADDRESS=$url \
				timeout 20 "${cmd[@]}") >/dev/null 2>&1
			local rc=$?
			if { [ "$2" = 0 ] && [ $rc = 0 ]; } ||
			    { [ "$2" != 0 ] && [ $rc != 0 ]; }; then
				ok "$1 exits $rc $3"
			else
				fail "deploy/kubernetes: $1 exits $rc $3 (expected $2)"
			fi
		}
		# shellcheck disable=SC1091
		. "$tmp/k8s-probes.sh"
		if wait_status "$url" '"workers":' 10; then
			ok "the ConfigMap's cluster.yaml loads in ferry scheduler"
			probe scheduler_readinessProbe 0 "with the scheduler up"
			probe scheduler_livenessProbe 0 "with the scheduler up"
			probe worker_readinessProbe nonzero "with no worker on this host"
			"$ferry" worker -f "$tmp/k8s-cluster.yaml" --group default \
				--connect "$url" --processes 1 --object-root "$tmp/k8s-data" \
				>"$tmp/k8s-worker.log" 2>&1 &
			wp=$!
			pids+=("$wp")
			if wait_status "$url" '"workers":1,' 15; then
				ok "the ConfigMap's worker group starts (--object-root replacing /data)"
				probe worker_readinessProbe 0 "with this host's worker registered"
				probe worker_livenessProbe 0 "with the supervisor running"
				kill -STOP "$wp"
				probe worker_livenessProbe nonzero "with the supervisor stopped (SIGSTOP)"
				kill -CONT "$wp"
			else
				fail "deploy/kubernetes/configmap.yaml: the worker group did not register:"
				tail -n 20 "$tmp/k8s-worker.log"
			fi
			stop "$wp"
			stop "$sp"
			probe scheduler_livenessProbe nonzero "with the scheduler stopped"
		else
			fail "deploy/kubernetes/configmap.yaml: ferry scheduler does not start with its cluster.yaml:"
			tail -n 20 "$tmp/k8s-sched.log"
		fi
	fi
fi
if ! have kubectl; then
	skip "kubectl not installed: kustomization not built, no dry-run"
else
	if out=$(kubectl kustomize "$deploy/kubernetes" 2>&1); then
		ok "kubectl kustomize deploy/kubernetes builds ($(printf '%s\n' "$out" | grep -c '^kind:') objects)"
	else
		fail "deploy/kubernetes/kustomization.yaml: kubectl kustomize:"
		printf '%s\n' "$out"
	fi
	if out=$(timeout 30 kubectl apply --dry-run=client --validate=false \
	    -f "$deploy/kubernetes/" 2>&1); then
		ok "kubectl apply --dry-run=client -f deploy/kubernetes/"
	elif printf '%s' "$out" | grep -Eq 'connection refused|unable to recognize|no such host|Unable to connect|i/o timeout'; then
		skip "kubectl apply --dry-run=client needs an API server for resource discovery; none is reachable here"
	else
		fail "deploy/kubernetes: kubectl apply --dry-run=client:"
		printf '%s\n' "$out"
	fi
fi

# -------------------------------------------------------------- container
echo "== container"
cfile=$deploy/container/Containerfile
python3 - "$cfile" "$tmp" >"$tmp/cf.out" 2>&1 <<'PY'
import json, re, sys
path, tmp = sys.argv[1], sys.argv[2]
rel = "deploy/container/Containerfile"
text = open(path).read()
# join continuation lines, drop comments
lines, cur = [], ""
for n, raw in enumerate(text.splitlines(), 1):
    s = raw.strip()
    if not cur and (not s or s.startswith("#")):
        continue
    if cur and s.startswith("#"):
        continue
    cur += " " + s.rstrip("\\").strip() if cur else s.rstrip("\\").strip()
    if not s.endswith("\\"):
        lines.append((n, cur)); cur = ""
if cur:
    print("FAIL: %s: a continuation line runs off the end" % rel)
known = {"FROM", "RUN", "COPY", "ADD", "ARG", "ENV", "WORKDIR", "USER", "EXPOSE",
         "ENTRYPOINT", "CMD", "LABEL", "VOLUME", "HEALTHCHECK", "STOPSIGNAL", "SHELL", "ONBUILD"}
stages, user, entry, errors = [], None, None, 0
pk = {}  # stage -> apt packages
for n, l in lines:
    ins, _, rest = l.partition(" ")
    if ins.upper() not in known or ins != ins.upper():
        print("FAIL: %s:%d: unknown instruction %s" % (rel, n, ins)); errors += 1; continue
    if not rest.strip():
        print("FAIL: %s:%d: %s without arguments" % (rel, n, ins)); errors += 1
    if ins == "FROM":
        m = re.match(r"^(\S+)(?:\s+AS\s+(\S+))?$", rest.strip(), re.I)
        if not m:
            print("FAIL: %s:%d: FROM IMAGE [AS NAME] expected" % (rel, n)); errors += 1; continue
        stages.append(m.group(2) or str(len(stages))); user = None
    elif not stages and ins != "ARG":
        print("FAIL: %s:%d: %s before the first FROM" % (rel, n, ins)); errors += 1
    elif ins == "COPY":
        m = re.search(r"--from=(\S+)", rest)
        if m and m.group(1) not in stages[:-1]:
            print("FAIL: %s:%d: COPY --from=%s names no earlier stage" % (rel, n, m.group(1))); errors += 1
        if len(rest.split()) < 2:
            print("FAIL: %s:%d: COPY needs a source and a destination" % (rel, n)); errors += 1
    elif ins == "RUN":
        for m in re.finditer(r"apt-get install ([^&;|]*)", rest):
            pk.setdefault(stages[-1], []).extend(w for w in m.group(1).split() if not w.startswith("-"))
    elif ins == "USER":
        user = rest.strip()
    elif ins in ("ENTRYPOINT", "CMD"):
        try:
            v = json.loads(rest)
            assert isinstance(v, list)
        except Exception:
            print("FAIL: %s:%d: %s must be a JSON array (exec form)" % (rel, n, ins)); errors += 1; continue
        if ins == "ENTRYPOINT":
            entry = v
if not errors:
    print("ok: %s: %d instructions parse (stages: %s)" % (rel, len(lines), ", ".join(stages)))
if len(stages) < 2:
    print("FAIL: %s: not a multi-stage build" % rel)
else:
    print("ok: %s: multi-stage build, runtime stage %s" % (rel, stages[-1]))
if user is None or user.split(":")[0] in ("root", "0"):
    print("FAIL: %s: the final stage does not switch to a non-root USER" % rel)
else:
    print("ok: %s: runs as USER %s" % (rel, user))
if entry != ["ferry"]:
    print("FAIL: %s: ENTRYPOINT is %r, not [\"ferry\"]" % (rel, entry))
else:
    print('ok: %s: ENTRYPOINT ["ferry"]' % rel)
if "-dev" in " ".join(pk.get(stages[-1], [])):
    print("FAIL: %s: the runtime stage installs -dev packages" % rel)
m = re.search(r"meson setup[^&]*", text)
for opt in re.findall(r"-D(\w+)=", m.group(0) if m else ""):
    if opt not in open(path.rsplit("/deploy/", 1)[0] + "/meson_options.txt").read():
        print("FAIL: %s: meson option -D%s is not in meson_options.txt" % (rel, opt))
with open(tmp + "/cf-packages", "w") as f:
    for st, ps in pk.items():
        for p in ps:
            f.write("%s %s\n" % ("runtime" if st == stages[-1] else "build", p))
PY
tally "$tmp/cf.out"
if [ ! -s "$tmp/cf-packages" ]; then
	fail "deploy/container/Containerfile: no apt-get install packages found"
elif ! have apt-cache || ! apt-cache show libc6 >/dev/null 2>&1; then
	skip "apt-cache has no package data (run apt-get update): Containerfile package names unchecked"
else
	missing=""
	while read -r stage p; do
		apt-cache show --no-all-versions "$p" >/dev/null 2>&1 ||
			missing="$missing $stage:$p"
	done <"$tmp/cf-packages"
	if [ -z "$missing" ]; then
		ok "Containerfile: all $(wc -l <"$tmp/cf-packages") apt packages exist (apt data of $(sed -n 's/^PRETTY_NAME=//p' /etc/os-release | tr -d '"'))"
	else
		fail "deploy/container/Containerfile: unknown packages:$missing"
	fi
fi
# Every shared library the binary and the task library load must come
# from a runtime-stage package (or libc6, in the base image).
if ! have ldd || ! have dpkg-query; then
	skip "ldd or dpkg not installed: runtime library coverage unchecked"
elif ldd "$ferry" 2>/dev/null | grep -q 'lib[atlu]*san\.so'; then
	# a sanitizer build links the sanitizer runtimes (and the C++
	# runtime they need), which the image's release build does not
	skip "ferry is a sanitizer build: runtime library coverage is checked on the normal build"
elif [ -s "$tmp/cf-packages" ]; then
	exlib=$(dirname "$ferry")/../examples/libferry_examples.so
	libferry=$(dirname "$ferry")/../client/libferry.so.0
	need=$(ldd "$ferry" "$exlib" "$libferry" 2>/dev/null |
		awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
		while read -r lib; do
			case $lib in */libferry*) continue ;; esac
			dpkg -S "$(readlink -f "$lib")" 2>/dev/null ||
				dpkg -S "$lib" 2>/dev/null || echo "?:$lib"
		done | cut -d: -f1 | sort -u)
	have_pk=" libc6 $(awk '$1 == "runtime" {print $2}' "$tmp/cf-packages" | tr '\n' ' ')"
	lack=""
	for p in $need; do
		case $have_pk in *" $p "*) ;; *) lack="$lack $p" ;; esac
	done
	if [ -z "$lack" ]; then
		ok "Containerfile runtime stage provides every library ferry needs ($(echo "$need" | tr '\n' ' '))"
	else
		fail "deploy/container/Containerfile: the runtime stage lacks:$lack"
	fi
fi
if have docker && docker info >/dev/null 2>&1; then
	skip "a container daemon answers, but building needs Debian's mirrors and debian:bookworm-slim; not attempted"
else
	skip "no container daemon here (docker info fails): the image is not built"
fi

# ------------------------------------------------------------------ slurm
echo "== slurm"
stub=$tmp/slurm-bin
mkdir -p "$stub" "$tmp/slurm-logs"
cat >"$stub/srun" <<'EOF'
#!/bin/bash
# stub srun: run the command --ntasks times on this host
n=1 out=/dev/null
while [ $# -gt 0 ]; do
	case $1 in
	--ntasks=*) n=${1#*=} ;;
	--output=*) out=${1#*=} ;;
	--*) ;;
	*) break ;;
	esac
	shift
done
pids=()
for i in $(seq 1 "$n"); do
	"$@" >>"${out//%N/node$i}" 2>&1 &
	pids+=($!)
done
trap 'kill -TERM "${pids[@]}" 2>/dev/null' TERM INT
rc=0
for p in "${pids[@]}"; do
	while :; do
		wait "$p"
		r=$?
		kill -0 "$p" 2>/dev/null || break
	done
	[ "$r" -ne 0 ] && rc=$r
done
exit "$rc"
EOF
cat >"$stub/scontrol" <<'EOF'
#!/bin/sh
# stub scontrol: every node of the allocation is this host
[ "$1 $2" = "show hostnames" ] && echo localhost
EOF
chmod +x "$stub/srun" "$stub/scontrol"
sport=$(free_port)
out=$(PATH=$stub:$PATH FERRY=$ferry SLURM_JOB_ID=4242 \
	SLURM_JOB_NODELIST='node[1-2]' SLURM_JOB_NUM_NODES=2 \
	FERRY_PROCESSES=1 FERRY_PORT=$sport FERRY_LOG_DIR=$tmp/slurm-logs \
	FERRY_START_TIMEOUT=30 \
	timeout 90 bash "$deploy/slurm/ferry.sbatch" 2>&1)
rc=$?
if [ $rc = 0 ] && printf '%s\n' "$out" | grep -qx 5 &&
    printf '%s\n' "$out" | grep -q '2 supervisor(s)'; then
	ok "ferry.sbatch with stub srun/scontrol: scheduler, 2 'nodes' of workers, client (ferry submit add 2 3 = 5), clean stop"
else
	fail "deploy/slurm/ferry.sbatch: exit $rc:"
	printf '%s\n' "$out"
	tail -n 20 "$tmp"/slurm-logs/*
fi
if "$ferry" status --connect "tcp://127.0.0.1:$sport" >/dev/null 2>&1; then
	fail "deploy/slurm/ferry.sbatch: the scheduler is still running after the job"
else
	ok "ferry.sbatch left no scheduler running"
fi
skip "no Slurm here: sbatch/srun themselves not run (stubs stand in for them)"

# ---------------------------------------------------------------- READMEs
for d in "$deploy" "$deploy"/*/; do
	d=${d%/}
	if [ -f "$d/README.md" ] && grep -qi 'validat' "$d/README.md"; then
		ok "${d#"$src"/}/README.md says what was validated"
	else
		fail "${d#"$src"/}: no README.md saying what was validated"
	fi
done

echo
echo "deploy: $n_ok passed, $n_fail failed, $n_skip skipped"
if [ $n_fail -gt 0 ]; then
	exit 1
fi
if [ $n_ok = 0 ]; then
	exit 77
fi
exit 0
