"""``python -m nodulekit.train`` / ``torchrun --nproc_per_node=N -m nodulekit.train``.

Same options as ``nodulekit train`` (both come from `TrainConfig`). Under torchrun each process
joins a process group (gloo on the CPU, nccl on CUDA), trains on its own shard, and rank 0
writes the run folder.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from nodulekit.errors import NodulekitError
    from nodulekit.train import distributed as ddp
    from nodulekit.train.config import parse_config
    from nodulekit.train.pipeline import train

    config = parse_config(argv, prog="python -m nodulekit.train")
    try:
        result = train(config)
    except NodulekitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    info = ddp.init_distributed()
    if info.is_main:
        print(f"run folder: {result.run_dir}")
        best = "none" if result.best_epoch is None else result.best_epoch + 1  # from 1
        print(f"best epoch: {best}  best val AUC: {result.best_val_auc:.4f}")
        if result.test_metrics:
            m = result.test_metrics
            print(
                f"test AUC: {m['auc']:.4f}  AP: {m['ap']:.4f}  at the validation's threshold "
                f"{m['threshold']:.3f}: recall {m['recall_best']:.3f}, precision "
                f"{m['precision_best']:.3f}"
            )
    ddp.cleanup(info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
