#!/usr/bin/env bash
# Checks the shape the code should keep (issue 9), naming every offender:
#
#   providers  no provider-specific check outside providers/: no `ProviderKind::Variant`,
#              no comparison of a provider with a named one (`provider == ...`,
#              `== ProviderKind`, `!= ProviderKind`), no path or string literal naming a
#              provider (`lxd::`, `"digitalocean"`) in src/. Always enforced.
#   size       no source file under src/, providers/src or sim/src over 800 lines, not
#              counting its `#[cfg(test)]` module. Reported; enforced with --strict.
#   errors     no `Result<_, String>` in the pipeline modules (src/ but the CLI edge,
#              src/cli/ and src/main.rs). Reported; enforced with --strict.
#   cycles     no circle among the top-level modules of src/ (module A's code naming
#              `crate::b` and b's naming `crate::a`, directly or through others), so that the
#              stages read as a pipeline (scripts/module-cycles.py). Always enforced.
#
# Code inside `#[cfg(test)] mod ... { }` and comment lines are not checked: tests and
# fixtures may name providers. A provider's folder is providers/src/<name>/ with a
# catalogue.rs, named as plans name the provider.
#
# Usage: scripts/check-structure.sh [--strict]
# Exit status: 0 when every enforced check passes, 1 otherwise, 2 on a usage error.
set -euo pipefail
cd "$(dirname "$0")/.."

strict=0
case "${1:-}" in
    "") ;;
    --strict) strict=1 ;;
    *) echo "usage: $0 [--strict]" >&2; exit 2 ;;
esac

MAX_LINES=800

# Prints `LINE<TAB>TEXT` for each line of a Rust file outside its `#[cfg(test)]` modules.
# A test module ends at the `}` indented as its `mod` line (rustfmt's layout).
outside_tests() {
    awk '
        in_test { if ($0 == closing) in_test = 0; next }
        pending && /^[[:space:]]*(pub(\([a-z]+\))? )?mod [A-Za-z_0-9]+ *\{/ {
            match($0, /^[[:space:]]*/)
            closing = substr($0, 1, RLENGTH) "}"
            in_test = 1; pending = 0; next
        }
        { pending = 0 }
        /^[[:space:]]*#\[cfg\(test\)\]/ { pending = 1; next }
        { print NR "\t" $0 }
    ' "$1"
}

# The same, without comment lines: what the code says, not what it says about itself.
code_lines() {
    outside_tests "$1" | grep -v -E '^[0-9]+	[[:space:]]*//' || true
}

# Source files that are not tests themselves.
sources() {
    find "$@" -name '*.rs' -not -path '*/tests/*' -not -name 'tests.rs' | sort
}

# --- providers ------------------------------------------------------------------------
names=$(find providers/src -mindepth 2 -maxdepth 2 -name catalogue.rs -printf '%h\n' \
    | xargs -r -n1 basename | sort | paste -sd'|' -)
patterns=(
    'ProviderKind::[A-Z]'
    '(==|!=)[[:space:]]*(Some\()?ProviderKind'
    'provider(\(\))?[[:space:]]*(==|!=)[[:space:]]*(Some\()?("|ProviderKind|[A-Za-z_]+::KIND)'
)
if [[ -n "$names" ]]; then
    patterns+=("[^A-Za-z_0-9]($names)::" "\"($names)\"")
fi
any=$(printf '|(%s)' "${patterns[@]}")
any=${any#|}
provider_offenders=0
for file in $(sources src); do
    while IFS=$'\t' read -r line text; do
        echo "providers: $file:$line: names a provider outside providers/: ${text#"${text%%[![:space:]]*}"}"
        provider_offenders=$((provider_offenders + 1))
    done < <(code_lines "$file" | grep -E -- "^[0-9]+	.*($any)" || true)
done

# --- size -----------------------------------------------------------------------------
long_files=0
for file in $(sources src providers/src sim/src); do
    total=$(wc -l < "$file")
    code=$(outside_tests "$file" | wc -l)
    if (( code > MAX_LINES )); then
        echo "size: $file: $code lines without its tests ($total in all), over $MAX_LINES"
        long_files=$((long_files + 1))
    fi
done

# --- errors ---------------------------------------------------------------------------
# The last top-level type argument of each `Result<...>` on a line, `String` being the
# offence; nested generics (`Result<HashMap<String, String>, E>`) are followed.
string_errors=0
for file in $(sources src | grep -v -e "^src/cli/" -e "^src/main.rs$"); do
    while IFS=$'\t' read -r line text; do
        echo "errors: $file:$line: \`Result<_, String>\`: ${text#"${text%%[![:space:]]*}"}"
        string_errors=$((string_errors + 1))
    done < <(code_lines "$file" | awk -F'\t' '
        {
            s = $2
            while ((i = index(s, "Result<")) > 0) {
                s = substr(s, i + 7)
                depth = 1; arg = ""; commas = 0
                for (j = 1; j <= length(s) && depth > 0; j++) {
                    c = substr(s, j, 1)
                    if (c == "<" || c == "(" || c == "[") depth++
                    else if (c == ">" || c == ")" || c == "]") depth--
                    if (depth == 1 && c == ",") { arg = ""; commas++ }
                    else if (depth > 0) arg = arg c
                }
                gsub(/^[[:space:]]+|[[:space:]]+$/, "", arg)
                if (depth == 0 && commas > 0 && arg == "String") { print $1 "\t" $2; next }
            }
        }')
done

# --- cycles ---------------------------------------------------------------------------
cycles=0
while IFS= read -r line; do
    [[ -n $line ]] || continue
    echo "$line"
    cycles=$((cycles + 1))
done < <(python3 scripts/module-cycles.py || true)

# --- summary --------------------------------------------------------------------------
verdict() { # COUNT ENFORCED
    if (( $1 == 0 )); then echo "ok"
    elif (( $2 )); then echo "FAIL"
    else echo "report only"
    fi
}
status=0
(( provider_offenders == 0 && cycles == 0 )) || status=1
(( !strict || (long_files == 0 && string_errors == 0) )) || status=1
mode=""
(( strict )) && mode=" (--strict)"
echo "check-structure$mode: $provider_offenders provider check(s) outside providers/" \
    "[$(verdict "$provider_offenders" 1)]," \
    "$long_files file(s) over $MAX_LINES lines [$(verdict "$long_files" "$strict")]," \
    "$string_errors \`Result<_, String>\` in pipeline modules [$(verdict "$string_errors" "$strict")]," \
    "$cycles module circle(s) [$(verdict "$cycles" 1)]"
exit "$status"
