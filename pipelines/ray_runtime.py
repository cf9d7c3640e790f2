"""Start or join a Ray cluster: local by default, an existing one by address; say which one it was.

Joining checks the address before `ray.init` (which retries for minutes on an
address that does not answer): a TCP connect within `connect_timeout_s`, then
one GCS request, which also tells a token-authenticated cluster (Ray 2.60 `ray
start --head` enables token auth by default) from one we have no token for.
"""
import logging
import os
import socket

import ray

AUTH_HINT = ("the cluster uses token authentication and this process has no token for it: copy the head's "
             "~/.ray/auth_token here, or set RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH), and RAY_AUTH_MODE=token")


class ClusterError(RuntimeError):
    """The Ray cluster cannot be joined; the message is one line a person understands."""


def resolve_address(address: str) -> tuple[str, str]:
    """(address to join, where it came from): 'auto' becomes an explicit address, never a silent guess."""
    if address != "auto":
        return address, "given"
    from ray._private.services import find_bootstrap_address

    env = os.environ.get("RAY_ADDRESS")
    if env:
        return env, "auto: RAY_ADDRESS"
    found = find_bootstrap_address(None)  # the cluster `ray start` on this machine recorded last
    if not found:
        raise ClusterError("--ray-address auto: no RAY_ADDRESS and no `ray start` cluster on this machine; "
                           "give the head's address (host:6379)")
    return found, "auto: newest `ray start` cluster on this machine"


def _use_token_if_available() -> bool:
    """Turn on token auth for this process when a token is at hand and RAY_AUTH_MODE is unset
    (Ray does this when it starts a cluster, but not when it joins one)."""
    from ray._private.authentication import authentication_token_setup as auth

    logger = logging.getLogger(auth.__name__)
    level = logger.level
    logger.setLevel(logging.ERROR)  # its "token authentication is enabled" warning is noise when joining
    try:
        return auth.maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    finally:
        logger.setLevel(level)


def check_reachable(address: str, timeout_s: float) -> None:
    """Fail within `timeout_s`, with one line, when the head's GCS does not answer or refuses us."""
    from ray._private.services import parse_address

    parsed = parse_address(address)
    if parsed is None:
        raise ClusterError(f"Ray address {address!r} is not host:port")
    host, port = parsed
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise ClusterError(f"cannot reach a Ray cluster at {address} within {timeout_s:g} s: "
                           f"{e.strerror or e} (is `ray start --head` running there?)") from None
    from ray._raylet import GcsClient

    try:
        GcsClient(address=address).get_all_node_info(timeout=timeout_s)
    except ray.exceptions.AuthenticationError:
        raise ClusterError(f"Ray cluster at {address} refused us: {AUTH_HINT}") from None
    except Exception as e:  # the port answers but is not a Ray GCS, or the GCS is not ready
        raise ClusterError(f"{address} does not answer as a Ray cluster: {' '.join(str(e).split())[:200]}") from None


def init_ray(address: str | None, num_cpus: int | None, connect_timeout_s: float = 20.0, worker_niceness: int = 0,
             observability: bool = False) -> dict:
    """Connect (or start locally); returns what the run record says about the cluster.

    `worker_niceness` and `observability` apply to a cluster started here; a joined cluster
    runs with the settings its nodes were started with (e.g. `RAY_worker_niceness=0 ray start ...`).
    """
    how = "already connected"
    if not ray.is_initialized():
        os.environ.setdefault("RAY_DEDUP_LOGS", "1")
        kwargs = dict(logging_level=logging.WARNING, log_to_driver=True, include_dashboard=False)
        if address:
            target, how = resolve_address(address)
            if not target.startswith("ray://"):  # Ray Client addresses go through the client server instead
                _use_token_if_available()
                check_reachable(target, connect_timeout_s)
            ray.init(address=target, **kwargs)
        else:
            # "local": always a fresh cluster, never whichever `ray start` cluster ran last on this machine
            how = "local (started for this run)"
            system = {"worker_niceness": worker_niceness}
            if not observability:  # per-task events, metrics and event stats cost driver and raylet CPU all run long
                system.update(enable_metrics_collection=False, task_events_report_interval_ms=0, event_stats=False)
            ray.init(address="local", num_cpus=num_cpus, _system_config=system, **kwargs)
    return cluster_info(how)


def cluster_info(how: str) -> dict:
    """Address, ids and size of the connected cluster, for the run record."""
    ctx = ray.get_runtime_context()
    resources = ray.cluster_resources()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    info = {"how": how, "ray_version": ray.__version__, "job_id": ctx.get_job_id(), "driver_node_id": ctx.get_node_id(),
            "nodes": len(nodes), "cpus": resources.get("CPU", 0.0), "gpus": resources.get("GPU", 0.0)}
    try:
        info["address"] = ctx.gcs_address
        info["cluster_id"] = ray._private.worker.global_worker.node.cluster_id.hex()
    except Exception:  # Ray Client connections have no local node object
        info.setdefault("address", None)
    return info


def shutdown_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()
