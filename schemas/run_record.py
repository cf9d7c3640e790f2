"""The run record: one JSON per run with config, hash, versions, counts, timings."""
import json
from dataclasses import asdict, dataclass, field

RUN_RECORD_VERSION = "1.0"


@dataclass
class RunRecord:
    run_id: str
    input_uri: str
    output_uri: str
    started_at: str  # ISO 8601, UTC
    config: dict
    config_hash: str
    versions: dict  # package -> version
    finished_at: str | None = None
    status: str = "running"  # running | succeeded | failed | nothing_to_do
    counts: dict = field(default_factory=dict)  # videos, clips, curated, errors, ...
    timings: dict = field(default_factory=dict)  # stage -> wall seconds
    not_configured: list = field(default_factory=list)  # e.g. "aesthetic: not configured"
    notes: list = field(default_factory=list)
    cluster: dict = field(default_factory=dict)  # the Ray cluster used: how, address, cluster_id, job_id, nodes, cpus, gpus
    record_version: str = RUN_RECORD_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> "RunRecord":
        data = json.loads(text)
        data.pop("record_version", None)
        return cls(**data)
