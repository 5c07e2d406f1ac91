# Helpers shared by the benchmark scripts: `source "$root/bench/lib.sh"`.

# median of the numbers on stdin ("nan" when there are none)
median() {
    sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "nan"; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# write_section DOC BODY_FILE HEADING: puts the markdown in BODY_FILE (which starts with
# HEADING) into DOC in place of the section under HEADING, or at the end when DOC has none.
# Only that section changes; DOC is created when missing.
write_section() {
    mkdir -p "$(dirname "$1")"
    python3 - "$1" "$2" "$3" <<'PY'
import os, sys
doc, body_path, heading = sys.argv[1:4]
body = open(body_path).read().rstrip("\n") + "\n"
if os.path.exists(doc):
    lines = open(doc).read().splitlines(keepends=True)
else:
    lines = ["# Benchmarks\n", "\n",
             "These numbers come from the scripts in `bench/`, run by hand on the machine named\n",
             "in each section; they never come from timed tests.\n"]
start = next((i for i, l in enumerate(lines) if l.rstrip("\n") == heading), None)
if start is None:
    text = "".join(lines).rstrip("\n") + "\n\n" + body
else:
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = "".join(lines[end:])
    text = "".join(lines[:start]) + body + ("\n" + tail if tail else "")
open(doc, "w").write(text)
PY
}
