"""Torch checkpoint import/export: parity with a reference PyTorch policy, exact round trips, and every bad file
rejected with a clear error and nothing written (including a pickle that would run code)."""
from __future__ import annotations

import argparse
import collections
import io
import pickle
import zipfile
from pathlib import Path

import jax
import numpy as np
import pytest

from mazeagent.nets import HOOK_NAMES, ImpalaCNN, nchw_hook, run_with_cache, run_with_hooks, to_nchw
from mazeagent.nets import cli as nets_cli
from mazeagent.nets.torch_io import (CheckpointError, load_torch_checkpoint, params_to_torch_state_dict,
                                     save_torch_checkpoint, state_dict_shapes, torch_state_dict_to_params)
from mazeagent.nets.torch_pickle import read_torch_file, write_torch_file
from mazeagent.ppo.pth import PUBLISHED, PublishedAgent, export_torch, import_torch, recognise
from test_nets import maze_observations
from required import require_module

torch = require_module("torch", "torch checkpoints are checked against a reference PyTorch policy")
from torch_reference import random_policy, run_with_labels  # noqa: E402  (needs torch)


@pytest.fixture(scope="module")
def obs() -> np.ndarray:
    return maze_observations(3, seed=2)


def _numpy_sd(policy) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in policy.state_dict().items()}


@pytest.mark.parametrize("scale,n_obs", [(1, 3), (4, 2)])
def test_parity_every_named_activation(scale, n_obs, obs, tmp_path):
    policy = random_policy(scale, seed=scale)
    path = tmp_path / "agent.pth"
    torch.save({"model_state_dict": policy.state_dict(),
                "optimizer_state_dict": torch.optim.Adam(policy.parameters()).state_dict()}, path)
    got_scale, params = load_torch_checkpoint(path)
    assert got_scale == scale
    logits_t, value_t, acts = run_with_labels(policy, obs[:n_obs])
    assert set(acts) == set(HOOK_NAMES)  # our names are exactly the labels circrl gives the reference model
    (logits, value), cache = jax.jit(lambda p, o: run_with_cache(ImpalaCNN(scale), p, o))(params, obs[:n_obs])
    np.testing.assert_allclose(logits, logits_t.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(value, value_t.numpy(), atol=1e-4, rtol=0)
    for name in HOOK_NAMES:
        ours, ref = np.asarray(to_nchw(cache[name])), acts[name].numpy()
        assert ours.shape == ref.shape, name
        np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0, err_msg=name)
    assert np.abs(acts["embedder.block2.res1.resadd_out"].numpy()).max() > 0.1  # not a vacuous comparison


def test_channel_55_is_channel_55(obs):
    """Zeroing published channel 55 of the default layer in torch == zeroing our channel 55 (scale 4: 128 ch)."""
    policy = random_policy(4, seed=7)
    _, params = torch_state_dict_to_params(_numpy_sd(policy))
    name = "embedder.block2.res1.resadd_out"

    def zero55(_mod, _inp, out):
        out = out.clone()
        out[:, 55] = 0
        return out
    handle = policy.embedder.block2.res1.resadd.register_forward_hook(zero55)
    try:
        logits_t, _, _ = run_with_labels(policy, obs[:1])
    finally:
        handle.remove()
    _, _, acts = run_with_labels(policy, obs[:1])
    net = ImpalaCNN(4)
    (_, _), cache = run_with_cache(net, params, obs[:1], names=[name])
    np.testing.assert_allclose(cache[name][..., 55], acts[name][:, 55].numpy(), atol=1e-4, rtol=0)
    logits, _ = run_with_hooks(net, params, obs[:1], {name: nchw_hook(lambda a, _: a.at[:, 55].set(0.0))})
    np.testing.assert_allclose(logits, logits_t.numpy(), atol=1e-4, rtol=0)
    assert np.abs(logits_t.numpy() - run_with_labels(policy, obs[:1])[0].numpy()).max() > 1e-5  # edit mattered


def test_export_import_round_trip_exact(tmp_path):
    policy = random_policy(1, seed=3)
    sd = _numpy_sd(policy)
    scale, params = torch_state_dict_to_params(sd)
    out = tmp_path / "exported.pth"
    save_torch_checkpoint(params, out)
    loaded = torch.load(out, weights_only=True)  # what procgen-tools' load_policy reads
    assert list(loaded["model_state_dict"]) == list(policy.state_dict())
    for k, v in policy.state_dict().items():
        assert torch.equal(loaded["model_state_dict"][k], v), k
    scale2, params2 = load_torch_checkpoint(out)
    assert scale2 == scale == 1
    assert jax.tree.all(jax.tree.map(np.array_equal, params, params2))
    back = params_to_torch_state_dict(params2)
    assert all(np.array_equal(back[k], sd[k]) for k in sd)


def test_legacy_format_and_bare_state_dict(tmp_path):
    policy = random_policy(1, seed=4)
    path = tmp_path / "legacy.pth"
    torch.save(policy.state_dict(), path, _use_new_zipfile_serialization=False)
    _, params = load_torch_checkpoint(path)
    _, expect = torch_state_dict_to_params(_numpy_sd(policy))
    assert jax.tree.all(jax.tree.map(np.array_equal, params, expect))


def test_writer_handles_plain_containers(tmp_path):
    obj = {"a": [1, -2**40, 2.5, None, True, "x"], "t": (np.arange(6, dtype=np.int64).reshape(2, 3),),
           "o": collections.OrderedDict(w=np.ones((2, 2), np.float16))}
    write_torch_file(obj, tmp_path / "c.pth")
    back = read_torch_file(tmp_path / "c.pth")
    assert back["a"] == obj["a"] and isinstance(back["o"], collections.OrderedDict)
    np.testing.assert_array_equal(back["t"][0], obj["t"][0])
    via_torch = torch.load(tmp_path / "c.pth", weights_only=True)
    assert via_torch["a"] == obj["a"] and via_torch["t"][0].tolist() == obj["t"][0].tolist()
    with pytest.raises(ValueError, match="cannot write"):
        write_torch_file({"f": object()}, tmp_path / "d.pth")
    assert not (tmp_path / "d.pth").exists() and len(list(tmp_path.iterdir())) == 1  # no temp files left


def test_import_export_cli_and_load_policy(obs, tmp_path):
    from mazeagent.ppo.checkpoint import load_policy

    policy = random_policy(1, seed=5)
    src = tmp_path / "model_rand_region_3.pth"
    torch.save({"model_state_dict": policy.state_dict()}, src)
    _run_cli(["import-torch", str(src), "--out", str(tmp_path / "ckpt"), "--seed", "9"])
    net, params, config = load_policy(tmp_path / "ckpt")
    assert (config.net_scale, config.rand_region, config.seed) == (1, 3, 9)
    logits_t, value_t, _ = run_with_labels(policy, obs)
    logits, value = net.apply(params, obs)
    np.testing.assert_allclose(logits, logits_t.numpy(), atol=1e-4, rtol=0)
    np.testing.assert_allclose(value, value_t.numpy(), atol=1e-4, rtol=0)
    _run_cli(["export-torch", "--checkpoint", str(tmp_path / "ckpt"), "--out", str(tmp_path / "back.pth")])
    back = torch.load(tmp_path / "back.pth", weights_only=True)["model_state_dict"]
    assert all(torch.equal(back[k], v) for k, v in policy.state_dict().items())
    with pytest.raises(ValueError, match="already exists"):
        export_torch(tmp_path / "ckpt", tmp_path / "back.pth")
    with pytest.raises(ValueError, match="not an empty directory"):
        import_torch(src, tmp_path / "ckpt")
    with pytest.raises(ValueError, match="scale-1"):
        import_torch(src, tmp_path / "other", overrides=["net_scale=4"])
    assert not (tmp_path / "other").exists()


def test_published_table_recognises_files_by_hash_then_name_and_scale(tmp_path: Path, capsys) -> None:
    import hashlib
    import json

    names = [a.name for a in PUBLISHED]
    assert len(set(names)) == len(names) and {f"model_rand_region_{r}.pth" for r in range(1, 16)} <= set(names)
    assert all(a.scale == 4 for a in PUBLISHED if a.rand_region is not None)
    docs = (Path(__file__).parents[1] / "docs" / "agents.md").read_text()
    assert all(f"`{n}`" in docs for n in names), "docs/agents.md must list every published file"
    policy = random_policy(1, seed=2)
    small = tmp_path / "maze_i.pth"
    torch.save({"model_state_dict": policy.state_dict()}, small)
    sha = hashlib.sha256(small.read_bytes()).hexdigest()
    r = recognise(small)
    assert (r.status, r.scale, r.sha256, r.match.name) == ("name-and-scale", 1, sha, "maze_i.pth")
    assert "unverified" in r.describe()
    wrong = tmp_path / "model_rand_region_5 (1).pth"  # a browser's second download keeps its name
    wrong.write_bytes(small.read_bytes())
    r = recognise(wrong)
    assert (r.status, r.match.name) == ("scale-mismatch", "model_rand_region_5.pth")
    assert "scale-1 net: not that file" in r.describe()
    table = (PublishedAgent("maze_i.pth", 1, None, "test", sha), PublishedAgent("other.pth", 1, None, "t", "0" * 64))
    assert recognise(wrong, table=table).status == "verified"  # content wins over the name
    other = tmp_path / "other.pth"
    torch.save({"model_state_dict": random_policy(1, seed=3).state_dict()}, other)
    assert recognise(other, table=table).status == "hash-mismatch"
    assert recognise(tmp_path / "model_rand_region_5 (1).pth", table=table[1:]).status == "unknown"
    _run_cli(["pth-info", str(small), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert (out["status"], out["scale"], out["sha256"], out["match"]["name"]) == ("name-and-scale", 1, sha,
                                                                                  "maze_i.pth")
    _run_cli(["import-torch", str(wrong), "--out", str(tmp_path / "ckpt"), "--set", "rand_region=none"])
    from mazeagent.ppo.checkpoint import read_meta, resolve
    extra = read_meta(resolve(tmp_path / "ckpt"))["extra"]
    assert (extra["recognised_as"], extra["published_name"], extra["source_sha256"]) == (
        "scale-mismatch", "model_rand_region_5.pth", sha)


def _run_cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    nets_cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    assert args.func(args) == 0


# ---- bad files: each a CheckpointError (a ValueError) with a clear message, and nothing written ---------------
class _Evil:
    """Unpickling this runs code that creates a file."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (exec, (f"open({str(self.target)!r}, 'w').write('pwned')",))


def _zip_with_pickle(path: Path, payload: bytes) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/version", "3\n")


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = random_policy(1, seed=6).state_dict()
    files: dict[str, tuple[Path, str]] = {}

    def save(name: str, obj, match: str) -> None:
        files[name] = (tmp_path / f"{name}.pth", match)
        torch.save(obj, files[name][0])

    text = tmp_path / "notes.pth"
    text.write_text("just some text, not a checkpoint\n")
    files["text"] = (text, "not a PyTorch checkpoint")
    save("full", {"model_state_dict": good}, "")
    raw = files.pop("full")[0].read_bytes()
    (tmp_path / "truncated.pth").write_bytes(raw[: len(raw) // 2])
    files["truncated"] = (tmp_path / "truncated.pth", "truncated")
    zip_no_pkl = tmp_path / "other_zip.pth"
    with zipfile.ZipFile(zip_no_pkl, "w") as z:
        z.writestr("readme.txt", "hello")
    files["zip_not_torch"] = (zip_no_pkl, "not a torch checkpoint")
    save("list", [1, 2, 3], "not a state dict")
    save("missing", {k: v for k, v in good.items() if k != "fc_value.bias"}, r"missing \['fc_value.bias'\]")
    save("extra", {**good, "embedder.block4.conv.weight": torch.zeros(1)}, "unexpected")
    save("shape", {**good, "fc_policy.weight": torch.zeros(5, 256)}, r"fc_policy.weight has shape \(5, 256\)")
    mixed = {**good, **{k: v for k, v in random_policy(4, seed=0).state_dict().items() if ".block2." in k}}
    save("scale", mixed, "disagree on the scale")
    save("not_16", {**good, "embedder.block1.conv.weight": torch.zeros(20, 3, 3, 3)}, "no valid scale")
    return files


def test_bad_files_clear_error_nothing_written(tmp_path):
    for name, (path, match) in _bad_files(tmp_path).items():
        out = tmp_path / f"out_{name}"
        with pytest.raises(CheckpointError, match=match):
            import_torch(path, out)
        assert not out.exists(), name
        parser = argparse.ArgumentParser()
        nets_cli.register(parser.add_subparsers())
        args = parser.parse_args(["import-torch", str(path), "--out", str(out)])
        with pytest.raises(ValueError):  # the CLI dispatcher turns this into "mazeagent: error: ..." and exit 2
            args.func(args)
        assert not out.exists(), name


@pytest.mark.parametrize("container", ["zip", "bare"])
def test_pickle_carrying_code_is_never_executed(tmp_path, container):
    target = tmp_path / "pwned.txt"
    payload = pickle.dumps({"model_state_dict": _Evil(target)}, protocol=2)
    pickle.loads(payload)  # the payload is live: a plain unpickler runs it
    assert target.exists()
    target.unlink()
    path = tmp_path / "evil.pth"
    if container == "zip":
        _zip_with_pickle(path, payload)
    else:
        path.write_bytes(payload)
    with pytest.raises(CheckpointError, match=r"__builtin__\.exec|not a torch checkpoint"):
        import_torch(path, tmp_path / "out")
    assert not target.exists() and not (tmp_path / "out").exists()
    with pytest.raises(CheckpointError, match=r"__builtin__\.exec"):
        read_torch_file(path) if container == "zip" else _read_bare(payload)
    assert not target.exists()


def _read_bare(payload: bytes):
    """The restricted unpickler itself, on a raw pickle stream (the legacy path reads its magic number first)."""
    from mazeagent.nets.torch_pickle import _unpickle
    return _unpickle(io.BytesIO(payload), {})


def test_state_dict_shapes_match_the_published_state_dict():
    shapes = state_dict_shapes(4)
    assert len(shapes) == 36
    assert shapes["embedder.block1.conv.weight"] == (64, 3, 3, 3)
    assert shapes["embedder.block2.conv.weight"] == (128, 64, 3, 3)
    assert shapes["embedder.block3.res2.conv1.weight"] == (128, 128, 3, 3)
    assert shapes["embedder.fc.weight"] == (256, 8192)
    assert shapes["fc_policy.weight"] == (15, 256) and shapes["fc_value.weight"] == (1, 256)
