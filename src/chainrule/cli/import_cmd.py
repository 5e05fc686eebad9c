"""``chainrule import``: a PyTorch ``state_dict`` (safetensors) as a chainrule checkpoint."""

from __future__ import annotations

import argparse

from .common import SUMMARIES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help=SUMMARIES["import"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Read a PyTorch state_dict saved with safetensors.torch.save_file from the\n"
        "networks in the README (section 'PyTorch interop') and write a chainrule checkpoint\n"
        "that 'chainrule evaluate' and 'chainrule predict' read. The architecture comes from\n"
        "the file (when 'chainrule export' wrote it) or from the parameter shapes.",
        epilog="examples:\n  chainrule import lenet5.safetensors --out runs/from-torch\n"
        "  chainrule evaluate runs/from-torch",
    )
    p.add_argument("state_dict", help="the PyTorch state_dict file (.safetensors)")
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="folder for checkpoint.safetensors (or a .safetensors file name)",
    )
    p.add_argument(
        "--input-shape",
        type=int,
        nargs=3,
        metavar=("C", "H", "W"),
        default=None,
        help="the image shape (default: from the file, or 1 x s x s for s^2 input features)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing checkpoint")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from chainrule.train import import_torch

    if args.input_shape is not None and min(args.input_shape) < 1:
        raise ValueError(f"--input-shape needs three positive integers, got {args.input_shape}")
    model, arch = import_torch(
        args.state_dict, args.out, input_shape=args.input_shape, overwrite=args.force
    )
    shape = "x".join(map(str, arch["input_shape"]))
    print(
        f"read {args.state_dict}: {arch['name']} ({model.num_parameters():,} parameters) "
        f"for {shape} images, {arch['classes']} classes"
    )
    print(f"wrote a chainrule checkpoint to {args.out}")
    return 0
