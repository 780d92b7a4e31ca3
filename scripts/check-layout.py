#!/usr/bin/env python3
"""Checks README.md's layout table against the tree.

Fails (exit 1, one line per problem) when the table names a path that does not exist, names a
folder without its trailing `/` (or a file with one), or leaves out a top-level module of
`src/` (`src/x.rs` or `src/x/`) or a top-level folder of the repository. Only paths in the
first column count; a folder is covered when the table names it or a path inside it.

Usage: scripts/check-layout.py [REPO_ROOT]   (default: the parent of this script's folder)
"""

import os
import re
import subprocess
import sys

# Top-level folders that are not part of the source tree (build output, local tooling).
IGNORED_DIRS = {"target", "node_modules"}


def layout_rows(readme):
    """The first-column cells of the table under `## Layout`."""
    in_section = False
    rows = []
    for line in readme.splitlines():
        if line.startswith("## "):
            in_section = line.strip() == "## Layout"
            continue
        if in_section and line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells and cells[0] not in ("path", "") and not set(cells[0]) <= set("-: "):
                rows.append((cells[0], cells[1] if len(cells) > 1 else ""))
    return rows


def named_paths(rows):
    """Every backticked path in the first column."""
    paths = []
    for first, _ in rows:
        paths.extend(re.findall(r"`([^`]+)`", first))
    return paths


def tracked_top_level(root):
    """Top-level folders and `src/` entries git tracks (the listing, when git is not there)."""
    try:
        out = subprocess.run(
            ["git", "-C", root, "ls-files"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        out = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in IGNORED_DIRS]
            rel = os.path.relpath(dirpath, root)
            out.extend(os.path.normpath(os.path.join(rel, f)) for f in filenames)
    dirs, src = set(), set()
    for f in out:
        parts = f.split("/")
        if len(parts) > 1 and not parts[0].startswith(".") and parts[0] not in IGNORED_DIRS:
            dirs.add(parts[0] + "/")
        if parts[0] == "src" and len(parts) == 2 and parts[1].endswith(".rs"):
            src.add("src/" + parts[1])
        elif parts[0] == "src" and len(parts) > 2:
            src.add("src/" + parts[1] + "/")
    return dirs, src


def check(root):
    with open(os.path.join(root, "README.md"), encoding="utf-8") as f:
        rows = layout_rows(f.read())
    if not rows:
        return ["README.md: no table under `## Layout`"]
    problems = []
    paths = named_paths(rows)
    for p in paths:
        full = os.path.join(root, p)
        if not os.path.exists(full):
            problems.append(f"README.md layout: `{p}` does not exist")
        elif os.path.isdir(full) and not p.endswith("/"):
            problems.append(f"README.md layout: `{p}` is a folder: write `{p}/`")
        elif not os.path.isdir(full) and p.endswith("/"):
            problems.append(f"README.md layout: `{p}` is a file: drop the `/`")
    dirs, src = tracked_top_level(root)
    for want in sorted(dirs | src):
        if not any(p == want or (want.endswith("/") and p.startswith(want)) for p in paths):
            problems.append(f"README.md layout: `{want}` is missing from the table")
    return problems


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(here)
    problems = check(root)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    print("README.md layout table: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
