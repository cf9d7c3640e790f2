"""Start or join a Ray cluster: local by default, an existing one by address."""
import logging
import os

import ray


def init_ray(address: str | None, num_cpus: int | None) -> dict:
    """Connect (or start locally) and return the cluster's resources."""
    if ray.is_initialized():
        return ray.cluster_resources()
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    kwargs = dict(logging_level=logging.WARNING, log_to_driver=True, include_dashboard=False)
    if address:
        ray.init(address=address, **kwargs)
    else:
        # "local": always a fresh cluster, never whichever `ray start` cluster ran last on this machine
        ray.init(address="local", num_cpus=num_cpus, **kwargs)
    return ray.cluster_resources()


def shutdown_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()
