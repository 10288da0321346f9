"""Reading and writing IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a tiny header followed by the raw array, big-endian, C order:

    byte 0, 1     0x00 0x00                     (always zero: the "magic" part of the magic number)
    byte 2        type code                     0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                                                0x0D float32, 0x0E float64
    byte 3        D, the number of dimensions   (images: 3 -> N, H, W; labels: 1 -> N)
    next 4*D      each dimension as a big-endian uint32
    the rest      prod(dims) items of the given type, big-endian

The files are usually distributed gzip-compressed (`train-images-idx3-ubyte.gz`). `read_idx` looks at the
first two bytes (the gzip magic 0x1f 0x8b) rather than at the file name, so a renamed file still works.

Everything here moves NumPy arrays; no pickle is involved anywhere.
"""
import gzip
import os
import struct
import zlib

import numpy as np

__all__ = ["read_idx", "write_idx"]

GZIP_MAGIC = b"\x1f\x8b"

# IDX type code -> big-endian dtype as stored in the file.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
# native dtype -> IDX type code, for writing.
IDX_TYPE_CODES = {dtype.newbyteorder("="): code for code, dtype in IDX_DTYPES.items()}


def read_idx(path):
    """Read an IDX file (gzip-compressed or raw) into a NumPy array.

    Inputs:
        path: str or os.PathLike. Compression is detected from the gzip magic bytes, not from the name.
    Returns:
        a new, writeable array in native byte order whose dtype is given by the file's type code
        (uint8, int8, int16, int32, float32 or float64) and whose shape is the header's dimensions,
        e.g. (N, H, W) uint8 for an image file and (N,) uint8 for a label file.
    Raises:
        ValueError naming the file, with what was expected and what was found, when the gzip stream is
        corrupt or truncated, the first two bytes are not zero, the type code is unknown, the header is
        cut short, or the payload size does not match the header.
    """
    name = os.fspath(path)
    with open(name, "rb") as f:
        raw = f.read()

    if raw[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:  # BadGzipFile is an OSError
            raise ValueError(f"{name}: starts with the gzip magic bytes but is not a valid gzip stream "
                             f"({error}); the file is probably truncated or corrupt") from None
    else:
        data = raw

    if len(data) < 4:
        raise ValueError(f"{name}: expected an IDX header of at least 4 bytes, found a file of {len(data)} bytes")
    zero0, zero1, type_code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0:
        raise ValueError(f"{name}: not an IDX file: expected the first two bytes to be 0x00 0x00, "
                         f"found 0x{zero0:02x} 0x{zero1:02x}")
    if type_code not in IDX_DTYPES:
        known = ", ".join(f"0x{code:02X} {dtype.newbyteorder('=')}" for code, dtype in IDX_DTYPES.items())
        raise ValueError(f"{name}: unknown IDX type code 0x{type_code:02X}; expected one of {known}")
    if ndim == 0:
        raise ValueError(f"{name}: expected an IDX header with at least 1 dimension, found 0")

    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ValueError(f"{name}: the header declares {ndim} dimensions, so it needs {header_size} bytes, "
                         f"but the file holds only {len(data)} bytes")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])

    file_dtype = IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * file_dtype.itemsize
    found = len(data) - header_size
    if found != expected:
        raise ValueError(f"{name}: the header promises shape {shape} of {file_dtype.newbyteorder('=')}, "
                         f"i.e. {expected} bytes of data, but the file holds {found} bytes after the header")

    array = np.frombuffer(data, dtype=file_dtype, offset=header_size).reshape(shape)
    # astype copies: the result owns its memory, is writeable and is in the machine's byte order.
    return array.astype(file_dtype.newbyteorder("="))


def write_idx(path, array):
    """Write an array as an IDX file; gzip-compressed when `path` ends in ".gz".

    Inputs:
        path: str or os.PathLike.
        array: array-like with at least one dimension, dtype uint8, int8, int16, int32, float32 or
            float64 (the six types IDX can hold; anything else is refused rather than silently cast).
    Returns:
        None. `read_idx(path)` gives back an array equal to `array`, with the same dtype and shape.
    """
    name = os.fspath(path)
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in IDX_TYPE_CODES:
        allowed = ", ".join(str(dtype) for dtype in IDX_TYPE_CODES)
        raise ValueError(f"write_idx({name!r}): IDX cannot hold dtype {array.dtype}; expected one of {allowed} "
                         f"(cast the array first, e.g. array.astype(np.int32))")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"write_idx({name!r}): IDX holds 1 to 255 dimensions, got an array of shape {array.shape}")
    if any(size >= 2**32 for size in array.shape):
        raise ValueError(f"write_idx({name!r}): IDX dimensions are uint32, got shape {array.shape}")

    type_code = IDX_TYPE_CODES[native]
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = np.ascontiguousarray(array, dtype=IDX_DTYPES[type_code]).tobytes()
    if name.endswith(".gz"):
        # mtime=0 keeps the bytes identical from run to run, so written files can be checksummed.
        with open(name, "wb") as f, gzip.GzipFile(filename="", fileobj=f, mode="wb", mtime=0) as gz:
            gz.write(header)
            gz.write(payload)
    else:
        with open(name, "wb") as f:
            f.write(header)
            f.write(payload)
