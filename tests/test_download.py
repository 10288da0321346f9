"""Specification of minicnn.data.download: mirrors, checksums, atomic writes, and the official checksums.

No test touches the network: the mirrors are a local HTTP server on 127.0.0.1 (an ephemeral port, in a
thread) that can serve a file whole, cut short, with the wrong bytes, slowly, or not at all (404). It serves
the official Fashion-MNIST files when Debian's package is installed (rebuilt byte for byte from Debian's
copies, see `upstream_fashion_mnist_bytes`), else small IDX files the tests write.
"""
import gzip
import hashlib
import http.server
import importlib
import io
import socket
import tarfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from minicnn.data import DownloadError, download, fashion_mnist, mnist, read_idx, write_idx
from minicnn.data.download import sha256sum

fashion_module = importlib.import_module("minicnn.data.fashion_mnist")
mnist_module = importlib.import_module("minicnn.data.mnist")
DEBIAN_DIR = fashion_module.DEBIAN_DIR
FASHION_MNIST_SHA256 = fashion_module.FASHION_MNIST_SHA256

# Zalando's README publishes these MD5s of the four official files.
OFFICIAL_FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
# The modification times in the official files' gzip headers (31 August 2017), found by searching for the
# time that gives the published MD5.
OFFICIAL_GZIP_MTIME = {
    "train-images-idx3-ubyte.gz": 1504176606,
    "train-labels-idx1-ubyte.gz": 1504176606,
    "t10k-images-idx3-ubyte.gz": 1504176627,
    "t10k-labels-idx1-ubyte.gz": 1504176627,
}
DEBIAN_FILES_PRESENT = all((DEBIAN_DIR / name).is_file() for name in OFFICIAL_FASHION_MNIST_MD5)
needs_debian_files = pytest.mark.skipif(not DEBIAN_FILES_PRESENT,
                                        reason=f"Fashion-MNIST not installed in {DEBIAN_DIR} "
                                               f"(apt-get install dataset-fashion-mnist)")


def upstream_fashion_mnist_bytes(name):
    """The official .gz file, rebuilt from Debian's copy.

    Debian's files hold the official deflate stream unchanged under a normalised gzip header: no file name
    (FLG.FNAME cleared) and another time stamp. Setting FNAME, the original name and the original time back
    gives the official file (the tests check its MD5 against Zalando's).
    """
    raw = (DEBIAN_DIR / name).read_bytes()
    assert raw[:4] == b"\x1f\x8b\x08\x00", "expected a gzip header without optional fields"
    mtime = OFFICIAL_GZIP_MTIME[name].to_bytes(4, "little")
    # ID1 ID2 CM | FLG = FNAME | MTIME | XFL OS | original file name, NUL-terminated | deflate stream + trailer
    return raw[:3] + b"\x08" + mtime + raw[8:10] + name[:-len(".gz")].encode() + b"\x00" + raw[10:]


def sample_file():
    """(name, bytes, SHA-256) of a small file to download: the official t10k labels, or a written IDX file."""
    name = "t10k-labels-idx1-ubyte.gz"
    if DEBIAN_FILES_PRESENT:
        data = upstream_fashion_mnist_bytes(name)
    else:
        data = gzip.compress(bytes([0, 0, 8, 1, 0, 0, 39, 16]) + bytes(i % 10 for i in range(10000)), mtime=0)
    return name, data, hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------------------
# A local HTTP server whose routes misbehave on request

class Handler(http.server.BaseHTTPRequestHandler):
    routes = {}  # path -> (behaviour, body); set per server below
    hits = None

    def do_GET(self):
        self.hits.append(self.path)
        behaviour, body = self.routes.get(self.path, ("404", b""))
        if behaviour == "404":
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if behaviour != "no-length":
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if behaviour == "truncated":
            # Content-Length promised the whole body; send a third of it and hang up.
            self.wfile.write(body[:len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        if behaviour == "slow":
            self.wfile.write(body[:10])
            self.wfile.flush()
            time.sleep(1.0)  # longer than the client's timeout
        self.wfile.write(body)

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture
def server():
    """Serves `server.routes` on 127.0.0.1:<free port>; `server.url(path)` names a route."""
    handler = type("RouteHandler", (Handler,), {"routes": {}, "hits": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.handle_error = lambda request, address: None  # a client hanging up on "slow" is the point, not news
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    httpd.routes = handler.routes
    httpd.hits = handler.hits
    httpd.url = lambda path: f"http://127.0.0.1:{httpd.server_address[1]}{path}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def files_in(directory):
    return sorted(path.name for path in Path(directory).iterdir())


# ---------------------------------------------------------------------------------------------------------
# The downloader

def test_download_with_the_right_checksum_puts_the_file_in_place(server, tmp_path):
    name, data, sha256 = sample_file()
    server.routes["/good/" + name] = ("ok", data)
    destination = tmp_path / "cache" / name  # the directory does not exist yet
    assert download([server.url("/good/" + name)], destination, sha256, progress=False) == destination
    assert destination.read_bytes() == data
    assert files_in(destination.parent) == [name]
    assert destination.stat().st_mode & 0o777 == 0o644  # readable by others sharing the data directory


def test_a_single_url_string_is_accepted_and_progress_bar_does_not_break_it(server, tmp_path):
    name, data, sha256 = sample_file()
    server.routes["/" + name] = ("ok", data)
    download(server.url("/" + name), tmp_path / name, sha256.upper(), progress=True)
    assert (tmp_path / name).read_bytes() == data


def test_a_response_without_content_length_is_accepted_when_the_checksum_matches(server, tmp_path):
    name, data, sha256 = sample_file()
    server.routes["/" + name] = ("no-length", data)
    download([server.url("/" + name)], tmp_path / name, sha256, progress=False)
    assert (tmp_path / name).read_bytes() == data


def test_truncated_response_is_rejected_and_the_next_mirror_used(server, tmp_path):
    name, data, sha256 = sample_file()
    server.routes["/cut/" + name] = ("truncated", data)
    server.routes["/good/" + name] = ("ok", data)
    download([server.url("/cut/" + name), server.url("/good/" + name)], tmp_path / name, sha256, progress=False)
    assert (tmp_path / name).read_bytes() == data
    assert server.hits == ["/cut/" + name, "/good/" + name]
    assert files_in(tmp_path) == [name]


def test_wrong_checksum_is_rejected_and_the_next_mirror_used(server, tmp_path):
    name, data, sha256 = sample_file()
    server.routes["/bad/" + name] = ("ok", data[:-1] + bytes([data[-1] ^ 1]))  # one bit flipped
    server.routes["/good/" + name] = ("ok", data)
    download([server.url("/bad/" + name), server.url("/good/" + name)], tmp_path / name, sha256, progress=False)
    assert (tmp_path / name).read_bytes() == data
    assert files_in(tmp_path) == [name]


def test_404_mirror_is_skipped(server, tmp_path):
    name, data, sha256 = sample_file()
    server.routes["/good/" + name] = ("ok", data)
    download([server.url("/missing/" + name), server.url("/good/" + name)], tmp_path / name, sha256,
             progress=False)
    assert (tmp_path / name).read_bytes() == data


def test_unreachable_and_too_slow_mirrors_are_skipped(server, tmp_path):
    name, data, sha256 = sample_file()
    server.routes["/slow/" + name] = ("slow", data)
    server.routes["/good/" + name] = ("ok", data)
    with socket.socket() as probe:  # a port nobody listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    urls = [f"http://127.0.0.1:{closed_port}/{name}", server.url("/slow/" + name), server.url("/good/" + name)]
    download(urls, tmp_path / name, sha256, progress=False, timeout=0.3)
    assert (tmp_path / name).read_bytes() == data
    assert files_in(tmp_path) == [name]


def test_when_every_mirror_fails_the_error_lists_each_url_and_why_and_nothing_is_left(server, tmp_path):
    name, data, sha256 = sample_file()
    server.routes["/cut/" + name] = ("truncated", data)
    server.routes["/bad/" + name] = ("ok", b"not the file")
    urls = [server.url("/missing/" + name), server.url("/cut/" + name), server.url("/bad/" + name)]
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError) as info:
        download(urls, cache / name, sha256, progress=False)
    message = str(info.value)
    for url in urls:
        assert url in message
    assert "404" in message
    assert f"received {len(data) // 3} of the {len(data)} bytes" in message
    assert "SHA-256 mismatch" in message and sha256 in message
    assert "by hand" in message and str(cache / name) in message
    assert [url for url, _ in info.value.failures] == urls
    assert isinstance(info.value, OSError)
    assert files_in(cache) == []  # no partial file, no temporary file


def test_a_failed_download_leaves_an_existing_file_untouched(server, tmp_path):
    name, data, sha256 = sample_file()
    server.routes["/cut/" + name] = ("truncated", data)
    destination = tmp_path / name
    destination.write_bytes(b"what was there before")
    with pytest.raises(DownloadError):
        download([server.url("/cut/" + name)], destination, sha256, progress=False)
    assert destination.read_bytes() == b"what was there before"
    assert files_in(tmp_path) == [name]


def test_an_interrupted_download_leaves_no_temporary_file(server, tmp_path, monkeypatch):
    name, data, sha256 = sample_file()
    server.routes["/" + name] = ("ok", data)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(hashlib, "sha256", interrupt)  # strikes after the temporary file exists
    with pytest.raises(KeyboardInterrupt):
        download([server.url("/" + name)], tmp_path / name, sha256, progress=False)
    assert files_in(tmp_path) == []


@pytest.mark.parametrize("sha256", ["", "abc", "g" * 64, None])
def test_download_refuses_a_malformed_checksum(tmp_path, sha256):
    with pytest.raises(ValueError, match="64 hex digits"):
        download(["http://127.0.0.1:9/x"], tmp_path / "x", sha256)


def test_download_needs_at_least_one_url(tmp_path):
    with pytest.raises(ValueError, match="URL"):
        download([], tmp_path / "x", "0" * 64)


# ---------------------------------------------------------------------------------------------------------
# The official Fashion-MNIST checksums, confirmed from Debian's copies

@needs_debian_files
@pytest.mark.parametrize("name", sorted(OFFICIAL_FASHION_MNIST_MD5))
def test_pinned_fashion_mnist_sha256_are_those_of_the_files_with_zalandos_md5(name):
    data = upstream_fashion_mnist_bytes(name)
    assert hashlib.md5(data).hexdigest() == OFFICIAL_FASHION_MNIST_MD5[name]
    assert hashlib.sha256(data).hexdigest() == FASHION_MNIST_SHA256[name]
    # and Debian's own bytes differ, which is why files found on disk are not checked against these values
    assert sha256sum(DEBIAN_DIR / name) != FASHION_MNIST_SHA256[name]


@needs_debian_files
def test_fashion_mnist_download_true_fetches_verifies_and_caches_the_official_files(server, tmp_path, monkeypatch):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        server.routes["/mirror2/" + name] = ("ok", upstream_fashion_mnist_bytes(name))
    monkeypatch.setattr(fashion_module, "FASHION_MNIST_MIRRORS", (server.url("/mirror1/"), server.url("/mirror2/")))
    monkeypatch.setattr(fashion_module, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "data"))

    images, labels = fashion_mnist(train=False, download=True, progress=False)
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    np.testing.assert_array_equal(np.bincount(labels), [1000] * 10)
    expected_images, expected_labels = fashion_mnist(root=DEBIAN_DIR, train=False)
    np.testing.assert_array_equal(images, expected_images)
    np.testing.assert_array_equal(labels, expected_labels)
    cache = tmp_path / "data" / "fashion-mnist"
    assert files_in(cache) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    hits = list(server.hits)
    assert hits == ["/mirror1/t10k-images-idx3-ubyte.gz", "/mirror2/t10k-images-idx3-ubyte.gz",
                    "/mirror1/t10k-labels-idx1-ubyte.gz", "/mirror2/t10k-labels-idx1-ubyte.gz"]

    fashion_mnist(train=False, download=True, progress=False)  # found in the cache: no request at all
    assert server.hits == hits


# ---------------------------------------------------------------------------------------------------------
# download=True / False through the data set functions

def write_mnist_like(directory, n=7):
    """Small IDX files under the official names; returns {name: bytes} of the .gz files and the arrays."""
    rng = np.random.default_rng(5)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(directory / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte.gz", labels)
        arrays[split] = (images, labels)
    return {path.name: path.read_bytes() for path in directory.iterdir()}, arrays


def test_mnist_download_true_uses_the_mirrors_in_order_and_caches_under_minicnn_data(server, tmp_path,
                                                                                   monkeypatch):
    served, arrays = write_mnist_like(tmp_path / "served")
    for name, data in served.items():
        server.routes["/good/" + name] = ("ok", data)
        server.routes["/cut/" + name] = ("truncated", data)
    monkeypatch.setattr(mnist_module, "MNIST_SHA256", {name: hashlib.sha256(data).hexdigest()
                                                       for name, data in served.items()})
    monkeypatch.setattr(mnist_module, "MNIST_MIRRORS", (server.url("/cut/"), server.url("/good/")))
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "data"))

    images, labels = mnist(train=True, download=True, progress=False)
    np.testing.assert_array_equal(images, arrays["train"][0])
    np.testing.assert_array_equal(labels, arrays["train"][1])
    assert files_in(tmp_path / "data" / "mnist") == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    assert read_idx(tmp_path / "data" / "mnist" / "train-labels-idx1-ubyte.gz").shape == (7,)


def test_download_true_into_an_explicit_root(server, tmp_path, monkeypatch):
    served, arrays = write_mnist_like(tmp_path / "served")
    for name, data in served.items():
        server.routes["/" + name] = ("ok", data)
    monkeypatch.setattr(mnist_module, "MNIST_SHA256", {name: hashlib.sha256(data).hexdigest()
                                                       for name, data in served.items()})
    monkeypatch.setattr(mnist_module, "MNIST_MIRRORS", (server.url("/"),))
    images, _ = mnist(root=tmp_path / "mine", train=False, download=True, progress=False)
    np.testing.assert_array_equal(images, arrays["test"][0])
    assert files_in(tmp_path / "mine") == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_failed_dataset_download_leaves_the_cache_empty(server, tmp_path, monkeypatch):
    served, _ = write_mnist_like(tmp_path / "served")
    for name, data in served.items():
        server.routes["/" + name] = ("ok", data)
    monkeypatch.setattr(mnist_module, "MNIST_SHA256", {name: "0" * 64 for name in served})  # nothing matches
    monkeypatch.setattr(mnist_module, "MNIST_MIRRORS", (server.url("/"),))
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "data"))
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        mnist(train=True, download=True, progress=False)
    assert files_in(tmp_path / "data" / "mnist") == []


def test_download_false_says_what_was_looked_for_where_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(FileNotFoundError) as info:
        mnist(train=False)
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "t10k-labels-idx1-ubyte.gz" in message
    for place in (tmp_path / "data" / "mnist", tmp_path / "data", tmp_path / "home" / ".cache" / "minicnn" / "mnist"):
        assert str(place) in message
    assert "download=True" in message
    for mirror in mnist_module.MNIST_MIRRORS:
        assert mirror in message
    assert not (tmp_path / "data" / "mnist").exists()  # looking creates nothing


def test_cifar10_download_true_fetches_the_archive_and_reads_it(server, tmp_path, monkeypatch):
    cifar_module = importlib.import_module("minicnn.data.cifar")
    rng = np.random.default_rng(0)
    records = {name: rng.integers(0, 256, size=(2, 3073), dtype=np.uint8) for name in
               [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]}
    for batch in records.values():
        batch[:, 0] %= 10  # the label byte
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, batch in records.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = batch.nbytes
            archive.addfile(info, io.BytesIO(batch.tobytes()))
    data = buffer.getvalue()
    server.routes["/kriz/cifar-10-binary.tar.gz"] = ("ok", data)
    monkeypatch.setattr(cifar_module, "CIFAR10_SHA256", hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(cifar_module, "CIFAR10_MIRRORS", (server.url("/gone/"), server.url("/kriz/")))
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "data"))

    images, labels = cifar_module.cifar10(train=False, download=True, progress=False)
    assert images.shape == (2, 3, 32, 32)
    np.testing.assert_array_equal(labels, records["test_batch.bin"][:, 0])
    np.testing.assert_array_equal(images.reshape(2, -1), records["test_batch.bin"][:, 1:])
    assert files_in(tmp_path / "data" / "cifar-10") == ["cifar-10-binary.tar.gz"]
    images, _ = cifar_module.cifar10(train=True, download=True, progress=False)  # the cached archive serves both
    assert images.shape == (10, 3, 32, 32)
    assert server.hits == ["/gone/cifar-10-binary.tar.gz", "/kriz/cifar-10-binary.tar.gz"]
