"""attack.meter: the feasibility meter (forward passes only, within the page's 1 s), grid-aware placement, and the
head discovery for torchvision CNNs."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

import attack
from attack import meter as M
from attack.cli import main

# bench/ceiling.py's seed 1, config 0 (ceiling.csv: 42 px at the corner: 0.007 over the covered cell, 0.997 over the
# four it touches; 50 px: 0.997 over the four it covers; 32 px: 0.007)
CONFIG = {"photo": "ai-benchmark/45", "target": 139, "corner": "top-left"}


@pytest.fixture(scope="module")
def img(model, samples):
    return attack.load_image(next(s for s in samples if s.name == CONFIG["photo"]).path, model.input_size)


@pytest.fixture
def no_backward(monkeypatch):
    """Any backward pass or autograd.grad call fails the test."""
    def boom(*a, **k):
        raise AssertionError("the meter ran a backward pass")
    monkeypatch.setattr(torch.Tensor, "backward", boom)
    monkeypatch.setattr(torch.autograd, "backward", boom)
    monkeypatch.setattr(torch.autograd, "grad", boom)


def test_bands_follow_the_cells_a_corner_patch_covers(model, img, no_backward):
    at = {size: M.meter(model, img, CONFIG["target"], size, attack.corner_loc("top-left", 224, size))
          for size in (32, 42, 50)}
    assert at[32].band == "unlikely" and at[32].cells_centre == at[32].cells_touched == 1
    assert at[42].band == "possible" and (at[42].cells_centre, at[42].cells_touched) == (1, 4)
    assert at[42].ceiling_centre == pytest.approx(0.007, abs=2e-3) and at[42].ceiling_touched > 0.98
    assert at[50].band == "likely" and at[50].cells_centre == 4
    # the best place within 16 px: 11 px in, where the 42 px patch covers the four centres
    assert at[42].best_loc == (11, 11) and at[42].best_band == "likely" and at[42].moved
    assert at[50].best_loc == (0, 0) and not at[50].moved  # nothing nearby is better: stay
    for m in at.values():
        assert m.available and m.informative and m.grid == 7 and m.stride == 32
        assert "\n" not in m.reason and m.reason
        assert all(max(abs(c["loc"][0] - m.loc[0]), abs(c["loc"][1] - m.loc[1])) <= 16 for c in m.candidates)


def test_meter_runs_without_gradients(model, img, no_backward):
    """No autograd at all (its speed is a benchmark's business: bench/meter.py, never a timed unit test)."""
    with torch.inference_mode():
        m = M.meter(model, img, CONFIG["target"], 42, (0, 182))
    assert m.band == "possible" and m.best_loc == (11, 171)


def test_head_ceiling_matches_projected_adam_with_autograd():
    """The written-out gradient gives what bench/ceiling.py's autograd loop gave (same Adam, same schedule)."""
    torch.manual_seed(0)
    fc = nn.Linear(16, 10)
    feats = torch.rand(16, 7, 7) * 6
    free = [(0, 0), (0, 1)]
    mask = torch.zeros(7, 7, dtype=torch.bool)
    mask[0, 0] = mask[0, 1] = True
    fixed, s = feats[:, ~mask].sum(1), feats[:, mask].sum(1).clone().requires_grad_(True)
    opt = torch.optim.Adam([s], lr=6 * 2 / 40)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 300)
    for _ in range(300):
        loss = -torch.log_softmax(fc((fixed + s) / 49), 0)[3]
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            s.clamp_(0, 12)
    ref = float(torch.softmax(fc((fixed + s) / 49), 0)[3].detach())
    got = M.head_ceiling(feats, fc.weight, fc.bias, [free, [], free[:1]], 3, 6.0, steps=300)
    assert got[0] == pytest.approx(ref, abs=1e-4)
    assert got[1] == pytest.approx(float(torch.softmax(fc(feats.mean((1, 2))), 0)[3].detach()))
    assert got[1] <= got[2] + 1e-6 <= got[0] + 2e-6


def test_grid_placement_geometry():
    # 42 px on the 7x7 grid of 32 px cells: 11 px in covers the 2x2 centres, each covered cell by 21 px per axis
    assert M.grid_loc((0, 0), 42, 224, 7, 32) == (11, 11)
    assert M.grid_loc((182, 182), 42, 224, 7, 32) == (171, 171)
    assert M.grid_loc((0, 182), 42, 224, 7, 32) == (11, 171)
    assert M.grid_loc((0, 0), 50, 224, 7, 32) == (0, 0)  # already covers four centres: no move
    assert M.grid_loc((0, 0), 32, 224, 7, 32) == (0, 0)  # 32 px can never cover two centres
    assert M.grid_loc((0, 0), 42, 224, 7, 32, radius=4) == (0, 0)  # out of reach
    assert M.cells((11, 11), 42, 7, 32) == ([(0, 0), (0, 1), (1, 0), (1, 1)],) * 2


def test_place(model, img):
    t = CONFIG["target"]
    assert M.place(model, img, t, 42, "top-left") == (0, 0)
    assert M.place(model, img, t, 42, "top-left", "grid") == (11, 11)
    assert M.place(model, img, t, 42, "bottom-right", "grid") == (171, 171)
    assert M.place(model, img, t, 42, (0, 0), "meter") == (11, 11)
    with pytest.raises(ValueError, match="unknown placement"):
        M.place(model, img, t, 42, "top-left", "centre")


def test_torchvision_heads_relu6_capped_relu_not_informative_vit_like_not_available():
    tvm = pytest.importorskip("torchvision.models")
    torch.manual_seed(0)
    img = torch.rand(3, 96, 96)
    mobile = attack.wrap(tvm.mobilenet_v2(weights=None), input_size=96, name="mnv2")
    head = M.find_head(mobile)
    assert head is not None and head.cap == 6.0 and head.fc is mobile.net.classifier[-1]
    m = M.meter(mobile, img, 5, 24, (0, 0), steps=50)
    assert m.available and m.informative and m.grid == 3 and m.band in M.BANDS
    resnet = attack.wrap(tvm.resnet18(weights=None), input_size=96, name="r18")
    assert M.find_head(resnet).cap is None and M.find_head(resnet).fc is resnet.net.fc
    r = M.meter(resnet, img, 5, 24, (0, 0))
    assert r.available and not r.informative and r.ceiling_centre is None and "no cap" in r.reason
    assert r.band == "possible" and r.cells_centre == 1
    # containers count too: Inception v3's last grid is Mixed_7c's concatenation (8x8 at 299, no cap)
    inception = attack.wrap(tvm.inception_v3(weights=None, aux_logits=False, init_weights=False), input_size=299,
                            name="inc")
    assert type(M.find_head(inception).module).__name__ == "InceptionE" and M.last_grid(inception) == (8, 37.375)
    assert M.last_grid(mobile) == (3, 32)
    # a head that is not a global mean of a grid (a token model, a flattened MLP): the meter says so
    flat = attack.wrap(nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 1000)), input_size=32, name="mlp")
    n = M.meter(flat, torch.rand(3, 32, 32), 5, 8, (0, 0))
    assert n.band == "not available" and not n.available and "not available" in n.reason
    assert M.place(flat, torch.rand(3, 32, 32), 5, 8, (0, 0)) == (0, 0)
    with pytest.raises(M.MeterUnavailable):
        M.place(flat, torch.rand(3, 32, 32), 5, 8, (0, 0), "grid")


def test_cli_attack_place_grid(capsys, tmp_path):
    code = main(["attack", "--image", CONFIG["photo"], "--target", str(CONFIG["target"]), "--corner", "top-left",
                 "--size", "42", "--place", "grid", "--max-iter", "1", "--device", "cpu", "--json", "--quiet",
                 "--no-cache", "--out", str(tmp_path / "p.safetensors")])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and out["loc"] == [11, 11] and out["chosen_loc"] == [0, 0] and out["place"] == "grid"


def test_cli_corner_follows_the_default_place_and_pixels_stay_exact(capsys, tmp_path, monkeypatch):
    base = ["attack", "--image", CONFIG["photo"], "--target", str(CONFIG["target"]), "--size", "42", "--max-iter",
            "1", "--device", "cpu", "--json", "--no-cache", "--out", str(tmp_path / "p.safetensors")]

    def run(*extra):
        code = main(base + list(extra))
        out, err = capsys.readouterr()
        assert code == 0
        return json.loads(out.strip().splitlines()[-1]), err
    out, _ = run("--corner", "top-left", "--quiet")
    assert out["loc"] == ([11, 11] if M.DEFAULT_PLACE == "grid" else [0, 0])
    monkeypatch.setattr(M, "DEFAULT_PLACE", "grid")
    out, err = run("--corner", "top-left")
    assert out["loc"] == [11, 11] and out["place"] == "grid" and "11 px in" in err and "--place corner" in err
    out, _ = run("--corner", "top-left", "--place", "corner", "--quiet")
    assert out["loc"] == [0, 0] and out["place"] == "corner"
    out, _ = run("--x", "0", "--y", "0", "--quiet")  # explicit pixels: exactly there
    assert out["loc"] == [0, 0] and out["place"] == "corner"


def test_the_measured_default_place_applies_only_to_the_models_it_was_measured_on(model):
    class Grid(nn.Module):  # a global-mean head over a ReLU grid, as ResNet's
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, 8, 32, stride=32), nn.ReLU())
            self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(8, 1000)

        def forward(self, x):
            return self.fc(self.pool(self.features(x)).flatten(1))
    assert M.default_place(model) == M.DEFAULT_PLACE  # the embedded Lite0 the rows were trained on
    assert M.default_place(attack.wrap(Grid(), input_size=224)) == "corner"  # never measured: the exact corner
