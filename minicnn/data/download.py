"""Finding data files on disk, and downloading them safely when they are not there.

Dead links are the most common reason an old deep-learning tutorial stops working. So every data set here has
a list of mirrors and the SHA-256 of each official file, and the downloader follows three rules:

1. Try each mirror in turn. A mirror that answers with an HTTP error, times out, sends fewer bytes than it
   promised (a truncated response) or sends bytes whose SHA-256 is not the expected one is rejected, and the
   next mirror is tried. When every mirror fails, the error lists each URL with the reason it failed, and says
   how to fetch the file by hand.
2. Stream into a temporary file in the destination's own directory, check the SHA-256, and only then
   `os.replace` it into place. The rename is atomic, so the destination either does not exist or holds the
   complete, verified file: nothing half-written is ever left in the cache, whatever goes wrong (including
   Ctrl-C), and a reader never sees a partial file.
3. Verify what was downloaded, not what happens to be on disk. Files found in a directory are read as they
   are (a Debian package may recompress them, so their bytes differ from the official ones); the reader
   checks their contents instead.

Where data sets are looked for, in order (see `search_dirs`):

    root                           when the caller names a directory, only that directory
    $MINICNN_DATA/<dataset>        when the environment variable is set ...
    $MINICNN_DATA                  ... it may name a shared data root or the data set's own directory
    ~/.cache/minicnn/<dataset>     the cache
    (data-set specific places)     e.g. Debian's /usr/share/datasets/fashion-mnist

Downloads (`download=True`) go to `root` when given, else to $MINICNN_DATA/<dataset> when set, else to
~/.cache/minicnn/<dataset> (`download_dir`).

Nothing here knows about any particular data set; fashion_mnist.py, mnist.py and cifar.py hold the file names,
checksums and mirrors.
"""
import hashlib
import http.client
import os
import re
import socket
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["download", "DownloadError", "sha256sum", "cache_dir", "search_dirs", "download_dir",
           "find_or_download"]

CHUNK_SIZE = 1 << 20
USER_AGENT = "minicnn (https://github.com/minicnn; dataset downloader)"


class DownloadError(OSError):
    """Every mirror failed. `failures` holds (url, reason) pairs, in the order they were tried."""

    def __init__(self, message, failures=()):
        super().__init__(message)
        self.failures = list(failures)


class _MirrorFailed(Exception):
    """One mirror is rejected; the reason is the message. Never escapes `download`."""


def sha256sum(path):
    """The SHA-256 of a file, as 64 lower-case hex digits (the same as the `sha256sum` command prints)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(urls, destination, sha256, progress=True, timeout=30.0):
    """Download one file from the first mirror that delivers it complete and with the right SHA-256.

    Inputs:
        urls: one URL (str) or a sequence of mirror URLs for the same file, tried in order.
        destination: str or os.PathLike, the file to create (its directory is created if needed). An existing
            file is replaced only by a verified download; when every mirror fails it is left untouched.
        sha256: the expected SHA-256 of the file, 64 hex digits.
        progress: show a tqdm progress bar (on stderr) when tqdm is installed.
        timeout: seconds to wait for the server to connect or to send the next piece, per mirror.
    Returns:
        destination as a pathlib.Path.
    Raises:
        DownloadError listing every URL with the reason it was rejected, and how to get the file by hand.
        ValueError when `sha256` is not 64 hex digits or no URL is given.
        OSError (not caught) when the destination cannot be written: a local problem, not a mirror's.
    """
    urls = [urls] if isinstance(urls, str) else list(urls)
    if not urls:
        raise ValueError("download: expected at least one URL, got none")
    if not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise ValueError(f"download: expected sha256 as 64 hex digits, got {sha256!r}")
    sha256 = sha256.lower()
    destination = Path(destination).expanduser()
    destination.parent.mkdir(parents=True, exist_ok=True)

    failures = []
    for url in urls:
        # The temporary file sits next to the destination, so os.replace is a rename within one file system
        # (atomic); the leading dot keeps it out of the way of anyone listing the directory meanwhile.
        handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.",
                                             suffix=".part")
        try:
            with os.fdopen(handle, "wb") as f:
                _fetch(url, f, sha256, progress, timeout, name=destination.name)
            os.chmod(temporary, 0o644)  # mkstemp makes it private (0600); a data directory may be shared
            os.replace(temporary, destination)
            return destination
        except _MirrorFailed as failure:
            failures.append((url, str(failure)))
        finally:
            if os.path.exists(temporary):  # anything but success, Ctrl-C included
                os.unlink(temporary)

    listing = "\n".join(f"  {url}\n      {reason}" for url, reason in failures)
    raise DownloadError(
        f"could not download {destination.name} into {destination.parent}: every mirror failed.\n{listing}\n"
        f"To get the file by hand: download it from any of the URLs above (a browser, or `curl -LO <url>`), "
        f"check that `sha256sum {destination.name}` prints {sha256}, and put it at {destination}.",
        failures)


def _fetch(url, f, sha256, progress, timeout, name):
    """Stream `url` into the open file `f`; raise _MirrorFailed unless it arrives whole with the right hash."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        raise _MirrorFailed(f"HTTP error {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise _MirrorFailed(f"could not connect: {error.reason}") from None
    except (OSError, http.client.HTTPException, ValueError) as error:  # timeouts, resets, bad URLs
        raise _MirrorFailed(f"could not connect: {error!r}") from None

    with response:
        length = response.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        digest = hashlib.sha256()
        received = 0
        bar = _progress_bar(progress, expected, name)
        try:
            while True:
                try:
                    chunk = response.read(CHUNK_SIZE)
                except http.client.IncompleteRead as error:
                    # Some Python versions raise instead of returning short: count what did arrive.
                    received += len(error.partial)
                    break
                except (OSError, http.client.HTTPException) as error:  # socket.timeout is an OSError
                    kind = "timed out" if isinstance(error, socket.timeout) else "connection failed"
                    raise _MirrorFailed(f"{kind} after {received} bytes: {error!r}") from None
                if not chunk:
                    break
                f.write(chunk)  # a local write error (disk full) is not the mirror's fault: let it rise
                digest.update(chunk)
                received += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()

    if expected is not None and received != expected:
        raise _MirrorFailed(f"truncated response: received {received} of the {expected} bytes "
                            f"announced by Content-Length")
    found = digest.hexdigest()
    if found != sha256:
        raise _MirrorFailed(f"SHA-256 mismatch: expected {sha256}, got {found} ({received} bytes); "
                            f"the mirror serves a different or corrupted file")


def _progress_bar(progress, total, name):
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the bar is a nicety; downloading works without it
        return None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, leave=False)


# ---------------------------------------------------------------------------------------------------------
# Where data sets live


def cache_dir(dataset):
    """~/.cache/minicnn/<dataset>: the per-user cache."""
    return Path.home() / ".cache" / "minicnn" / dataset


def search_dirs(dataset, root=None, extra_dirs=()):
    """The directories looked in for `dataset`, in order (see the module docstring).

    With `root` given, only `root`: an explicit choice is never silently replaced by other data. Otherwise
    $MINICNN_DATA/<dataset> and $MINICNN_DATA (when set), then `cache_dir(dataset)`, then `extra_dirs`.
    """
    if root is not None:
        return [Path(root).expanduser()]
    dirs = []
    env = os.environ.get("MINICNN_DATA")
    if env:
        dirs += [Path(env).expanduser() / dataset, Path(env).expanduser()]
    return dirs + [cache_dir(dataset)] + [Path(d) for d in extra_dirs]


def download_dir(dataset, root=None):
    """Where `download=True` puts files: root, else $MINICNN_DATA/<dataset>, else cache_dir(dataset)."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("MINICNN_DATA")
    return Path(env).expanduser() / dataset if env else cache_dir(dataset)


def find_or_download(dataset, find, *, root=None, allow_download=False, files=None, mirrors=(), extra_dirs=(),
                     progress=True, what, how_to):
    """Look for a data set in `search_dirs`; download it when it is nowhere and `allow_download` is True.

    Inputs:
        dataset: the directory name used in the cache and under $MINICNN_DATA, e.g. "mnist".
        find: a function directory -> whatever the caller needs (paths) when the directory holds the data
            set, else None. It is called on each searched directory, and on the download directory after a
            download.
        files: {file name: SHA-256} to download when nothing is found; each is fetched from
            `mirror + file name` for each base URL in `mirrors`. Files already present are not fetched again.
        what: a phrase naming what was wanted, for the error message ("MNIST test files (...)").
        how_to: how to get the files by hand, for the error message.
    Returns:
        what `find` returned for the first directory that holds the data set.
    Raises:
        FileNotFoundError (allow_download False) listing every directory looked in, where download=True would put
        the files and from which mirrors, and `how_to`. DownloadError when a download fails.
    """
    looked = []
    for directory in search_dirs(dataset, root, () if root is not None else extra_dirs):
        found = find(directory)
        if found is not None:
            return found
        looked.append(f"  {directory}" + ("" if directory.is_dir() else "  (no such directory)"))

    destination = download_dir(dataset, root)
    if not allow_download:
        mirror_list = "".join(f"\n  {mirror}" for mirror in mirrors)
        raise FileNotFoundError(
            f"{what} not found. Looked in:\n" + "\n".join(looked) + "\n"
            f"To download them (checked against their SHA-256) into {destination}, pass download=True; "
            f"the mirrors are tried in this order:{mirror_list}\n{how_to}")

    for name, sha256 in files.items():
        if not (destination / name).is_file():
            download([mirror + name for mirror in mirrors], destination / name, sha256, progress=progress)
    found = find(destination)
    if found is None:
        raise FileNotFoundError(f"{what}: downloaded into {destination}, but still not found there; "
                                f"this is a bug in minicnn's description of the data set")
    return found
