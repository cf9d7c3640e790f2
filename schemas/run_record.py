"""The run record: one JSON per run with config, hash, versions, counts, timings, and how the run ended."""
import dataclasses
import json
from dataclasses import asdict, dataclass, field

RUN_RECORD_VERSION = "1.1"  # 1.1: status running/failed/interrupted, error, process, code version, command line

# running: written when the run starts; succeeded: tables written; failed: an exception ended it (see `error`);
# interrupted: SIGINT/SIGTERM, or found `running` by a later run after its process was gone (SIGKILL, lost host).
# nothing_to_do: never written (a run that did nothing leaves no record).
STATUSES = ("running", "succeeded", "failed", "interrupted", "nothing_to_do")


@dataclass
class RunRecord:
    run_id: str
    input_uri: str  # credentials in the URI are redacted
    output_uri: str
    started_at: str  # ISO 8601, UTC
    config: dict  # the effective config (filters: the merged rule list), storage options redacted
    config_hash: str
    versions: dict  # package -> version
    finished_at: str | None = None
    status: str = "running"  # one of STATUSES
    counts: dict = field(default_factory=dict)  # videos, clips, curated, errors, ...
    timings: dict = field(default_factory=dict)  # stage -> wall seconds
    not_configured: list = field(default_factory=list)  # e.g. "aesthetic: not configured"
    notes: list = field(default_factory=list)
    cluster: dict = field(default_factory=dict)  # the Ray cluster used: how, address, cluster_id, job_id, nodes, cpus, gpus
    error: dict | None = None  # failed/interrupted: {"type": exception class, "message": one line}
    process: dict = field(default_factory=dict)  # host, pid, boot_id, pid_start_ticks: who runs it (see pipelines/run_records.py)
    heartbeat_at: str | None = None  # ISO 8601, UTC: last sign of life of a running run
    project_version: str | None = None  # importlib.metadata version of vidcurate
    git_commit: str | None = None  # commit of the source checkout that ran, when it is a git checkout
    git_dirty: bool | None = None  # the checkout had uncommitted changes to tracked files
    command_line: list = field(default_factory=list)  # sys.argv, secrets redacted
    record_version: str = RUN_RECORD_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> "RunRecord":
        data = json.loads(text)
        known = {f.name for f in dataclasses.fields(cls)} - {"record_version"}
        return cls(**{k: v for k, v in data.items() if k in known})  # keys of newer records are ignored
