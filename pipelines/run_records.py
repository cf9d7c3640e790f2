"""Run records on the output: written `running` at start, then `succeeded`, `failed` or `interrupted`.

A `running` record with a fresh heartbeat is the folder's lease: one live run per
output folder. A run that starts writes its own record, then reads the others;
when another one is still alive it removes its record again and stops
(FolderInUse: the CLI exits 2 naming that run's id, host and pid). Writing first
and looking second needs no atomic create on the store (local, memory://, S3
alike): of two runs that start together at least one sees the other, and at
worst both stop.

A run that is SIGKILLed (or whose host dies) cannot write its own ending, so the
next run takes its lease over: it marks `interrupted` every record still saying
`running` whose process is provably gone, and notes the takeover in its own record:

- same host (hostname and kernel boot id equal): the recorded pid no longer
  exists, is a zombie, or now belongs to a process that started at another time
  (pid reuse); a different boot id on the same hostname means the host rebooted;
- another host (we cannot see its processes): its heartbeat, rewritten every
  `output.heartbeat_s` seconds while it runs, is older than `output.stale_after_s`.
  Clocks of the two hosts must agree to well within stale_after_s (default 15 min).

A run whose record was taken over (it was only slow) stops beating: its heartbeat
no longer claims the folder.
"""
import datetime as dt
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from pipelines.store import OutputError, RunStore
from schemas import RunRecord

REDACTED = "***"
MESSAGE_CHARS = 500  # longest error message kept in a record (characters)
# Flag names, KEY=VALUE keys and URI query parameters whose values are secrets.
_SECRET_NAME = re.compile(r"pass(word|wd)?|secret|token|key|credential|auth|signature|sig$|session|cookie", re.I)
_URI_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^/@\s]+)@")


class FolderInUse(OutputError):
    """Another live run holds the output folder (its record says `running` and it is not provably gone)."""


class RunInterrupted(KeyboardInterrupt):
    """SIGTERM (or SIGINT) arrived during a run: the record says `interrupted`, the CLI exits 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


# ------------------------------------------------------------------ secrets out of what is recorded

def redact_uri(text: str) -> str:
    """`s3://user:pass@bucket/x?X-Amz-Signature=…` -> `s3://***@bucket/x?X-Amz-Signature=***`."""
    text = _URI_USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    if "://" not in text or "?" not in text:
        return text
    parts = urllib.parse.urlsplit(text)
    query = [(k, REDACTED if _SECRET_NAME.search(k) else v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query, safe="*")))


def _redact_key_value(arg: str, always: bool) -> str:
    key, eq, value = arg.partition("=")
    if "://" in key:  # a URI whose query holds '=': its credentials are redacted part by part
        return redact_uri(arg)
    if eq and (always or _SECRET_NAME.search(key)):
        return f"{key}={REDACTED}"
    return redact_uri(arg)


def _is_storage_option(flag: str) -> bool:
    return len(flag) > 4 and "--storage-option".startswith(flag)  # argparse accepts unambiguous prefixes


def redact_argv(argv: list[str]) -> list[str]:
    """The command line with secrets replaced by ***: values of --storage-option KEY=VALUE (all of them, as the
    config's storage_options), of flags named like a secret (--token, --api-key, --password), of KEY=VALUE
    arguments whose key names one, and credentials inside URIs."""
    out: list[str] = []
    pending = None  # what the previous flag says about this argument: "secret" or "option"
    for arg in argv:
        if pending == "secret":
            out.append(REDACTED)
        elif pending == "option":
            out.append(_redact_key_value(arg, always=True))
        elif arg.startswith("--"):
            flag, eq, value = arg.partition("=")
            if _is_storage_option(flag):
                out.append(f"{flag}={_redact_key_value(value, always=True)}" if eq else arg)
                pending = None if eq else "option"
                continue
            if _SECRET_NAME.search(flag[2:]):
                out.append(f"{flag}={REDACTED}" if eq else arg)
                pending = None if eq else "secret"
                continue
            out.append(f"{flag}={redact_uri(value)}" if eq else arg)
        else:
            out.append(_redact_key_value(arg, always=False))
        pending = None
    return out


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type), credentials in URIs redacted, bounded."""
    lines = str(exc).strip().splitlines()
    text = redact_uri(lines[0] if lines else type(exc).__name__)
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


# ------------------------------------------------------------------ what ran, where

@lru_cache(maxsize=1)
def code_version() -> dict:
    """project_version (package metadata), git_commit and git_dirty of the source checkout that runs, when known."""
    import importlib.metadata

    try:
        version = importlib.metadata.version("vidcurate")
    except importlib.metadata.PackageNotFoundError:
        version = None
    root = Path(__file__).resolve().parents[1]  # the checkout whose pipelines/ is running (PYTHONPATH or editable)
    commit = dirty = None
    if (root / ".git").exists():  # a folder, or a file in a worktree
        try:
            head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
            if head.returncode == 0:
                commit = head.stdout.strip() or None
                status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                        capture_output=True, text=True, timeout=10)
                dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):  # git not installed, or too slow: unknown, not fatal
            pass
    return {"project_version": version, "git_commit": commit, "git_dirty": dirty}


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _pid_state(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks since boot) from /proc; None when the pid does not exist."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[19])  # fields 3 and 22 of proc(5), counted after the command name


def this_process() -> dict:
    """Who is running: enough for a later run on this host to tell whether we are still alive."""
    state = _pid_state(os.getpid())
    return {"host": socket.gethostname(), "pid": os.getpid(), "boot_id": _boot_id(),
            "pid_start_ticks": state[1] if state else None}


def process_gone(process: dict) -> bool | None:
    """True when the recorded process is provably gone, False when it is alive, None when this host cannot tell."""
    if process.get("host") != socket.gethostname() or not process.get("pid"):
        return None
    boot = _boot_id()
    if process.get("boot_id") and boot and process["boot_id"] != boot:
        return True  # same host name, rebooted since
    pid = int(process["pid"])
    if Path("/proc").is_dir() and boot is not None:
        state = _pid_state(pid)
        if state is None or state[0] in ("Z", "X"):
            return True
        started = process.get("pid_start_ticks")
        return started is not None and state[1] != started  # the pid now belongs to another process
    try:  # no /proc: existence only
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _age_s(iso: str | None) -> float | None:
    try:
        return (_now() - dt.datetime.fromisoformat(iso)).total_seconds() if iso else None
    except ValueError:
        return None


# ------------------------------------------------------------------ records on the folder

def record_path(run_id: str) -> str:
    return f"runs/{run_id}.json"


def unique_run_id(store: RunStore, run_id: str) -> str:
    """`run_id`, or `run_id-2`, `-3`, ... when a record of that name exists (two runs in one second, same config)."""
    candidate, n = run_id, 1
    while store.fs.exists(store.path(record_path(candidate))):
        n += 1
        candidate = f"{run_id}-{n}"
    return candidate


def write_record(store: RunStore, record: RunRecord) -> None:
    """Write runs/<run_id>.json atomically (temp file, then rename)."""
    import json

    store.write_json(record_path(record.run_id), json.loads(record.to_json()))


def read_records(store: RunStore) -> list[RunRecord]:
    """Every run record of the folder (unreadable ones skipped)."""
    base = store.path("runs")
    store.fresh(base)
    try:
        paths = sorted(p for p in store.fs.ls(base, detail=False) if p.endswith(".json"))
    except FileNotFoundError:
        return []
    out = []
    for p in paths:
        try:
            with store.fs.open(p, "r") as f:
                out.append(RunRecord.from_json(f.read()))
        except (OSError, ValueError, TypeError):
            continue
    return out


def stale_because(rec: RunRecord, stale_after_s: float) -> str | None:
    """Why the run of a `running` record is gone (see the module docstring), or None while it may be alive."""
    gone = process_gone(rec.process)
    host = rec.process.get("host", "?")
    if gone is None:  # another host: only its heartbeat can tell
        age = _age_s(rec.heartbeat_at or rec.started_at)
        if age is None or age <= stale_after_s:
            return None
        return f"no heartbeat from host {host} for {age:.0f} s (output.stale_after_s = {stale_after_s:g})"
    if not gone:
        return None
    return f"its process (pid {rec.process.get('pid')} on {host}) is gone: killed (SIGKILL, out of memory) or the host went down"


def mark_abandoned(store: RunStore, found_by: str, stale_after_s: float, log: Callable = print) -> dict[str, str]:
    """Mark `interrupted` every `running` record whose process is gone; {run id: why} of those marked."""
    marked = {}
    for rec in read_records(store):
        if rec.status != "running" or rec.run_id == found_by:
            continue
        why = stale_because(rec, stale_after_s)
        if why is None:
            continue
        rec.status = "interrupted"
        rec.finished_at = rec.heartbeat_at or rec.started_at  # the last time it was known alive
        rec.error = {"type": "ProcessGone", "message": f"found running by run {found_by} at {_now().isoformat()}; {why}"}
        write_record(store, rec)
        log(f"run {rec.run_id} was interrupted ({why}); its record now says so")
        marked[rec.run_id] = why
    return marked


def live_runs(store: RunStore, me: str, stale_after_s: float) -> list[RunRecord]:
    """The other runs whose records say `running` and whose processes may be alive: they hold the folder."""
    return [r for r in read_records(store)
            if r.status == "running" and r.run_id != me and stale_because(r, stale_after_s) is None]


def in_use_message(store: RunStore, other: RunRecord) -> str:
    """One line: which run holds the folder, where, and what to do."""
    p, age = other.process, _age_s(other.heartbeat_at or other.started_at)
    beat = f", last heartbeat {age:.0f} s ago" if age is not None else ""
    return (f"output {redact_uri(store.output_uri)} is in use by run {other.run_id} (host {p.get('host', '?')}, "
            f"pid {p.get('pid', '?')}{beat}): one live run per folder; wait for it to end or stop that process")


class _Heartbeat:
    """Rewrites the started record with a fresh heartbeat_at every `interval_s`, from a daemon thread."""

    def __init__(self, store: RunStore, record: RunRecord, interval_s: float):
        self.store, self.interval_s = store, interval_s
        self.snapshot = RunRecord.from_json(record.to_json())  # the main thread keeps changing `record`
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="run-record-heartbeat", daemon=True)
        self.thread.start()

    def _beat(self) -> None:
        while not self.stop_event.wait(self.interval_s):
            self.snapshot.heartbeat_at = _now().isoformat()
            try:
                if self.store.read_json(record_path(self.snapshot.run_id)).get("status") != "running":
                    return  # another run took the folder over (we looked dead): do not claim it back
                write_record(self.store, self.snapshot)
            except Exception:  # a missed beat is not worth failing the run; staleness needs many in a row
                pass

    def stop(self) -> None:
        """Stop and wait: no beat may land after the final record."""
        self.stop_event.set()
        self.thread.join()


class RunTracker:
    """The record of one run on its folder, from `running` to how it ended."""

    def __init__(self, store: RunStore, record: RunRecord, heartbeat_s: float, log: Callable = print):
        self.store, self.record, self.log = store, record, log
        self.heartbeat_s = heartbeat_s
        self._heartbeat: _Heartbeat | None = None
        self.ended = False

    def start(self, stale_after_s: float) -> None:
        """Take over abandoned records, write ours as `running`, then stand back (FolderInUse, our record removed)
        if another live run holds the folder; else start the heartbeat."""
        taken = mark_abandoned(self.store, self.record.run_id, stale_after_s, self.log)
        self.record.notes += [f"took the output folder over from run {run_id}: {why}" for run_id, why in taken.items()]
        self.record.status = "running"
        self.record.heartbeat_at = _now().isoformat()
        write_record(self.store, self.record)
        others = live_runs(self.store, self.record.run_id, stale_after_s)
        if others:
            self.discard()
            raise FolderInUse(in_use_message(self.store, others[0]))
        self._heartbeat = _Heartbeat(self.store, self.record, self.heartbeat_s)

    def catch_sigterm(self) -> None:
        """(Re)install the SIGTERM handler: call again after code that installs its own (ray.init does: sys.exit)."""
        replaced = _install_sigterm()
        if replaced is not None and replaced is not _on_sigterm:
            self._sigterm_before = replaced  # e.g. Ray's: what the process expects once the run is over

    def release_sigterm(self) -> None:
        _restore_sigterm(getattr(self, "_sigterm_before", None))

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None

    def end(self, status: str, error: BaseException | None = None) -> None:
        """Write the final record: status, finish time and (failed/interrupted) the error."""
        self._stop_heartbeat()
        self.record.status = status
        self.record.finished_at = _now().isoformat()
        if error is not None:
            self.record.error = {"type": type(error).__name__, "message": one_line(error)}
        write_record(self.store, self.record)
        self.ended = True

    def discard(self) -> None:
        """Remove the record: a run that did nothing leaves none."""
        self._stop_heartbeat()
        path = self.store.path(record_path(self.record.run_id))
        if self.store.fs.exists(path):
            self.store.fs.rm(path)
        self.ended = True


@contextmanager
def tracked(store: RunStore, record: RunRecord, heartbeat_s: float, stale_after_s: float,
            log: Callable = print) -> Iterator[RunTracker]:
    """Track a run: `running` at entry; on an exception `failed` (or `interrupted` for SIGINT/SIGTERM) and re-raised.

    The body ends the record itself (`tracker.end("succeeded")` or `tracker.discard()`); SIGTERM raises
    RunInterrupted in the main thread while the body runs.
    """
    record.process = this_process()
    record.command_line = redact_argv(list(sys.argv))
    for k, v in code_version().items():
        setattr(record, k, v)
    tracker = RunTracker(store, record, heartbeat_s, log)
    tracker.start(stale_after_s)
    tracker.catch_sigterm()
    try:
        yield tracker
    except BaseException as e:
        if isinstance(e, SystemExit) and e.code == signal.SIGTERM:
            # SIGTERM while ray.init ran: Ray's own handler (sys.exit(signum)) was in place
            raise_as = RunInterrupted(signal.SIGTERM)
        elif isinstance(e, KeyboardInterrupt) and not isinstance(e, RunInterrupted):
            # Ctrl-C, or our SIGTERM's RunInterrupted after Ray turned it into a plain KeyboardInterrupt (a signal
            # handler's exception inside ray.get/ray.wait comes back as KeyboardInterrupt): say which signal it was
            raise_as = RunInterrupted(_received_signal or signal.SIGINT)
        else:
            raise_as = None
        ended_by = raise_as or e
        status = "interrupted" if isinstance(ended_by, (KeyboardInterrupt, SystemExit)) else "failed"
        if not tracker.ended:
            try:
                tracker.end(status, ended_by)  # the caller reports the error itself (the CLI: one line)
            except Exception as write_error:  # never hide the run's own error behind the record's
                log(f"run {record.run_id} {status}, and its record could not be written: {write_error}")
        if raise_as is not None:
            raise raise_as from None
        raise
    finally:
        tracker._stop_heartbeat()
        tracker.release_sigterm()


_received_signal: int | None = None  # the SIGTERM our handler saw, should its exception come back as another type


def _on_sigterm(signum, frame):
    global _received_signal
    _received_signal = signum
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # once: a second SIGTERM kills as usual
    raise RunInterrupted(signum)


def _install_sigterm():
    """Make SIGTERM raise RunInterrupted; the handler it replaced. Main thread only, as Python requires."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _on_sigterm)


def _restore_sigterm(previous) -> None:
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)
