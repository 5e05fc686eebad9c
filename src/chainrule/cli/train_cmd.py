"""``chainrule train``: train the lecture's network on digits or MNIST, with progress, outputs."""

from __future__ import annotations

import argparse

from .common import SUMMARIES, RegistryChoice

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing (~10 ms)
if TYPE_CHECKING:  # for annotations only: the command line starts without the library
    from pathlib import Path

    from chainrule.train import TrainConfig

# hyper-parameter flags whose default (None) means "the dataset's default / the checkpoint's"
_HYPER = (
    "model",
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "momentum",
    "nesterov",
    "weight_decay",
    "schedule",
    "step_size",
    "gamma",
    "min_lr",
    "hidden",
    "seed",
    "shift",
    "split_test",
    "split_seed",
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help=SUMMARIES["train"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a digit classifier: forward propagation, softmax cross-entropy, "
        "back propagation and an SGD (or Adam) weight update per mini-batch. After each epoch "
        "the surrogate error (cross-entropy) and the actual error (top-1) are printed for "
        "training and test data. --out receives checkpoint.safetensors (rewritten every epoch), "
        "metrics.json, curves.png, confusion.png and misclassified.png. Ctrl-C saves a "
        "checkpoint and stops (so does SIGTERM, exit code 143); --resume continues exactly "
        "where it stopped. Everything is checked before the first epoch (settings, data, that "
        "the network fits the data and --max-memory, that --out can be written); a run whose "
        "loss or parameters become NaN or inf stops with an error, keeping the last finite "
        "checkpoint. Under `mpiexec -n N` the N processes share every batch (data-parallel, "
        "one BLAS thread each by default) and rank 0 writes the outputs.",
        epilog="examples:\n"
        "  chainrule train --dataset digits                 # offline, ~98% in seconds\n"
        "  chainrule train --dataset mnist --epochs 20      # the lecture's 784-800-10 MLP\n"
        "  chainrule train --model cnn --dataset mnist      # LeNet-5\n"
        "  chainrule train --dataset mnist --resume         # continue runs/mlp-mnist\n"
        "  mpiexec -n 2 chainrule train --dataset digits    # 2 processes, same result\n"
        "defaults (SGD, momentum 0.9, cosine learning-rate schedule):\n"
        "  digits:     30 epochs, batch 32, lr 0.3\n"
        "  mnist mlp:  20 epochs, batch 64, lr 0.1, shifts of up to 1 px (99.0%)\n"
        "  mnist cnn:  20 epochs, batch 64, lr 0.05, weight decay 5e-4, shifts of up to 2 px "
        "(99.6%)",
    )
    p.add_argument(
        "--model",
        choices=("mlp", "cnn"),
        default=None,
        help="mlp: x5 = H3 ReLU(H0 x0 + h1) + h4 (default); cnn: LeNet-5 (28x28 only)",
    )
    p.add_argument(
        "--dataset",
        choices=("digits", "mnist"),
        default="digits",
        help="digits: scikit-learn's 8x8 digits, offline (default); mnist: 28x28",
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="folder with the MNIST IDX files (default: $CHAINRULE_DATA/mnist when "
        "CHAINRULE_DATA is set, else $XDG_CACHE_HOME/chainrule/mnist or ~/.cache/chainrule/mnist; "
        "missing files are downloaded)",
    )
    p.add_argument(
        "--no-download", action="store_true", help="fail instead of downloading missing MNIST files"
    )
    p.add_argument("--epochs", type=int, default=None, metavar="N", help="epochs to train")
    p.add_argument("--batch-size", type=int, default=None, metavar="N", help="mini-batch size")
    p.add_argument("--lr", type=float, default=None, metavar="ALPHA", help="learning rate alpha_0")
    p.add_argument(
        "--optimizer",
        action=RegistryChoice,
        registry=("chainrule.optim", "OPTIMIZERS"),
        default=None,
        metavar="NAME",
        help="sgd or adam, a name of chainrule.optim.OPTIMIZERS (default: sgd)",
    )
    p.add_argument(
        "--momentum", type=float, default=None, metavar="MU", help="SGD momentum (default 0.9)"
    )
    p.add_argument(
        "--nesterov", action="store_const", const=True, default=None, help="Nesterov momentum"
    )
    p.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        metavar="WD",
        help="L2 weight decay: de/dh += WD h (default 0; 5e-4 for the cnn on mnist)",
    )
    p.add_argument(
        "--schedule",
        choices=("constant", "step", "cosine"),
        default=None,
        help="learning-rate schedule over the epochs (default: cosine)",
    )
    p.add_argument(
        "--step-size",
        type=int,
        default=None,
        metavar="N",
        help="step schedule: multiply the learning rate by --gamma every N epochs",
    )
    p.add_argument("--gamma", type=float, default=None, help="step schedule factor (default 0.1)")
    p.add_argument(
        "--min-lr", type=float, default=None, help="cosine schedule: final learning rate"
    )
    p.add_argument(
        "--hidden",
        type=int,
        default=None,
        metavar="N",
        help="mlp hidden width (default 800, the lecture's)",
    )
    p.add_argument(
        "--seed", type=int, default=None, help="seed of initialisation and shuffling (default 0)"
    )
    p.add_argument(
        "--shift",
        type=int,
        default=None,
        metavar="PX",
        help="augmentation: move each training image by a random offset of up to PX pixels "
        "per axis, seeded like the shuffling (default: see below)",
    )
    p.add_argument(
        "--split-test",
        type=int,
        default=None,
        metavar="N",
        help="train on N images of the dataset's test set and test on the others, for a "
        "machine that holds only the test files (mnist --split-test 8000: the README's "
        "8,000 / 2,000); the images are drawn by a permutation seeded by --split-seed",
    )
    p.add_argument(
        "--split-seed",
        type=int,
        default=None,
        metavar="S",
        help="seed of the permutation that draws --split-test's images (default 0): "
        "numpy.random.default_rng(S).permutation(n), the first N train",
    )
    p.add_argument(
        "--out", metavar="DIR", default=None, help="output folder (default: runs/<model>-<dataset>)"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from --out's checkpoint (hyper-parameters come from it; "
        "only --epochs may grow)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh even if --out already holds a run (its files are replaced only once "
        "the new run has written its first checkpoint)",
    )
    p.add_argument(
        "--max-memory",
        type=float,
        default=None,
        metavar="GIB",
        help="refuse a network whose parameters, gradients and optimizer state need more than "
        "GIB gibibytes (default: the memory available now)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="BLAS threads per process (default: all cores; 1 per rank under mpiexec -n N>1)",
    )
    p.add_argument(
        "--parallel",
        choices=("auto", "blas", "batch"),
        default="auto",
        help="how the threads share a step: blas runs each matrix product on all of them; "
        "batch splits every mini-batch over them (slices of >= 16 samples), one BLAS thread "
        "each, so that the work between the products runs in parallel too (the same gradients "
        "up to float rounding); auto: batch for the CNN (at most 4 threads), blas for the MLP "
        "(measured faster; default: %(default)s)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-plots", action="store_true", help="do not write the PNG plots")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from chainrule.backend import tune_allocator
    from chainrule.train import TrainConfig, distributed, load_checkpoint, run_training
    from chainrule.train.run import CHECKPOINT

    world = distributed.world()  # first: under mpiexec every rank must reach MPI's start-up
    if args.threads is not None:
        distributed.set_blas_threads(args.threads)
    given = {k: getattr(args, k) for k in _HYPER if getattr(args, k) is not None}
    model = given.get("model", "mlp")
    out = Path(args.out) if args.out else Path("runs") / f"{model}-{args.dataset}"
    ckpt_path = out / CHECKPOINT
    if args.resume and args.overwrite:
        raise ValueError("--resume and --overwrite contradict each other")
    if not world.is_root:
        pass  # distributed: rank 0 checks the output folder (it may not exist on other hosts)
    elif args.resume:
        ckpt = load_checkpoint(ckpt_path)
        saved = ckpt.hyperparameters
        if saved.get("dataset") != args.dataset:
            raise ValueError(
                f"{ckpt_path} was trained on {saved.get('dataset')!r}: pass --dataset "
                f"{saved.get('dataset')}"
            )
        clash = [
            f"--{k.replace('_', '-')} {v} (checkpoint: {saved.get(k)})"
            for k, v in given.items()
            if k != "epochs" and saved.get(k) != v
        ]
        if clash:
            raise ValueError(
                "a resumed run keeps its checkpoint's hyper-parameters (only --epochs may "
                "change); these differ: " + ", ".join(clash)
            )
    elif ckpt_path.exists() and not args.overwrite:
        raise FileExistsError(
            f"{ckpt_path} exists: pass --resume to continue that run, --overwrite to start "
            "afresh, or another --out"
        )
    if args.split_seed is not None and args.split_test is None and not args.resume:
        raise ValueError("--split-seed S draws the images of --split-test N: pass both")
    if args.max_memory is not None and not args.max_memory > 0:
        raise ValueError(f"--max-memory must be a positive number of GiB, got {args.max_memory}")
    config = TrainConfig(dataset=args.dataset, **given)
    tune_allocator()  # keep freed activation blocks for reuse: no page faults every step
    result = run_training(
        config,
        out,
        data_dir=args.data_dir,
        download=not args.no_download,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        plots=not args.no_plots,
        spelling="cli",
        memory_limit=None if args.max_memory is None else args.max_memory * 2**30,
        batch_threads={"blas": 1, "batch": distributed.blas_threads() or 1, "auto": None}[
            args.parallel
        ],
    )
    import signal

    signum = result.fit.stop_signal or signal.SIGINT
    if not world.is_root:  # distributed: rank 0 reports
        return 128 + signum if result.fit.interrupted else 0
    if result.fit.interrupted:
        saved_to = result.files.get("checkpoint")
        launcher = f"mpiexec -n {world.size} " if world.size > 1 else ""
        print(
            f"\ninterrupted ({signal.Signals(signum).name}) after {result.fit.epochs_done} "
            f"complete epoch(s); checkpoint saved to {saved_to}.\n"
            f"Continue with: {launcher}{resume_command(args, result.config, out)}"
        )
        return 128 + signum
    t = result.test
    assert t is not None
    print(
        f"\ntest accuracy {100 * t.accuracy:.2f}% (actual error {100 * t.error:.2f}%, "
        f"surrogate error {t.loss:.4f}) after {result.fit.epochs_done} epochs; "
        f"{result.fit.train_seconds:.1f} s of training, "
        f"{result.fit.samples_per_second:,.0f} samples/s"
    )
    print("wrote " + ", ".join(str(p) for p in result.files.values()))
    return 0


def resume_command(args: argparse.Namespace, config: TrainConfig, out: Path) -> str:
    """The command that continues this run: the same data, model, folder and output options."""
    import shlex

    parts = ["chainrule", "train", "--dataset", args.dataset]
    parts += ["--model", config.model, "--out", str(out)]
    if args.data_dir is not None:
        parts += ["--data-dir", str(args.data_dir)]
    if args.no_download:
        parts.append("--no-download")
    parts += ["--epochs", str(config.epochs), "--resume"]
    if args.max_memory is not None:
        parts += ["--max-memory", repr(args.max_memory)]
    parts += [
        flag
        for flag in ("--no-progress", "--no-plots")
        if getattr(args, flag[2:].replace("-", "_"))
    ]
    return shlex.join(parts)
