"""Training: exact resume, kill safety, torchrun with two CPU processes, data handling."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tcmcodec.checkpoints import is_stored, load_checkpoint
from tcmcodec.config import get_preset
from tcmcodec.train.data import RandomCropDataset, count_smaller_than, list_images
from tcmcodec.runtime import native_bfloat16
from tcmcodec.train.loop import Trainer, train
from tcmcodec.train.run_state import BEST, LATEST
from tcmcodec.train.settings import TrainingError, TrainSettings

from conftest import REPO, run_cli

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """Eight small photos-like images (and one unreadable file) in nested folders."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for i in range(8):
        folder = root / ("a" if i % 2 else "b")
        folder.mkdir(exist_ok=True)
        h, w = (48, 70) if i == 0 else (96 + 8 * i, 120)  # the first is smaller than a patch
        base = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
        pixels = np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i}.png")
    (root / "b" / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def _settings(data: Path, out: Path, **kw) -> TrainSettings:
    base = dict(data=str(data), out=str(out), model="tcm-tiny", lmbda=0.01, patch=64, batch_size=2,
                steps=6, lr=1e-3, seed=3, val_every=0, progress=False, checkpoint_minutes=60.0)
    base.update(kw)
    return TrainSettings(**base)


def _weights(out: Path, key: str = "state_dict") -> dict[str, torch.Tensor]:
    return torch.load(out / LATEST, weights_only=True)[key]


def test_resumed_run_equals_an_uninterrupted_one(image_folder, tmp_path):
    with pytest.warns(UserWarning, match="unreadable"):
        train(_settings(image_folder, tmp_path / "straight", steps=6, milestones=[4]))
        train(_settings(image_folder, tmp_path / "split", steps=3, milestones=[4]))
        train(_settings(image_folder, tmp_path / "split", steps=6, milestones=[4], resume=True))
    assert torch.load(tmp_path / "split" / LATEST, weights_only=True)["step"] == 6
    for kind in ("state_dict", "ema_state_dict"):  # the weights and their moving average
        a, b = _weights(tmp_path / "straight", kind), _weights(tmp_path / "split", kind)
        for key in a:
            assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), (kind, key)


@pytest.mark.parametrize("balance", [False, True], ids=["plain", "balanced-levels"])
def test_variable_rate_training_resumes_exactly_too(image_folder, tmp_path, balance):
    kw = dict(model="tcm-tiny-vr", lmbda=None, balance_levels=balance)
    train(_settings(image_folder, tmp_path / "straight", steps=4, **kw))
    train(_settings(image_folder, tmp_path / "split", steps=2, **kw))
    train(_settings(image_folder, tmp_path / "split", steps=4, resume=True, **kw))
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
    if balance:  # the running means travel in the checkpoint
        means = torch.load(tmp_path / "split" / LATEST, weights_only=True)["balancer"]["means"]
        assert any(m == m for m in means)  # some level seen (not NaN)


def test_level_balancer_weights_make_every_levels_weighted_loss_alike():
    from tcmcodec.train.losses import LevelBalancer

    balancer = LevelBalancer(levels=3, decay=0.5)
    levels = torch.tensor([0, 1, 2, 0])
    assert torch.equal(balancer.weights(levels), torch.ones(4))  # nothing seen yet
    balancer.update(levels, torch.tensor([0.1, 1.0, 5.0, 0.3]))  # level 0: mean 0.2
    balancer.update(torch.tensor([1]), torch.tensor([float("nan")]))  # ignored
    weights = balancer.weights(levels)
    weighted = weights * torch.tensor([0.2, 1.0, 5.0, 0.2])
    assert torch.allclose(weighted, torch.full((4,), (0.2 + 1.0 + 5.0) / 3))
    balancer.update(torch.tensor([2]), torch.tensor([1.0]))  # running mean: 0.5 * 5 + 0.5 * 1
    assert balancer.means[2].item() == pytest.approx(3.0)
    fresh = LevelBalancer(levels=3)
    fresh.load_state_dict(balancer.state_dict())
    assert torch.equal(fresh.weights(levels), balancer.weights(levels))
    with pytest.raises(ValueError, match="levels"):
        LevelBalancer(levels=2).load_state_dict(balancer.state_dict())


def test_resume_keeps_the_runs_learning_rate_unless_a_new_one_is_given(image_folder, tmp_path):
    out = tmp_path / "run"
    train(_settings(image_folder, out, steps=2, lr=3e-4))
    lr = lambda: torch.load(out / LATEST, weights_only=True)["optimizer"]["param_groups"][0]["lr"]  # noqa: E731
    train(_settings(image_folder, out, steps=3, lr=None, resume=True))
    assert lr() == pytest.approx(3e-4)
    train(_settings(image_folder, out, steps=4, lr=1e-4, resume=True))
    assert lr() == pytest.approx(1e-4)
    # new milestones hold from the resume on; one already passed applies at once
    train(_settings(image_folder, out, steps=6, lr=2e-4, milestones=[3, 5], gamma=0.5, resume=True))
    assert lr() == pytest.approx(2e-4 * 0.5 * 0.5)


def test_warmup_scales_the_first_updates_and_leaves_the_schedule_alone(image_folder, tmp_path):
    # Adam's first update moves every weight with a gradient by about lr, whatever the gradient
    def first_update(warmup: int) -> float:
        trainer = Trainer(_settings(image_folder, tmp_path / f"w{warmup}", lr=1e-3, warmup_steps=warmup,
                                    clip=0.0, ema_decay=0.0))
        before = [p.detach().clone() for p in trainer.optimizer.param_groups[0]["params"]]
        batch = torch.rand(2, 3, 64, 64)
        assert trainer.train_step(batch) is not None
        assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
        after = trainer.optimizer.param_groups[0]["params"]
        return max(float((a.detach() - b).abs().max()) for a, b in zip(after, before))

    assert first_update(0) == pytest.approx(1e-3, rel=0.05)
    assert first_update(4) == pytest.approx(1e-3 / 4, rel=0.05)
    trainer = Trainer(_settings(image_folder, tmp_path / "f", warmup_steps=4))
    factors = []
    for step in range(6):
        trainer.step = step
        factors.append(trainer.warmup_factor())
    assert factors == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


@pytest.mark.skipif(not native_bfloat16("cpu"), reason="this CPU has no bfloat16 units")
@pytest.mark.parametrize("amp, entropy_dtype", [("bf16", None), ("bf16-all", torch.bfloat16)])
def test_amp_bf16_trains_in_bfloat16_and_validates_in_float32(image_folder, tmp_path, amp, entropy_dtype):
    trainer = Trainer(_settings(image_folder, tmp_path / "amp", amp=amp, val=str(image_folder / "a")))
    assert trainer.model.transform_dtype == torch.bfloat16
    assert trainer.model.entropy_dtype == entropy_dtype
    assert trainer.train_step(torch.rand(2, 3, 64, 64)) is not None
    # channels-last activations leave the parameters' layout, and so fused Adam's, alone
    assert all(p.grad is None or p.grad.is_contiguous() for p in trainer.model.parameters())
    plain = Trainer(_settings(image_folder, tmp_path / "plain", val=str(image_folder / "a")))
    plain.model.load_state_dict(trainer.model.state_dict())
    plain.average.model.load_state_dict(trainer.average.model.state_dict())
    assert trainer.validate() == plain.validate()  # float32 either way
    assert trainer.average.model.transform_dtype == torch.bfloat16  # and set back afterwards


def test_bf16_entropy_networks_keep_means_scales_and_likelihoods_float32_and_never_code(tiny_vr_model):
    """With ``entropy_dtype`` the entropy-parameter networks compute in bfloat16 in training
    mode, while everything the loss and the coder see stays float32; in eval mode (coding,
    validation) it changes nothing: the same bytes."""
    import copy

    import tcmcodec

    model = copy.deepcopy(tiny_vr_model)
    image = (np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)
    plain_bytes = tcmcodec.encode(image, model=model, quality=50)
    model.entropy_dtype = torch.bfloat16
    seen: dict[str, torch.dtype] = {}
    hooks = [module.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o.dtype))
             for name, module in [("h_a", model.h_a), ("h_mean_s", model.h_mean_s),
                                  ("cc_scale", model.cc_scale_transforms[0]), ("lrp", model.lrp_transforms[0])]]
    model.train()
    out = model(torch.rand(2, 3, 64, 64), torch.tensor([0.0, 2.0]))
    for hook in hooks:
        hook.remove()
    assert seen == {"h_a": torch.bfloat16, "h_mean_s": torch.bfloat16, "cc_scale": torch.bfloat16,
                    "lrp": torch.bfloat16}
    assert out["x_hat"].dtype == out["likelihoods"]["y"].dtype == out["likelihoods"]["z"].dtype == torch.float32
    (out["likelihoods"]["y"].log().sum() + out["x_hat"].sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert tcmcodec.encode(image, model=model, quality=50) == plain_bytes


def test_checkpoint_holds_everything_needed_and_loads_safely(image_folder, tmp_path):
    out = tmp_path / "run"
    train(_settings(image_folder, out, steps=2, val=str(image_folder / "a"), val_every=1))
    ckpt = torch.load(out / LATEST, weights_only=True)
    for key in ("state_dict", "config", "step", "optimizer", "aux_optimizer", "scheduler", "rng"):
        assert key in ckpt
    assert (out / BEST).exists()
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert any('"kind": "val"' in r for r in rows) and any('"kind": "train"' in r for r in rows)
    # a training checkpoint is a valid --checkpoint for the codec
    assert run_cli("export", out / LATEST, tmp_path, "--fp16") == 0
    exported = next(tmp_path.glob("tcm-tiny-*.pt"))
    img = tmp_path / "x.png"
    Image.fromarray(np.full((40, 50, 3), 90, np.uint8)).save(img)
    assert run_cli("encode", img, tmp_path / "x.tcm", "--checkpoint", exported) == 0
    assert run_cli("decode", tmp_path / "x.tcm", tmp_path / "y.png", "--checkpoint", exported) == 0
    assert Image.open(tmp_path / "y.png").size == (50, 40)


def test_non_finite_losses_are_skipped_then_stop_the_run(image_folder, tmp_path, monkeypatch):
    trainer = Trainer(_settings(image_folder, tmp_path / "nan", steps=30))
    import tcmcodec.train.loop as loop

    monkeypatch.setattr(loop, "rate_distortion_loss",
                        lambda *a, **k: {"loss": torch.tensor(float("nan"), requires_grad=True),
                                         "bpp": torch.tensor(0.0), "mse": torch.tensor(0.0), "psnr": torch.tensor(0.0),
                                         "sample_loss": torch.full((2,), float("nan"))})
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.warns(UserWarning, match="non-finite"):
        with pytest.raises(TrainingError, match="non-finite losses or gradients in a row"):
            trainer.run()
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_non_finite_gradient_under_a_finite_loss_skips_the_step_and_keeps_the_weights(image_folder, tmp_path):
    trainer = Trainer(_settings(image_folder, tmp_path / "nan-grad", steps=1))
    weight = next(p for p in trainer.model.parameters() if p.requires_grad)
    weight.register_hook(lambda grad: grad * float("inf"))  # overflows, as under a too-high lr
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    batch = torch.stack([RandomCropDataset(trainer.train_paths, trainer.s.patch)[k] for k in range(2)])
    with pytest.warns(UserWarning, match="non-finite loss or gradient"):
        assert trainer.train_step(batch) is None
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_dataset_is_a_pure_function_of_seed_and_index(image_folder):
    paths = list_images(image_folder)
    a = RandomCropDataset(paths, 64, seed=1)
    b = RandomCropDataset(paths, 64, seed=1)
    for k in (0, 5, 17):
        assert torch.equal(a[k], b[k]) and a[k].shape == (3, 64, 64)
    assert not torch.equal(a[0], RandomCropDataset(paths, 64, seed=2)[0])


def test_images_smaller_than_the_patch_are_counted_and_reported_once_at_the_start(image_folder, tmp_path, capsys):
    # eight images, 70 x 48 and 120 wide by 104 ... 152 high, and a broken file: 9 paths
    paths = list_images(image_folder)
    assert count_smaller_than(paths, 64) == (1, 8)
    assert count_smaller_than(paths, 113) == (3, 8)  # 48, 104 and 112 pixels high
    assert count_smaller_than(paths, 40) == (0, 8)
    # at most three checked, spread over the list: paths 0, 3, 6 (a/img1 104 high, a/img7, b/img2 112)
    assert [p.name for p in paths[::3]] == ["img1.png", "img7.png", "img2.png"]
    assert count_smaller_than(paths, 113, limit=3) == (2, 3)
    Trainer(_settings(image_folder, tmp_path / "run", steps=1)).run()
    err = capsys.readouterr().err
    assert "1 of 8 training images checked have a side under --patch 64" in err
    large = tmp_path / "large"
    large.mkdir()
    for i in range(2):
        Image.fromarray(np.full((64, 80, 3), 40 * i, dtype=np.uint8)).save(large / f"{i}.png")
    Trainer(_settings(large, tmp_path / "run-large", steps=1)).run()
    assert "upscaled" not in capsys.readouterr().err


@pytest.mark.filterwarnings("error:The given NumPy array is not writable")
def test_crops_of_a_full_width_image_load_without_a_read_only_array_warning(tmp_path):
    # a portrait image as wide as the patch: an unflipped crop is then a contiguous view of the
    # decoded (read-only) pixels, which torch.from_numpy warns about
    pixels = np.random.default_rng(0).integers(0, 256, (96, 64, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "portrait.png")
    dataset = RandomCropDataset([tmp_path / "portrait.png"], 64, seed=3)
    crops = [dataset[k] for k in range(16)]  # unflipped ones among them
    assert all(crop.shape == (3, 64, 64) for crop in crops)


def test_bad_options_are_user_errors(image_folder, tmp_path):
    assert run_cli("train", "--data", image_folder, "--out", tmp_path, "--model", "nope", "--steps", "1") == 1
    assert run_cli("train", "--data", image_folder, "--out", tmp_path, "--model", "tcm-tiny",
                   "--patch", "100", "--steps", "1") == 1
    assert run_cli("train", "--data", tmp_path / "missing", "--out", tmp_path, "--steps", "1") == 1
    assert run_cli("train", "--data", image_folder, "--out", tmp_path, "--model", "tcm-tiny-vr",
                   "--lambda", "0.01", "--steps", "1") == 1
    assert run_cli("train", "--data", image_folder, "--out", tmp_path, "--model", "tcm-tiny",
                   "--warmup-steps", "-1", "--steps", "1") == 1
    assert run_cli("train", "--data", image_folder, "--out", tmp_path, "--model", "tcm-tiny",
                   "--balance-levels", "--steps", "1") == 1
    for lambdas in ("0.01,0.04", "0.04,0.01", "0.01", "0.01,x"):  # fixed-rate preset; descending; one; junk
        model = "tcm-tiny" if lambdas == "0.01,0.04" else "tcm-tiny-vr"
        assert run_cli("train", "--data", image_folder, "--out", tmp_path, "--model", model,
                       "--lambdas", lambdas, "--steps", "1") == 1


def _cli(data: Path, out: Path, steps: int, *extra: str) -> list[str]:
    return ["-m", "tcmcodec", "train", "--data", str(data), "--out", str(out), "--model", "tcm-tiny",
            "--patch", "64", "--batch-size", "2", "--steps", str(steps), "--val-every", "0",
            "--seed", "3", "--no-progress", "--threads", "1", *extra]


@pytest.mark.slow
def test_killing_the_process_loses_at_most_the_work_since_the_last_checkpoint(image_folder, tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, *_cli(image_folder, out, 10_000, "--checkpoint-minutes", "0.0001")],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / LATEST).exists():
        time.sleep(0.2)
    time.sleep(1.5)  # kill somewhere in the middle of steps and checkpoint writes
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpt = torch.load(out / LATEST, weights_only=True)  # never a torn file
    step = ckpt["step"]
    assert step >= 1
    assert not list(out.glob(".*.tmp*")) or all(p.stat().st_size >= 0 for p in out.glob(".*.tmp*"))
    done = subprocess.run([sys.executable, *_cli(image_folder, out, step + 2, "--resume")], env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert torch.load(out / LATEST, weights_only=True)["step"] == step + 2


@pytest.mark.slow
def test_torchrun_with_two_cpu_processes_trains_and_checkpoints_once(image_folder, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun not installed")
    out = tmp_path / "ddp"
    result = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", *_cli(image_folder, out, 3)],
                            env=ENV, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = torch.load(out / LATEST, weights_only=True)
    assert ckpt["step"] == 3 and ckpt["world_size"] == 2
    assert len(ckpt["rng"]["per_rank"]) == 2
    rows = [r for r in (out / "metrics.jsonl").read_text().splitlines() if '"train"' in r]
    assert len(rows) == 1  # rank 0 logs alone (one row at the last step)
    # resuming under torchrun continues from the saved step
    result = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", *_cli(image_folder, out, 4, "--resume")],
                            env=ENV, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.load(out / LATEST, weights_only=True)["step"] == 4


def test_init_starts_from_the_given_weights(image_folder, tmp_path):
    train(_settings(image_folder, tmp_path / "first", steps=2))
    trained = _weights(tmp_path / "first", "ema_state_dict")  # a run's weights are its average
    trainer = Trainer(_settings(image_folder, tmp_path / "second", lmbda=0.002,
                                init=str(tmp_path / "first" / LATEST)))
    fresh = trainer.model.state_dict()
    assert torch.equal(fresh["g_a.0.conv1.weight"], trained["g_a.0.conv1.weight"])
    assert torch.equal(fresh["entropy_bottleneck.quantiles"], trained["entropy_bottleneck.quantiles"])


def test_without_model_a_run_trains_the_architecture_of_its_init_weights(image_folder, tmp_path,
                                                                         tiny_vr_checkpoint, tiny_checkpoint):
    # a widened model has a derived config and no preset: its own file says what to build
    wide = tmp_path / "wide.pt"
    assert run_cli("widen", tiny_vr_checkpoint, wide) == 0
    trainer = Trainer(_settings(image_folder, tmp_path / "run", model=None, lmbda=None, init=str(wide)))
    assert trainer.config == load_checkpoint(wide).config and trainer.config.name == "tcm-tiny-vr-x2"
    for key, value in load_checkpoint(wide).state_dict().items():
        if is_stored(key):
            assert torch.equal(trainer.model.state_dict()[key], value), key
    # the authors' checkpoints carry no config: their tensor shapes give it
    authors = Trainer(_settings(image_folder, tmp_path / "authors", model=None, init=str(tiny_checkpoint)))
    assert authors.config.N == get_preset("tcm-tiny").N and authors.config.M == get_preset("tcm-tiny").M
    # a resumed run keeps its architecture without being told again
    trainer.save()
    resumed = Trainer(_settings(image_folder, tmp_path / "run", model=None, lmbda=None, resume=True))
    assert resumed.config == trainer.config


def test_an_unusable_architecture_source_is_a_one_line_error(image_folder, tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert run_cli("train", "--data", image_folder, "--out", tmp_path / "run", "--init", junk, "--steps", "1") == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot tell the architecture of --init" in err and "give --model" in err
    assert run_cli("train", "--data", image_folder, "--out", tmp_path / "run", "--model", "nope", "--steps", "1") == 1
    assert "unknown preset 'nope'" in capsys.readouterr().err


def test_moving_average_follows_the_warmed_up_formula_and_is_what_export_takes(image_folder, tmp_path):
    trainer = Trainer(_settings(image_folder, tmp_path / "run", ema_decay=0.5))
    params = dict(trainer.model.named_parameters())
    expected = {k: p.detach().clone() for k, p in params.items()}
    loader = iter(torch.utils.data.DataLoader(RandomCropDataset(trainer.train_paths, 64, seed=1), batch_size=2))
    for t in range(4):
        trainer.train_step(next(loader))
        decay = min(0.5, (1 + t) / (10 + t))  # warm-up: 0.1, 0.18, ... then the decay itself
        for k, p in params.items():
            expected[k] = decay * expected[k] + (1 - decay) * p.detach()
    averaged = dict(trainer.average.model.named_parameters())
    assert all(torch.allclose(averaged[k], expected[k], atol=1e-6) for k in expected)
    assert not torch.equal(averaged["g_a.0.conv1.weight"], params["g_a.0.conv1.weight"])
    trainer.save()
    from tcmcodec.checkpoints import extract_state_dict, read_checkpoint

    taken = extract_state_dict(read_checkpoint(tmp_path / "run" / LATEST))
    assert torch.equal(taken["g_a.0.conv1.weight"], averaged["g_a.0.conv1.weight"])


def test_balanced_levels_pick_the_best_checkpoint_by_the_geometric_mean_of_level_losses(image_folder, tmp_path):
    import math

    from tcmcodec.train.loop import GEOMEAN_LOSS

    kw = dict(model="tcm-tiny-vr", lmbda=None, val=str(image_folder / "a"))
    plain = Trainer(_settings(image_folder, tmp_path / "plain", **kw))
    balanced = Trainer(_settings(image_folder, tmp_path / "balanced", balance_levels=True, **kw))
    val = plain.validate()
    levels = [val[f"loss@{level}"] for level in range(plain.config.rate_levels)]
    assert val[GEOMEAN_LOSS] == pytest.approx(math.exp(sum(map(math.log, levels)) / len(levels)))
    assert val["loss"] == pytest.approx(sum(levels) / len(levels))
    assert plain._selection_loss(val) == val["loss"]
    assert balanced._selection_loss(val) == val[GEOMEAN_LOSS]
    # resuming with the other criterion starts the best over instead of comparing unlike numbers
    plain.best_loss = 2.5
    plain.save()
    switched = Trainer(_settings(image_folder, tmp_path / "plain", balance_levels=True, resume=True, **kw))
    assert switched.best_loss == math.inf
    assert Trainer(_settings(image_folder, tmp_path / "plain", resume=True, **kw)).best_loss == 2.5


def test_raw_weights_are_validated_beside_the_average_unless_switched_off(image_folder, tmp_path):
    val = str(image_folder / "a")
    both = Trainer(_settings(image_folder, tmp_path / "both", val=val)).validate()
    averaged = Trainer(_settings(image_folder, tmp_path / "avg", val=val, val_raw=False)).validate()
    assert set(both) == set(averaged) | {f"raw_{k}" for k in averaged}
    assert all(averaged[k] == both[k] for k in averaged)


def test_without_the_average_checkpoints_hold_and_give_the_raw_weights(image_folder, tmp_path):
    out = tmp_path / "run"
    train(_settings(image_folder, out, steps=2, ema_decay=0.0))
    ckpt = torch.load(out / LATEST, weights_only=True)
    assert "ema_state_dict" not in ckpt
    from tcmcodec.checkpoints import extract_state_dict

    assert torch.equal(extract_state_dict(ckpt)["g_a.0.conv1.weight"], ckpt["state_dict"]["g_a.0.conv1.weight"])
    # switching the average on for an old run starts it from the run's current weights
    train(_settings(image_folder, out, steps=3, resume=True))
    assert torch.load(out / LATEST, weights_only=True)["ema"]["updates"] == 1


def test_a_time_limit_stops_after_a_checkpoint_and_the_run_resumes_from_it(image_folder, tmp_path):
    out = tmp_path / "run"
    train(_settings(image_folder, out, steps=5, max_minutes=1e-9))  # out of time after one step
    assert torch.load(out / LATEST, weights_only=True)["step"] == 1
    train(_settings(image_folder, out, steps=5, resume=True))
    assert torch.load(out / LATEST, weights_only=True)["step"] == 5
    with pytest.raises(TrainingError, match="max-minutes"):
        Trainer(_settings(image_folder, out, max_minutes=0))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_ends_the_run_after_the_step_with_a_checkpoint(image_folder, tmp_path, monkeypatch, signum,
                                                                     request):
    out = tmp_path / "run"
    if signal.getsignal(signum) is signal.SIG_IGN:
        # a background job (nohup, `&`) starts with SIGINT ignored, which training respects
        # (it leaves ignored signals alone); here the signal must arrive
        signal.signal(signum, signal.default_int_handler)
        request.addfinalizer(lambda: signal.signal(signum, signal.SIG_IGN))
    kept = signal.getsignal(signum)
    real_step = Trainer.train_step

    def step_then_signal(self, batch):  # the signal arrives during step 2
        metrics = real_step(self, batch)
        if self.step == 1:
            os.kill(os.getpid(), signum)
        return metrics

    monkeypatch.setattr(Trainer, "train_step", step_then_signal)
    train(_settings(image_folder, out, steps=50))
    assert torch.load(out / LATEST, weights_only=True)["step"] == 2
    assert signal.getsignal(signum) == kept  # the caller's handler is back
    monkeypatch.undo()
    train(_settings(image_folder, out, steps=4, resume=True))
    assert torch.load(out / LATEST, weights_only=True)["step"] == 4


def test_crop_pack_skips_the_validation_images_and_keeps_to_its_budget(image_folder, tmp_path):
    from tcmcodec.train.data import split_holdout

    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import pack_crops
    finally:
        sys.path.pop(0)
    usable = lambda paths: [p for p in paths if p.suffix == ".png" and min(Image.open(p).size) >= 64]  # noqa: E731
    kept, held = split_holdout(list_images(image_folder), 3)
    assert usable(held)  # so skipping them shows in the count
    out = tmp_path / "crops"
    assert pack_crops.main([str(image_folder), "--out", str(out), "--size", "64", "--val-split", "3"]) == 0
    crops = sorted(out.glob("*.jpg"))
    assert len(crops) == 2 * len(usable(kept))  # two crops per image by default
    assert all(Image.open(c).size == (64, 64) for c in crops)
    assert pack_crops.main([str(image_folder), "--out", str(tmp_path / "small"), "--size", "64", "--val-split", "0",
                            "--budget-mb", str(2.5 * crops[0].stat().st_size / 2**20)]) == 0
    assert 1 <= len(list((tmp_path / "small").glob("*.jpg"))) <= 3


def test_init_resamples_the_gains_of_a_model_trained_for_other_lambdas(image_folder, tmp_path):
    from tcmcodec.config import get_preset

    train(_settings(image_folder, tmp_path / "three", model="tcm-tiny-vr", lmbda=None, steps=2))
    trained = _weights(tmp_path / "three", "ema_state_dict")["gain_y.log_gain"]
    lambdas = get_preset("tcm-tiny-vr").rate_lambdas  # 0.004, 0.016, 0.064
    trainer = Trainer(_settings(image_folder, tmp_path / "five", model="tcm-tiny-vr", lmbda=None,
                                rate_lambdas=(0.001, *lambdas, 0.128), init=str(tmp_path / "three" / LATEST)))
    gains = trainer.model.state_dict()["gain_y.log_gain"]
    assert gains.shape[0] == 5
    assert torch.equal(gains[1:4], trained)  # trained lambdas keep their vectors exactly
    # one lambda step (x4) beyond either end continues the nearest segment in log(lambda)
    assert torch.allclose(gains[0], trained[0] - (trained[1] - trained[0]), atol=1e-6)
    assert torch.allclose(gains[4], trained[2] + 0.5 * (trained[2] - trained[1]), atol=1e-6)


def test_lambdas_option_sets_the_rate_levels_and_a_resumed_run_keeps_them(image_folder, tmp_path):
    from tcmcodec.checkpoints import load_checkpoint

    lambdas = (0.002, 0.01, 0.05, 0.25)
    out = tmp_path / "four"
    common = ("train", "--data", image_folder, "--out", out, "--model", "tcm-tiny-vr", "--patch", "64",
              "--batch-size", "2", "--val-every", "0", "--no-progress", "--threads", "1")
    assert run_cli(*common, "--steps", "2", "--lambdas", ",".join(map(str, lambdas))) == 0
    assert run_cli(*common, "--steps", "3", "--resume") == 0  # no --lambdas: the run's own table
    data = torch.load(out / LATEST, weights_only=True)
    assert data["step"] == 3 and tuple(data["config"]["rate_lambdas"]) == lambdas
    assert data["state_dict"]["gain_y.log_gain"].shape[0] == 4
    model = load_checkpoint(out / LATEST)  # the weights carry their table: qualities map onto 4 levels
    assert model.rate_levels == 4 and model.config.rate_lambdas == lambdas
    # another table on resume is another model
    assert run_cli(*common, "--steps", "4", "--resume", "--lambdas", "0.01,0.05") == 1


def test_train_options_come_from_the_settings_with_their_defaults():
    """`tcm train` declares nothing itself: with only the required options, the parsed
    settings equal TrainSettings' defaults; every field is an option."""
    from dataclasses import fields

    from tcmcodec.cli import build_parser

    args = build_parser(only="train").parse_args(["train", "--data", "d", "--out", "o", "--steps", "3"])
    parsed = TrainSettings(**{f.name: getattr(args, f.name) for f in fields(TrainSettings)})
    assert parsed == TrainSettings(data="d", out="o", steps=3)
    args = build_parser(only="train").parse_args(
        ["train", "--data", "d", "--out", "o", "--epochs", "2", "--lambda", "0.05", "--no-progress",
         "--lambdas", "0.001,0.01", "--milestones", "5", "9"])
    assert (args.epochs, args.lmbda, args.progress, args.rate_lambdas, args.milestones) == \
        (2.0, 0.05, False, (0.001, 0.01), [5, 9])
