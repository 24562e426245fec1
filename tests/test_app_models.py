"""AppTest: the sidebar's model picker with torchvision models (issue 25), offline.

A temporary ``$TORCH_HOME`` holds resnet18 with random weights under the file name torchvision expects
(tests/tv_kit.py), so the app lists and loads it through the real code path. Every test fails if a download starts
that nobody asked for (``attack.sources.urllib.request.urlopen`` is watched).
"""
from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest
from tv_kit import write_weights

import attack
from attack import sources

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TV = "torchvision:resnet18"


@pytest.fixture(scope="module")
def tv_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("torch_home")
    write_weights(home, "resnet18")
    return home


@pytest.fixture
def urls(monkeypatch):
    """The URLs the app tried to open; offline: each attempt raises URLError (as on a machine with no network)."""
    opened = []

    def offline(url, *a, **k):
        opened.append(url)
        raise urllib.error.URLError("no network here")

    monkeypatch.setattr(sources.urllib.request, "urlopen", offline)
    return opened


def app(**state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def page(at: AppTest, path: str) -> AppTest:
    at.switch_page(path).run()
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def texts(at: AppTest) -> str:
    return "\n".join(e.value for kind in ("markdown", "caption", "info", "warning") for e in at.get(kind))


def test_picker_lists_cached_torchvision_models_and_the_attack_page_follows(tv_home, urls, steady_server,
                                                                             monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tv_home))
    at = app()
    picker = at.selectbox(key="model_name")
    assert picker.value == "efficientnet-lite0"
    labels = dict(zip(["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2", TV], picker.options))
    assert labels[TV].startswith(f"{TV} · 224 px · 11.7M params"), picker.options  # input size and description
    assert labels["efficientnet-lite0"].startswith("efficientnet-lite0 · 224 px")
    picker.select(TV).run()
    assert not at.exception and not at.error, [e.value for e in at.error]  # Home names the model too
    assert f"Model: **{TV} @ 224x224" in texts(at)
    at = page(at, "pages/1_attack.py")
    assert at.number_input(key="attack_size").value == 31  # the paper's 42x42-on-299 area at 224
    body = texts(at)
    assert "Input size **224×224** for torchvision:resnet18" in body and "resized to 256 px" in body
    assert "the paper's 42×42 on 299×299" in body
    sidebar = [c.value for c in at.sidebar.caption]
    assert any(c.startswith("Loaded models: ") and c.endswith(" MB)") for c in sidebar), sidebar
    # back to the embedded model: its own default (the measured area, said to be measured on EfficientNet-Lite0)
    at.selectbox(key="model_name").select("efficientnet-lite0").run()
    assert not at.exception
    assert at.number_input(key="attack_size").value == attack.train.default_patch_size(224)
    assert "measured on EfficientNet-Lite0" in texts(at)
    assert urls == []


def test_gradients_offer_grad_cam_only_where_the_model_has_a_cam_layer(tv_home, urls, steady_server, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tv_home))
    from ui import cache

    model = cache.get_model(TV)  # the copy the app shares
    img = attack.load_image(attack.sample_images(("skimage",))[0].path, 224, resize=model.resize_size)
    res = attack.train_patch(model, img, 859, (0, 0), size=31, steps=1, generator=torch.Generator().manual_seed(0))
    at = app(model_name=TV, result=res, result_image=img, grad_methods=["saliency", "grad_cam"])
    at = page(at, "pages/5_gradients.py")
    assert "grad_cam" in at.multiselect(key="grad_methods").options
    assert set(at.dataframe[0].value["method"]) == {"saliency", "grad_cam"}
    monkeypatch.setattr(model, "cam_layer", None)  # a network without a feature map for Grad-CAM (as ViT)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "grad_cam" not in at.multiselect(key="grad_methods").options
    assert at.multiselect(key="grad_methods").value == ["saliency"]
    assert f"Grad-CAM is not available for {TV}" in texts(at)
    # the Models page includes the cached torchvision model (picked here with the patch's own network)
    at = app(model_name=TV, result=res, result_image=img, models_pick=[TV, "efficientnet-lite0"])
    at = page(at, "pages/6_models.py")
    assert TV in [o.split(" · ")[0] for o in at.multiselect(key="models_pick").options]
    models = at.dataframe[0].value["model"].tolist()
    assert models == [f"{TV} (trained on)", "efficientnet-lite0"]
    assert urls == []


def test_requesting_a_model_offline_is_one_line_and_downloads_nothing_unasked(tmp_path, urls, steady_server,
                                                                               monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    at = app(model_request_open=True)  # the sidebar's "Another torchvision model" expander, opened
    request = at.selectbox(key="model_request")
    assert len(request.options) == len(sources.torchvision_names()) >= 70
    request.select("torchvision:resnet50").run()
    assert "Load" in [b.label for b in at.sidebar.button] and urls == []  # chosen, not asked for yet
    at.button(key="model_request_load").click().run()
    assert not at.exception, [e.message for e in at.exception]
    assert len(urls) == 1  # asked for: one download, which fails offline
    (err,) = at.error
    said = sources.WeightsMissing("resnet50", sources.torchvision_info("resnet50").file_name, tmp_path).public_message()
    assert err.value == said and "\n" not in err.value and str(tmp_path) not in err.value  # no server path
    assert at.selectbox(key="model_name").value == "efficientnet-lite0"  # the app goes on with its model
    at = page(at, "pages/1_attack.py")
    assert at.number_input(key="attack_size").value == attack.train.default_patch_size(224)
    assert not list((tmp_path / "empty").rglob("*.pth"))


def test_load_downloads_with_a_progress_bar_then_selects_the_model(tmp_path, urls, steady_server, monkeypatch):
    """Online (the download itself is faked: it reports progress and writes the file where torchvision reads it)."""
    from ui import cache

    home = tmp_path / "home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    seen = []

    def download(name, progress=None):
        for done in (0, 5 << 20, 10 << 20):
            progress(done, 10 << 20)  # the page's st.progress, fed as chunks arrive
            seen.append(done)
        write_weights(home, sources.torchvision_info(name).name)

    monkeypatch.setattr(cache, "download_model", download)
    at = app(model_request_open=True)
    assert TV not in [o.split(" · ")[0] for o in at.selectbox(key="model_name").options]
    at.selectbox(key="model_request").select(TV).run()
    at.button(key="model_request_load").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert seen == [0, 5 << 20, 10 << 20]
    assert at.selectbox(key="model_name").value == TV  # listed and chosen
    assert urls == []


def test_inception_v3_from_the_hub_cache_gets_the_papers_42_on_299(tmp_path, urls, steady_server, monkeypatch):
    write_weights(tmp_path, "inception_v3")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    at = app(model_name="torchvision:inception_v3")
    assert at.sidebar.caption[0].value.endswith("the paper's model")
    at = page(at, "pages/1_attack.py")
    assert at.number_input(key="attack_size").value == 42
    assert "Input size **299×299**" in texts(at) and "resized to 342 px" in texts(at)
    assert urls == []


def test_a_cached_file_that_does_not_load_is_one_warning_and_the_default_model(tmp_path, urls, steady_server,
                                                                               monkeypatch):
    from ui import cache

    bad = tmp_path / "hub" / "checkpoints" / sources.torchvision_info("resnet18").file_name
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a state dict")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache._get_model.clear()  # a resnet18 loaded from another test's TORCH_HOME
    at = app(model_name=TV)
    at = page(at, "pages/1_attack.py")
    (warn,) = [w.value for w in at.warning if "could not be loaded" in w.value]
    assert warn.startswith(f"{TV} could not be loaded") and "efficientnet-lite0" in warn and str(tmp_path) not in warn
    assert at.number_input(key="attack_size").value == attack.train.default_patch_size(224)
    assert urls == []


def test_a_visitor_cannot_make_the_server_download_a_huge_model(tmp_path, monkeypatch):
    from ui import cache

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    def refuse(*a, **k):
        raise AssertionError("a download was started")
    monkeypatch.setattr(attack.sources.urllib.request, "urlopen", refuse)
    with pytest.raises(attack.ModelError, match="633M parameters; this server downloads models up to 150M"):
        cache.download_model("torchvision:vit_h_14")
    monkeypatch.setenv("LAVAN_MAX_DOWNLOAD_MPARAMS", "5")
    with pytest.raises(attack.ModelError, match="up to 5M"):
        cache.download_model("torchvision:resnet18")


def test_many_small_downloads_cannot_fill_the_servers_disk(tmp_path, monkeypatch):
    from ui import cache

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    folder = attack.sources.checkpoints_dir()
    folder.mkdir(parents=True)
    (folder / "earlier-download.pth").write_bytes(b"\0" * (30 * 2**20))  # 30 MB already downloaded
    def refuse(*a, **k):
        raise AssertionError("a download was started")
    monkeypatch.setattr(attack.sources.urllib.request, "urlopen", refuse)
    monkeypatch.setenv("LAVAN_MAX_DOWNLOADS_MB", "60")  # resnet18: 11.7M parameters, ~45 MB
    with pytest.raises(attack.ModelError, match="needs about 45 MB and the downloaded models already take 30 of the "
                                                "60 MB") as err:
        cache.download_model("torchvision:resnet18")
    assert str(tmp_path) not in str(err.value)
    monkeypatch.setenv("LAVAN_MAX_DOWNLOADS_MB", "100")  # room: the download starts (and is refused here)
    with pytest.raises(AssertionError, match="a download was started"):
        cache.download_model("torchvision:resnet18")
