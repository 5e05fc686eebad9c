"""chainrule.data: IDX reading, MNIST loading and its verified download, the 8x8 digits, and
the mini-batch loader.

Downloads are exercised against an HTTP server on 127.0.0.1 started by the tests; nothing
here reaches the internet. Synthetic MNIST files are served with the checksum table patched to
match them, so these tests need no real data; the tests marked ``mnist`` use the real files.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import inspect
import os
import pickle
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import chainrule.data.mnist as mnist_module
from chainrule.data import (
    MNIST_FILES,
    DataError,
    DataLoader,
    Dataset,
    MissingDataError,
    load_digits,
    load_mnist,
    read_idx,
)
from chainrule.data.loader import shift_images
from chainrule.data.mnist import FileChecksum, default_data_dir

TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

_TYPE_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D}
_TYPE_CODES[np.float64] = 0x0E


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array`` (big-endian header and values)."""
    code = _TYPE_CODES[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def synthetic_pixels(n: int = 6, h: int = 5, w: int = 4) -> np.ndarray:
    pixels = (np.arange(n * h * w) * 37 % 256).astype(np.uint8).reshape(n, h, w)
    pixels[0, 0, 0], pixels[0, 0, 1] = 0, 255
    return pixels


def synthetic_labels(n: int = 6) -> np.ndarray:
    return (np.arange(n) * 7 % 10).astype(np.uint8)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------------------------------------
# IDX reading
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "array",
    [
        synthetic_pixels(),
        synthetic_labels(),
        np.arange(-6, 6, dtype=np.int32).reshape(3, 4),
        np.linspace(-1, 1, 7),
        np.arange(-3, 3, dtype=np.int8),
    ],
    ids=["ubyte3d", "ubyte1d", "int32", "float64", "int8"],
)
def test_read_idx_round_trip(tmp_path, array, suffix):
    out = read_idx(write(tmp_path / f"a-idx{suffix}", idx_bytes(array)))
    assert out.shape == array.shape
    assert out.dtype == array.dtype.newbyteorder("=")
    np.testing.assert_array_equal(out, array)
    out[...] = 0  # a writable copy, not a view of the file's bytes


def test_read_idx_recognises_gzip_without_suffix(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(gzip.compress(idx_bytes(synthetic_labels())))
    np.testing.assert_array_equal(read_idx(path), synthetic_labels())


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x02ab", "magic"),  # first byte not zero
        (b"\x00\x01\x08\x01\x00\x00\x00\x02ab", "magic"),  # second byte not zero
        (b"\x00\x00\x0a\x01\x00\x00\x00\x02ab", "magic"),  # no such type code
        (b"\x00\x00", "too short"),
    ],
)
def test_read_idx_rejects_bad_magic(tmp_path, content, problem):
    path = write(tmp_path / "bad-idx1-ubyte", content)
    with pytest.raises(DataError, match=problem) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_rejects_truncated_data(tmp_path, suffix):
    data = idx_bytes(synthetic_pixels())
    path = write(tmp_path / f"images-idx3-ubyte{suffix}", data[:-7])
    with pytest.raises(DataError, match="truncated") as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message and "(6, 5, 4)" in message
    assert "120 bytes" in message and "113" in message


def test_read_idx_rejects_truncated_header(tmp_path):
    path = write(tmp_path / "images-idx3-ubyte", idx_bytes(synthetic_pixels())[:10])
    with pytest.raises(DataError, match="truncated IDX header"):
        read_idx(path)


def test_read_idx_rejects_trailing_bytes(tmp_path):
    path = write(tmp_path / "labels-idx1-ubyte", idx_bytes(synthetic_labels()) + b"xyz")
    with pytest.raises(DataError, match="trailing bytes"):
        read_idx(path)


@pytest.mark.parametrize(
    "payload",
    [
        b"definitely not gzip",
        gzip.compress(idx_bytes(synthetic_pixels()))[:40],  # stream cut in the middle
    ],
    ids=["garbage", "cut-stream"],
)
def test_read_idx_rejects_bad_gzip_stream(tmp_path, payload):
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(payload)
    with pytest.raises(DataError, match="gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------------------------------------
# load_mnist from local files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_load_mnist_uses_local_files_as_they_are(tmp_path, suffix):
    pixels, labels = synthetic_pixels(), synthetic_labels()
    write(tmp_path / f"t10k-images-idx3-ubyte{suffix}", idx_bytes(pixels))
    write(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", idx_bytes(labels))
    test = load_mnist(tmp_path, split="test", download=False)  # no checksum on user files
    assert isinstance(test, Dataset) and test.name == "mnist-test" and len(test) == 6
    assert test.images.shape == (6, 1, 5, 4) and test.images.dtype == np.float32
    assert test.images.flags.c_contiguous
    assert test.images[0, 0, 0, 0] == 0.0 and test.images[0, 0, 0, 1] == 1.0
    np.testing.assert_allclose(test.images[:, 0], pixels / 255.0, rtol=1e-6)
    assert test.labels.dtype == np.int64
    np.testing.assert_array_equal(test.labels, labels)


def test_load_mnist_both_splits(tmp_path):
    for prefix, n in (("train", 6), ("t10k", 3)):
        write(tmp_path / f"{prefix}-images-idx3-ubyte.gz", idx_bytes(synthetic_pixels(n)))
        write(tmp_path / f"{prefix}-labels-idx1-ubyte", idx_bytes(synthetic_labels(n)))
    train, test = load_mnist(tmp_path, download=False)
    assert (train.name, len(train)) == ("mnist-train", 6)
    assert (test.name, len(test)) == ("mnist-test", 3)
    assert load_mnist(tmp_path, split="train", download=False).images.shape == (6, 1, 5, 4)


def test_load_mnist_count_mismatch_names_both_files(tmp_path):
    images = write(tmp_path / "t10k-images-idx3-ubyte.gz", idx_bytes(synthetic_pixels(5)))
    labels = write(tmp_path / "t10k-labels-idx1-ubyte.gz", idx_bytes(synthetic_labels(4)))
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, split="test", download=False)
    message = str(info.value)
    assert str(images) in message and str(labels) in message
    assert "5 images" in message and "4 labels" in message


def test_load_mnist_rejects_files_of_the_wrong_kind(tmp_path):
    # labels where the images belong: a 1-D array is not a stack of images
    write(tmp_path / "t10k-images-idx3-ubyte", idx_bytes(synthetic_labels()))
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(synthetic_labels()))
    with pytest.raises(DataError, match=r"images of shape \(N, H, W\)"):
        load_mnist(tmp_path, split="test", download=False)


def test_load_mnist_without_download_names_missing_files_and_folder(tmp_path):
    write(tmp_path / "t10k-images-idx3-ubyte.gz", idx_bytes(synthetic_pixels()))
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path) in message
    for name in (TRAIN_IMAGES, TRAIN_LABELS, TEST_LABELS):
        assert name in message
    assert TEST_IMAGES not in message  # present, so not reported missing
    assert listing(tmp_path) == [TEST_IMAGES]  # nothing created


LIBRARY_WORDS = ("pass data_dir= to another folder", "call with download=True")
CLI_WORDS = ("pass --data-dir DIR to another folder", "drop --no-download")


def _in_cli_words(error):
    from chainrule.cli import in_cli_words

    return in_cli_words(error)


@pytest.mark.parametrize(
    "say, says, absent",
    [(str, LIBRARY_WORDS, CLI_WORDS), (_in_cli_words, CLI_WORDS, LIBRARY_WORDS)],
    ids=["library", "cli"],
)
def test_missing_files_message_names_the_options_as_the_caller_spells_them(
    tmp_path, say, says, absent
):
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, split="test", download=False)
    message = say(info.value)
    assert all(phrase in message for phrase in says), message
    assert not any(phrase in message for phrase in absent), message


@pytest.mark.parametrize(
    "say, says, absent",
    [
        (str, "pass data_dir= to a folder", "--data-dir"),
        (_in_cli_words, "pass --data-dir DIR to a folder", "data_dir="),
    ],
    ids=["library", "cli"],
)
def test_download_failure_names_the_folder_option_as_the_caller_spells_it(
    tmp_path, say, says, absent
):
    with socket.socket() as s:  # a port that was free a moment ago and has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError) as info:
        load_mnist(
            tmp_path,
            split="test",
            mirrors=[f"http://127.0.0.1:{port}/"],
            progress=False,
        )
    message = say(info.value)
    assert says in message and f"by hand into {tmp_path}" in message
    assert absent not in message


def test_missing_files_error_carries_its_fields_for_the_caller(tmp_path):
    """The data layer knows no command line: its error says what is missing and which
    arguments fix it; the CLI words those as its flags."""
    with pytest.raises(MissingDataError) as info:
        load_mnist(tmp_path, split="test", download=False)
    e = info.value
    assert e.folder == tmp_path and e.files == (TEST_IMAGES, TEST_LABELS)
    assert e.options == ("data_dir", "download") and e.failures == () and not e.offline
    assert e.worded({"data_dir": "<folder>", "download": "<allow>"}).endswith(
        "pass <folder> to another folder, or <allow>."
    )
    assert "spelling" not in inspect.signature(load_mnist).parameters
    again = pickle.loads(pickle.dumps(e))
    assert type(again) is MissingDataError and str(again) == str(e) and again.files == e.files


def test_download_failure_error_carries_each_mirrors_answer(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(MissingDataError) as info:
        load_mnist(tmp_path, split="test", mirrors=[f"http://127.0.0.1:{port}/"], progress=False)
    e = info.value
    assert e.files == (TEST_IMAGES, TEST_LABELS) and e.options == ("data_dir",)
    assert len(e.failures) == 1 and f"127.0.0.1:{port}" in e.failures[0] and e.offline


def test_load_mnist_rejects_unknown_split(tmp_path):
    with pytest.raises(ValueError, match="split"):
        load_mnist(tmp_path, split="validation", download=False)  # type: ignore[call-overload]


@pytest.mark.parametrize("variable", ["CHAINRULE_DATA", "XDG_CACHE_HOME", "HOME"])
def test_default_folder_follows_the_environment(tmp_path, monkeypatch, variable):
    monkeypatch.delenv("CHAINRULE_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv(variable, str(tmp_path))
    expected = {
        "CHAINRULE_DATA": tmp_path / "mnist",
        "XDG_CACHE_HOME": tmp_path / "chainrule" / "mnist",
        "HOME": tmp_path / ".cache" / "chainrule" / "mnist",
    }[variable]
    assert default_data_dir() == expected
    with pytest.raises(DataError) as info:
        load_mnist(split="test", download=False)
    assert str(expected) in str(info.value)


def test_importing_chainrule_data_imports_only_numpy():
    code = (
        "import sys, chainrule.data\n"
        "heavy = [m for m in ('tqdm', 'sklearn', 'torch', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------------------------
# the real MNIST test set
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mnist_test(mnist_dir) -> Dataset:
    return load_mnist(mnist_dir, split="test", download=False)


@pytest.mark.mnist
def test_real_mnist_test_set(mnist_test):
    assert mnist_test.images.shape == (10000, 1, 28, 28)
    assert mnist_test.images.dtype == np.float32 and mnist_test.labels.dtype == np.int64
    assert mnist_test.images.min() == 0.0 and mnist_test.images.max() == 1.0
    assert 0.12 < float(mnist_test.images.mean()) < 0.14  # mostly background
    counts = np.bincount(mnist_test.labels, minlength=10)
    assert counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    train, held_out = mnist_test.split(8000)
    assert (len(train), len(held_out)) == (8000, 2000)
    np.testing.assert_array_equal(held_out.labels, mnist_test.labels[8000:])


@pytest.mark.mnist
def test_checksum_table_matches_the_real_files(mnist_dir):
    checked = 0
    for name, expected in MNIST_FILES.items():
        path = mnist_dir / name
        if path.is_file():
            data = path.read_bytes()
            assert len(data) == expected.size, name
            assert hashlib.sha256(data).hexdigest() == expected.sha256, name
            assert hashlib.md5(data).hexdigest() == expected.md5, name
            checked += 1
    assert checked >= 2  # the fixture guarantees the two test-set files


@pytest.mark.mnist
def test_real_mnist_train_split_missing_is_a_clear_error(mnist_dir, tmp_path):
    for name in (TEST_IMAGES, TEST_LABELS):
        (tmp_path / name).symlink_to(mnist_dir / name)
    assert len(load_mnist(tmp_path, split="test", download=False)) == 10000
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, download=False)
    assert TRAIN_IMAGES in str(info.value) and str(tmp_path) in str(info.value)


# ---------------------------------------------------------------------------------------------
# download, against a server on 127.0.0.1
# ---------------------------------------------------------------------------------------------


@dataclass
class Route:
    body: bytes
    status: int = 200
    send: int | None = None  # bytes actually sent (Content-Length still announces the body)


@dataclass
class Server:
    port: int
    routes: dict[str, Route] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)

    def mirror(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}/"

    def serve(self, mirror: str, filename: str, route: Route) -> None:
        self.routes[f"/{mirror}/{filename}"] = route


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        state: Server = self.server.state  # type: ignore[attr-defined]
        state.hits.append(self.path)
        route = state.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        self.send_response(route.status)
        self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()
        self.wfile.write(route.body if route.send is None else route.body[: route.send])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    state = Server(port=httpd.server_address[1])
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def synthetic_files(monkeypatch) -> dict[str, bytes]:
    """Gzipped synthetic test-set files, with the checksum table patched to accept them."""
    files = {
        TEST_IMAGES: gzip.compress(idx_bytes(synthetic_pixels()), mtime=0),
        TEST_LABELS: gzip.compress(idx_bytes(synthetic_labels()), mtime=0),
    }
    for name, data in files.items():
        checksum = FileChecksum(
            len(data), hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()
        )
        monkeypatch.setitem(mnist_module.MNIST_FILES, name, checksum)
    return files


def serve_all(server: Server, mirror: str, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        server.serve(mirror, name, Route(data))


def corrupted(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0xFF])  # same length, different bytes


def test_download_lands_verified_files_atomically(tmp_path, server, synthetic_files):
    serve_all(server, "a", synthetic_files)
    folder = tmp_path / "new" / "mnist"  # created on demand
    test = load_mnist(folder, split="test", mirrors=[server.mirror("a")], progress=False)
    assert listing(folder) == sorted(synthetic_files)  # no .part file left behind
    for name, data in synthetic_files.items():
        assert (folder / name).read_bytes() == data
    np.testing.assert_array_equal(test.labels, synthetic_labels())
    assert test.images.shape == (6, 1, 5, 4)
    # a second call finds the files and asks nothing of the server
    hits = len(server.hits)
    load_mnist(folder, split="test", mirrors=[server.mirror("a")], progress=False)
    assert len(server.hits) == hits


def test_download_with_progress_bar(tmp_path, server, synthetic_files, capsys):
    pytest.importorskip("tqdm")
    serve_all(server, "a", synthetic_files)
    test = load_mnist(tmp_path, split="test", mirrors=server.mirror("a"), progress=True)
    assert len(test) == 6 and listing(tmp_path) == sorted(synthetic_files)


def test_download_only_fetches_what_is_missing(tmp_path, server, synthetic_files):
    (tmp_path / TEST_IMAGES).write_bytes(synthetic_files[TEST_IMAGES])
    serve_all(server, "a", synthetic_files)
    load_mnist(tmp_path, split="test", mirrors=[server.mirror("a")], progress=False)
    assert server.hits == [f"/a/{TEST_LABELS}"]


def test_checksum_mismatch_tries_the_next_mirror(tmp_path, server, synthetic_files):
    for name, data in synthetic_files.items():
        server.serve("bad", name, Route(corrupted(data)))
    serve_all(server, "good", synthetic_files)
    mirrors = [server.mirror("bad"), server.mirror("good")]
    test = load_mnist(tmp_path, split="test", mirrors=mirrors, progress=False)
    assert len(test) == 6
    assert server.hits == [f"/{m}/{TEST_IMAGES}" for m in ("bad", "good")] + [
        f"/{m}/{TEST_LABELS}" for m in ("bad", "good")
    ]
    assert listing(tmp_path) == sorted(synthetic_files)
    assert (tmp_path / TEST_IMAGES).read_bytes() == synthetic_files[TEST_IMAGES]


def test_checksum_mismatch_everywhere_leaves_nothing(tmp_path, server, synthetic_files):
    for mirror in ("m1", "m2"):
        for name, data in synthetic_files.items():
            server.serve(mirror, name, Route(corrupted(data)))
    mirrors = [server.mirror("m1"), server.mirror("m2")]
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, split="test", mirrors=mirrors, progress=False)
    message = str(info.value)
    assert message.count("sha256 mismatch") == 2
    assert f"{mirrors[0]}{TEST_IMAGES}" in message and f"{mirrors[1]}{TEST_IMAGES}" in message
    assert TEST_IMAGES in message and TEST_LABELS in message and str(tmp_path) in message
    assert MNIST_FILES[TEST_IMAGES].sha256 in message
    assert listing(tmp_path) == []


def test_wrong_announced_size_is_rejected(tmp_path, server, synthetic_files):
    server.serve("a", TEST_IMAGES, Route(synthetic_files[TEST_IMAGES] + b"extra"))
    with pytest.raises(DataError, match="announces") as info:
        load_mnist(tmp_path, split="test", mirrors=[server.mirror("a")], progress=False)
    assert str(len(synthetic_files[TEST_IMAGES])) in str(info.value)
    assert listing(tmp_path) == []


def test_truncated_transfer_is_rejected(tmp_path, server, synthetic_files):
    data = synthetic_files[TEST_IMAGES]
    server.serve("cut", TEST_IMAGES, Route(data, send=len(data) // 2))
    with pytest.raises(DataError, match="cut short") as info:
        load_mnist(tmp_path, split="test", mirrors=[server.mirror("cut")], progress=False)
    assert f"received {len(data) // 2} of {len(data)} bytes" in str(info.value)
    assert listing(tmp_path) == []
    # the same cut on the first mirror, a whole file on the second: success
    serve_all(server, "good", synthetic_files)
    mirrors = [server.mirror("cut"), server.mirror("good")]
    assert len(load_mnist(tmp_path, split="test", mirrors=mirrors, progress=False)) == 6
    assert listing(tmp_path) == sorted(synthetic_files)


def test_server_error_falls_back_to_the_next_mirror(tmp_path, server, synthetic_files):
    for name in synthetic_files:
        server.serve("broken", name, Route(b"oops", status=500))
    serve_all(server, "ok", synthetic_files)
    mirrors = [server.mirror("broken"), server.mirror("ok")]
    assert len(load_mnist(tmp_path, split="test", mirrors=mirrors, progress=False)) == 6
    assert f"/broken/{TEST_IMAGES}" in server.hits and f"/ok/{TEST_IMAGES}" in server.hits


def test_every_mirror_failing_lists_each_answer(tmp_path, server, synthetic_files):
    server.serve("broken", TEST_IMAGES, Route(b"oops", status=500))
    mirrors = [server.mirror("broken"), server.mirror("empty")]  # "empty" answers 404
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, split="test", mirrors=mirrors, progress=False)
    message = str(info.value)
    assert "HTTP 500" in message and "HTTP 404" in message
    assert "any of 2 mirror(s)" in message
    assert listing(tmp_path) == []


def test_no_server_reachable_names_files_and_folder(tmp_path, synthetic_files):
    with socket.socket() as s:  # a port that was free a moment ago and has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tmp_path / "mnist"
    with pytest.raises(DataError) as info:
        load_mnist(folder, split="test", mirrors=[f"http://127.0.0.1:{port}/mnist"], progress=False)
    message = str(info.value)
    assert "no connection" in message
    assert "offline" in message
    assert TEST_IMAGES in message and TEST_LABELS in message
    assert f"Download these files by hand into {folder}" in message
    assert listing(folder) == []


@pytest.mark.mnist
def test_download_of_the_real_labels_file_matches_the_table(tmp_path, server, mnist_dir):
    data = (mnist_dir / TEST_LABELS).read_bytes()
    server.serve("a", TEST_LABELS, Route(data))
    (tmp_path / TEST_IMAGES).symlink_to(mnist_dir / TEST_IMAGES)
    test = load_mnist(tmp_path, split="test", mirrors=[server.mirror("a")], progress=False)
    assert (tmp_path / TEST_LABELS).read_bytes() == data
    assert np.bincount(test.labels).tolist()[:3] == [980, 1135, 1032]


# ---------------------------------------------------------------------------------------------
# Dataset and DataLoader
# ---------------------------------------------------------------------------------------------


def indexed_dataset(n: int = 23) -> Dataset:
    """Sample i has label i and every pixel equal to i / n, so batches can be checked."""
    images = np.broadcast_to((np.arange(n) / n).reshape(n, 1, 1, 1), (n, 1, 2, 3))
    return Dataset(images.astype(np.float32), np.arange(n), "indexed", classes=n)


def epoch(loader: DataLoader) -> np.ndarray:
    return np.concatenate([labels for _, labels in loader])


def test_dataset_validates_its_arrays():
    ok = np.zeros((4, 1, 2, 2), np.float32)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        Dataset(np.zeros((4, 2, 2), np.float32), np.zeros(4, int))
    with pytest.raises(ValueError, match="floats"):
        Dataset(np.zeros((4, 1, 2, 2), np.uint8), np.zeros(4, int))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Dataset(ok + 2, np.zeros(4, int))
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        Dataset(ok, np.zeros(3, int))
    with pytest.raises(ValueError, match="0..9"):
        Dataset(ok, np.array([0, 1, 2, 10]))
    d = Dataset(ok.astype(np.float64), np.zeros(4, np.uint8))
    assert d.images.dtype == np.float32 and d.labels.dtype == np.int64 and len(d) == 4


def test_dataset_subset_split_and_slicing():
    d = indexed_dataset(10)
    assert d.image_shape == (1, 2, 3) and "n=10" in repr(d)
    first, rest = d.split(8)
    np.testing.assert_array_equal(first.labels, np.arange(8))
    np.testing.assert_array_equal(rest.labels, [8, 9])
    np.testing.assert_array_equal(d[2:5].labels, [2, 3, 4])
    np.testing.assert_array_equal(d.subset([7, 1]).images[:, 0, 0, 0], np.float32([0.7, 0.1]))
    np.testing.assert_array_equal(d.subset(d.labels % 2 == 0).labels, [0, 2, 4, 6, 8])
    assert len(d.subset([])) == 0
    a, b = d.split(6, seed=3)
    c, _ = d.split(6, seed=3)
    assert sorted(np.concatenate([a.labels, b.labels]).tolist()) == list(range(10))
    np.testing.assert_array_equal(a.labels, c.labels)
    assert a.labels.tolist() != list(range(6))
    with pytest.raises(ValueError, match="0..10"):
        d.split(11)
    with pytest.raises(TypeError, match="one sample"):
        d[3]


def test_loader_covers_every_sample_once_per_epoch():
    d = indexed_dataset(23)
    loader = DataLoader(d, batch_size=5, seed=1)
    assert len(loader) == 5
    for _ in range(3):
        batches = list(loader)
        assert [len(y) for _, y in batches] == [5, 5, 5, 5, 3]
        assert sorted(np.concatenate([y for _, y in batches]).tolist()) == list(range(23))
        for x, y in batches:  # images travel with their labels
            np.testing.assert_allclose(x[:, 0, 0, 0], y / 23, rtol=1e-6)


def test_loader_batches_are_contiguous_float32_copies():
    d = indexed_dataset(8)
    for shuffle in (True, False):
        x, y = next(iter(DataLoader(d, batch_size=3, shuffle=shuffle)))
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.shape == (3, 1, 2, 3) and x.flags.c_contiguous
        x[...] = 0.5  # a copy: the dataset is untouched
    assert d.images[0, 0, 0, 0] == 0.0


def test_loader_is_reproducible_and_reshuffles_each_epoch():
    d = indexed_dataset(50)
    a, b = DataLoader(d, 8, seed=7), DataLoader(d, 8, seed=7)
    epochs_a = [epoch(a) for _ in range(3)]
    epochs_b = [epoch(b) for _ in range(3)]
    for ea, eb in zip(epochs_a, epochs_b, strict=True):
        np.testing.assert_array_equal(ea, eb)
    assert not np.array_equal(epochs_a[0], epochs_a[1])
    assert not np.array_equal(epochs_a[1], epochs_a[2])
    assert not np.array_equal(epoch(DataLoader(d, 8, seed=8)), epochs_a[0])
    np.testing.assert_array_equal(epoch(DataLoader(d, 8, shuffle=False)), np.arange(50))


def test_loader_drop_last():
    d = indexed_dataset(23)
    loader = DataLoader(d, batch_size=5, drop_last=True, seed=0)
    assert len(loader) == 4
    labels = [y for _, y in loader]
    assert [len(y) for y in labels] == [5, 5, 5, 5]
    seen = np.concatenate(labels)
    assert len(set(seen.tolist())) == 20
    assert len(DataLoader(d, batch_size=23, drop_last=True)) == 1
    assert len(DataLoader(d, batch_size=24)) == 1


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"batch_size": 0}, ValueError, "positive"),
        ({"batch_size": -3}, ValueError, "positive"),
        ({"batch_size": 2.5}, TypeError, "int"),
        ({"batch_size": True}, TypeError, "int"),
        ({"batch_size": 4, "seed": "x"}, TypeError, "seed"),
        ({"batch_size": 24, "drop_last": True}, ValueError, "no batch"),
    ],
)
def test_loader_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        DataLoader(indexed_dataset(23), **kwargs)


def test_loader_needs_a_dataset():
    with pytest.raises(TypeError, match="Dataset"):
        DataLoader((np.zeros((4, 1, 2, 2)), np.zeros(4)), batch_size=2)  # type: ignore[arg-type]


def _shifted_by_hand(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """out[c, y, x] = image[c, y - dy, x - dx], 0 where that lies outside: pixel by pixel."""
    c, h, w = image.shape
    out = np.zeros_like(image)
    for y in range(h):
        for x in range(w):
            if 0 <= y - dy < h and 0 <= x - dx < w:
                out[:, y, x] = image[:, y - dy, x - dx]
    return out


def test_shift_images_moves_each_image_by_its_own_offset():
    rng = np.random.default_rng(0)
    images = rng.random((25, 2, 5, 6), dtype=np.float32)
    offsets = np.array([(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)])  # all 25
    out = shift_images(images, offsets, 2)
    assert out.shape == images.shape and out.dtype == np.float32 and out.flags.c_contiguous
    for img, o, (dy, dx) in zip(images, out, offsets, strict=True):
        np.testing.assert_array_equal(o, _shifted_by_hand(img, dy, dx))
    np.testing.assert_array_equal(shift_images(images, np.zeros((25, 2), int), 2), images)


def test_loader_shift_is_seeded_keeps_the_order_and_moves_every_image():
    rng = np.random.default_rng(1)
    d = Dataset(rng.random((40, 1, 6, 6), dtype=np.float32), np.arange(40), classes=40)
    plain = list(DataLoader(d, 16, seed=3))
    a, b = list(DataLoader(d, 16, seed=3, shift=2)), list(DataLoader(d, 16, seed=3, shift=2))
    moved = 0
    for (_, yp), (xa, ya), (xb, _) in zip(plain, a, b, strict=True):
        np.testing.assert_array_equal(ya, yp)  # the same order as without shifts
        np.testing.assert_array_equal(xa, xb)  # the same shifts from the same seed
        assert xa.dtype == np.float32 and xa.flags.c_contiguous
        for img, label in zip(xa, ya, strict=True):
            # each image is its own original moved by some offset in -2..2 per axis
            original = d.images[label]
            candidates = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]
            match = [o for o in candidates if np.array_equal(img, _shifted_by_hand(original, *o))]
            assert match
            moved += match[0] != (0, 0)
    assert moved > 30  # 24 of 25 offsets move the image
    other = next(iter(DataLoader(d, 16, seed=4, shift=2)))[0]
    assert not np.array_equal(other, a[0][0])


@pytest.mark.parametrize("ranks", [2, 3])
def test_shards_of_shifted_batches_make_the_shifted_batch(ranks):
    """Data-parallel ranks cut the same shifted batch: their slices together are the batch."""
    rng = np.random.default_rng(2)
    d = Dataset(rng.random((37, 1, 6, 6), dtype=np.float32), np.arange(37), classes=37)
    whole = list(DataLoader(d, 8, seed=5, shift=2))
    parts = [list(DataLoader(d, 8, seed=5, shift=2, shard=(r, ranks))) for r in range(ranks)]
    for b, (x, y) in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([p[b][0] for p in parts]), x)
        np.testing.assert_array_equal(np.concatenate([p[b][1] for p in parts]), y)


@pytest.mark.parametrize("shift", [-1, 1.5, True, 6])
def test_loader_rejects_bad_shifts(shift):
    d = Dataset(np.zeros((4, 1, 6, 6), np.float32), np.zeros(4, int))
    with pytest.raises(ValueError, match="shift"):
        DataLoader(d, 2, shift=shift)


# ---------------------------------------------------------------------------------------------
# the 8x8 digits
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits() -> tuple[Dataset, Dataset]:
    pytest.importorskip("sklearn")
    return load_digits()


def test_digits_shapes_and_range(digits):
    train, test = digits
    assert len(train) + len(test) == 1797
    assert abs(len(test) - 0.2 * 1797) <= 10
    for d in (train, test):
        assert d.images.shape[1:] == (1, 8, 8) and d.images.dtype == np.float32
        assert d.images.min() == 0.0 and d.images.max() == 1.0
        assert d.labels.dtype == np.int64 and set(d.labels.tolist()) == set(range(10))
    # stratified: every class is about 20 % test
    fraction = np.bincount(test.labels) / (np.bincount(test.labels) + np.bincount(train.labels))
    assert np.all(np.abs(fraction - 0.2) < 0.02)


def test_digits_split_is_reproducible(digits):
    train, test = digits
    again_train, again_test = load_digits(seed=0)
    np.testing.assert_array_equal(train.images, again_train.images)
    np.testing.assert_array_equal(test.labels, again_test.labels)
    other_train, _ = load_digits(seed=1)
    assert not np.array_equal(train.images, other_train.images)
    small_train, small_test = load_digits(test_fraction=0.5)
    assert abs(len(small_test) - len(small_train)) <= 10


def test_digits_bad_fraction():
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits(test_fraction=1.0)


def test_digits_without_sklearn_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # import now fails
    with pytest.raises(ImportError, match=r"chainrule\[train\]"):
        load_digits()
