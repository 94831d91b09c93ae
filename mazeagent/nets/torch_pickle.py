"""Read and write PyTorch ``.pth`` files without torch (and without ever executing pickled code).

Safety: a ``.pth`` is a pickle, and unpickling can run arbitrary code. :func:`read_torch_file` is a restricted
reader of torch's zip format (and the legacy pre-1.6 stream format): the only globals it resolves are the tensor
rebuild functions, storage dtypes and ``collections.OrderedDict``; everything else raises :class:`CheckpointError`
before anything is called. Tensors come back as numpy arrays. :func:`write_torch_file` writes a file that
``torch.load(f, weights_only=True)`` reads.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np


class CheckpointError(ValueError):
    """A file that is not a usable maze-agent checkpoint (bad format, truncated, unsafe, wrong keys/shapes)."""


# ---------------------------------------------------------------------------------------------------------------
# restricted reader
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16, "LongStorage": np.int64,
    "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _StorageType:
    def __init__(self, name: str):
        self.name, self.dtype = name, np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A storage named in the pickle; its bytes are attached once read (legacy files store them after the pickle)."""

    def __init__(self, stype: Any, key: Any, numel: Any):
        if not isinstance(stype, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise CheckpointError(f"malformed storage reference ({stype!r}, {key!r}, {numel!r})")
        self.dtype, self.key, self.numel = stype.dtype, str(key), numel
        self.array: np.ndarray | None = None

    def attach(self, raw: bytes, big_endian: bool = False) -> None:
        if len(raw) != self.numel * self.dtype.itemsize:
            raise CheckpointError(f"storage {self.key} holds {len(raw)} bytes, expected "
                                  f"{self.numel} x {self.dtype.itemsize} (truncated or corrupt file)")
        self.array = np.frombuffer(raw, self.dtype.newbyteorder(">") if big_endian else self.dtype)


class _TensorRef:
    def __init__(self, storage: Any, offset: Any, size: Any, stride: Any, *_rest: Any):
        ok = (isinstance(storage, _Storage) and isinstance(offset, int) and offset >= 0
              and isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)
              and all(isinstance(v, int) and v >= 0 for v in size + stride))
        if not ok:
            raise CheckpointError("malformed tensor record in checkpoint")
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def materialise(self) -> np.ndarray:
        data = self.storage.array
        assert data is not None
        if 0 in self.size:
            return np.zeros(self.size, self.storage.dtype)
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if last >= data.size:
            raise CheckpointError(f"tensor runs past the end of storage {self.storage.key} (corrupt file)")
        view = np.lib.stride_tricks.as_strided(data[self.offset:], self.size,
                                               [s * data.itemsize for s in self.stride], writeable=False)
        return np.array(view, dtype=self.storage.dtype.newbyteorder("="))


def _rebuild_parameter(data: Any, *_rest: Any) -> Any:
    return data


_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _TensorRef,
    ("torch._utils", "_rebuild_tensor"): _TensorRef,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _SafeUnpickler(pickle._Unpickler):  # the pure-Python unpickler, so BUILD can be restricted too
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, f: io.BufferedIOBase, storages: dict[str, _Storage]):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"checkpoint pickle refers to {module}.{name}, which a weights-only checkpoint never needs; "
                "refusing to load it (pickled code is never executed)") from None

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise CheckpointError(f"unsupported persistent reference {pid!r:.80} in checkpoint")
        if len(pid) > 5 and pid[5] is not None:
            raise CheckpointError("legacy storage views are not supported; re-save the checkpoint with torch>=1.6")
        key = str(pid[2])
        if key not in self.storages:
            self.storages[key] = _Storage(pid[1], key, pid[4])
        return self.storages[key]

    def load_build(self) -> None:
        """Only state dicts' ``_metadata`` attribute dicts on OrderedDicts (what torch writes); nothing else."""
        state = self.stack.pop()
        inst = self.stack[-1]
        if not (type(inst) is collections.OrderedDict and isinstance(state, dict)
                and all(isinstance(k, str) and not k.startswith("__") for k in state)):
            raise CheckpointError("checkpoint pickle sets object state beyond plain containers; refusing to load")
        inst.__dict__.update(state)

    dispatch[pickle.BUILD[0]] = load_build


def _unpickle(data: io.BufferedIOBase, storages: dict[str, _Storage]) -> Any:
    try:
        return _SafeUnpickler(data, storages).load()
    except CheckpointError:
        raise
    except Exception as e:  # truncated or garbled pickle stream, wrong argument types for a safe global ...
        raise CheckpointError(f"corrupt or truncated checkpoint pickle ({type(e).__name__}: {e})") from None


def _resolve(obj: Any) -> Any:
    if isinstance(obj, _TensorRef):
        return obj.materialise()
    if isinstance(obj, dict):
        out = type(obj)((k, _resolve(v)) for k, v in obj.items())
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v) for v in obj)
    if isinstance(obj, (_Storage, _StorageType)) or callable(obj):
        raise CheckpointError(f"checkpoint holds a bare {type(obj).__name__}, not tensors and containers")
    return obj


def read_torch_file(path: str | os.PathLike) -> Any:
    """Load a ``torch.save`` file as plain containers of numpy arrays, never executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    with open(path, "rb") as f:
        if f.read(2) == b"\x80\x02":
            f.seek(0)
            return _read_legacy(f, path)
    raise CheckpointError(f"{path} is not a PyTorch checkpoint (neither a torch zip archive nor a legacy torch "
                          "pickle; a truncated zip also looks like this)")


def _read_zip(path: Path) -> Any:
    try:
        with zipfile.ZipFile(path) as z:
            pkl = [n for n in z.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pkl) != 1:
                raise CheckpointError(f"{path} is a zip archive but not a torch checkpoint (no <name>/data.pkl)")
            prefix = pkl[0][: -len("data.pkl")]
            names = set(z.namelist())
            big = prefix + "byteorder" in names and z.read(prefix + "byteorder").strip() == b"big"
            storages: dict[str, _Storage] = {}
            obj = _unpickle(io.BytesIO(z.read(pkl[0])), storages)
            for key, st in storages.items():
                member = f"{prefix}data/{key}"
                if member not in names or z.getinfo(member).file_size != st.numel * st.dtype.itemsize:
                    raise CheckpointError(f"{path}: tensor data {member} is missing or the wrong size "
                                          "(truncated or corrupt file)")
                st.attach(z.read(member), big)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as e:
        raise CheckpointError(f"{path}: corrupt or truncated torch zip archive ({e})") from None
    return _resolve(obj)


def _read_legacy(f: io.BufferedReader, path: Path) -> Any:
    storages: dict[str, _Storage] = {}
    if _unpickle(f, storages) != _LEGACY_MAGIC:
        raise CheckpointError(f"{path} is a pickle but not a torch checkpoint (bad magic number)")
    if _unpickle(f, storages) != 1001:
        raise CheckpointError(f"{path}: unsupported legacy torch protocol version")
    sys_info = _unpickle(f, storages)
    little = not isinstance(sys_info, dict) or sys_info.get("little_endian", True)
    obj = _unpickle(f, storages)
    keys = _unpickle(f, storages)
    if not isinstance(keys, list) or set(map(str, keys)) != set(storages):
        raise CheckpointError(f"{path}: legacy storage table does not match the tensors (corrupt file)")
    for key in keys:
        st = storages[str(key)]
        head = f.read(8)
        if len(head) != 8 or struct.unpack("<q" if little else ">q", head)[0] != st.numel:
            raise CheckpointError(f"{path}: storage {key} header is truncated or corrupt")
        st.attach(f.read(st.numel * st.dtype.itemsize), big_endian=not little)
    return _resolve(obj)


# ---------------------------------------------------------------------------------------------------------------
# writer: emit the few pickle opcodes torch's own format uses (protocol 2), so torch is not needed to export
_DTYPE_STORAGES = {np.dtype(v): k for k, v in _STORAGE_DTYPES.items()}


class _TorchPickleWriter:
    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.tensors: list[np.ndarray] = []

    def op(self, b: bytes) -> None:
        self.out.write(b)

    def glob(self, module: str, name: str) -> None:
        self.op(pickle.GLOBAL + f"{module}\n{name}\n".encode())

    def save(self, obj: Any) -> None:
        if isinstance(obj, np.ndarray):
            return self.save_tensor(obj)
        if isinstance(obj, dict):
            if isinstance(obj, collections.OrderedDict):
                self.glob("collections", "OrderedDict")
                self.op(pickle.EMPTY_TUPLE + pickle.REDUCE)
            else:
                self.op(pickle.EMPTY_DICT)
            for k, v in obj.items():
                self.save(k)
                self.save(v)
                self.op(pickle.SETITEM)
        elif isinstance(obj, (list, tuple)):
            self.op(pickle.MARK if isinstance(obj, tuple) else pickle.EMPTY_LIST + pickle.MARK)
            for v in obj:
                self.save(v)
            self.op(pickle.TUPLE if isinstance(obj, tuple) else pickle.APPENDS)
        elif obj is None or isinstance(obj, bool):
            self.op({None: pickle.NONE, True: pickle.NEWTRUE, False: pickle.NEWFALSE}[obj])
        elif isinstance(obj, int) and -2**31 <= obj < 2**31:
            self.op(pickle.BININT + struct.pack("<i", obj))
        elif isinstance(obj, int):
            raw = obj.to_bytes((obj.bit_length() + 8) // 8 or 1, "little", signed=True)
            self.op(pickle.LONG1 + bytes([len(raw)]) + raw)
        elif isinstance(obj, float):
            self.op(pickle.BINFLOAT + struct.pack(">d", obj))
        elif isinstance(obj, str):
            raw = obj.encode()
            self.op(pickle.BINUNICODE + struct.pack("<I", len(raw)) + raw)
        else:
            raise ValueError(f"cannot write {type(obj).__name__} into a torch checkpoint (tensors and containers only)")

    def save_tensor(self, a: np.ndarray) -> None:
        a = np.ascontiguousarray(a)
        if a.dtype not in _DTYPE_STORAGES:
            raise ValueError(f"cannot write a {a.dtype} array as a torch tensor")
        key = str(len(self.tensors))
        self.tensors.append(a)
        strides = tuple(int(np.prod(a.shape[i + 1:], dtype=np.int64)) for i in range(a.ndim))
        self.glob("torch._utils", "_rebuild_tensor_v2")
        self.op(pickle.MARK + pickle.MARK)
        self.save("storage")
        self.glob("torch", _DTYPE_STORAGES[a.dtype])
        for v in (key, "cpu", int(a.size)):
            self.save(v)
        self.op(pickle.TUPLE + pickle.BINPERSID)
        for v in (0, tuple(int(n) for n in a.shape), strides, False, collections.OrderedDict()):
            self.save(v)
        self.op(pickle.TUPLE + pickle.REDUCE)


def write_torch_file(obj: Any, path: str | os.PathLike) -> None:
    """Write nested dicts/lists of numpy arrays as a torch zip checkpoint (atomically: all or nothing)."""
    w = _TorchPickleWriter()
    w.op(pickle.PROTO + b"\x02")
    w.save(obj)
    w.op(pickle.STOP)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
            z.writestr("archive/data.pkl", w.out.getvalue())
            z.writestr("archive/byteorder", "little")
            for i, a in enumerate(w.tensors):
                z.writestr(f"archive/data/{i}", a.astype(a.dtype.newbyteorder("<")).tobytes())
            z.writestr("archive/version", "3\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
