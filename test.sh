#!/usr/bin/env bash
# Builds everything in Release (library, tests, samples, benchmarks) and runs both Expecto suites, the integration
# suite twice: on io_uring, then on the epoll backend.
# Ends with one line "N passed, N failed"; exits non-zero if anything failed or did not build.
set -uo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

if ! dotnet build Scipio.sln -c Release -nologo -v quiet -clp:ErrorsOnly; then
  echo "build failed"
  echo "0 passed, 1 failed"
  exit 1
fi

passed=0; failed=0; status=0
# Removes ANSI escape sequences and drops lines that held nothing else; every line it prints ends in a newline.
strip_escapes() {
  awk '{ had = ($0 ~ /\033/); gsub(/\033\[[0-9;?]*[A-Za-z]/, ""); if ($0 != "" || !had) print; fflush() }'
}
run_suite() {
  local name=$1 dll=$2; shift 2
  local log; log=$(mktemp)
  echo "== $name"
  # Expecto's exit code is non-zero on any failure; its last line counts passed, ignored, failed, errored.
  # Even with --colours 0 its logger writes ANSI resets (ESC[0m), the last one after its final newline: strip
  # escape sequences and end every line, so the summary below starts a clean line of its own.
  dotnet "$dll" --colours 0 --no-spinner "$@" 2>&1 | strip_escapes | tee "$log"
  local rc=${PIPESTATUS[0]}
  local line; line=$(grep -E '[0-9]+ tests run in' "$log" | tail -n 1)
  local p f e
  p=$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$line"); f=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$line")
  e=$(sed -nE 's/.* ([0-9]+) errored.*/\1/p' <<<"$line")
  if [ -z "$p" ]; then p=0; f=1; e=0; echo "$name: no Expecto summary (crashed?)"; fi
  passed=$((passed + p)); failed=$((failed + ${f:-0} + ${e:-0}))
  [ "$rc" -ne 0 ] && status=1
  rm -f "$log"
}
run_suite property tests/property/bin/Release/net10.0/Scipio.Property.Tests.dll
integration=tests/integration/bin/Release/net10.0/Scipio.Integration.Tests.dll
if [ -f "$integration" ]; then
  run_suite integration "$integration" --sequenced
  # The same suite on the epoll backend (ShardOptions.Backend's default follows SCIPIO_BACKEND); tests of what only
  # io_uring has say so and are skipped.
  SCIPIO_BACKEND=epoll run_suite "integration, epoll backend" "$integration" --sequenced
fi

# Formatting: F# as Fantomas (the tool manifest's version) and C# as `dotnet format` leave it: one test.
echo "== format"
format_log=$(mktemp)
if dotnet tool restore >"$format_log" 2>&1 && dotnet fantomas --check src tests samples bench docs >>"$format_log" 2>&1 \
   && dotnet format Scipio.sln --verify-no-changes -v quiet >>"$format_log" 2>&1; then
  passed=$((passed + 1)); echo "format: ok"
else
  failed=$((failed + 1)); tail -n 30 "$format_log"
  echo "format: FAILED (run: dotnet fantomas src tests samples bench docs && dotnet format Scipio.sln)"
fi
rm -f "$format_log"

# The packages, consumed from a local feed by fresh C# and F# apps (tests/package/run.sh): one test.
echo "== package"
package_log=$(mktemp)
if bash tests/package/run.sh >"$package_log" 2>&1; then
  passed=$((passed + 1)); echo "package: ok"
else
  failed=$((failed + 1)); tail -n 30 "$package_log"; echo "package: FAILED"
fi
rm -f "$package_log"

[ "$failed" -gt 0 ] && status=1
echo "$passed passed, $failed failed"
exit $status
