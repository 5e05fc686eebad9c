"""``chainrule export``: a trained checkpoint as a PyTorch ``state_dict`` (safetensors)."""

from __future__ import annotations

import argparse

from .common import SUMMARIES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help=SUMMARIES["export"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write the parameters of a checkpoint from 'chainrule train' under the\n"
        "names PyTorch's nn.Sequential of the same layers uses (no optimiser state), so that\n"
        "net.load_state_dict(safetensors.torch.load_file(OUT)) loads them into the network\n"
        "defined in the README (section 'PyTorch interop').",
        epilog="examples:\n  chainrule export runs/mlp-mnist --torch mlp.safetensors\n"
        "  chainrule export runs/cnn-mnist/checkpoint.safetensors --torch lenet5.safetensors",
    )
    p.add_argument("checkpoint", help="checkpoint.safetensors (or the run folder holding it)")
    p.add_argument(
        "--torch",
        required=True,
        metavar="OUT",
        help="the PyTorch state_dict file to write (.safetensors)",
    )
    p.add_argument("--force", action="store_true", help="overwrite OUT if it exists")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from chainrule.train import export_torch, load_checkpoint

    out = Path(args.torch)
    if out.suffix != ".safetensors":
        raise ValueError(f"--torch {out}: the file name must end in .safetensors")
    if out.is_dir():
        raise ValueError(f"--torch {out} is a folder: give a file name ending in .safetensors")
    if out.exists() and not args.force:
        raise FileExistsError(f"{out} exists: pass --force to overwrite it")
    ckpt = load_checkpoint(args.checkpoint)  # validated before anything is written
    if ckpt.path is not None and out.resolve() == ckpt.path.resolve():
        raise ValueError(f"--torch {out} is the checkpoint itself: choose another file")
    export_torch(ckpt, out)
    arch = ckpt.architecture
    n = sum(v.size for v in ckpt.model_state.values())
    print(f"wrote {out}: {arch.get('name')} ({n:,} parameters, {len(ckpt.model_state)} tensors)")
    print("load it in PyTorch: net.load_state_dict(safetensors.torch.load_file(OUT))")
    return 0
