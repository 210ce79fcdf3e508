"""Inputs for the agent fuzz tests: adversarial OCF environments, fence stdin and argv.

Hypothesis generates (and shrinks) a byte string; a small decoder (ByteSource) turns it into
one case, which is much faster than composing many strategies (about 1.5 ms per case
instead of 15-30 ms) and shrinks just as well: fewer bytes, smaller bytes, simpler case.
Values are generated per parameter kind from the agent's own ParamTable, so an agent (or a
parameter) added later is fuzzed without changes here. Two kinds of values are never random:
secrets are canaries (a distinctive core wrapped in awkward characters, so that a leak is
found even if the output quotes or reflows it), and anything that names a file is rooted in
the test's temporary folder (a fuzzed debug_file must not append to /etc/passwd).
"""
from __future__ import annotations

import os
import string
from typing import Dict, List, Sequence, Tuple
from urllib.parse import urlparse

from hypothesis import strategies as st

from computeha.ocf_lib import fence
from computeha.ocf_lib.params import Kind, Param

CANARY_CORE = "S3cr3tFz"  # every secret value contains CANARY_CORE + 6 hex digits

ODD_STRINGS = [
    "", " ", "  \t ", "\n", "\r\n", "a\nb", "line1\nline2\n", "a=b", "=", "==x", '"', "'", '""', "''", '"quoted"',
    "'single'", "\\", "\\n", "x" * 5000, "é", "日本語", "\u2028", "\u0085", "\x1b[31mred", "\x7f", "${HOME}",
    "$(id)", "`id`", ";", "|", "&&", "%s", "%(x)s", "{}", "{0}", "None", "null", "true", "-", "--", "-1", "0",
    "../../../etc/passwd", "/", ".", "~", "*", "?", "#comment", " leading", "trailing ", "tab\there",
    "http://", "https://[::1", "http://127.0.0.1:9/v3", "http://127.0.0.1:9/v2.0", "ftp://x", "2.53", "2.", "x.y",
]
INT_VALUES = ["0", "1", "-1", "2", "4", "10", "20", "255", "256", "623", "65535", "65536", "99999999999999999999",
              "1.5", "1e3", "0x10", " 7 ", "07", "+3", "٣", "3 4", "", "NaN", "-0"]
BOOL_VALUES = ["yes", "no", "YES", "True", "false", "1", "0", "on", "off", "ja", "nein", "y", "n", "2", "maybe",
               "", "tru", " yes ", "Yes\n", "oui", "-1"]
SECONDS_VALUES = ["0", "1", "30", "30s", "500ms", "2min", "1h", "1.5", "-1", "1e3", "inf", "nan", "30 s", "s",
                  "10x", "9999999999", "0.1", "0.05", " 5 ", "5 sec", "1hr", "1m"]
TIMEOUT_MS = ["0", "-1", "1", "100", "20000", "600000", "abc", "", "1e9", "99999999999999999999", " 20000 ", "٣"]
CHECK_LEVELS = ["", "0", "1", "5", "9", "10", "11", "19", "20", "21", "100", "-10", "abc", " 10 ", "1e1", "٢٠"]
OCF_ACTIONS = ["meta-data", "usage", "help", "-h", "--help", "validate-all", "monitor", "stop", "start", "notify",
               "promote", "demote", "reload", "reload-agent", "migrate_to", "recover", "status", "", "META-DATA",
               "monitor ", "validate_all", "methods"]
FENCE_ACTIONS = ["metadata", "meta-data", "manpage", "validate-all", "on", "off", "reboot", "status", "monitor", "list",
                 "list-status", "list_status", "enable", "disable", "OFF", " Status ", "", "start", "stop",
                 "diag", "validate_all", "Metadata"]
# what the library does without touching the device (no connect)
FENCE_LOCAL_ACTIONS = {"metadata", "manpage", "validate-all"}

# parameter-name words that mean "a file, a folder or a program": such values stay inside tmp
PATHLIKE = {"file", "dir", "path", "debug", "yaml", "cacert", "script", "conf", "cmd", "command"}


# Characters random text is made of: one byte picks one. Printable ASCII dominates; the rest are
# the troublemakers: controls, NUL, line separators of str.splitlines, quotes, non-ASCII.
_SPECIAL = ("\x00\x01\x07\x08\t\n\x0b\x0c\r\x1b\x1c\x1d\x1e\x1f\x7f\x85\xa0\u2028\u2029\ufeff\ufffd"
            "éßü日本語€𝄞\u200b\u202e")
CHARS = (string.ascii_letters + string.digits + string.punctuation + " " + _SPECIAL)
ENV_CHARS = "".join(c for c in CHARS if c != "\x00")  # an environment variable cannot hold NUL


class ByteSource:
    """Turns hypothesis' bytes into choices (libFuzzer style). Exhausted input reads as zeros, so
    shorter and smaller byte strings - what hypothesis shrinks towards - mean simpler inputs."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def below(self, n: int) -> int:
        if n <= 1:
            return 0
        value = self.byte() if n <= 256 else (self.byte() << 8) | self.byte()
        return value % n

    def choice(self, items: Sequence):
        return items[self.below(len(items))]

    def flag(self, one_in: int = 2) -> bool:
        """True with probability 1/one_in; False when the input is exhausted."""
        return self.pos < len(self.data) and self.below(one_in) == one_in - 1

    def text(self, max_len: int = 24, chars: str = ENV_CHARS) -> str:
        return "".join(chars[self.below(len(chars))] for _ in range(self.below(max_len + 1)))


def odd_text(src: ByteSource, chars: str = ENV_CHARS, max_len: int = 24) -> str:
    """A hand-picked odd string, or random text."""
    pick = src.below(len(ODD_STRINGS) + 3)
    if pick < len(ODD_STRINGS):
        value = ODD_STRINGS[pick]
        return value if chars is not ENV_CHARS else value.replace("\x00", "")
    return src.text(max_len, chars)


def is_pathlike(param: Param) -> bool:
    return any(word in PATHLIKE for name in param.names for word in name.lower().split("_"))


def canary(src: ByteSource) -> str:
    """A secret value: CANARY_CORE + 6 hex digits, wrapped in awkward characters."""
    wraps = ["", "'", '"', " ", "=", "é", "\\", "%s", "\n", "\t", "#", "pre-", "\u2028", "$", "x" * 30]
    core = CANARY_CORE + "".join("0123456789abcdef"[src.below(16)] for _ in range(6))
    return src.choice(wraps) + core + src.choice(wraps)


def tmp_path_value(src: ByteSource, tmp: str) -> str:
    """Values of file-like parameters: only ever inside tmp (existing, missing, folder, two paths)."""
    name = "".join(c for c in src.text(10, string.ascii_letters + string.digits + "-_") if c) or "n"
    return src.choice([
        "",
        os.path.join(tmp, "existing.conf"),
        os.path.join(tmp, "empty"),
        tmp,
        os.path.join(tmp, "new", name + ".log"),
        os.path.join(tmp, "missing-dir", name, "x.log"),
        os.path.join(tmp, "existing.conf") + " " + os.path.join(tmp, "empty"),
        os.path.join(tmp, name) + " --flag 'unbalanced",
    ])


STRING_VALUES = ["admin", "Default", "internal", "public", "compute-0", "node1", "127.0.0.1", "2.53", "1",
                 "disabled", "tag:amphora,img-1", "http://127.0.0.1:9/v3", "KEY=VALUE OTHER=1", "compute-0:h0"]


def value_for(src: ByteSource, param: Param, tmp: str, chars: str = ENV_CHARS) -> str:
    return avoid_known_issues(param.name, _value_for(src, param, tmp, chars))


def avoid_known_issues(name: str, value: str) -> str:
    """Values that trigger bugs already reported (each has a strict xfail reproducer in
    test_fuzz_agents.py) are defused here, so that the fuzzing keeps checking everything else.
    Remove an entry when its reproducer starts passing."""
    if name == "auth_url" and _urlparse_raises(value):
        # urlparse raises on a bad IPv6 bracket ("https://[::1") and nova_auth's check does not
        # catch it (test_auth_url_with_a_bad_ipv6_bracket_is_a_config_error)
        value = value.replace("[", "(").replace("]", ")")
    return value


def _urlparse_raises(value: str) -> bool:
    try:
        urlparse(value.strip())
    except ValueError:
        return True
    return False


def _value_for(src: ByteSource, param: Param, tmp: str, chars: str = ENV_CHARS) -> str:
    if param.secret:
        return canary(src) if src.below(8) else src.choice(["", " ", "ab"])
    if is_pathlike(param):
        return tmp_path_value(src, tmp)
    if src.flag(4):
        return odd_text(src, chars)
    if param.kind is Kind.INTEGER:
        return src.choice(INT_VALUES) if src.flag(3) is False else str(src.below(1 << 16) - 1000)
    if param.kind is Kind.BOOLEAN:
        return src.choice(BOOL_VALUES)
    if param.kind is Kind.SECONDS:
        return src.choice(SECONDS_VALUES)
    if param.kind is Kind.SELECT:
        choice = src.choice(list(param.choices))
        return src.choice([choice, choice.upper(), f" {choice} ", choice[:-1] or "x"])
    return src.choice(STRING_VALUES)


def names_of(params: Sequence[Param]) -> List[Tuple[Param, str]]:
    return [(p, n) for p in params for n in p.names]


def breakable(params: Sequence[Param]) -> List[Param]:
    """Parameters whose value the table rejects when it is not a number/boolean/choice."""
    return [p for p in params if p.kind in (Kind.INTEGER, Kind.BOOLEAN, Kind.SECONDS, Kind.SELECT)
            and not p.secret and not is_pathlike(p)]


BROKEN_VALUE = "not-a-value-ø"


def base_values(src: ByteSource, tmp: str) -> Dict[str, str]:
    """A working configuration, by parameter name, that half of the cases start from, so that
    mutations also reach the code behind validation (valid credentials shape, an existing
    program, a host name). Parameters an agent does not have are ignored."""
    return {
        "auth_url": "http://127.0.0.1:9/v3", "username": "admin", "password": canary(src), "project_name": "admin",
        "ip": "127.0.0.1", "ipport": "9", "state_dir": os.path.join(tmp, "power"), "plug": "node1",
        "nova_compute_command": os.path.join(tmp, "bin", "nova-compute") + " --config-file "
        + os.path.join(tmp, "existing.conf"), "user": "root", "host": "compute-0", "max_parallel": "4",
    }


def _base_for(src: ByteSource, params: Sequence[Param], tmp: str) -> Dict[str, str]:
    names = {p.name for p in params}
    return {k: v for k, v in base_values(src, tmp).items() if k in names}


# --- OCF ----------------------------------------------------------------------------------

def ocf_case(data: bytes, agent, tmp: str) -> Tuple[List[str], Dict[str, str], bool]:
    """(argv, env, forced_broken) for one OCF run. start runs only with a broken parameter:
    a real start would launch workers or wait for Nova."""
    src = ByteSource(data)
    params = agent.table.for_ocf()
    pairs = names_of(params)
    if src.below(10) < 7:
        action = src.choice(["monitor", "validate-all", "stop", "start"])
    else:
        action = src.choice(OCF_ACTIONS) if not src.flag(8) else odd_text(src, max_len=12)
    env: Dict[str, str] = {"HA_RSCTMP": os.path.join(tmp, "rsctmp"), "PATH": os.path.join(tmp, "empty-bin"),
                           "OCF_ROOT": "/usr/lib/ocf"}
    if src.flag():
        env.update({"OCF_RESKEY_" + k: v for k, v in _base_for(src, params, tmp).items()})
    if not src.flag(10):
        env["OCF_RESOURCE_INSTANCE"] = src.choice(["res1", "nova-evacuate", "compute:0", "../../x", "a/b"]) \
            if not src.flag(4) else odd_text(src, max_len=12)
    for _ in range(src.below(min(16, len(pairs) + 1))):
        param, name = src.choice(pairs)
        env["OCF_RESKEY_" + name] = value_for(src, param, tmp)
    for key, values in (("OCF_RESKEY_CRM_meta_timeout", TIMEOUT_MS),
                        ("OCF_RESKEY_CRM_meta_interval", ["0", "10000", "-5", "abc", "", "1e4"]),
                        ("OCF_CHECK_LEVEL", CHECK_LEVELS),
                        ("OCF_RESKEY_CRM_meta_on_node", ["node1", "", "compute-0.example.com", "é"]),
                        ("OCF_RA_VERSION_MAJOR", ["1", "2", "", "x"]),
                        ("HA_debug", ["1", "0", ""]),
                        ("OCF_TRACE_RA", ["1", "yes", "0"])):
        if src.flag(3):
            env[key] = src.choice(values) if not src.flag(5) else odd_text(src, max_len=8)
    if src.flag(5):
        env["HA_LOGFILE"] = os.path.join(tmp, "ha.log")
    if src.flag(10):
        env["OCF_RESKEY_" + odd_text(src, max_len=10).replace("=", "")] = odd_text(src)
    forced = False
    if action == "start":
        victims = breakable(params)
        if victims:
            env["OCF_RESKEY_" + src.choice(victims).name] = BROKEN_VALUE
            forced = True
        else:
            action = "validate-all"
    argv = [agent.info.name] + ([action] if action or src.flag() else [])
    if src.flag(20):
        argv.append(odd_text(src, max_len=8))  # a stray extra argument
    return argv, env, forced


# --- fence --------------------------------------------------------------------------------

STDIN_CHARS = CHARS  # stdin may hold anything a pipe carries (NUL included)


_TABLES: Dict[int, tuple] = {}


def fence_table(agent) -> tuple:
    """(full table, fence params, (param, name) pairs) of a fence agent, computed once."""
    key = id(agent)
    if key not in _TABLES:
        table = agent.full_table()
        params = table.for_fence()
        _TABLES[key] = (agent, table, params, names_of(params))
    return _TABLES[key][1:]


def _key_variant(src: ByteSource, name: str) -> str:
    return src.choice([name, name.replace("_", "-"), name.upper(), f" {name} ", name.replace("_", "-").title()])


def stdin_line(src: ByteSource, agent, tmp: str) -> str:
    kind = src.below(20)
    if kind < 11:
        param, name = src.choice(fence_table(agent)[2])
        if param.kind is Kind.BOOLEAN and src.flag(4):
            return _key_variant(src, name)  # a bare flag
        value = value_for(src, param, tmp, ENV_CHARS if is_pathlike(param) else STDIN_CHARS)
        if src.flag(5):
            value = f'"{value}"'
        sep = src.choice(["=", " = ", "= ", "=\t"])
        return _key_variant(src, name) + sep + value.replace("\n", " ").replace("\r", " ")
    if kind < 13:
        if src.flag():
            return "action=" + src.choice(["validate-all", "status", "off", "on", "monitor", "list", "reboot"])
        return "action=" + (src.choice(FENCE_ACTIONS) if not src.flag(6) else odd_text(src, STDIN_CHARS, 10))
    if kind == 13:
        return "#" + odd_text(src, STDIN_CHARS)
    if kind == 14:
        return src.choice(["", "   ", "\t"])
    if kind == 15:
        return src.choice(["nodename=", "nodename=compute-0", "option=off", "option=status", "port=1", "plug=n1"])
    if kind == 16:
        return odd_text(src, STDIN_CHARS, 20).replace("\n", " ")  # maybe no '='
    if kind == 17:
        return odd_text(src, STDIN_CHARS, 10) + "=" + odd_text(src, STDIN_CHARS, 10)  # unknown key
    return src.text(40, STDIN_CHARS)  # binary-ish


def effective_action(agent, inp: "fence.FenceInput") -> str:
    action = (inp.raw.get("action") or agent.default_action()).strip().lower()
    return fence.ACTION_ALIASES.get(action, action)


def needs_breaking(agent, inp: "fence.FenceInput") -> bool:
    """Whether this input would reach the device (connect) with the table accepting it."""
    if inp.want_help or inp.want_version or inp.errors:
        return False
    action = effective_action(agent, inp)
    if action in FENCE_LOCAL_ACTIONS or action not in agent.actions():
        return False
    table, params, _pairs = fence_table(agent)
    try:
        _values, problems = table.parse(inp.raw, params)
    except Exception:  # the run itself fails the same way, before any device access
        return False
    return not problems


def _disabled_ok(agent) -> bool:
    return fence_table(agent)[0].get("record_only") is not None


def fence_stdin_case(data: bytes, agent, tmp: str) -> Tuple[str, bool, bool]:
    """(stdin text, forced_broken, as_bytes). With as_bytes the text holds a few lone surrogates:
    the test feeds it as bytes that are not UTF-8, read the way a process in the C locale does."""
    src = ByteSource(data)
    table = fence_table(agent)[0]
    # a value cannot hold a newline: Pacemaker writes one name=value per line
    lines = [f"{k}={v.replace(chr(10), ' ')}" for k, v in _base_for(src, fence_table(agent)[1], tmp).items()] \
        if src.flag() else []
    lines += [stdin_line(src, agent, tmp) for _ in range(src.below(15))]
    as_bytes = src.flag(4)
    if as_bytes:
        _inject_undecodable(src, lines, table)
    text = src.choice(["\n", "\r\n", "\n\n"]).join(lines) + src.choice(["", "\n"])
    inp = fence.parse_stdin(text, table)
    forced = needs_breaking(agent, inp)
    if forced:
        # Reach the device only where the agent acts locally (fence_compute record_only=2);
        # otherwise an invalid common parameter stops the run before it connects.
        if _disabled_ok(agent) and src.flag():
            text += "\nrecord_only=2\ndelay=0\npower_wait=0\n"
        else:
            text += f"\n{src.choice(['power_timeout', 'login_timeout', 'delay', 'power_wait', 'verbose'])}" \
                    f"={BROKEN_VALUE}\n"
    return text, forced, as_bytes


def _inject_undecodable(src: ByteSource, lines: List[str], table) -> None:
    """Put up to 3 bytes that are not UTF-8 (as surrogateescape surrogates) into lines that do not
    set a secret: fence_ipmi fails on such a password (known issue,
    test_fence_ipmi_password_that_is_not_utf8_is_a_config_error)."""
    def secret_line(line: str) -> bool:
        param = table.get(line.partition("=")[0])
        return param is not None and param.secret

    candidates = [i for i, line in enumerate(lines) if not secret_line(line)]
    for _ in range(1 + src.below(3)):
        if not candidates:
            return
        i = src.choice(candidates)
        at = src.below(len(lines[i]) + 1)
        lines[i] = lines[i][:at] + chr(0xDC80 + src.below(0x80)) + lines[i][at:]


def argv_tokens(src: ByteSource, agent, tmp: str) -> List[str]:
    kind = src.below(16)
    if kind < 10:
        param, name = src.choice(fence_table(agent)[2])
        value = value_for(src, param, tmp)
        flag = param.kind is Kind.BOOLEAN
        long = "--" + name.replace("_", "-")
        style = src.below(4)
        if param.short_opt and style == 0:
            return ["-" + param.short_opt] if flag else ["-" + param.short_opt, value]
        if param.short_opt and style == 1 and not flag:
            return ["-" + param.short_opt + value]
        if flag:
            return [long] if style < 3 else [long + "=" + value]
        return [long + "=" + value] if style < 3 else [long, value]
    if kind < 12:
        return [src.choice(["-o", "--action"]), src.choice(FENCE_ACTIONS) if not src.flag(6) else odd_text(src)]
    if kind == 12:
        return [src.choice(["-h", "--help", "-V", "--version", "--", "-", "--nodename=compute-0", "--nodename",
                            "-x", "--no-such-option", "--ip", "-o"])]
    if kind == 13:
        return ["--" + odd_text(src, max_len=10)]
    return [odd_text(src, max_len=12)]


def fence_argv_case(data: bytes, agent, tmp: str) -> Tuple[List[str], bool]:
    src = ByteSource(data)
    args = [f"--{k.replace('_', '-')}={v}" for k, v in _base_for(src, fence_table(agent)[1], tmp).items()] \
        if src.flag() else []
    args += [token for _ in range(1 + src.below(10)) for token in argv_tokens(src, agent, tmp)]
    inp = fence.parse_argv(args, fence_table(agent)[0])
    forced = needs_breaking(agent, inp)
    if forced:
        if _disabled_ok(agent) and src.flag():
            args += ["--record-only=2", "--delay=0", "--power-wait=0"]
        else:
            args += ["--" + src.choice(["power-timeout", "login-timeout", "delay", "power-wait"]) + "=" + BROKEN_VALUE]
    return [agent.name] + args, forced


def cases(max_size: int = 400) -> st.SearchStrategy[bytes]:
    """What hypothesis generates and shrinks: the bytes a case is decoded from."""
    return st.binary(max_size=max_size)
