#!/usr/bin/env bash
# The Kubernetes wiring, checked offline: every manifest in k8s/ against the Kubernetes API
# schemas, strictly (unknown fields are errors) and against lameduck's wiring conventions; the
# fixtures in tests/k8s_good/, which must pass; what `lameduck inject` ($LAMEDUCK_BINARY, if set)
# writes for each of its cases in tests/coordinator/cli/inject_cases/, the same way, so that
# inject and k8s/README.md cannot drift apart; the fixtures in tests/k8s_bad/, each of which
# must be rejected for its one reason; and the image conventions shared by k8s/Dockerfile, the
# manifests and CMakeLists.txt.
#
# Needs node and k8s/validate/node_modules: runs `npm ci` there once if it is missing or does
# not match package-lock.json (scripts/setup normally did it already); after that, no network.
# Prints one line per check and ends with "N passed, N failed"; exits 1 if any failed.
set -uo pipefail

root=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
validator=$root/k8s/validate
bad=$root/tests/k8s_bad
passed=0
failed=0

pass() { echo "PASS: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }
finish() {
  echo "$passed passed, $failed failed"
  ((failed == 0))
  exit
}

if ! command -v node >/dev/null; then
  fail "node is not installed (scripts/setup installs it)"
  finish
fi

# node_modules as package-lock.json pins it: every package of the lock installed at its version.
modules_match_lock() {
  node -e '
    const fs = require("fs");
    const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8")).packages;
    for (const [path, entry] of Object.entries(lock)) {
      if (path === "") continue;
      let installed;
      try { installed = JSON.parse(fs.readFileSync(path + "/package.json", "utf8")).version; }
      catch { process.exit(1); }
      if (installed !== entry.version) process.exit(1);
    }' 2>/dev/null
}
if ! (cd "$validator" && modules_match_lock); then
  echo "k8s/validate: npm ci (node_modules missing or not as package-lock.json pins it)"
  if ! (cd "$validator" && npm ci --prefer-offline --no-audit --no-fund >/dev/null); then
    fail "npm ci in k8s/validate failed (no registry and no npm cache?)"
    finish
  fi
fi

validate() { node "$validator/validate.mjs" "$@"; }
good=$root/tests/k8s_good

# --- 1. The manifests we ship: strict schema, and the wiring conventions (--lameduck) ---------
shopt -s nullglob
manifests=("$root"/k8s/*.yaml)
if ((${#manifests[@]} == 0)); then
  fail "no k8s/*.yaml to validate"
fi
for file in "${manifests[@]}"; do
  if out=$(validate --lameduck "$file" 2>&1); then
    pass "k8s/${file##*/}: ${out##*validate: }"
  else
    fail "k8s/${file##*/}"
    printf '%s\n' "$out" | sed 's/^/    /'
  fi
done

# --- 1b. Fixtures that must pass (with --lameduck), and what the summary must say ----------
# fixture | text the summary line (stderr) must contain
expect_accepted() {
  local fixture=$1 expected=$2 out
  if ! out=$(validate --lameduck "$fixture" 2>&1); then
    fail "${fixture#"$root"/}: rejected"
    printf '%s\n' "$out" | sed 's/^/    /'
  elif ! grep -qF -- "$expected" <<<"${out##*validate: }"; then
    fail "${fixture#"$root"/}: expected the summary to say '$expected', got: ${out##*validate: }"
  else
    pass "${fixture#"$root"/}: ${out##*validate: }"
  fi
}
expect_accepted "$good/custom-resources.yaml" "2 not checked (no schema), no problems"
expect_accepted "$good/rollout.yaml" "2 objects in 1 file, no problems"
good_fixtures=("$good"/*)
if ((${#good_fixtures[@]} != 2)); then
  fail "tests/k8s_good has ${#good_fixtures[@]} files; give each new fixture an expect_accepted line"
fi

# --- 2. What `lameduck inject` writes, for each of its cases, in both modes -----------------
# Run here (not left behind by inject_test) so that no test order matters. LAMEDUCK_BINARY is
# the binary under test (CTest passes it). Every case (*.yaml, *.json) must be valid Kubernetes
# as written; inject must take it (exit 0: a workload it leaves alone passes through), and what
# it writes must pass --lameduck. A case's sibling CASE.expect may give inject more arguments on
# lines `args: ARG...` (split on spaces); inject_test checks the rest of that file.
cases_dir=$root/tests/coordinator/cli/inject_cases
if [[ -n "${LAMEDUCK_BINARY:-}" ]]; then
  inject_out=$(mktemp -d)
  cases=("$cases_dir"/*.yaml "$cases_dir"/*.json)
  if ((${#cases[@]} == 0)); then
    fail "no inject cases (tests/coordinator/cli/inject_cases/*.yaml, *.json)"
  fi
  for case in "${cases[@]}"; do
    name=${case##*/}
    if out=$(validate "$case" 2>&1); then
      pass "inject case $name is valid Kubernetes: ${out##*validate: }"
    else
      fail "inject case $name is not valid Kubernetes"
      printf '%s\n' "$out" | sed 's/^/    /'
    fi
    extra=()
    if [[ -f "$case.expect" ]]; then
      while read -r line; do
        read -ra words <<<"${line#args:}"
        extra+=("${words[@]}")
      done < <(grep '^args:' "$case.expect")
    fi
    for mode in native classic; do
      file="$inject_out/${name%.*}-$mode.${name##*.}"
      shown="lameduck inject --mode $mode${extra[*]:+ ${extra[*]}} < $name"
      "$LAMEDUCK_BINARY" inject --mode "$mode" "${extra[@]}" <"$case" >"$file" 2>"$file.err"
      status=$?
      if ((status != 0)); then
        fail "$shown: exit status $status: $(cat "$file.err")"
        continue
      fi
      if out=$(validate --lameduck "$file" 2>&1); then
        pass "$shown: ${out##*validate: }"
      else
        fail "$shown: output rejected"
        printf '%s\n' "$out" | sed 's/^/    /'
      fi
    done
  done
  rm -rf "$inject_out"
else
  echo "note: LAMEDUCK_BINARY is not set; inject output not checked"
fi

# --- 3. Each bad fixture is rejected, and only for its own reason -----------------------------
# fixture | validate's flags | text that every problem line (or with "some", one) must contain
expect_rejected() {
  local fixture=$1 flags=$2 expected=$3 which=${4:-every} out status name
  local -a args=()
  [[ -n "$flags" ]] && args+=("$flags")
  out=$(validate "${args[@]}" "$fixture" 2>/dev/null)
  status=$?
  name=${fixture#"$root"/}
  [[ "$name" == "$tmp"/* ]] && name="(k8s/ manifest with a typo) ${name##*/}"
  if ((status != 1)); then
    fail "$name: exit status $status, expected 1"
  elif [[ -z "$out" ]] || ! grep -qF -- "$expected" <<<"$out" ||
    { [[ "$which" == every ]] && grep -vqF -- "$expected" <<<"$out"; }; then
    fail "$name: expected $which problem to mention '$expected', got:"
    printf '%s\n' "$out" | sed 's/^/    /'
  else
    pass "$name rejected: $(grep -F -m1 -- "$expected" <<<"$out" | sed 's/^[^:]*: //')"
  fi
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
expect_rejected "$bad/restart-policy-typo.yaml" "" ".spec.initContainers[0].restartPolicyy: unknown field"
expect_rejected "$bad/readiness-probe-typo.yaml" "" ".spec.template.spec.containers[0].readinessProb: unknown field"
expect_rejected "$bad/container-without-name.yaml" "" ".spec.template.spec.containers[0].name: required field is missing"
expect_rejected "$bad/list-unknown-field.json" "" "(document 1, .items[0]): .spec.template.spec.containers[0].volumeMount: unknown field"
expect_rejected "$bad/duplicate-key.yaml" "" "Map keys must be unique"
expect_rejected "$bad/hook-named-port.yaml" "" 'has no port named "lameduck-admin"'
expect_rejected "$bad/target-port-name-on-app-and-sidecar.yaml" "" "so the Service would send its traffic to \"web\" directly, bypassing \"lameduck\""
expect_rejected "$bad/rollout-template-typo.yaml" "" ".spec.template.spec.containers[0].readinessProb: unknown field (not in the core/v1 PodTemplateSpec schema)"
expect_rejected "$bad/unknown-kind.yaml" "" "no Kubernetes apps/v1 Deploymnet"
expect_rejected "$bad/short-grace-period.yaml" --lameduck "less than drain delay + drain timeout + app exit = 40 s"
expect_rejected "$bad/missing-prestop.yaml" --lameduck 'no app container waits for the drain'
fixtures=("$bad"/*)
if ((${#fixtures[@]} != 11)); then
  fail "tests/k8s_bad has ${#fixtures[@]} files; give each new fixture an expect_rejected line"
fi

# The same typos in a manifest we ship are caught too (not only in small fixtures).
sed 's/^\(  *\)restartPolicy: Always/\1restartPolicyy: Always/' "$root/k8s/native-sidecar.yaml" >"$tmp/typo1.yaml"
expect_rejected "$tmp/typo1.yaml" "" "restartPolicyy: unknown field" some
sed 's/^\(  *\)readinessProbe:/\1readinessProb:/' "$root/k8s/classic-sidecar.yaml" >"$tmp/typo2.yaml"
expect_rejected "$tmp/typo2.yaml" "" "readinessProb: unknown field" some

# --- 4. Image conventions: k8s/Dockerfile, the manifests and the project version agree --------
dockerfile=$root/k8s/Dockerfile
version=$(sed -n 's/^project(lameduck VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
images=$(grep -ho 'ghcr\.io/lameduck/lameduck:[^" ]*' "$root"/k8s/*.yaml | sort -u)
if [[ -n "$version" && "$images" == "ghcr.io/lameduck/lameduck:$version" ]]; then
  pass "every manifest uses ghcr.io/lameduck/lameduck:$version (the project's version)"
else
  fail "manifests use '${images//$'\n'/ }'; CMakeLists.txt says version '$version'"
fi
if grep -q '^ENTRYPOINT \["/lameduck"\]$' "$dockerfile" && grep -q '^USER 65532:65532$' "$dockerfile" &&
  grep -q '^FROM scratch$' "$dockerfile" &&
  grep -q '^COPY --from=build /src/build/coordinator/lameduck /lameduck$' "$dockerfile"; then
  pass "k8s/Dockerfile: FROM scratch, /lameduck, USER 65532:65532, ENTRYPOINT [\"/lameduck\"]"
else
  fail "k8s/Dockerfile lost one of: FROM scratch, the COPY of /lameduck, USER 65532:65532, ENTRYPOINT"
fi
missing=()
while read -r dir; do
  grep -q "^COPY $dir/ $dir/\$" "$dockerfile" || missing+=("$dir")
done < <(sed -n 's/^add_subdirectory(\([^ )]*\).*/\1/p' "$root/CMakeLists.txt")
if ((${#missing[@]} == 0)); then
  pass "k8s/Dockerfile copies every folder CMakeLists.txt adds"
else
  fail "k8s/Dockerfile does not COPY ${missing[*]} (added by CMakeLists.txt): the image build would fail"
fi

finish
