"""MNIST: the IDX file format, the four canonical files, and a verified download.

IDX layout (big-endian throughout)::

    bytes 0-1   0x00 0x00                       (magic, part 1)
    byte  2     type: 0x08 ubyte, 0x09 sbyte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3     number of dimensions d
    4 * d       the sizes N_1 .. N_d as uint32
    rest        N_1 * ... * N_d values, C order

MNIST is 60,000 training and 10,000 test images of 28 x 28 ubyte pixels (0 = background) with
ubyte labels 0..9. ``load_mnist`` scales pixels to x = p / 255 in [0, 1] and returns them as
(N, 1, 28, 28) float32. Missing files are fetched from public mirrors in turn; each download is
streamed to a temporary file beside its destination, checked against :data:`MNIST_FILES` (size
and SHA-256) and only then moved into place with ``os.replace``, so a half-written or wrong
file never carries the real name.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import struct
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from chainrule.atomic import PARTIAL_PREFIX, remove_stale_partials
from chainrule.data.loader import Dataset


class DataError(ValueError):
    """A data file is missing, corrupt, inconsistent, or could not be downloaded."""


#: How :class:`MissingDataError` names its ``options`` when nobody says otherwise: the
#: keyword arguments of :func:`load_mnist`.
KEYWORDS: dict[str, str] = {"data_dir": "data_dir=", "download": "call with download=True"}


class MissingDataError(DataError):
    """MNIST files are not in ``folder``, and downloading them was off or failed.

    Fields, for callers that say the fix in their own words: ``folder``; ``files``, the
    files still missing; ``failures``, one line per mirror tried (empty: downloads were off);
    ``offline``, whether no mirror could be reached; ``options``, the arguments of
    :func:`load_mnist` that the fix names (``data_dir``: another folder; ``download``: allow
    downloads). ``str(error)`` names them as keywords (:data:`KEYWORDS`); :meth:`worded`
    names them as the caller does (``chainrule train`` passes its flags).
    """

    def __init__(
        self,
        folder: Path,
        files: Sequence[str],
        failures: Sequence[str] = (),
        offline: bool = False,
    ) -> None:
        self.folder, self.files = folder, tuple(files)
        self.failures, self.offline = tuple(failures), offline
        self.options = ("data_dir",) if self.failures else ("data_dir", "download")
        super().__init__(self.worded(KEYWORDS))

    def __reduce__(self) -> tuple[Any, ...]:  # pickle (multiprocessing) rebuilds it from fields
        return (type(self), (self.folder, self.files, self.failures, self.offline))

    def worded(self, words: Mapping[str, str]) -> str:
        """The message, naming option o as ``words[o]`` for each o in ``options``."""
        if not self.failures:
            return (
                f"MNIST files missing in {self.folder}: {', '.join(self.files)}. Put them there "
                f"(gzipped or not), pass {words['data_dir']} to another folder, or "
                f"{words['download']}."
            )
        table = "\n".join(
            f"  {n}  ({MNIST_FILES[n].size} bytes, sha256 {MNIST_FILES[n].sha256})"
            for n in self.files
        )
        offline = "\nNo mirror could be reached: is this machine offline?" if self.offline else ""
        return (
            f"could not download {self.files[0]} from any of {len(self.failures)} mirror(s):\n  "
            + "\n  ".join(self.failures)
            + offline
            + f"\nDownload these files by hand into {self.folder} (or pass {words['data_dir']} "
            f"to a folder holding them; gzipped or not):\n{table}"
        )


# ---------------------------------------------------------------------------------------------
# IDX reading
# ---------------------------------------------------------------------------------------------

_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """The array (N_1, ..., N_d) stored in an IDX file, gzipped (``.gz``) or not."""
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix == ".gz" or raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: not a valid gzip stream ({exc})") from exc
    return _parse_idx(raw, path)


def _parse_idx(raw: bytes, path: Path) -> np.ndarray:
    if len(raw) < 4:
        raise DataError(f"{path}: {len(raw)} bytes is too short for an IDX header (4 bytes)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()}; expected two zero bytes, a type "
            f"code in {{{', '.join(f'0x{c:02x}' for c in _IDX_DTYPES)}}} and the number of "
            "dimensions (is this an MNIST IDX file?)"
        )
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(
            f"{path}: truncated IDX header: {ndim} dimensions need {header} bytes, "
            f"the file has {len(raw)}"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    count = math.prod(dims)
    expected, found = count * dtype.itemsize, len(raw) - header
    if found != expected:
        problem = "truncated" if found < expected else "has trailing bytes"
        raise DataError(
            f"{path}: {problem}: the header announces shape {dims} of {dtype.name} = "
            f"{expected} bytes of data, the file holds {found}"
        )
    values = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return values.astype(dtype.newbyteorder("="))  # native byte order, writable copy


# ---------------------------------------------------------------------------------------------
# The canonical files
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileChecksum:
    """Size in bytes and digests of one canonical file (MD5 kept for cross-reference only)."""

    size: int
    sha256: str
    md5: str


#: The four canonical gzipped MNIST files. SHA-256 and sizes of the three files in
#: shared/data/mnist were computed from those files; the train images' values agree with
#: torchvision, TensorFlow's old ``input_data`` log lines and several other public tables.
MNIST_FILES: dict[str, FileChecksum] = {
    "train-images-idx3-ubyte.gz": FileChecksum(
        size=9_912_422,
        sha256="440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        md5="f68b3c2dcbeaaa9fbdd348bbdeb94873",
    ),
    "train-labels-idx1-ubyte.gz": FileChecksum(
        size=28_881,
        sha256="3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        md5="d53e105ee54ea40749a09fcbcd1e9432",
    ),
    "t10k-images-idx3-ubyte.gz": FileChecksum(
        size=1_648_877,
        sha256="8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        md5="9fb629c4189551a2d022fa330f9573f3",
    ),
    "t10k-labels-idx1-ubyte.gz": FileChecksum(
        size=4_542,
        sha256="f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        md5="ec29112dd5afa0611ce80d1b7f02629c",
    ),
}

#: Tried in order; the first answer whose size and SHA-256 match wins.
MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

_SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_TIMEOUT_S = 30.0
_CHUNK = 1 << 16


def default_data_dir() -> Path:
    """The MNIST folder used when none is given: $CHAINRULE_DATA, $XDG_CACHE_HOME/chainrule or
    ~/.cache/chainrule, each with a ``mnist`` subfolder."""
    if os.environ.get("CHAINRULE_DATA"):
        root = Path(os.environ["CHAINRULE_DATA"]).expanduser()
    elif os.environ.get("XDG_CACHE_HOME"):
        root = Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "chainrule"
    else:
        root = Path.home() / ".cache" / "chainrule"
    return root / "mnist"


@overload
def load_mnist(
    data_dir: str | os.PathLike[str] | None = ...,
    *,
    download: bool = ...,
    split: None = ...,
    mirrors: Sequence[str] | None = ...,
    progress: bool = ...,
) -> tuple[Dataset, Dataset]: ...
@overload
def load_mnist(
    data_dir: str | os.PathLike[str] | None = ...,
    *,
    download: bool = ...,
    split: Literal["train", "test"],
    mirrors: Sequence[str] | None = ...,
    progress: bool = ...,
) -> Dataset: ...
def load_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    split: Literal["train", "test"] | None = None,
    mirrors: Sequence[str] | None = None,
    progress: bool = True,
) -> tuple[Dataset, Dataset] | Dataset:
    """MNIST as (train, test) Datasets of images (N, 1, 28, 28) in [0, 1], or one split.

    Missing files that cannot be had raise :class:`MissingDataError`.
    """
    if split is not None and split not in _SPLIT_FILES:
        raise ValueError(f"split must be None, 'train' or 'test', got {split!r}")
    folder = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    splits = ("train", "test") if split is None else (split,)
    stems = [stem for s in splits for stem in _SPLIT_FILES[s]]

    found = {stem: _find(folder, stem) for stem in stems}
    missing = [stem + ".gz" for stem, p in found.items() if p is None]
    if missing:
        if not download:
            raise MissingDataError(folder, missing)
        if mirrors is None:
            mirrors = MNIST_MIRRORS
        elif isinstance(mirrors, str):
            mirrors = (mirrors,)
        for name in _download_all(missing, folder, mirrors, progress):
            found[name.removesuffix(".gz")] = folder / name

    datasets = []
    for s in splits:
        images_stem, labels_stem = _SPLIT_FILES[s]
        images_path, labels_path = found[images_stem], found[labels_stem]
        assert images_path is not None and labels_path is not None
        datasets.append(_to_dataset(images_path, labels_path, f"mnist-{s}"))
    return datasets[0] if split is not None else (datasets[0], datasets[1])


def _find(folder: Path, stem: str) -> Path | None:
    # The uncompressed file reads faster; either is used as it is, without a checksum.
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _to_dataset(images_path: Path, labels_path: Path, name: str) -> Dataset:
    pixels = read_idx(images_path)
    labels = read_idx(labels_path)
    if pixels.ndim != 3 or pixels.dtype != np.uint8:
        raise DataError(
            f"{images_path}: expected ubyte images of shape (N, H, W), "
            f"got {pixels.dtype.name} {pixels.shape}"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(
            f"{labels_path}: expected ubyte labels of shape (N,), "
            f"got {labels.dtype.name} {labels.shape}"
        )
    if pixels.shape[0] != labels.shape[0]:
        raise DataError(
            f"MNIST {name}: {images_path} holds {pixels.shape[0]} images but "
            f"{labels_path} holds {labels.shape[0]} labels"
        )
    if labels.size and labels.max() > 9:
        raise DataError(f"{labels_path}: labels must lie in 0..9, found {labels.max()}")
    images = pixels.astype(np.float32)
    images /= 255.0  # divide (not * 1/255): each value is the correctly rounded p / 255
    n, h, w = pixels.shape
    return Dataset(images.reshape(n, 1, h, w), labels.astype(np.int64), name, 10)


# ---------------------------------------------------------------------------------------------
# Download
# ---------------------------------------------------------------------------------------------


class _Rejected(Exception):
    """A mirror answered, but not with the canonical file."""


def _download_all(
    names: list[str],
    folder: Path,
    mirrors: Sequence[str],
    progress: bool,
) -> list[str]:
    """Download each of ``names`` into ``folder``; raise DataError naming what is left to do."""
    if not mirrors:
        raise DataError(f"no mirrors to download {', '.join(names)} from; put them in {folder}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the MNIST folder {folder}: {exc}") from exc
    remove_stale_partials(folder)  # downloads of an earlier, killed run
    for i, name in enumerate(names):
        answers, unreachable = [], 0
        for mirror in mirrors:
            url = mirror if mirror.endswith("/") else mirror + "/"
            url += name
            try:
                _fetch(url, folder / name, MNIST_FILES[name], progress)
                break
            except urllib.error.HTTPError as exc:
                exc.close()  # it holds the error page's open response
                answers.append(f"{url}: HTTP {exc.code} {exc.reason}")
            except urllib.error.URLError as exc:
                unreachable += 1
                answers.append(f"{url}: no connection ({exc.reason})")
            except (_Rejected, http.client.HTTPException, OSError, ValueError) as exc:
                # OSError: timeouts, resets; HTTPException: malformed answers; ValueError: bad URL.
                answers.append(f"{url}: {str(exc) or type(exc).__name__}")
        else:
            raise MissingDataError(folder, names[i:], answers, unreachable == len(mirrors))
    return names


def _fetch(url: str, target: Path, expected: FileChecksum, progress: bool) -> None:
    """Stream ``url`` to a temporary file beside ``target``, verify it, then rename it."""
    request = urllib.request.Request(url, headers={"User-Agent": "chainrule (python urllib)"})
    prefix = f"{PARTIAL_PREFIX}{os.getpid()}-{target.name}-"  # recognisable if the write is killed
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=prefix)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=_TIMEOUT_S) as r:
            announced = r.headers.get("Content-Length")
            if announced is not None and announced.isdigit() and int(announced) != expected.size:
                raise _Rejected(
                    f"announces {announced} bytes, the canonical file has {expected.size}"
                )
            digest, received = hashlib.sha256(), 0
            bar = _progress_bar(target.name, expected.size) if progress else None
            try:
                while chunk := r.read(_CHUNK):
                    received += len(chunk)
                    if received > expected.size:
                        raise _Rejected(f"sent more than the canonical {expected.size} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            finally:
                if bar is not None:
                    bar.close()
        if received != expected.size:
            raise _Rejected(f"transfer cut short: received {received} of {expected.size} bytes")
        if digest.hexdigest() != expected.sha256:
            raise _Rejected(
                f"sha256 mismatch: got {digest.hexdigest()}, expected {expected.sha256}"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the data is not
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _progress_bar(name: str, total: int):  # type: ignore[no-untyped-def]
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, leave=False)
