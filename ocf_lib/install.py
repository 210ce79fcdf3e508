"""Writes and removes the small executable wrappers that `make install` puts in place.

A wrapper runs the configured interpreter in isolated mode (-I: no user site,
no PYTHON* variables) and calls the agent module's main(). It carries a marker
line so that uninstall only ever removes files this project wrote, and install
never silently overwrites a file that belongs to another package (Debian's and
RHEL's fence-agents ship /usr/sbin/fence_compute).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from typing import List, Optional, Sequence

MARKER = "# computeha agent wrapper: written by 'make install', removed by 'make uninstall'"
BACKUP_SUFFIX = ".computeha-replaced"


def wrapper_text(python: str, module: str, sys_path: Optional[str] = None) -> str:
    lines = [f"#!{python} -I", MARKER]
    if sys_path:
        lines += ["import sys", f"sys.path.insert(0, {sys_path!r})"]
    module, _, func = module.partition(":")
    lines += [f"from {module} import {func or 'main'} as main", "", "main()", ""]
    return "\n".join(lines)


def is_ours(path: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return MARKER in handle.read(4096)
    except OSError:
        return False


def install(target: str, python: str, module: str, replace: bool, sys_path: Optional[str]) -> str:
    """Install one wrapper; returns a message or raises SystemExit with guidance."""
    if os.path.lexists(target) and not is_ours(target):
        if not replace:
            raise SystemExit(
                f"refusing to overwrite {target}: it belongs to another package (not a computeha wrapper).\n"
                f"Ways forward: install ours under another name (e.g. make install "
                f"FENCE_COMPUTE_NAME=fence_computeha), or replace it explicitly with make install REPLACE=1 "
                f"(the original is kept as {os.path.basename(target)}{BACKUP_SUFFIX} and restored by make uninstall).")
        os.replace(target, target + BACKUP_SUFFIX)
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    tmp = target + ".tmp-computeha"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(wrapper_text(python, module, sys_path))
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
    return f"installed {target}"


def uninstall(target: str) -> str:
    if not os.path.lexists(target):
        return f"not present: {target}"
    if not is_ours(target):
        return f"left alone (not ours): {target}"
    os.unlink(target)
    backup = target + BACKUP_SUFFIX
    if os.path.lexists(backup):
        os.replace(backup, target)
        return f"removed {target}, restored the original"
    return f"removed {target}"


def importable(python: str, module: str, sys_path: Optional[str]) -> Optional[str]:
    """None when `python -I` can import the agent's module, else the reason."""
    name, _, func = module.partition(":")
    code = "import sys, importlib\n"
    if sys_path:
        code += f"sys.path.insert(0, {sys_path!r})\n"
    code += f"getattr(importlib.import_module({name!r}), {func or 'main'!r})\n"
    try:
        proc = subprocess.run([python, "-I", "-c", code], capture_output=True, text=True, timeout=60)
    except OSError as err:
        return f"cannot run {python}: {err.strerror}"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        return (f"{python} cannot load {module} ({last}); install the package for that interpreter first "
                f"(e.g. {python} -m pip install .) or set PYTHON=")
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    inst = sub.add_parser("install")
    inst.add_argument("--python", required=True)
    inst.add_argument("--replace", default="0")
    inst.add_argument("--sys-path", default=None, help="extra import path (tests only)")
    inst.add_argument("pairs", nargs="+", help="TARGET=MODULE[:FUNCTION]")
    rem = sub.add_parser("uninstall")
    rem.add_argument("targets", nargs="+")
    args = parser.parse_args(argv)
    messages: List[str] = []
    if args.cmd == "install":
        for pair in args.pairs:
            problem = importable(args.python, pair.split("=", 1)[1], args.sys_path)
            if problem:
                raise SystemExit(problem)
        replace = args.replace.lower() in ("1", "yes", "true")
        pairs = [p.split("=", 1) for p in args.pairs]
        for target, _module in pairs:  # check every target before writing any
            if os.path.lexists(target) and not is_ours(target) and not replace:
                install(target, args.python, _module, False, None)
        for target, module in pairs:
            messages.append(install(target, args.python, module, replace, args.sys_path))
    else:
        messages = [uninstall(t) for t in args.targets]
    print("\n".join(messages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
