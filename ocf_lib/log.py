"""Logging the way ocf-shellfuncs and fence-agents do it, with secrets masked.

OCF agents: stderr when attached to a terminal; otherwise syslog when
HA_LOGFACILITY (or PCMK_LOGFACILITY) names a facility, HA_LOGFILE when set, and
stderr when neither is. HA_DEBUGLOG also receives debug lines. Debug is on only
when HA_debug is set and not "0", or OCF_TRACE_RA is true.

Fence agents: syslog always; stderr gets warnings and above (the fencer logs
agent stderr at warning level), or everything when verbose.

Every handler carries a filter that replaces any registered secret with ****.
"""
from __future__ import annotations

import logging
import os
import sys
import syslog
import time
from typing import Iterable, Mapping, Optional, TextIO

LOGGER_NAME = "computeha"
MASK = "****"

_secrets: set[str] = set()

_LEVEL_NAMES = {logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARNING",
                logging.ERROR: "ERROR", logging.CRITICAL: "CRIT"}
_SYSLOG_PRIO = {logging.DEBUG: syslog.LOG_DEBUG, logging.INFO: syslog.LOG_INFO,
                logging.WARNING: syslog.LOG_WARNING, logging.ERROR: syslog.LOG_ERR,
                logging.CRITICAL: syslog.LOG_CRIT}
_TRUE = {"yes", "true", "1", "ja", "on"}


def add_secret(value: object) -> None:
    """Register a value that must never appear in any output."""
    text = str(value) if value is not None else ""
    if len(text) >= 3:  # masking 1-2 characters would shred ordinary text
        _secrets.add(text)


def add_secrets(values: Iterable[object]) -> None:
    for value in values:
        add_secret(value)


def redact(text: str) -> str:
    """Mask every registered secret in text (longest first, so overlaps mask whole)."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class _SyslogHandler(logging.Handler):
    """libc syslog(3): never fails when no syslog daemon listens."""

    def __init__(self, tag: str, facility: int) -> None:
        super().__init__()
        syslog.openlog(tag, 0, facility)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            prio = _SYSLOG_PRIO.get(record.levelno, syslog.LOG_INFO)
            syslog.syslog(prio, f"{_LEVEL_NAMES.get(record.levelno, 'INFO')}: {record.getMessage()}")
        except Exception:  # logging must never break an agent
            pass


class _LineFormatter(logging.Formatter):
    def __init__(self, tag: str, with_time: bool) -> None:
        super().__init__()
        self.tag = tag
        self.with_time = with_time

    def format(self, record: logging.LogRecord) -> str:
        level = _LEVEL_NAMES.get(record.levelno, "INFO")
        stamp = time.strftime("%b %d %H:%M:%S ", time.localtime(record.created)) if self.with_time else ""
        return f"{stamp}{self.tag}: {level}: {record.getMessage()}"


def debug_enabled(env: Mapping[str, str]) -> bool:
    ha_debug = env.get("HA_debug", "")
    if ha_debug not in ("", "0"):
        return True
    return env.get("OCF_TRACE_RA", "").lower() in _TRUE


def _facility(name: str) -> Optional[int]:
    name = name.strip().lower()
    if not name or name in ("none", "/dev/null"):
        return None
    return getattr(syslog, "LOG_" + name.upper(), syslog.LOG_DAEMON)


def _reset(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        try:
            handler.close()
        except Exception:
            pass
    logger.propagate = False


def _add(logger: logging.Logger, handler: logging.Handler, level: int, fmt: logging.Formatter) -> None:
    handler.setLevel(level)
    handler.setFormatter(fmt)
    handler.addFilter(RedactFilter())
    logger.addHandler(handler)


def tag_for(agent: str, instance: str = "") -> str:
    return f"{agent}({instance})[{os.getpid()}]" if instance else f"{agent}[{os.getpid()}]"


def setup_ocf(agent: str, instance: str, env: Mapping[str, str], stderr: TextIO = sys.stderr) -> logging.Logger:
    """Configure logging for an OCF agent run; returns the agent's logger."""
    logger = logging.getLogger(LOGGER_NAME)
    _reset(logger)
    debug = debug_enabled(env)
    level = logging.DEBUG if debug else logging.INFO
    logger.setLevel(level)
    tag = tag_for(agent, instance)
    interactive = hasattr(stderr, "isatty") and stderr.isatty()
    facility = _facility(env.get("HA_LOGFACILITY") or env.get("PCMK_LOGFACILITY") or "")
    logfile = env.get("HA_LOGFILE") or env.get("PCMK_LOGFILE") or ""
    debuglog = env.get("HA_DEBUGLOG") or env.get("PCMK_DEBUGLOG") or ""
    if interactive:
        _add(logger, logging.StreamHandler(stderr), level, _LineFormatter(tag, False))
    else:
        if facility is not None:
            _add(logger, _SyslogHandler(tag, facility), level, logging.Formatter())
        if logfile:
            _add(logger, _file_handler(logfile), level, _LineFormatter(tag, True))
        if facility is None and not logfile:
            _add(logger, logging.StreamHandler(stderr), level, _LineFormatter(tag, False))
    if debug and debuglog and debuglog != logfile:
        _add(logger, _file_handler(debuglog), logging.DEBUG, _LineFormatter(tag, True))
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return logger


def setup_fence(agent: str, verbose: int, debug_file: str, quiet: bool,
                stderr: TextIO = sys.stderr) -> logging.Logger:
    """Configure logging for a fence agent run."""
    logger = logging.getLogger(LOGGER_NAME)
    _reset(logger)
    logger.setLevel(logging.DEBUG if (verbose or debug_file) else logging.INFO)
    tag = tag_for(agent)
    _add(logger, _SyslogHandler(agent, syslog.LOG_DAEMON), logging.DEBUG if verbose else logging.INFO,
         logging.Formatter())
    if not quiet:
        _add(logger, logging.StreamHandler(stderr), logging.DEBUG if verbose else logging.WARNING,
             _LineFormatter(tag, False))
    if debug_file:
        _add(logger, _file_handler(debug_file), logging.DEBUG, _LineFormatter(tag, True))
    return logger


def _file_handler(path: str) -> logging.Handler:
    try:
        return logging.FileHandler(path, encoding="utf-8")
    except OSError:
        return logging.NullHandler()


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)
