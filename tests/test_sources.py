"""Any torchvision classifier (``torchvision:<name>``) through torchvision's real weights path, offline.

torch's hub loader checks a file's hash only when it downloads it, so a randomly initialised state dict of the right
architecture, written under the exact file name torchvision expects in a temporary ``$TORCH_HOME``, loads through
``get_model(name, weights=DEFAULT)`` like the real weights would. Also: a researcher's own ``nn.Module`` (wrap)."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torchvision.models as tvm
from torch import nn
from tv_kit import write_weights

import attack
from attack import cli, sources
from attack.models import ModelError, WeightsMissing

ROOT = Path(__file__).resolve().parents[1]




@pytest.fixture(scope="module")
def tv_home(tmp_path_factory):
    """A TORCH_HOME whose hub cache holds resnet18, mobilenet_v3_small and inception_v3 (random weights)."""
    home = tmp_path_factory.mktemp("torch_home")
    for name in ("resnet18", "mobilenet_v3_small", "inception_v3"):
        write_weights(home, name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(home))
        yield home


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a URL fails the test: nothing may be downloaded unasked."""
    def refuse(*a, **k):
        raise AssertionError("a download was started")
    monkeypatch.setattr(sources.urllib.request, "urlopen", refuse)


def test_every_torchvision_classifier_has_info_without_network(no_network):
    names = sources.torchvision_names()
    assert len(names) >= 70 and "inception_v3" in names and "vit_b_16" in names
    infos = {n: sources.torchvision_info(n) for n in names}
    assert infos["inception_v3"].input_size == 299 and infos["inception_v3"].resize_size == 342
    assert infos["inception_v3"].mean == (0.5, 0.5, 0.5)  # transform_input folded into our normalisation
    assert infos["resnet18"].file_name == "resnet18-f37072fd.pth" and infos["resnet18"].input_size == 224
    assert infos["vit_b_16"].fixed_size and not infos["resnet50"].fixed_size
    with pytest.raises(ModelError, match="no classification model"):
        sources.torchvision_info("resnet19")


def test_loads_through_torchvisions_own_loader_and_matches_it(tv_home, no_network):
    model = attack.load_model("torchvision:resnet18", device="cpu")
    assert model.name == "torchvision:resnet18" and model.input_size == 224 and model.resize_size == 256
    assert model.cam_layer is model.net.layer4
    ref = tvm.resnet18()
    ref.load_state_dict(torch.load(sources.torchvision_info("resnet18").path, weights_only=True))
    x = torch.rand(2, 3, 224, 224)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(model(x), ref.eval()((x - mean) / std), atol=1e-4, rtol=1e-4)
    assert not any(p.requires_grad for p in model.parameters())
    assert "torchvision:resnet18" in sources.cached_torchvision_models()
    assert "torchvision:resnet50" not in sources.cached_torchvision_models()


def test_inception_v3_at_299_equals_torchvision_with_transform_input(tv_home, no_network):
    model = attack.load_model("torchvision:inception_v3", device="cpu")
    assert model.input_size == 299 and model.cam_layer is model.net.Mixed_7c and model.net.AuxLogits is None
    ref = tvm.inception_v3(weights=tvm.Inception_V3_Weights.DEFAULT).eval()  # the cached file, transform_input=True
    assert ref.transform_input
    x = torch.rand(1, 3, 299, 299)
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(model(x), ref((x - mean) / std), atol=2e-3, rtol=1e-3)


def test_the_same_architecture_from_a_local_file(tv_home, tmp_path):
    from safetensors.torch import save_file

    state = torch.load(sources.torchvision_info("mobilenet_v3_small").path, weights_only=True)
    path = tmp_path / "mine.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    a = attack.load_model("torchvision:mobilenet_v3_small", device="cpu")
    b = attack.load_model("torchvision:mobilenet-v3-small", weights=path, device="cpu")
    x = torch.rand(1, 3, 224, 224)
    torch.testing.assert_close(a(x), b(x))
    bad = tmp_path / "resnet.pth"
    torch.save(tvm.resnet18().state_dict(), bad)
    with pytest.raises(ModelError, match="does not match|has shape"):
        attack.load_model("torchvision:mobilenet_v3_small", weights=bad, device="cpu")


def test_missing_weights_name_the_file_and_folder_and_download_nothing(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    with pytest.raises(WeightsMissing) as err:
        attack.load_model("torchvision:resnet18", device="cpu")
    msg = str(err.value)
    assert "resnet18-f37072fd.pth" in msg and str(tmp_path / "empty" / "hub" / "checkpoints") in msg
    assert "--download" in msg and "\n" not in msg
    assert str(tmp_path) not in err.value.public_message()  # what a visitor sees names no server path
    assert not (tmp_path / "empty").exists()


def test_download_checks_the_hash_and_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    class Resp(io.BytesIO):
        headers = {"Content-Length": "11"}

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False
    seen = []
    monkeypatch.setattr(sources.urllib.request, "urlopen", lambda url, timeout: Resp(b"not weights"))
    with pytest.raises(WeightsMissing, match="hash does not match"):
        attack.load_model("torchvision:resnet18", device="cpu", download=True, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(11, 11)]
    assert list((tmp_path / "hub" / "checkpoints").iterdir()) == []


def test_cli_classify_attack_and_models_on_torchvision(tv_home, capsys, tmp_path):
    assert cli.main(["classify", "--model", "torchvision:resnet18", "--image", "ai-benchmark/0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "torchvision:resnet18" and len(out["top5"]) == 5
    assert cli.main(["attack", "--model", "torchvision:resnet18", "--image", "ai-benchmark/0", "--target", "toaster",
                     "--corner", "top-left", "--size", "42", "--max-iter", "6", "--json", "--quiet", "--no-cache",
                     "--out", str(tmp_path / "p.safetensors")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["evaluations"] == 6 and out["size"] == 42 and out["input_size"] == 224
    assert out["relu6_leak"] == 0.0  # resnet18 has no ReLU6: the Lite-specific leak does not apply
    assert cli.main(["models", "--json"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)["models"]}
    assert {"torchvision:resnet18", "torchvision:inception_v3", "torchvision:mobilenet_v3_small"} <= set(listed)
    assert listed["torchvision:inception_v3"]["native_size"] == 299 and listed["efficientnet-lite0"]["weights_available"]


@pytest.mark.slow
def test_cli_attack_on_inception_v3_with_the_papers_patch(tv_home, capsys, tmp_path):
    assert cli.main(["attack", "--model", "torchvision:inception_v3", "--image", "ai-benchmark/0", "--target",
                     "toaster", "--corner", "top-left", "--size", "42", "--max-iter", "2", "--json", "--quiet",
                     "--no-cache", "--out", str(tmp_path / "p.safetensors")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["input_size"] == 299 and out["size"] == 42 and out["evaluations"] == 2
    assert abs(out["area"] - 0.0197) < 1e-3  # the paper's ~2%


def test_cli_offline_is_one_line_without_traceback(tmp_path):
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "empty"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "attack", "classify", "--model", "torchvision:resnet18", "--image",
                           "ai-benchmark/0"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "resnet18-f37072fd.pth" in lines[0] and "hub/checkpoints" in lines[0]


class TinyNet(nn.Module):
    """A plain ImageNet-shaped classifier that is not from torchvision's zoo."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 5, stride=4, padding=2), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(16, 1000)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


def test_a_wrapped_module_works_with_every_library_function():
    net = TinyNet()
    model = attack.wrap(net, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), input_size=64, name="tiny",
                        cam_layer=net.features)
    img = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(1))
    res = attack.train_patch(model, img, target=3, loc=(0, 0), size=12, steps=5)
    assert res.model_name == "tiny" and res.evaluations == 5 and res.patch.shape == (3, 12, 12)
    maps = attack.shift_map(model, img, res.patch, res.loc, 3, radius=1)
    assert maps["p_target"].shape == (3, 3)
    out = attack.border_transfer(model, img, torch.rand(2, 3, 64, 64), res.patch, res.loc, 3, borders=(0, 0.25))
    assert len(out["mean_p_target"]) == 2
    x = attack.apply_patch(img.unsqueeze(0), res.patch, res.loc, res.domain, model)
    for method in ("saliency", "grad_cam"):
        heat = attack.attribution_map(model, x, 3, method=method, domain=res.domain)
        assert heat.shape == (1, 64, 64) and torch.isfinite(heat).all()
    no_cam = attack.wrap(TinyNet(), input_size=64)
    with pytest.raises(ValueError, match="Grad-CAM is not available"):
        attack.attribution_map(no_cam, x, 3, method="grad_cam", domain="image")
    with pytest.raises(ModelError):
        attack.wrap("not a module")


def test_grad_cam_layers_per_family(tv_home):
    assert sources.cam_layer_for("vit_b_16", nn.Module()) is None  # tokens: "not available", said plainly
    model = attack.load_model("torchvision:mobilenet_v3_small", device="cpu")
    assert model.cam_layer is model.net.features
    heat = attack.attribution_map(model, torch.rand(1, 3, 224, 224), 3, method="grad_cam", domain="image")
    assert heat.shape == (1, 224, 224)
    with pytest.raises(ModelError, match="runs only at 224"):
        attack.load_model("torchvision:vit_b_16", input_size=256, device="cpu")



@pytest.mark.parametrize("name", ["mnasnet0_5", "maxvit_t", "swin_t", "shufflenet_v2_x0_5", "squeezenet1_1",
                                  "regnet_x_400mf", "googlenet", "densenet121", "efficientnet_b0", "alexnet"])
def test_every_cnn_family_has_a_grad_cam_map(name):
    net = tvm.get_model(name, weights=None, **({"init_weights": False} if name == "googlenet" else {})).eval()
    cam, seen = sources.cam_layer_for(name, net), {}
    hook = cam.register_forward_hook(lambda m, i, o: seen.__setitem__("out", o))
    with torch.no_grad():
        net(torch.rand(1, 3, 224, 224))
    hook.remove()
    assert seen["out"].dim() == 4 and seen["out"].shape[-1] >= 6  # (N,C,h,w): a map Grad-CAM can weight


def test_default_patch_is_the_papers_on_models_the_default_was_not_measured_on(model):
    wrapped = attack.wrap(TinyNet(), input_size=299)
    assert attack.TrainingSpec().resolve(wrapped).size == 42  # the paper's 42x42 on 299
    assert attack.TrainingSpec().resolve(attack.wrap(TinyNet(), input_size=224)).size == 31
    assert attack.TrainingSpec().resolve(model).size == 63  # Lite0 at 224: the area measured on it (8%)
    assert attack.TrainingSpec().resolve(wrapped).relu6_leak == 0.0  # no ReLU6 in it
