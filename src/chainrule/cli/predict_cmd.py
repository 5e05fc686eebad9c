"""``chainrule predict``: classify PNG images or IDX images with a trained checkpoint."""

from __future__ import annotations

import argparse

from .common import SUMMARIES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help=SUMMARIES["predict"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Print the predicted digit and the top-3 class probabilities of each image.\n\n"
        "Images follow MNIST's convention: a WHITE digit on a BLACK background. A dark digit\n"
        "on white paper needs --invert. A PNG (or any format Pillow reads) is converted to\n"
        "grayscale and prepared as the training digits were: cropped to the ink, scaled and\n"
        "centred. MNIST (28x28): the digit's longer side becomes 20 pixels (aspect ratio\n"
        "kept, area-averaged) and its centre of mass lands on the centre of the 28x28 image;\n"
        "8x8 digits: the digit fills the frame, its bounding box centred. --no-center only\n"
        "resizes the whole picture. An IDX file (e.g. t10k-images-idx3-ubyte.gz; already\n"
        "prepared) holds many images: pick them with --index.",
        epilog="examples:\n"
        "  chainrule predict runs/mlp-mnist/checkpoint.safetensors seven.png\n"
        "  chainrule predict runs/mlp-mnist t10k-images-idx3-ubyte.gz --index 0 1 2\n"
        "  chainrule predict runs/mlp-digits scan.png --invert\n"
        "  chainrule predict runs/mlp-mnist seven.png --no-center   # a picture prepared already",
    )
    p.add_argument("checkpoint", help="checkpoint.safetensors (or the run folder holding it)")
    p.add_argument(
        "images", nargs="+", metavar="IMAGE", help="PNG/JPEG image(s) or an IDX image file"
    )
    p.add_argument(
        "--index",
        type=int,
        nargs="+",
        default=[0],
        metavar="I",
        help="which images of an IDX file (default: 0)",
    )
    p.add_argument(
        "--invert",
        action="store_true",
        help="invert the gray levels (for a dark digit on a light background)",
    )
    p.add_argument(
        "--no-center",
        dest="center",
        action="store_false",
        help="PNG: resize the whole picture as it is (no cropping, scaling or centring)",
    )
    p.add_argument("--top", type=int, default=3, metavar="K", help="show the K likeliest classes")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from chainrule.train import load_model
    from chainrule.train.checkpoint import require_finite
    from chainrule.train.predict import classify, is_idx, load_idx_images, load_png, looks_inverted

    if args.top < 1:
        raise ValueError(f"--top must be >= 1, got {args.top}")
    model, ckpt = load_model(args.checkpoint)
    require_finite(ckpt)
    for note in ckpt.notes:
        print(f"note: {note}", file=sys.stderr)
    c, h, w = ckpt.architecture["input_shape"]
    if c != 1:
        raise ValueError(f"the network takes {c}-channel images; predict handles grayscale only")
    for name in args.images:
        path = Path(name)
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a folder, not an image file: name the image(s)")
        if not path.is_file():
            raise FileNotFoundError(f"image {path} does not exist")
        if is_idx(path):
            images = load_idx_images(path, (h, w), args.index, invert=args.invert)
            labels = [f"{path.name}[{i}]" for i in args.index]
            pictures = images
        else:
            images = load_png(path, (h, w), invert=args.invert, center=args.center)
            labels = [path.name]
            # the note judges the whole picture: centring a light page would hide its brightness
            plain = args.center and not args.invert
            pictures = load_png(path, (h, w), center=False) if plain else images
        predictions = classify(model, images)
        for label, picture, pred in zip(labels, pictures, predictions, strict=True):
            top = ", ".join(f"{k}: {p:.3f}" for k, p in pred.top(args.top))
            print(f"{label}: {pred.label}   (p = {pred.confidence:.3f}; top {args.top}: {top})")
            if not args.invert and looks_inverted(picture):
                print(
                    f"  note: {label} is mostly bright; the network expects a white digit on "
                    "black. If yours is dark on light, add --invert"
                )
    return 0
