#!/usr/bin/env bash
# Print the diff of every surviving (or timed-out) mutant of one run of run.sh.
#   benchmarks/mutation/survivors.sh <module.py>
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=${MUTATION_DIR:-/tmp/luser-mutation}/$(echo "$1" | tr '/.' '__')
cd "$work"
"$repo/.venv/bin/mutmut" results 2>/dev/null | grep -E ': (survived|timeout|suspicious|no tests)$' \
  | while read -r name status; do "$repo/.venv/bin/mutmut" show "${name%:}"; echo; done
