"""Loading the authors' checkpoints (every layout they come in) and our exports."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

import tcmcodec
from tcmcodec.checkpoints import (DERIVED_BUFFERS, export_weights, infer_config, is_stored, load_checkpoint,
                                  weights_hash)
from tcmcodec.config import PRESETS
from tcmcodec.errors import ModelMismatchError, ModelNotFoundError

from conftest import make_model, run_cli


def _old_bottleneck_names(state):
    renamed = {}
    for key, value in state.items():
        for new, old in (("matrices.", "_matrix"), ("biases.", "_bias"), ("factors.", "_factor")):
            key = key.replace(f"entropy_bottleneck.{new}", f"entropy_bottleneck.{old}")
        renamed[key] = value
    return renamed


def _without_cdfs(state):
    return {k: v for k, v in state.items() if k.rsplit(".", 1)[-1] not in DERIVED_BUFFERS}


LAYOUTS = {
    "wrapped": lambda s: {"state_dict": s, "epoch": 49, "optimizer": {}},
    "bare": lambda s: s,
    "dataparallel": lambda s: {"state_dict": {f"module.{k}": v for k, v in s.items()}},
    "old-bottleneck-names": lambda s: {"state_dict": _old_bottleneck_names(s)},
    "no-cdf-buffers": lambda s: {"state_dict": _without_cdfs(s)},
    "old-names-no-cdfs": lambda s: _old_bottleneck_names(_without_cdfs(s)),
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_every_checkpoint_layout_loads_to_the_same_ready_model(tmp_path, tiny_model, layout, monkeypatch):
    monkeypatch.setattr(tiny_model, "channels_last_transforms", False)  # the authors' transforms
    path = tmp_path / "ckpt.pth.tar"
    torch.save(LAYOUTS[layout](tiny_model.state_dict()), path)
    model = tcmcodec.load_model(path)
    assert not model.training
    assert model._coding_tables is not None  # built on load
    assert model.config.name == "tcm-tiny"
    assert model.weights_hash == weights_hash(tiny_model.state_dict(), tiny_model.config)
    assert not model.exact_entropy  # the authors' layout: their float arithmetic by default
    assert not model.channels_last_transforms  # and their transforms' (g_a's floats decide symbols)
    x = torch.rand(1, 3, 128, 128)
    for exact in (False, True):
        assert model.compress(x, exact=exact)["strings"] == tiny_model.compress(x, exact=exact)["strings"]


@pytest.mark.parametrize("preset", ["tcm-s", "tcm-tiny"])
def test_the_preset_is_inferred_from_the_weights(preset):
    assert infer_config(make_model(preset).state_dict()) == PRESETS[preset]


def test_a_checkpoint_with_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        pickle.dump({"state_dict": Evil()}, fh)
    with pytest.raises(ModelNotFoundError, match="cannot read checkpoint"):
        load_checkpoint(path)


def test_random_bytes_and_foreign_state_dicts_give_clear_errors(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00\x01 not a checkpoint" * 10)
    with pytest.raises(ModelNotFoundError):
        load_checkpoint(junk)
    other = tmp_path / "other.pth"
    torch.save({"state_dict": {"conv.weight": torch.zeros(3, 3)}}, other)
    with pytest.raises(ModelNotFoundError, match="not a TCM model"):
        load_checkpoint(other)
    with pytest.raises(ModelNotFoundError, match="neither a model name"):
        tcmcodec.load_model(tmp_path / "missing.pth")


#: stored configs that claim far larger models than the tensors beside them
OVERSIZED_CONFIGS = {
    "N": dict(N=4096, main_head_dims=[8, 8, 8], hyper_head_dim=8),
    "M": dict(M=20000),
    "num_slices": dict(M=40000, num_slices=4000),
    "mlp_ratio": dict(mlp_ratio=100000),
    "main_window": dict(main_window=256),
    "swatten_window": dict(swatten_window=128),
    "scale_levels": dict(scale_levels=10**8),
    "rate_lambdas": dict(rate_lambdas=[0.001 * (k + 1) for k in range(50)]),
}


@pytest.mark.parametrize("field", sorted(OVERSIZED_CONFIGS))
def test_a_config_that_claims_a_larger_model_than_its_weights_is_refused_before_building(
        tmp_path, tiny_vr_model, field, monkeypatch):
    """A small file whose config asks for gigabytes (N = 4096, a 256 window, 10**8 scale
    levels ...) is refused from the shapes alone: no model of that config is ever built."""
    import tcmcodec.checkpoints as checkpoints

    path, _ = export_weights(tiny_vr_model, tmp_path / "ok.pt")
    data = torch.load(path, weights_only=True)
    data["config"] = {**data["config"], **OVERSIZED_CONFIGS[field]}
    torch.save(data, tmp_path / "evil.pt")

    def no_build(config):
        raise AssertionError(f"a model of {config} was built")

    monkeypatch.setattr(checkpoints, "TCM", no_build)
    with pytest.raises(ModelNotFoundError, match="scale levels|window|does not match its weights"):
        load_checkpoint(tmp_path / "evil.pt")


def test_a_scale_table_with_huge_scales_is_refused_where_the_tables_are_built(tmp_path, tiny_vr_model):
    """``scale_max = 1e9`` would make the Gaussian tables ask for 170 GB: refused with a line."""
    path, _ = export_weights(tiny_vr_model, tmp_path / "ok.pt")
    data = torch.load(path, weights_only=True)
    data["config"] = {**data["config"], "scale_max": 1e9}
    torch.save(data, tmp_path / "huge-scales.pt")
    with pytest.raises(ModelNotFoundError, match="Gaussian tables for scales up to 1e\\+09"):
        load_checkpoint(tmp_path / "huge-scales.pt")


def test_weights_with_an_oversized_attention_window_are_refused(tiny_model, tmp_path):
    """The authors' layout carries no config: a window read from a relative-position table
    (a 511 x 511 table gives a 256 window, whose index would hold 256**4 entries) is refused."""
    state = {k: v for k, v in tiny_model.state_dict().items() if is_stored(k)}
    for key in [k for k in state if k.endswith("relative_position_params")]:
        state[key] = torch.zeros(state[key].shape[0], 511, 511)
    torch.save({"state_dict": state}, tmp_path / "wide-window.pth")
    with pytest.raises(ModelNotFoundError, match="window of 256"):
        load_checkpoint(tmp_path / "wide-window.pth")


def test_weights_with_headless_attention_are_refused(tiny_model, tmp_path):
    state = {k: v for k, v in tiny_model.state_dict().items() if is_stored(k)}
    for key in [k for k in state if k.endswith("relative_position_params")]:
        state[key] = torch.zeros(0, *state[key].shape[1:])
    torch.save({"state_dict": state}, tmp_path / "headless.pth")
    with pytest.raises(ModelNotFoundError, match="not a TCM model"):
        load_checkpoint(tmp_path / "headless.pth")


#: what a mutated checkpoint may hold instead of a tensor or a config value
ODD_VALUES = [5, "x", None, [1, 2], [1.5, 2, 3], {"a": 1}, True, 0, -1, 10**9, 1.5, float("nan"), float("inf"),
              torch.tensor(3.0), torch.zeros(0), torch.zeros(2, 2, dtype=torch.int64), torch.zeros(3, dtype=torch.bool),
              torch.zeros(1, 1, 1, 1, 1), torch.full((4,), float("nan")), torch.zeros(2, dtype=torch.complex64)]


#: seeded mutations per run (about 0.12 s each)
CASES = 150


def test_mutated_checkpoints_load_or_raise_a_clear_error(tmp_path, tiny_vr_model):
    """Checkpoints are untrusted input: an exported file with 1-3 of its config values,
    tensors or top-level entries replaced by odd values (wrong types, NaN, empty, complex,
    huge numbers) loads or raises a TcmError, never another exception (seeded cases)."""
    import random

    path, _ = export_weights(tiny_vr_model, tmp_path / "base.pt")
    base = torch.load(path, weights_only=True)
    rng = random.Random(0)
    for case in range(CASES):
        data = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
        for _ in range(rng.randint(1, 3)):
            where = rng.choice(["state_dict", "config", "top"])
            if where == "top":
                data[rng.choice(list(data))] = rng.choice(ODD_VALUES)
            elif isinstance(data.get(where), dict) and data[where]:
                data[where][rng.choice(list(data[where]))] = rng.choice(ODD_VALUES)
        torch.save(data, tmp_path / "mutated.pt")
        try:
            load_checkpoint(tmp_path / "mutated.pt")
        except tcmcodec.TcmError:
            pass


def test_export_drops_training_state_and_fp16_export_loads_back(tmp_path, tiny_vr_model):
    path, digest = export_weights(tiny_vr_model, tmp_path, half=True)
    assert digest in path.name
    payload = torch.load(path, weights_only=True)
    assert "optimizer" not in payload
    assert all(v.dtype in (torch.float16, torch.int32, torch.int64) for v in payload["state_dict"].values())
    model = load_checkpoint(path)
    assert model.weights_hash == digest
    assert model.config == tiny_vr_model.config
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        diff = (model(x, 1.0)["x_hat"] - tiny_vr_model(x, 1.0)["x_hat"]).abs().max()
    assert float(diff) < 0.05


def test_architecture_constants_survive_fp16_export_and_zeroed_files(tmp_path, tiny_vr_model):
    from tcmcodec.checkpoints import CONSTANT_BUFFERS

    def constants(model):
        return {k: v for k, v in model.state_dict().items() if k.rsplit(".", 1)[-1] in CONSTANT_BUFFERS}

    expected = constants(tiny_vr_model)
    assert float(tiny_vr_model.gaussian_conditional.likelihood_lower_bound.bound) == pytest.approx(1e-9)
    path, digest = export_weights(tiny_vr_model, tmp_path / "half.pt", half=True)
    assert not any(k.rsplit(".", 1)[-1] in CONSTANT_BUFFERS for k in torch.load(path, weights_only=True)["state_dict"])
    loaded = load_checkpoint(path)
    assert all(torch.equal(v, expected[k]) for k, v in constants(loaded).items())  # 1e-9, not fp16's 0
    # a file from before (constants stored in float16, the likelihood floor as 0) loads the same
    old = {k: (v.half() if v.is_floating_point() else v) for k, v in tiny_vr_model.state_dict().items()}
    assert float(old["gaussian_conditional.likelihood_lower_bound.bound"]) == 0.0
    torch.save({"config": tiny_vr_model.config.to_dict(), "state_dict": old}, tmp_path / "old.pt")
    from_old = load_checkpoint(tmp_path / "old.pt")
    assert all(torch.equal(v, expected[k]) for k, v in constants(from_old).items())
    assert from_old.weights_hash == loaded.weights_hash == digest
    # the hash covers the learned tensors and the config, not the constants
    _, full = export_weights(tiny_vr_model, tmp_path / "full.pt")
    config = tiny_vr_model.config
    assert full == weights_hash(tiny_vr_model.state_dict(), config) == load_checkpoint(tmp_path / "full.pt").weights_hash
    assert weights_hash(from_old.state_dict(), config) == digest


def test_export_of_several_checkpoints_is_the_mean_of_their_weights(tmp_path, capsys):
    first, second = make_model("tcm-tiny-vr", seed=1), make_model("tcm-tiny-vr", seed=2)
    paths = [export_weights(m, tmp_path / f"{i}.pt")[0] for i, m in enumerate((first, second))]
    assert run_cli("export", *paths, tmp_path / "soup.pt") == 0
    assert "mean of 2 checkpoints" in capsys.readouterr().out
    soup = load_checkpoint(tmp_path / "soup.pt")
    a, b, mean = first.state_dict(), second.state_dict(), soup.state_dict()
    learned = [k for k, v in mean.items() if is_stored(k) and v.is_floating_point()]
    assert any(k.startswith("gain_y.") for k in learned) and any(k.startswith("g_s.") for k in learned)
    for key in learned:
        assert torch.allclose(mean[key], (a[key] + b[key]) / 2, atol=1e-6), key
    # the CDF tables are rebuilt for the mean weights: it codes like any loaded model
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        out = soup.compress(x, 1.0)
        assert soup.decompress(out["strings"], out["shape"], 1.0)["x_hat"].shape == x.shape
    # averaging one model with itself changes nothing
    assert run_cli("export", paths[0], paths[0], tmp_path / "same.pt") == 0
    assert load_checkpoint(tmp_path / "same.pt").weights_hash == load_checkpoint(paths[0]).weights_hash


def test_export_refuses_to_average_different_models_in_one_line(tmp_path, capsys):
    paths = [export_weights(make_model(name), tmp_path / f"{name}.pt")[0] for name in ("tcm-tiny", "tcm-tiny-vr")]
    assert run_cli("export", *paths, tmp_path / "soup.pt") == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot average tcm-tiny with tcm-tiny-vr" in err
    assert "rate_lambdas" in err  # names what differs
    assert not (tmp_path / "soup.pt").exists()


def test_export_averages_weights_whose_scale_tables_differ(tmp_path):
    path, _ = export_weights(make_model("tcm-tiny-vr", seed=3), tmp_path / "w.pt")
    assert run_cli("export", path, tmp_path / "fine.pt", "--scale-levels", "256") == 0
    # the scale table is not learned: the first file's is kept, the weights are the mean
    assert run_cli("export", tmp_path / "fine.pt", path, tmp_path / "soup.pt") == 0
    soup, fine = load_checkpoint(tmp_path / "soup.pt"), load_checkpoint(tmp_path / "fine.pt")
    assert soup.config.scale_levels == 256 and soup.weights_hash == fine.weights_hash


def test_a_finer_scale_table_changes_the_bits_not_the_picture_and_is_part_of_the_identity(tmp_path):
    path, digest = export_weights(make_model("tcm-tiny-vr", seed=3), tmp_path / "w.pt")
    assert run_cli("export", path, tmp_path / "fine.pt", "--scale-levels", "256") == 0
    coarse, fine = load_checkpoint(path), load_checkpoint(tmp_path / "fine.pt")
    assert coarse.weights_hash == digest  # the default table leaves hashes as they were
    assert fine.config.scale_levels == 256 and fine.coding_tables().scales.numel() == 256
    assert fine.weights_hash != digest  # same parameters, another bitstream: another identity
    torch.manual_seed(0)
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        streams = {name: m.compress(x, 1.0) for name, m in (("coarse", coarse), ("fine", fine))}
        pictures = {name: m.decompress(streams[name]["strings"], streams[name]["shape"], 1.0)["x_hat"]
                    for name, m in (("coarse", coarse), ("fine", fine))}
    assert torch.equal(pictures["coarse"], pictures["fine"])  # same symbols, coded with other CDFs
    assert streams["fine"]["strings"][0] != streams["coarse"]["strings"][0]
    # a file coded with the fine table is refused by the coarse model instead of misdecoded
    blob = tcmcodec.encode(np.zeros((64, 64, 3), np.uint8), fine, quality=50)
    with pytest.raises(ModelMismatchError):
        tcmcodec.decode(blob, coarse)
    assert run_cli("export", path, tmp_path / "bad.pt", "--scale-levels", "0") == 1
