#!/usr/bin/env python3
"""Prints every circle among fitter's top-level modules (src/<module>.rs or src/<module>/),
from the `crate::<module>` paths their non-test code names, one circle a line, and exits 1
when there is one. Used by scripts/check-structure.sh.

Test code does not count: files named tests.rs, and what follows a `#[cfg(test)]` line (test
modules sit at the end of a file, as rustfmt and this codebase keep them)."""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")


def modules():
    for entry in sorted(os.listdir(SRC)):
        full = os.path.join(SRC, entry)
        if entry.endswith(".rs") and entry not in ("lib.rs", "main.rs"):
            yield entry[:-3], [full]
        elif os.path.isdir(full):
            files = []
            for root, _, names in os.walk(full):
                files += [os.path.join(root, n) for n in names if n.endswith(".rs")]
            yield entry, sorted(files)


def uses(files):
    found = set()
    for f in files:
        if os.path.basename(f) == "tests.rs":
            continue
        with open(f, encoding="utf-8") as text:
            for line in text:
                if line.strip().startswith("#[cfg(test)]"):
                    break
                if line.strip().startswith("//"):
                    continue
                found.update(PATH.findall(line))
    return found


def main():
    graph = {}
    for name, files in modules():
        graph[name] = uses(files)
    for name in graph:
        graph[name] = sorted(m for m in graph[name] if m in graph and m != name)
    # Tarjan's strongly connected components: a component of more than one module is a circle.
    index, low, stack, on, circles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    for c in circles:
        edges = [f"{a} -> {b}" for a in c for b in graph[a] if b in c]
        print("cycles: modules " + ", ".join(c) + " use each other: " + "; ".join(edges))
    return 1 if circles else 0


if __name__ == "__main__":
    sys.exit(main())
