#!/usr/bin/env python3
"""Lists the functions of src/ and tools/ (C, CUDA, C++) longer than a limit (default 100 lines), longest first,
as "lines  file:line  name", then their count. Usage: scripts/long_functions.py [LIMIT] [--fail]
(--fail: exit 1 when any function is over the limit). Standard library only.

A function is a top-level brace block whose opening brace follows a parameter list ')' (qualifiers such as const,
noexcept or __attribute__((...)) may stand between); namespace and extern "C" blocks are looked into. Comments,
string and character literals and preprocessor lines are blanked first, keeping the line count."""
import os
import re
import sys

ROOTS = ("src", "tools")
EXTS = (".c", ".cu", ".cpp")
NOT_NAMES = {"__launch_bounds__", "__attribute__", "__declspec", "alignas"}
SKIP = (os.path.join("src", "backends", "cuda", "emu"),)  # the emulator of the CUDA runtime, not project code


def blank(text):
    """Comments, literals and preprocessor lines replaced by spaces (newlines kept)."""
    out, i, n = [], 0, len(text)
    line_start = True
    while i < n:
        c = text[i]
        if line_start and c == "#" or (line_start and c in " \t" and text[i:].lstrip(" \t").startswith("#")):
            j = i
            while j < n and (text[j] != "\n" or text[j - 1] == "\\"):
                j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
            continue
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
            continue
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (min(j, n) - i - 1) + (c if j < n else ""))
            i = j + 1
            continue
        out.append(c)
        line_start = c == "\n" or (line_start and c in " \t")
        i += 1
    return "".join(out)


def functions(path):
    code = blank(open(path, encoding="utf-8", errors="replace").read())
    depth, stack, start, found = 0, [], None, []
    for m in re.finditer(r"[{}]", code):
        pos = m.start()
        if m.group() == "{":
            head = code[max(0, pos - 600):pos]
            if depth == 0 and re.search(r"(namespace\s*\w*|extern\s*\"\s*\")\s*$", head):
                stack.append("transparent")
                continue
            if depth == 0:
                tail = re.sub(r"(__attribute__\s*\(\(.*?\)\)|\b(const|noexcept|override)\b)\s*$", "", head.rstrip())
                if tail.rstrip().endswith(")"):
                    start = pos
            depth += 1
            stack.append("block")
        else:
            if not stack:
                continue
            if stack.pop() == "transparent":
                continue
            depth -= 1
            if depth == 0 and start is not None:
                first = code.count("\n", 0, start)
                sig = code[:start]
                cut = max(sig.rfind(";"), sig.rfind("}"))
                calls = [(m.start(1), m.group(1)) for m in re.finditer(r"(\w+)\s*(?:<[^<>()]*>)?\s*\(", sig[cut + 1:])
                         if m.group(1) not in NOT_NAMES]
                name_pos, name = (cut + 1 + calls[0][0], calls[0][1]) if calls else (start, "?")
                name_line = code.count("\n", 0, name_pos)
                found.append((code.count("\n", 0, pos) - name_line + 1, name_line + 1, name))
                start = None
    return found


def main():
    args = [a for a in sys.argv[1:] if a != "--fail"]
    limit = int(args[0]) if args else 100
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    rows = []
    for root in ROOTS:
        for d, _, files in os.walk(root):
            if d.startswith(SKIP):
                continue
            for f in sorted(files):
                if f.endswith(EXTS):
                    p = os.path.join(d, f)
                    rows += [(n, p, line, name) for n, line, name in functions(p) if n > limit]
    for n, p, line, name in sorted(rows, reverse=True):
        print(f"{n:5d}  {p}:{line}  {name}")
    print(f"functions over {limit} lines: {len(rows)}", file=sys.stderr)
    return 1 if rows and "--fail" in sys.argv else 0


if __name__ == "__main__":
    sys.exit(main())
