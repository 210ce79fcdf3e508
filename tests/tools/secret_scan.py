"""Suite-wide secret scanner: the configured passwords and tokens must appear nowhere we control.

What is scanned (and nothing is excluded beyond what is listed here):

- command lines (``/proc/<pid>/cmdline``) and environments (``/proc/<pid>/environ``) of every
  process that descends from the pytest process, or from a PID the rigs record in ``*.pid``
  files under ``.rig/`` (and ``COMPUTEHA_RIG_DIR``), sampled periodically; the pytest process
  itself is not a child and is skipped;
- argv and environment of every child the pytest process starts (``subprocess``, ``os.exec*``,
  ``os.posix_spawn*``), caught exactly by an audit hook, so short-lived children are not missed;
- log files: under the rig directories, files in ``log``/``logs``/``var-log-*`` folders and
  files named ``*.log``, ``*.out``, ``*.err``; under the pytest temporary folders, the same plus
  ``*.txt`` and ``*debug*`` files;
- texts handed in by tests (``check_text``): captured agent stdout/stderr, exit reasons,
  pytest's captured output and failure reports.

One exemption, the OCF protocol itself: Pacemaker (and a test acting as Pacemaker) hands an OCF
resource agent its parameters, passwords included, as OCF_RESKEY_* environment variables. In the
environment of a process that is an OCF agent invocation (a program under a resource.d folder or
named like one of our agents, last argument an OCF action, OCF_* set)
whose parent is not one, the OCF_RESKEY_* variables are not scanned; the rest of its environment
is. The same variables in the environment of anything the agent starts ARE hits: an agent must
not hand its parameters on to its children.

What is deliberately not scanned: configuration and credential files themselves (clouds.yaml,
the rigs' nova.conf/keystone.conf/rabbitmq.conf, BMC ``password``/``lan.conf`` files, the
cluster's CIB, password scripts): holding the secret is their purpose.

Secrets come from ``register()`` (tests and rigs) and from the rigs' generated credential files
(``credential_files()``). Values shorter than MIN_SECRET_LEN are ignored: they would match
ordinary text. Hits never print the secret: only its label, where it was found, and the
surrounding text with the secret masked.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple
from urllib.parse import quote

REPO_ROOT = Path(__file__).resolve().parents[2]
MIN_SECRET_LEN = 6
MASK = "<SECRET>"
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_SNAPSHOTS = 50000  # unique texts kept for matching at the end (bounded memory) ...
MAX_KEPT_BYTES = 64 * 1024 * 1024  # ... and their total size
OVERLAP = 512  # bytes re-read before a log file's previous end, so a secret split by a write is seen

# folders that never hold logs or PID files of ours and can be very large
_SKIP_DIRS = {"venv", ".venv", "site-packages", "mysql", "data", "download", "remote-root", "guests",
              "__pycache__", "node_modules", ".git", "var-lib-pacemaker", "var-lib-corosync"}
_LOG_DIR = re.compile(r"^(log|logs|var-log.*)$")
_LOG_SUFFIX = (".log", ".out", ".err")
_TMP_EXTRA_SUFFIX = (".txt",)
_INI_SECRET_KEYS = {"password", "default_pass", "admin_password", "secret", "token",
                    "application_credential_secret", "memcache_secret_key", "hexadecimal_kg"}
_URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^:/@\s]+:([^@\s/]+)@", re.IGNORECASE)


@dataclass(frozen=True)
class Hit:
    label: str  # which secret (never its value)
    where: str  # "argv of pid 123 (ipmitool)", "file /x/y.log", "environment handed to ..."
    context: str  # surrounding text, secret masked

    def __str__(self) -> str:
        return f"secret {self.label!r} found in {self.where}: ...{self.context}..."


class Registry:
    """The secrets to look for: value -> label. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: Dict[str, str] = {}

    def register(self, value: object, label: str = "registered") -> bool:
        text = "" if value is None else str(value).strip("\r\n")
        if len(text) < MIN_SECRET_LEN:
            return False
        with self._lock:
            self._values.setdefault(text, label)
        return True

    def unregister(self, value: str) -> None:
        with self._lock:
            self._values.pop(value, None)

    def items(self) -> List[Tuple[str, str]]:
        with self._lock:
            return list(self._values.items())

    def __len__(self) -> int:
        with self._lock:
            return len(self._values)


REGISTRY = Registry()


def register(value: object, label: str = "registered") -> bool:
    """Register a password/token the suite configures somewhere; returns False when too short to scan for."""
    return REGISTRY.register(value, label)


def _forms(secret: str) -> List[bytes]:
    """The byte forms a leaked secret takes: raw, and percent-encoded as in URLs."""
    forms = [secret.encode("utf-8", "surrogateescape")]
    quoted = quote(secret, safe="").encode("ascii")
    if quoted not in forms:
        forms.append(quoted)
    return forms


def find_hits(data: bytes, where: str, secrets: Iterable[Tuple[str, str]]) -> List[Hit]:
    hits = []
    for secret, label in secrets:
        for form in _forms(secret):
            at = data.find(form)
            if at < 0:
                continue
            lo, hi = max(0, at - 40), min(len(data), at + len(form) + 40)
            context = data[lo:hi].replace(form, MASK.encode()).replace(b"\0", b" ")
            hits.append(Hit(label, where, context.decode("utf-8", "replace").replace("\n", "\\n")))
            break
    return hits


# --- credential files the rigs generate ---------------------------------------------------

def rig_roots(env: Optional[Dict[str, str]] = None) -> List[Path]:
    """Every rig directory: <repo>/.rig/* and COMPUTEHA_RIG_DIR."""
    env = dict(os.environ) if env is None else env
    roots = []
    base = REPO_ROOT / ".rig"
    if base.is_dir():
        roots += sorted(p for p in base.iterdir() if p.is_dir())
    extra = env.get("COMPUTEHA_RIG_DIR")
    if extra and Path(extra).is_dir() and Path(extra).resolve() not in [r.resolve() for r in roots]:
        roots.append(Path(extra))
    return roots


def _walk(root: Path, max_depth: int) -> Iterator[Tuple[Path, List[str]]]:
    root_depth = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS] if len(here.parts) - root_depth < max_depth else []
        yield here, filenames


def _read_small(path: Path, limit: int = 1 << 20) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def _clouds_secrets(text: str) -> List[str]:
    try:
        doc = json.loads(text)
    except ValueError:
        try:
            import yaml  # type: ignore
            doc = yaml.safe_load(text)
        except Exception:
            return []
    found: List[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str) and str(key).lower() in _INI_SECRET_KEYS:
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(doc)
    return found


def _ini_secrets(text: str) -> List[str]:
    found = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key, value = key.strip().lower(), value.strip()
        if key in _INI_SECRET_KEYS:
            found.append(value)
        found += _URL_PASSWORD.findall(value)
    return found


def credential_files(rig_dirs: Sequence[Path], tmp_dirs: Sequence[Path] = ()) -> List[Tuple[str, str]]:
    """(secret, label) from the credential files the rigs write.

    OpenStack rig: clouds.yaml (admin password) and the service configs under etc/ and rabbit/
    (service, database and RabbitMQ passwords). Cluster rig: secrets/* (the BMC password).
    BMC rig: files named ``password`` (under the pytest temporary folders).
    """
    out: List[Tuple[str, str]] = []
    for root in rig_dirs:
        for here, files in _walk(root, 6):
            rel = here.relative_to(root).parts
            for name in files:
                path = here / name
                if name in ("clouds.yaml", "clouds.json"):
                    out += [(s, f"{root.name}/{name}") for s in _clouds_secrets(_read_small(path))]
                elif rel[:1] == ("secrets",) and not name.endswith(".sh"):
                    first = _read_small(path).splitlines()
                    if first:
                        out.append((first[0].strip(), f"{root.name}/secrets/{name}"))
                elif rel[:1] in (("etc",), ("rabbit",)) and name.endswith(".conf"):
                    out += [(s, f"{root.name}/{'/'.join(rel)}/{name}") for s in _ini_secrets(_read_small(path))]
                elif name == "password":
                    first = _read_small(path).splitlines()
                    if first:
                        out.append((first[0].strip(), f"{root.name}/password"))
    for tmp in tmp_dirs:
        for here, files in _walk(tmp, 8):
            if "password" in files:
                first = _read_small(here / "password").splitlines()
                if first:
                    out.append((first[0].strip(), f"BMC password {here.name}"))
    return out


# --- processes ----------------------------------------------------------------------------

def _stat(pid: int) -> Optional[Tuple[int, str]]:
    """(ppid, start time) of a process, or None when it is gone."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        raw = os.read(fd, 4096).decode("ascii", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)
    fields = raw[raw.rfind(")") + 2:].split()
    try:
        return int(fields[1]), fields[19]
    except (IndexError, ValueError):
        return None


def process_table() -> Dict[int, Tuple[int, str]]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _stat(int(entry))
            if info is not None:
                table[int(entry)] = info
    return table


def descendants(roots: Iterable[int], table: Dict[int, Tuple[int, str]]) -> Set[int]:
    children: Dict[int, List[int]] = {}
    for pid, (ppid, _start) in table.items():
        children.setdefault(ppid, []).append(pid)
    seen: Set[int] = set()
    todo = [r for r in roots if r in table]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo.extend(children.get(pid, ()))
    return seen


def rig_pids(rig_dirs: Sequence[Path]) -> Set[int]:
    """PIDs the rigs record in *.pid files (first number in the file)."""
    pids: Set[int] = set()
    for root in rig_dirs:
        for here, files in _walk(root, 5):
            for name in files:
                if name.endswith(".pid"):
                    match = re.match(r"\s*(\d+)", _read_small(here / name, 64))
                    if match:
                        pids.add(int(match.group(1)))
    return pids


def _read_proc(pid: int, what: str) -> Optional[bytes]:
    try:
        with open(f"/proc/{pid}/{what}", "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _comm(pid: int) -> str:
    return (_read_proc(pid, "comm") or b"?").decode("utf-8", "replace").strip()


OCF_ACTIONS = {"start", "stop", "monitor", "validate-all", "meta-data", "notify", "promote", "demote", "reload",
               "reload-agent", "migrate_to", "migrate_from", "recover", "usage", "methods", "status"}


def _split0(data: Optional[bytes]) -> List[bytes]:
    return [x for x in (data or b"").split(b"\0") if x]


OCF_AGENT_NAMES = {b"NovaEvacuate", b"NovaCompute", b"ComputehaSample"}


def is_ocf_invocation(argv: Sequence[bytes], environ: Sequence[bytes]) -> bool:
    """An OCF resource agent run: the program is an agent (under a resource.d folder, or one of
    ours by name), its last argument an OCF action, and the OCF variables are set."""
    if len(argv) < 2 or argv[-1].decode("utf-8", "replace") not in OCF_ACTIONS:
        return False
    if not any(b"/resource.d/" in arg or os.path.basename(arg) in OCF_AGENT_NAMES for arg in argv[:-1]):
        return False
    return any(item.startswith((b"OCF_ROOT=", b"OCF_RESOURCE_INSTANCE=", b"OCF_RA_VERSION_MAJOR="))
               for item in environ)


def strip_ocf_protocol(environ: List[bytes]) -> List[bytes]:
    return [item for item in environ if not item.startswith(b"OCF_RESKEY_")]


def is_log_file(path: Path, tmp: bool) -> bool:
    name = path.name.lower()
    if name.endswith(_LOG_SUFFIX) or any(_LOG_DIR.match(p) for p in path.parent.parts[-3:]):
        return True
    return tmp and (name.endswith(_TMP_EXTRA_SUFFIX) or "debug" in name)


def log_files(rig_dirs: Sequence[Path], tmp_dirs: Sequence[Path]) -> List[Path]:
    files = []
    for roots, tmp in ((rig_dirs, False), (tmp_dirs, True)):
        for root in roots:
            for here, names in _walk(root, 8):
                files += [here / n for n in names if is_log_file(here / n, tmp)]
    return files


# --- the scanner --------------------------------------------------------------------------

class Scanner:
    """Collects texts (process snapshots, files, outputs) and matches them against the registry.

    Texts are kept (deduplicated, bounded) and matched at the end too, so that a secret
    registered late (a rig brought up mid-session) is still found in earlier snapshots.
    """

    def __init__(self, registry: Registry = REGISTRY, self_pid: Optional[int] = None) -> None:
        self.registry = registry
        self.self_pid = os.getpid() if self_pid is None else self_pid
        self._lock = threading.Lock()
        self._texts: Dict[str, Tuple[str, bytes]] = {}  # digest -> (where, data)
        self._hits: Dict[Tuple[str, str], Hit] = {}
        self.processes: Set[Tuple[int, str]] = set()
        self.files: Set[str] = set()
        self.texts_checked = 0
        self.dropped = 0
        self._argv_seen: Dict[Tuple[int, str], bytes] = {}
        self._kept_bytes = 0
        self.ocf_exempt = 0  # OCF agent invocations whose OCF_RESKEY_* input was not scanned
        self._offsets: Dict[str, Tuple[int, int]] = {}  # path -> (inode, bytes already checked)

    # texts
    def add(self, data: bytes, where: str, keep: bool = True) -> None:
        """Check data now; keep it (deduplicated, bounded) to check again against late secrets."""
        if not data:
            return
        with self._lock:
            self.texts_checked += 1
        if keep:
            digest = hashlib.blake2b(data + b"\0" + where.encode(), digest_size=16).hexdigest()
            with self._lock:
                if digest in self._texts:
                    return
                if len(self._texts) < MAX_SNAPSHOTS and self._kept_bytes + len(data) <= MAX_KEPT_BYTES:
                    self._texts[digest] = (where, data)
                    self._kept_bytes += len(data)
                else:
                    self.dropped += 1
        self._match(data, where)

    def check_text(self, text: str, where: str) -> List[Hit]:
        data = text.encode("utf-8", "surrogateescape")
        self.add(data, where)
        return find_hits(data, where, self.registry.items())

    def _match(self, data: bytes, where: str) -> None:
        for hit in find_hits(data, where, self.registry.items()):
            with self._lock:
                self._hits.setdefault((hit.label, hit.where), hit)

    # processes
    def sample_processes(self, roots: Iterable[int]) -> int:
        """One sample: argv and environment of every descendant of roots (new or re-executed ones)."""
        table = process_table()
        pids = descendants(roots, table) - {self.self_pid}
        for pid in pids:
            key = (pid, table[pid][1])
            cmdline = _read_proc(pid, "cmdline")
            if cmdline is None:
                continue
            # a fork keeps PID and start time across exec: a changed argv means a new program
            if self._argv_seen.get(key) == cmdline:
                continue
            self._argv_seen[key] = cmdline
            comm = _comm(pid)
            self.add(cmdline, f"argv of pid {pid} ({comm})")
            environ = _split0(_read_proc(pid, "environ"))
            if is_ocf_invocation(_split0(cmdline), environ):
                ppid = table[pid][0]
                if not is_ocf_invocation(_split0(_read_proc(ppid, "cmdline")), _split0(_read_proc(ppid, "environ"))):
                    environ = strip_ocf_protocol(environ)
                    with self._lock:
                        self.ocf_exempt += 1
            if environ:
                self.add(b"\0".join(environ), f"environment of pid {pid} ({comm})")
            with self._lock:
                self.processes.add(key)
        if len(self._argv_seen) > 4 * MAX_SNAPSHOTS:
            self._argv_seen = {k: v for k, v in self._argv_seen.items() if k[0] in table}
        return len(pids)

    def record_child(self, argv: Sequence[object], env: Optional[Dict[object, object]], how: str) -> None:
        """A child the test process starts: its argv and the environment handed to it."""
        prog = os.path.basename(_s(argv[0])) if argv else "?"
        args = [_s(a).encode("utf-8", "surrogateescape") for a in argv]
        self.add(b"\0".join(args), f"argv of child {prog} ({how})")
        if env is None:
            env = dict(os.environ)
        items = sorted(f"{_s(k)}={_s(v)}".encode("utf-8", "surrogateescape") for k, v in env.items())
        if is_ocf_invocation(args, items):  # this process acts as Pacemaker: the OCF protocol input
            items = strip_ocf_protocol(items)
            with self._lock:
                self.ocf_exempt += 1
        self.add(b"\0".join(items), f"environment handed to child {prog} ({how})")
        with self._lock:
            self.processes.add((-len(self.processes) - 1, prog))  # counted, not a real PID

    # files
    def scan_file(self, path: Path) -> None:
        """Check a file's bytes written since the previous call (files are matched at once, not kept)."""
        try:
            with open(path, "rb") as handle:
                st = os.fstat(handle.fileno())
                inode, done = self._offsets.get(str(path), (st.st_ino, 0))
                start = 0 if inode != st.st_ino or st.st_size < done else max(0, done - OVERLAP)
                if start and st.st_size == done:
                    with self._lock:
                        self.files.add(str(path))
                    return
                handle.seek(start)
                data = handle.read(MAX_FILE_BYTES)
        except OSError:
            return
        with self._lock:
            self.files.add(str(path))
            self._offsets[str(path)] = (st.st_ino, start + len(data))
        self.add(data, f"file {path}", keep=False)

    # results
    def hits(self) -> List[Hit]:
        """Every hit: matched now against all registered secrets, including late ones."""
        secrets = self.registry.items()
        with self._lock:
            texts = list(self._texts.values())
            found = dict(self._hits)
        for where, data in texts:
            for hit in find_hits(data, where, secrets):
                found.setdefault((hit.label, hit.where), hit)
        return sorted(found.values(), key=lambda h: (h.where, h.label))

    def summary(self, hits: Optional[List[Hit]] = None) -> str:
        hits = self.hits() if hits is None else hits
        return (f"secret scan: {len(self.processes)} processes, {len(self.files)} files checked, "
                f"{self.texts_checked} texts, {len(self.registry)} secrets, {len(hits)} hits "
                f"({self.ocf_exempt} OCF agent runs: OCF_RESKEY_* input not scanned)")


def _s(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def load_rig_credentials(registry: Registry = REGISTRY, tmp_dirs: Sequence[Path] = ()) -> int:
    """Register every credential the rigs generated; returns how many were registered."""
    count = 0
    for value, label in credential_files(rig_roots(), tmp_dirs):
        count += registry.register(value, label)
    return count


# --- the session's scanner (set by the pytest plugin) --------------------------------------

ACTIVE: Optional[Scanner] = None


def check_text(text: str, where: str) -> List[Hit]:
    """Check an output or error text against the registered secrets (and record it for the session)."""
    if ACTIVE is not None:
        return ACTIVE.check_text(text, where)
    data = text.encode("utf-8", "surrogateescape")
    return find_hits(data, where, REGISTRY.items())
