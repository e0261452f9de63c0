#!/usr/bin/env python3
"""Checks the shape of src/: no file over 700 lines, and no import cycle between modules.

A dependency is any `crate::…` or `super::…` path in a file's code (comments and test modules
left out). Two modules depend on each other when, below their common parent, one's subtree
names the other's; a cycle among such siblings (a ↔ b, or a → b → c → a) fails the check.
A child naming its own parent's items is not a cycle: the parent only declares its children.
Exit status 1 when either check fails, with every offender listed.
"""

import os
import re
import sys
from collections import defaultdict

MAX_LINES = 700
SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_of(path):
    """('model', 'gemm') for src/model/gemm.rs; ('model',) for src/model/mod.rs."""
    parts = os.path.relpath(path, SRC)[: -len(".rs")].split(os.sep)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return tuple(parts)


def code_of(text):
    text = text.split("#[cfg(test)]")[0]
    return re.sub(r"//[^\n]*", "", text)


def targets(module, code):
    """Module paths a file's code names (`super` of module a::b is a, in b.rs and b/mod.rs)."""
    parent = module[:-1]
    for path in re.findall(r"(?<![\w:])((?:crate|super)(?:::\w+)+)", code):
        segments = path.split("::")
        if segments[0] == "crate":
            yield tuple(segments[1:])
        else:
            yield parent + tuple(segments[1:])
    for group in re.findall(r"\buse\s+(crate|super)::\{([^;]*)\}", code):
        root, inner = group
        for name in re.findall(r"(?:^|[{,]\s*)(\w+)", inner):
            if root == "crate":
                yield (name,)
            else:
                yield parent + (name,)


def sibling_edge(a, b):
    """(a', b'): a and b cut just below their common parent, or None if one holds the other."""
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    if i < len(a) and i < len(b):
        return a[: i + 1], b[: i + 1]
    return None


def strongly_connected(graph):
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    sys.setrecursionlimit(10_000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def main():
    failures = []
    files = []
    for root, _, names in os.walk(SRC):
        files += [os.path.join(root, n) for n in names if n.endswith(".rs")]
    modules = {module_of(f) for f in files}
    graph = defaultdict(set)
    for path in sorted(files):
        text = open(path, encoding="utf-8").read()
        lines = text.count("\n")
        if lines > MAX_LINES:
            failures.append(f"{os.path.relpath(path, SRC)}: {lines} lines (at most {MAX_LINES})")
        if os.path.relpath(path, SRC).startswith("bin" + os.sep):
            continue
        module = module_of(path)
        for target in targets(module, code_of(text)):
            # Keep the longest prefix that is a module (the rest names items).
            while target and target not in modules:
                target = target[:-1]
            edge = sibling_edge(module, target) if target else None
            if edge:
                graph[edge[0]].add(edge[1])
    for cycle in strongly_connected(graph):
        names = " ↔ ".join(sorted("::".join(m) for m in cycle))
        failures.append(f"import cycle: {names}")
    for failure in failures:
        print(failure)
    edges = sum(len(v) for v in graph.values())
    print(f"{len(files)} files, {edges} module dependencies: {len(failures)} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
