#!/usr/bin/env python3
"""The layering of src/, checked against the README's architecture table.

Each row of the table under "## Architecture" names a part of the crate (`src/authority/`,
`src/api.rs`, ...) and, in its last column, the other parts it may use. This script reads the
`crate::…` paths in every part's production code (test modules are skipped: they may build
whatever they test with) and fails when

- a part uses another part its row does not list (the table would be lying), or
- a row lists a part the code no longer uses (the table would be stale), or
- a forbidden crate appears outside the part that owns it (`sqlx` outside `store`,
  `axum` in `authority`, `rustls` in `authority`, `ca`, `store` or `model`), or
- a part names an item of another that it may reach only narrowly (the authority holds the
  CRL publisher's poke and nothing else of it).

Run from anywhere: `python3 scripts/check-layering.py`. `--graph` prints the imports found.
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT / "src"

# External crates that only some parts may name, and which parts those are.
OWNED_CRATES = {
    "sqlx": {"store"},
}
# Parts that must never name these crates (policy and vocabulary stay free of transport).
NEVER = {
    "authority": {"axum", "rustls", "tokio_rustls", "sqlx", "hyper"},
    "publisher": {"axum", "rustls", "tokio_rustls", "sqlx", "hyper"},
    "ca": {"axum", "rustls", "tokio_rustls", "sqlx", "hyper"},
    "model": {"axum", "rustls", "tokio_rustls", "sqlx", "hyper"},
    "store": {"axum", "rustls", "tokio_rustls", "hyper"},
    "http": {"sqlx"},
}


# The part that makes up the `latchkey` binary rather than the library.
BINARY = {"cli"}


# Arrows between parts that must never exist, whatever the README says: the edge never
# reaches storage or the signer, policy never reaches the TLS side, and the relying-service
# library (tls) never reaches the CA or the client.
NEVER_PARTS = {
    "http": {"store", "ca"},
    "authority": {"tls", "http", "server"},
    # The CRL publisher turns the store's revocations into signed CRLs: it never decides
    # (authority), never answers requests (http) and never touches TLS.
    "publisher": {"authority", "http", "server", "tls", "home", "client"},
    "tls": {"client", "authority", "ca", "store", "http", "home", "server", "publisher"},
    "ca": {"authority", "store", "http", "tls", "publisher"},
    "store": {"authority", "ca", "http", "tls", "publisher"},
    "model": {"authority", "ca", "store", "http", "tls", "client", "publisher"},
}

# Arrows that exist but may carry only these items: the authority rings the CRL publisher's
# poke (and names its default validities in `Policy::default`); it never reads, builds or
# starts CRLs.
ONLY_ITEMS = {
    ("authority", "publisher"): {"CrlPoke", "DEFAULT_CRL_VALIDITY", "DEFAULT_ROOT_CRL_VALIDITY"},
}


def part_of(path: pathlib.Path) -> str:
    rel = path.relative_to(SRC)
    if len(rel.parts) > 1:
        return rel.parts[0]
    # main.rs only hands over to cli/: one part, one row.
    return "cli" if rel.stem == "main" else rel.stem


def strip_comments_and_strings(text: str) -> str:
    """Removes comments and the contents of string and char literals (so braces and
    `crate::` inside them count for nothing)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not text[i - 1].isalnum()):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + len(hashes) + 2)
            out.append('""')
            i = n if end < 0 else end + 1 + len(hashes)
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""')
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:]):
            m = re.match(r"'(\\.|[^\\'])'", text[i:])
            out.append("' '")
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def without_test_modules(code: str) -> str:
    """Drops every item under `#[cfg(test)]` or `#[cfg(all(test, …))]` (brace-balanced)."""
    out = []
    pos = 0
    for m in re.finditer(r"#\[cfg\((?:test|all\(test[^\]]*)\)\]", code):
        if m.start() < pos:
            continue
        out.append(code[pos : m.start()])
        depth, j = 0, m.end()
        # The item ends at its closing brace, or at a `;` before any brace (`mod tests;`).
        while j < len(code):
            if code[j] == "{":
                depth += 1
            elif code[j] == "}":
                depth -= 1
                if depth == 0:
                    j += 1
                    break
            elif code[j] == ";" and depth == 0:
                j += 1
                break
            j += 1
        pos = j
    out.append(code[pos:])
    return "".join(out)


def top_level_names(group: str) -> list:
    """`a::b, c::{d, e}, f` -> [a, c, f]."""
    names, depth, current = [], 0, ""
    for ch in group:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            names.append(current)
            current = ""
            continue
        if depth == 0:
            current += ch
    names.append(current)
    found = []
    for name in names:
        m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)", name)
        if m and m.group(1) not in ("self",):
            found.append(m.group(1))
    return found


def uses_of(code: str, root: str) -> set:
    """The top-level names reached through `root::` (`crate` in the library, `latchkey` in
    the binary's `main.rs` and `cli/`)."""
    used = set()
    for m in re.finditer(r"\b" + root + r"::(\{|[A-Za-z_][A-Za-z0-9_]*)", code):
        if m.group(1) == "{":
            depth, j = 1, m.end()
            while j < len(code) and depth:
                depth += {"{": 1, "}": -1}.get(code[j], 0)
                j += 1
            used.update(top_level_names(code[m.end() : j - 1]))
        else:
            used.add(m.group(1))
    return used


def items_of(code: str, root: str, part: str) -> set:
    """The names reached through `root::part::` (`crate::publisher::{A, b::C}` -> {A, b})."""
    items = set()
    for m in re.finditer(r"\b" + root + "::" + part + r"::(\{|[A-Za-z_][A-Za-z0-9_]*)", code):
        if m.group(1) == "{":
            depth, j = 1, m.end()
            while j < len(code) and depth:
                depth += {"{": 1, "}": -1}.get(code[j], 0)
                j += 1
            items.update(top_level_names(code[m.end() : j - 1]))
        else:
            items.add(m.group(1))
    return items


def is_test_file(path: pathlib.Path) -> bool:
    """A module's tests kept in a file of their own (`#[cfg(test)] mod tests;`)."""
    return path.name == "tests.rs"


def narrow_uses():
    """For each arrow in ONLY_ITEMS, the items its production code names."""
    found = {arrow: set() for arrow in ONLY_ITEMS}
    for path in sorted(SRC.rglob("*.rs")):
        if is_test_file(path):
            continue
        part = part_of(path)
        for (user, used) in ONLY_ITEMS:
            if part == user:
                code = without_test_modules(strip_comments_and_strings(path.read_text()))
                found[(user, used)] |= items_of(code, "crate", used)
    return found


def crates_of(code: str) -> set:
    return set(re.findall(r"(?<![A-Za-z0-9_:])(sqlx|axum|rustls|tokio_rustls|hyper)::", code))


def actual_graph():
    graph, crates = {}, {}
    for path in sorted(SRC.rglob("*.rs")):
        part = part_of(path)
        if part == "lib" or is_test_file(path):
            continue
        code = without_test_modules(strip_comments_and_strings(path.read_text()))
        # The binary (main.rs and cli/) reaches the library as `latchkey::`.
        root = "latchkey" if part in BINARY else "crate"
        graph.setdefault(part, set()).update(uses_of(code, root) - {part})
        crates.setdefault(part, set()).update(crates_of(code))
    # Only parts count: `crate::random_bytes` and other items of lib.rs are shared by all.
    parts = set(graph)
    for part in graph:
        graph[part] &= parts
    return graph, crates


def readme_table():
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Architecture", 1)[1].split("\n## ", 1)[0]
    table = {}
    for line in section.splitlines():
        if not line.startswith("| `src/"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        # main.rs shares cli's row (part_of folds it into cli).
        parts = [
            "cli" if name == "main" else name
            for name in re.findall(r"`src/([a-z_]+)(?:/|\.rs)`", cells[0])
        ]
        may_use = cells[-1]
        allowed = set(re.findall(r"[a-z_]+", may_use)) - {"nothing", "else", "and"}
        for part in parts:
            table[part] = allowed
    return table


def main() -> int:
    graph, crates = actual_graph()
    if "--graph" in sys.argv:
        for part in sorted(graph):
            print(f"{part:10} -> {', '.join(sorted(graph[part])) or '-'}"
                  f"   [{', '.join(sorted(crates.get(part, ()))) or '-'}]")
        return 0
    table = readme_table()
    problems = []
    for part, used in sorted(graph.items()):
        if part not in table:
            problems.append(f"src/{part} has no row in the README's architecture table")
            continue
        allowed = table[part]
        internal_allowed = {a for a in allowed if a in graph}
        for extra in sorted(used - internal_allowed):
            problems.append(f"src/{part} uses {extra}, which its README row does not allow")
        for stale in sorted(internal_allowed - used):
            problems.append(f"the README says src/{part} may use {stale}, but it does not (stale row)")
    for part in sorted(table):
        if part not in graph:
            problems.append(f"the README's architecture table names src/{part}, which does not exist")
    for krate, owners in OWNED_CRATES.items():
        for part, names in sorted(crates.items()):
            if krate in names and part not in owners:
                problems.append(f"src/{part} names {krate}, which only {', '.join(sorted(owners))} may")
    for part, forbidden in NEVER_PARTS.items():
        for other in sorted(graph.get(part, set()) & forbidden):
            problems.append(f"src/{part} uses {other}, which it must never do")
    for (user, used), items in sorted(narrow_uses().items()):
        for item in sorted(items - ONLY_ITEMS[(user, used)]):
            problems.append(f"src/{user} names {used}::{item}; it may name only "
                            f"{', '.join(sorted(ONLY_ITEMS[(user, used)]))}")
    for part, forbidden in NEVER.items():
        for krate in sorted(crates.get(part, set()) & forbidden):
            problems.append(f"src/{part} names {krate}, which it must never do")
    for p in problems:
        print(f"layering: {p}", file=sys.stderr)
    if not problems:
        print(f"layering: {len(graph)} parts match the README's architecture table")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
