"""Multi-GPU and multi-node runs: `distill sft` re-launches itself under `accelerate launch`.

    distill sft recipes/qwen7b.yaml        # launch: {accelerate_config: recipes/accelerate/zero3.yaml, num_processes: 8}
    # -> accelerate launch --config_file recipes/accelerate/zero3.yaml --num_processes 8 ... -m distill sft OUT/recipe.yaml

The resolved recipe is written to `OUTPUT_DIR/recipe.yaml` and every process reads it, so what each rank trains is
exactly what the manifest records. Inside the launch (WORLD_SIZE is set) nothing is re-launched. Multi-node: run
the same command on every node with `--set launch.machine_rank=N --set launch.main_process_ip=HOST` (see
recipes/slurm/). The accelerate config is checked with accelerate's own parser before anything starts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from distill.core.errors import DistillError, Interrupted
from distill.core.log import get_logger
from distill.core.manifest import read_manifest
from distill.core.paths import ROOT

LAUNCHED = "DISTILL_LAUNCHED"  # set in the launched processes, so they never launch again
RANK_SHUTDOWN_TIMEOUT_S = 900  # seconds the ranks get after SIGTERM to save a checkpoint
SHARDING = {"NO": "none", "MULTI_GPU": "none", "MULTI_CPU": "none", "FSDP": "fsdp"}


def read_accelerate_config(path: str | None) -> dict[str, Any]:
    """The accelerate config as a dict, validated by accelerate (unknown keys, bad distributed_type); {} for none."""
    import yaml

    if path is None:
        return {}
    file = Path(path).expanduser()
    if not file.is_file():
        raise DistillError(f"launch.accelerate_config '{path}' not found; pass one of recipes/accelerate/"
                           "{single_gpu,ddp,fsdp,zero3}.yaml or your own accelerate config file")
    try:
        from accelerate.commands.config.config_args import ClusterConfig

        ClusterConfig.from_yaml_file(str(file))
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError:
        raise DistillError(f"accelerate config '{path}' is not valid YAML; fix its syntax") from None
    except (ValueError, TypeError, AttributeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise DistillError(f"accelerate config '{path}' is invalid: {first}; compare with recipes/accelerate/"
                           "zero3.yaml or run `accelerate config`") from None
    if not isinstance(data, dict):
        raise DistillError(f"accelerate config '{path}' must be a mapping of keys to values")
    return data


def sharding(config: dict[str, Any]) -> str:
    """none, zero1, zero2, zero3 or fsdp: what the memory estimate divides over the GPUs."""
    kind = str(config.get("distributed_type", "NO")).upper()
    if kind == "DEEPSPEED":
        return f"zero{(config.get('deepspeed_config') or {}).get('zero_stage', 0)}"
    return SHARDING.get(kind, "none")


def total_processes(launch: Any) -> int:
    return launch.num_processes * launch.num_machines


def inside_launcher() -> bool:
    return LAUNCHED in os.environ or "WORLD_SIZE" in os.environ


def needs_relaunch(launch: Any, config: dict[str, Any]) -> bool:
    """More than one process, or a config whose sharding (DeepSpeed, FSDP) only `accelerate launch` applies."""
    if inside_launcher():
        return False
    return total_processes(launch) > 1 or str(config.get("distributed_type", "NO")).upper() in ("DEEPSPEED", "FSDP")


def relaunch(recipe_file: Path, launch: Any, stage: str = "sft") -> None:
    """Run `accelerate launch ... -m distill STAGE RECIPE_FILE` and wait; a failed launch is a DistillError."""
    if not launch.accelerate_config:
        raise DistillError("more than one process needs launch.accelerate_config (recipes/accelerate/ddp.yaml, "
                           "fsdp.yaml or zero3.yaml)")
    cmd = launch_command(recipe_file, launch, stage)
    get_logger().info("launching: " + " ".join(cmd[2:]))
    env = {**os.environ, LAUNCHED: "1", "PYTHONPATH": os.pathsep.join(filter(None, [package_root(), os.environ.get("PYTHONPATH")]))}
    # torch's launcher SIGKILLs ranks 30 s after passing SIGTERM on, too soon to write a large checkpoint
    env.setdefault("TORCH_ELASTIC_SHUTDOWN_TIMEOUT", str(RANK_SHUTDOWN_TIMEOUT_S))
    code, signum = call_forwarding_sigterm(cmd, env)
    if signum is None and code != 0 and (read_manifest(recipe_file.parent) or {}).get("status") == "interrupted":
        signum = signal.SIGTERM  # the scheduler signalled the ranks, not this process
    if signum is not None:
        raise Interrupted(signum, f"the training processes stopped on {signal.Signals(signum).name} (exit status "
                          f"{code}) after saving a checkpoint; re-run the same command to resume from it")
    if code != 0:
        raise DistillError(f"the training processes failed (exit status {code}); see the log above. Re-running the "
                           "same command resumes from the last checkpoint")


def call_forwarding_sigterm(cmd: list[str], env: dict[str, str]) -> tuple[int, int | None]:
    """Run `cmd` and wait; a SIGTERM to this process is passed on to it (and the wait goes on, so the ranks
    can save their checkpoint). Returns the exit status and the signal received, if any."""
    received: list[int] = []
    proc = subprocess.Popen(cmd, env=env)

    def forward(signum: int, frame: Any) -> None:
        received.append(signum)
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        code = proc.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return code, (received[0] if received else None)


def launch_command(recipe_file: Path, launch: Any, stage: str = "sft") -> list[str]:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(launch.accelerate_config),
           "--num_processes", str(total_processes(launch)), "--num_machines", str(launch.num_machines),
           "--machine_rank", str(launch.machine_rank), "--main_process_port", str(launch.main_process_port)]
    if launch.num_machines > 1:
        if not launch.main_process_ip:
            raise DistillError("launch.num_machines > 1 needs launch.main_process_ip (the address of machine rank 0)")
        cmd += ["--main_process_ip", launch.main_process_ip]
    return cmd + ["-m", "distill", stage, str(recipe_file)]


def package_root() -> str:
    """The directory holding the distill package, so the launched processes import this same code."""
    return str(ROOT)
