"""``chainrule evaluate``: accuracy, per-class accuracy and surrogate error of a checkpoint."""

from __future__ import annotations

import argparse

from .common import SUMMARIES


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help=SUMMARIES["evaluate"],
        description="Load a checkpoint written by 'chainrule train' and report, on a dataset "
        "split: the accuracy (1 - actual error, top-1), the surrogate error (mean softmax "
        "cross-entropy), the accuracy of every class and the confusion matrix.",
    )
    p.add_argument("checkpoint", help="checkpoint.safetensors (or the run folder holding it)")
    p.add_argument(
        "--dataset",
        choices=("digits", "mnist"),
        default=None,
        help="default: the dataset the checkpoint was trained on",
    )
    p.add_argument(
        "--split",
        choices=("test", "train"),
        default="test",
        help="default: test (for a run trained with --split-test: the test images it held out; "
        "train: the ones it trained on)",
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="folder with the MNIST IDX files (default: $CHAINRULE_DATA/mnist when "
        "CHAINRULE_DATA is set, else $XDG_CACHE_HOME/chainrule/mnist or ~/.cache/chainrule/mnist)",
    )
    p.add_argument("--no-download", action="store_true", help="fail instead of downloading MNIST")
    p.add_argument(
        "--batch-size",
        type=int,
        default=1000,
        metavar="N",
        help="images per forward pass (default 1000)",
    )
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from chainrule.train import evaluate, load_model
    from chainrule.train.checkpoint import require_finite
    from chainrule.train.metrics import strict_json
    from chainrule.train.run import load_split

    model, ckpt = load_model(args.checkpoint)
    require_finite(ckpt)
    for note in ckpt.notes:
        print(f"note: {note}", file=sys.stderr)
    dataset = args.dataset or ckpt.hyperparameters.get("dataset")
    if dataset is None:
        raise ValueError(f"{ckpt.path} does not name its dataset: pass --dataset")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    hp = ckpt.hyperparameters
    # a run trained on part of its dataset's test set is evaluated on the images it held out
    split_test = hp.get("split_test") if dataset == hp.get("dataset") else None
    split_seed = hp.get("split_seed", 0)
    data = load_split(
        dataset,
        args.split,
        args.data_dir,
        download=not args.no_download,
        split_test=split_test,
        split_seed=split_seed,
    )
    want = tuple(ckpt.architecture["input_shape"])
    if data.image_shape != want:
        raise ValueError(
            f"the network takes images of shape {want}, {dataset} has {data.image_shape}"
        )
    ev = evaluate(model, data, args.batch_size)
    if args.json:
        summary = {
            "checkpoint": str(ckpt.path),
            "dataset": dataset,
            "split": args.split,
            **({"split_test": split_test, "split_seed": split_seed} if split_test else {}),
            "samples": len(data),
            **ev.summary(),
        }
        print(strict_json(summary))  # a NaN or inf loss is null: standard JSON
        return 0
    arch = ckpt.architecture
    print(
        f"{ckpt.path}: {arch['name']} ({model.num_parameters():,} parameters), "
        f"{ckpt.epoch} epoch(s) of training on {ckpt.hyperparameters.get('dataset')}"
    )
    wrong = int((ev.predictions != ev.labels).sum())
    part = ""
    if split_test is not None:
        part = (
            f" (trained on {split_test:,} of the test set's images, seed {split_seed})"
            if args.split == "train"
            else f" (the images the --split-test {split_test} run held out, seed {split_seed})"
        )
    print(f"{dataset} {args.split} set{part}, {len(data):,} images")
    print(
        f"  accuracy         {100 * ev.accuracy:6.2f}%   (actual error {100 * ev.error:.2f}%: "
        f"{wrong} wrong)"
    )
    print(f"  surrogate error  {ev.loss:8.4f}   (mean cross-entropy)")
    print("\nper-class accuracy")
    print("  class  images  accuracy")
    totals = ev.confusion.sum(axis=1)
    for k, (n, acc) in enumerate(zip(totals, ev.per_class_accuracy, strict=True)):
        print(f"  {k:>5}  {n:>6}  " + ("       -" if n == 0 else f"{100 * acc:7.2f}%"))
    print("\nconfusion matrix (rows: true class, columns: predicted class)")
    k = ev.confusion.shape[0]
    w = max(4, len(str(int(ev.confusion.max()))) + 1)
    print("      " + "".join(f"{j:>{w}}" for j in range(k)))
    for i in range(k):
        print(f"  {i:>3} " + "".join(f"{int(c):>{w}}" for c in ev.confusion[i]))
    return 0
