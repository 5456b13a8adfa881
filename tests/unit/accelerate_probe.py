"""Validate accelerate config files with accelerate's own code (run as a script: it imports torch).

    python tests/unit/accelerate_probe.py CONFIG.yaml [...]

For each file: accelerate's config loader (unknown top-level keys raise), every nested
fsdp_config/deepspeed_config key must be an `accelerate launch` argument (the launcher
copies them onto its arguments without checking), the launcher's own validation, the
environment it would hand the workers, and the FSDP/DeepSpeed plugin the workers would
build from that environment.  Prints one JSON line per file: {"path", "ok", "error", ...}.
"""

from __future__ import annotations

import json
import sys


def probe(path: str) -> dict:
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import DeepSpeedPlugin, FullyShardedDataParallelPlugin, patch_environment
    from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

    config = load_config_from_file(path)
    parser = launch_command_parser()
    known = vars(parser.parse_args(["script.py"]))
    for section in ("fsdp_config", "deepspeed_config"):
        unknown = [k for k in getattr(config, section) or {} if k not in known]
        if unknown:
            raise ValueError(f"{section} keys accelerate launch does not know: {unknown}")
    args = parser.parse_args(["--config_file", path, "--module", "runners.launch", "run_dir"])
    args, _, from_config = _validate_launch_command(args)
    out = {"distributed_type": str(config.distributed_type), "mixed_precision": args.mixed_precision}
    if args.use_fsdp:
        with patch_environment(**prepare_multi_gpu_env(args)):
            plugin = FullyShardedDataParallelPlugin()
        out.update(fsdp_version=plugin.fsdp_version, reshard_after_forward=plugin.reshard_after_forward,
                   offload=type(plugin.cpu_offload).__name__ == "CPUOffloadPolicy", wrap=plugin.transformer_cls_names_to_wrap,
                   state_dict=str(plugin.state_dict_type), ram_efficient=plugin.cpu_ram_efficient_loading)
    elif args.use_deepspeed:
        fields = list(config.deepspeed_config) + (["mixed_precision"] if from_config else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)  # as launch_command does
        _, env = prepare_deepspeed_cmd_env(args)
        with patch_environment(**env):
            plugin = DeepSpeedPlugin()
        out.update(zero_stage=plugin.zero_stage, offload_optimizer=plugin.offload_optimizer_device,
                   offload_param=plugin.offload_param_device, zero3_init=plugin.zero3_init_flag)
    return out


def main(paths: list[str]) -> None:
    for path in paths:
        try:
            row = {"path": path, "ok": True, **probe(path)}
        except Exception as exc:  # noqa: BLE001 - the test reads the reason
            row = {"path": path, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(row, default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
