"""AppTest (streamlit.testing) for every page of the studio: renders, canvas twins, short trainings, bad uploads.

Trainings here run a handful of iterations; the page logic is what is tested, not attack success.
"""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as st_save
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import UnknownElement

import attack
import lab.experiments

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
PAGES = ["pages/1_attack.py", "pages/2_fragility.py", "pages/3_transfer.py", "pages/4_universal.py",
         "pages/5_gradients.py", "pages/6_models.py"]


def plotly_values(v):
    """A trace's array as plotly's JSON writes it: a list, or a typed array ``{"dtype", "bdata"}`` (base64) for a
    numpy array (ui/charts builds its live curves from numpy arrays)."""
    if isinstance(v, dict) and "bdata" in v:
        import base64

        import numpy as np
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).tolist()
    return list(v)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LAVAN_CACHE_DIR", str(tmp_path / "cache"))
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _server_after_first_run(request, monkeypatch):
    """AppTest resets Streamlit's "old pages/ directory mode" flag before *every* run, so every run would look
    like the first run of a fresh server (which ui.boot answers with one extra rerun, losing button clicks).
    A real server clears the flag for good once app.py's st.navigation has run; model that steady state here.
    test_first_run_of_a_fresh_server_goes_through_app_py covers the fresh-server path itself."""
    if request.node.name == "test_first_run_of_a_fresh_server_goes_through_app_py":
        return
    from streamlit.runtime.pages_manager import PagesManager

    init = PagesManager.__init__

    def steady_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", steady_init)


@pytest.fixture(scope="module")
def lite0():
    return attack.load_model("efficientnet-lite0", device="cpu", channels_last=True)


@pytest.fixture(scope="module")
def coffee(lite0):
    s = {x.name: x for x in attack.sample_images()}
    return attack.load_image(s["skimage/coffee"].path, lite0.input_size)


@pytest.fixture(scope="module")
def trained(lite0, coffee):
    """A real (if weak) 3-iteration patch at (top=16, left=24), as the Attack page would leave it."""
    res = attack.train_patch(lite0, coffee, 859, (16, 24), size=40, steps=3,
                             generator=torch.Generator().manual_seed(0))
    res.meta["image_hash"] = attack.image_hash(coffee)
    return res


@pytest.fixture(scope="module")
def universal(lite0, coffee):
    return attack.train_universal(lite0, coffee.unsqueeze(0).repeat(2, 1, 1, 1), 859, size=40, max_steps=2,
                                  generator=torch.Generator().manual_seed(0))


def app(page: str | None = None, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()  # through app.py first: st.navigation registers the pages, as a browser session would
    assert not at.exception, [e.message for e in at.exception]
    if page:
        at.switch_page(page).run()
        assert not at.exception, [e.message for e in at.exception]
        assert at.selectbox(key="model_name").value == "efficientnet-lite0"  # the sidebar ran too
    return at


def canvas(at: AppTest, key: str) -> dict:
    """The patch square the drawable canvas was asked to draw (canvas px), from the component's JSON args."""
    found = [e for e in _walk(at._tree) if isinstance(e, UnknownElement) and e.type == "bidi_component"
             and e.proto.id.endswith(f"-{key}")]
    assert len(found) == 1, f"canvas {key} not rendered"
    data = json.loads(found[0].proto.json)
    (rect,) = data["initialDrawing"]["objects"]
    assert rect["originX"] == "left" and rect["originY"] == "top"
    return {"left": rect["left"], "top": rect["top"], "width": rect["width"], "px": data["canvasWidth"]}


def _walk(node):
    kids = getattr(node, "children", None)
    kids = kids.values() if isinstance(kids, dict) else (kids or [])
    for c in kids:
        yield c
        yield from _walk(c)


def texts(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption] + [m.value for m in at.info])


def poll(at: AppTest, done, timeout: float = 120.0) -> AppTest:
    """Rerun the script (as the page's st.fragment timer would) until ``done(at)``."""
    end = time.time() + timeout
    while time.time() < end:
        time.sleep(0.4)
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        if done(at):
            return at
    raise AssertionError("timed out waiting for the page")


def job(at: AppTest, key: str):
    return at.session_state["_lavan_jobs"][key]


# ------------------------------------------------------------------------------------------------ home + pages
def test_home_says_which_model_and_device_and_links_every_page():
    at = app()
    body = texts(at)
    assert "efficientnet-lite0 @ 224x224 on cpu" in body
    assert "not the paper's model" in body and "Inception v3" in body
    assert "CPU" in body or "GPU" in body
    assert len(at.get("page_link")) == 9  # the Lesson first, then one per finding (and the Defend page)
    assert at.selectbox(key="model_name").value == "efficientnet-lite0"


def test_first_run_of_a_fresh_server_goes_through_app_py(monkeypatch):
    """On a fresh server Streamlit runs a deep-linked pages/ file on its own; ui.boot reruns it through app.py."""
    from streamlit.runtime.pages_manager import PagesManager

    import ui.boot

    calls = []
    real = ui.boot.ensure_app
    monkeypatch.setattr(ui.boot, "ensure_app", lambda: calls.append(PagesManager.uses_pages_directory) or real())
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("pages/2_fragility.py").run()  # AppTest starts every run like a fresh server
    assert not at.exception
    assert calls == [True, False]  # the page started alone once, then ran again inside app.py
    assert at.title[0].value.endswith("Fragility")
    assert at.selectbox(key="model_name").value == "efficientnet-lite0"  # app.py's sidebar ran


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_a_patch(page):
    at = app(page)
    assert not at.error
    if page != "pages/1_attack.py":
        assert "universal" in page or "No patch yet" in texts(at)


@pytest.mark.parametrize("page,charts", [("pages/2_fragility.py", 1), ("pages/3_transfer.py", 1),
                                         ("pages/5_gradients.py", 1), ("pages/6_models.py", 1)])
def test_patch_pages_render_the_current_patch(page, charts, trained, coffee):
    at = app(page, result=trained, result_image=coffee)
    assert not at.error, [e.value for e in at.error]
    poll(at, lambda a: len(a.get("plotly_chart")) >= charts)  # Fragility and Transfer compute in the background
    if "models" in page:
        models = at.dataframe[0].value["model"].tolist()
        assert "efficientnet-lite0 (trained on)" in models and "efficientnet-lite1" in models
        assert "inception-v3" not in models and "LAVAN_INCEPTION_WEIGHTS" in texts(at)
        assert not at.text_input, "visitors must not type server paths"


def test_models_page_runs_inception_v3_from_the_operators_weights_file(trained, coffee, tmp_path, monkeypatch):
    """Inception v3 (torchvision architecture, random weights here: no ImageNet weights exist offline) joins the
    comparison when the server is started with LAVAN_INCEPTION_WEIGHTS, at its own 299x299 input."""
    from safetensors.torch import save_file
    from torchvision.models import inception_v3

    torch.manual_seed(0)
    path = tmp_path / "inception_v3_random.safetensors"
    save_file(inception_v3(weights=None, aux_logits=False, init_weights=True).state_dict(), path)
    monkeypatch.setenv("LAVAN_INCEPTION_WEIGHTS", str(path))
    at = app("pages/6_models.py", result=trained, result_image=coffee)
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    row = table[table["model"] == "inception-v3"].iloc[0]
    # pasted unchanged: Inception v3 normalises as Lite0 does (mean = std = 0.5, its transform_input folded in)
    assert 0.0 <= row["p(target) patched"] <= 1.0 and row["pasted as"] == "network"
    assert any(o.startswith("inception-v3 · 299 px") for o in at.selectbox(key="model_name").options)  # sidebar too


def test_fragility_nudge_moves_the_patch_by_one_pixel(trained, coffee):
    at = app("pages/2_fragility.py", result=trained, result_image=coffee)
    assert "trained at x=24, y=16" in texts(at)
    at.button(key="frag_right").click().run()
    assert at.number_input(key="frag_dx").value == 1
    assert "patch at x=25, y=16" in texts(at)
    at.button(key="frag_up").click().run()
    assert (at.number_input(key="frag_dx").value, at.number_input(key="frag_dy").value) == (1, -1)
    at.button(key="frag_reset").click().run()
    assert (at.number_input(key="frag_dx").value, at.number_input(key="frag_dy").value) == (0, 0)


def test_transfer_marks_the_papers_25_percent(trained, coffee):
    at = app("pages/3_transfer.py", result=trained, result_image=coffee)
    poll(at, lambda a: any(c.proto.id.endswith("-transfer_chart") for c in a.get("plotly_chart")))  # a job
    fig = json.loads(next(c for c in at.get("plotly_chart") if c.proto.id.endswith("-transfer_chart")).proto.spec)
    assert any(a["text"] == "paper ≈25%" for a in fig["layout"]["annotations"])
    assert any(s["type"] == "line" and s["x0"] == s["x1"] == 25 for s in fig["layout"]["shapes"])
    assert fig["data"][0]["x"][0] == 0 and fig["data"][0]["x"][-1] == 50
    at.slider(key="transfer_border").set_value(0).run()
    assert not at.exception


def test_gradients_table_compares_mass_with_area(trained, coffee):
    at = app("pages/5_gradients.py", result=trained, result_image=coffee)
    df = at.dataframe[0].value
    assert set(df["method"]) == {"saliency", "grad_cam"} and len(df) == 8
    assert (df["patch area (%)"] == round(100 * 40 * 40 / 224 ** 2, 1)).all()
    assert df["mass inside patch (%)"].between(0, 100).all()


# ------------------------------------------------------------------------------------------------ attack page
def test_number_inputs_and_corners_move_the_canvas_square():
    at = app(PAGES[0])
    size = at.number_input(key="attack_size").value
    assert size == attack.train.default_patch_size(224)
    c = canvas(at, "attack_loc_canvas")
    scale = c["px"] / 224
    assert (c["left"], c["top"], c["width"]) == (0, 0, size * scale)
    at.number_input(key="attack_loc_x").set_value(100).run()
    at.number_input(key="attack_loc_y").set_value(40).run()
    c = canvas(at, "attack_loc_canvas")
    assert (c["left"], c["top"]) == (100 * scale, 40 * scale)
    at.button(key="attack_loc_corner_bottom-right").click().run()
    far = 224 - size
    assert (at.number_input(key="attack_loc_x").value, at.number_input(key="attack_loc_y").value) == (far, far)
    assert (canvas(at, "attack_loc_canvas")["left"], canvas(at, "attack_loc_canvas")["top"]) == (far * scale,
                                                                                                  far * scale)
    at.button(key="attack_loc_corner_top-right").click().run()
    assert (at.number_input(key="attack_loc_x").value, at.number_input(key="attack_loc_y").value) == (far, 0)
    # a bigger patch pulls the square back inside the image
    at.number_input(key="attack_size").set_value(100).run()
    assert at.number_input(key="attack_loc_x").value == 124
    assert canvas(at, "attack_loc_canvas")["left"] == 124 * scale


def test_paper_size_is_one_click_away_and_area_is_shown():
    at = app(PAGES[0])
    at.button(key="attack_size_paper").click().run()
    assert at.number_input(key="attack_size").value == 31  # 42/299 of the side -> 1.97% of the area at 224
    assert "31×31 px = 1.92% of the 224×224 image" in texts(at)


def test_target_search_list_and_suggestions():
    at = app(PAGES[0])
    sb = at.selectbox(key="attack_target")
    assert len(sb.options) == 1000 and sb.value == "859 · toaster"
    at.button(key="attack_target_sugg_954").click().run()
    assert at.selectbox(key="attack_target").value == "954 · banana"


def test_short_training_completes_draws_the_curve_and_is_cached(tmp_path):
    at = app(PAGES[0])
    at.number_input(key="attack_steps").set_value(6).run()
    at.number_input(key="attack_loc_x").set_value(8).run()
    at.button(key="attack_train").click().run()
    assert job(at, "attack").page == "attack"
    poll(at, lambda a: "result" in a.session_state and a.session_state["result"] is not None)
    res = at.session_state["result"]
    assert res.steps <= 6 and res.loc == (0, 8) and res.target == 859
    assert len(res.history["p_target"]) == res.steps + 1
    curve = [c for c in at.get("plotly_chart") if "iteration" in c.proto.spec]
    assert curve, "the confidence curve is not drawn"
    spec = json.loads(curve[0].proto.spec)
    assert len(plotly_values(spec["data"][0]["y"])) == res.steps + 1
    assert f"{res.steps} iterations" in texts(at) and "(trained)" in texts(at)
    assert len(at.get("download_button")) == 3
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1
    # the same configuration again: answered from the cache, no thread
    at.button(key="attack_train").click().run()
    assert "answered from the cache" in texts(at)
    assert "attack" not in at.session_state["_lavan_jobs"]


def test_restarts_draw_every_curve_and_the_forming_patch(tmp_path):
    """Four restarts under successive halving: the live view shows the patch as it forms, and the result draws
    one p(target) curve per restart, dropped ones shorter, the leading one bold; evaluations ≤ the budget."""
    at = app(PAGES[0])
    at.selectbox(key="attack_rule").set_value("apgd").run()
    at.selectbox(key="attack_restarts").set_value(4).run()
    at.number_input(key="attack_steps").set_value(24).run()
    at.button(key="attack_train").click().run()
    j = job(at, "attack")
    poll(at, lambda a: j.latest_patch is not None, timeout=60)
    assert j.latest_patch.shape[-1] == at.session_state["attack_size"]
    poll(at, lambda a: "result" in a.session_state and a.session_state["result"] is not None)
    res = at.session_state["result"]
    assert res.meta["restarts"] == 4 and res.evaluations <= 24 and res.meta["optimizer"] == "apgd"
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if "restart 0" in c.proto.spec]
    assert charts, "the restart curves are not drawn"
    traces = charts[0]["data"]
    assert len(traces) == 4
    lengths = sorted(len(plotly_values(t["y"])) for t in traces)
    assert lengths[0] < lengths[-1]  # dropped restarts end where they were dropped
    assert sum(t["line"]["width"] > 3 for t in traces) == 1  # one leading restart, bold
    assert "forward+backward evaluations" in texts(at)


def test_stop_ends_the_training_thread():
    at = app(PAGES[0])
    at.number_input(key="attack_steps").set_value(10_000).run()
    at.button(key="attack_train").click().run()
    j = job(at, "attack")
    poll(at, lambda a: len(j.progress) >= 1, timeout=60)
    at.button(key="attack_stop").click().run()
    j.thread.join(30)
    assert not j.thread.is_alive() and j.status == "cancelled"
    poll(at, lambda a: "(stopped)" in texts(a), timeout=30)
    assert at.session_state["result"].cancelled and at.session_state["result"].steps < 10_000


def test_the_server_caps_iterations_whatever_the_page_asks(monkeypatch):
    """The cap lives in ui.jobs.start, not in the widget: an operator's LAVAN_MAX_ITER below the widget's maximum
    (as a crafted websocket message above it would be) still ends the training at the cap, and the page says so."""
    monkeypatch.setenv("LAVAN_MAX_ITER", "3")
    at = app(PAGES[0])
    at.number_input(key="attack_steps").set_value(50).run()
    at.button(key="attack_train").click().run()
    j = job(at, "attack")
    assert j.meta["clamped_from"] == 50 and j.meta["cap"] == 3
    assert any("50 iterations asked" in w.value and "at 3" in w.value for w in at.warning)
    poll(at, lambda a: a.session_state.get("result") is not None)
    res = at.session_state["result"]
    assert res.steps <= 3 and len(res.history["p_target"]) == res.steps + 1


def test_leaving_the_page_stops_its_training():
    at = app(PAGES[0])
    at.number_input(key="attack_steps").set_value(10_000).run()
    at.button(key="attack_train").click().run()
    j = job(at, "attack")
    at.switch_page("pages/2_fragility.py").run()
    assert j.cancel.is_set()
    j.thread.join(30)
    assert not j.thread.is_alive()


def _png(size=(64, 64)) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


BAD_IMAGES = {
    "notes.txt": b"this is not an image at all",
    "empty.jpg": b"",
    "corrupt.jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 40,
    "huge.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * (25 * 1024 * 1024 + 10),
    "tiny.png": _png((4, 4)),
    "drawing.svg": b"<svg xmlns='http://www.w3.org/2000/svg'></svg>",
}


@pytest.mark.parametrize("name", list(BAD_IMAGES))
def test_bad_image_upload_shows_the_loaders_message_and_keeps_working(name):
    at = app(PAGES[0])
    at.file_uploader(key="attack_img_upload").upload(name, BAD_IMAGES[name]).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("Upload rejected — ")
    with pytest.raises(attack.ImageError) as info:
        attack.load_image(BAD_IMAGES[name], 224)
    assert errors[0] == "Upload rejected — " + str(info.value).replace("upload:", f"{name}:", 1)
    assert at.session_state["image_src"]["name"] == "skimage/coffee"  # the previous photo stays
    at.number_input(key="attack_loc_x").set_value(5).run()  # the page still works
    assert not at.exception and canvas(at, "attack_loc_canvas")["left"] > 0


def test_good_upload_becomes_the_photo():
    at = app(PAGES[0])
    at.file_uploader(key="attack_img_upload").upload("red.png", _png((300, 200)), "image/png").run()
    assert not at.error and at.session_state["image_src"]["name"] == "red.png"


def _bad_patches(trained) -> dict[str, bytes]:
    buf = io.BytesIO()
    torch.save({"patch": trained.patch}, buf)
    good = attack.io.patch_bytes(trained)
    header = json.loads(good[8:8 + int.from_bytes(good[:8], "little")])["__metadata__"]
    return {
        "pickle.safetensors": buf.getvalue(),
        "random.safetensors": bytes(range(256)) * 8,
        "wrong_shape.safetensors": st_save({"patch": torch.rand(3, 40, 12)}, metadata=header),
        "no_metadata.safetensors": st_save({"patch": torch.rand(3, 40, 40)}),
        "nan.safetensors": st_save({"patch": torch.full((3, 40, 40), float("nan"))}, metadata=header),
    }


@pytest.mark.parametrize("which", ["pickle.safetensors", "random.safetensors", "wrong_shape.safetensors",
                                   "no_metadata.safetensors", "nan.safetensors"])
def test_bad_patch_file_shows_an_error_and_keeps_working(which, trained, coffee):
    data = _bad_patches(trained)[which]
    at = app("pages/2_fragility.py", result=trained, result_image=coffee)
    at.file_uploader(key="frag_patch_file").upload(which, data).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("Patch file rejected — ")
    with pytest.raises(attack.PatchFileError) as info:
        attack.io.patch_from_bytes(data, which, model_name="efficientnet-lite0", input_size=224)
    assert errors[0].endswith(str(info.value))
    poll(at, lambda a: any(c.proto.id.endswith("-frag_heat") for c in a.get("plotly_chart")))  # a background job
    assert len(at.get("plotly_chart")) == 1  # the session's own patch is still shown
    assert len(at.error) == 1


def test_good_patch_file_is_used(trained, coffee):
    at = app("pages/2_fragility.py")
    at.file_uploader(key="frag_patch_file").upload("p.safetensors", attack.io.patch_bytes(trained)).run()
    poll(at, lambda a: any(c.proto.id.endswith("-frag_heat") for c in a.get("plotly_chart")))  # a background job
    assert not at.error and len(at.get("plotly_chart")) == 1
    assert "trained at x=24, y=16" in texts(at)


# ------------------------------------------------------------------------------------------------ universal page
def test_universal_short_training_shows_streak_table_and_live_view():
    at = app("pages/4_universal.py")
    at.number_input(key="uni_train").set_value(3).run()
    at.number_input(key="uni_steps").set_value(4).run()
    at.button(key="uni_train_btn").click().run()
    poll(at, lambda a: "universal" in a.session_state and a.session_state["universal"] is not None)
    res = at.session_state["universal"]
    assert res.loc is None and res.steps <= 4
    assert any("streak" in c.proto.spec for c in at.get("plotly_chart")), "no live/progress chart"
    table = at.dataframe[0].value
    assert table["paper (%)"].tolist() == [28.3, 74.1, 78.9]
    assert table["ours (%)"].between(0, 100).all()
    # live view: the twins move the universal patch and the prediction is recomputed
    at.number_input(key="uni_loc_x").set_value(30).run()
    scale = canvas(at, "uni_loc_canvas")["px"] / 224
    assert canvas(at, "uni_loc_canvas")["left"] == 30 * scale
    assert at.session_state["uni_latency_ms"] < 2000


def test_universal_assets_load_instantly():
    at = app("pages/4_universal.py")
    assets = at.selectbox(key="uni_asset") if any(s.key == "uni_asset" for s in at.selectbox) else None
    if assets is None:
        pytest.skip("no universal patch for efficientnet-lite0 in assets/")
    at.button(key="uni_use_asset").click().run()
    assert not at.error and at.dataframe[0].value["paper (%)"].tolist() == [28.3, 74.1, 78.9]


# ------------------------------------------------------------------------------------------------ paper vs us
PAPER_PAGE = "pages/7_paper.py"


def _copy_reports(dst: Path, names: tuple[str, ...]) -> Path:
    import shutil

    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        for ext in ("json", "csv", "md", "png"):
            src = ROOT / "reports" / f"{name}.{ext}"
            if src.is_file():
                shutil.copy(src, dst / src.name)
    return dst


def _frame(at: AppTest, column: str, **match):
    """The first dataframe on the page with ``column`` (and, per keyword, a column whose values start so)."""
    for d in at.dataframe:
        v = d.value
        if column in v.columns and all(v[c].tolist()[:len(x)] == list(x) for c, x in match.items()):
            return v
    raise AssertionError(f"no table with column {column!r} {match}")


def test_paper_page_renders_the_committed_reports(monkeypatch):
    monkeypatch.delenv("LAVAN_REPORTS_DIR", raising=False)
    committed = sorted(p.stem for p in (ROOT / "reports").glob("*.json"))
    at = app(PAPER_PAGE)
    assert not at.error and not at.warning, [e.value for e in at.error] + [w.value for w in at.warning]
    assert at.title[0].value.endswith("Paper vs us")
    body = texts(at)
    assert "EfficientNet-Lite0" in body and "Inception v3" in body
    overview = _frame(at, "status")
    assert len(overview) == len(lab.experiments.EXPERIMENTS)
    for name in committed:  # each committed report: its table, command, scale, and a redrawn plot
        rep = json.loads((ROOT / "reports" / f"{name}.json").read_text())
        table = _frame(at, "measure", measure=[r["what"] for r in rep["table"]])
        assert table["paper"].tolist() == [r["paper"] for r in rep["table"]]
        assert rep["command"] in body and "Wall time" in body and "Scale" in body
        assert any(c.proto.id.endswith(f"-paper_fig_{name}") for c in at.get("plotly_chart"))
    if "single" in committed:  # honest about the scale: ours (the caps the rows ran under) vs the paper's
        caps = json.loads((ROOT / "reports" / "single.json").read_text())["iteration_cap"]
        caps = ", ".join(f"{int(c):,}" for c in (caps if isinstance(caps, list) else [caps]))
        assert f"cap {caps} iterations" in body and "paper: 100 configs per variant, cap 10,000 iterations" in body
    assert len(_frame(at, "optimiser")) >= 1  # the README's area table
    defaults = _frame(at, "default training")  # and the area table of today's defaults, every cell listed
    assert len(defaults) == 8 and set(defaults["domain"]) == {"image", "network"}
    assert "Adam, one patch" in defaults["default training"].tolist()


def test_paper_page_says_not_run_yet_with_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("LAVAN_REPORTS_DIR", str(_copy_reports(tmp_path / "reports", ("single",))))
    at = app(PAPER_PAGE)
    assert not at.error and not at.warning
    infos = [i.value for i in at.info]
    assert "Not run yet — command: `python -m lab reproduce brown`" in infos
    assert "Not run yet — command: `python -m lab reproduce single`" not in infos
    assert len(infos) == len(lab.experiments.EXPERIMENTS) - 1
    assert _frame(at, "status")["status"].tolist().count("run") == 1


def test_paper_page_survives_corrupt_and_partial_reports(tmp_path, monkeypatch):
    out = _copy_reports(tmp_path / "reports", ("single", "transfer", "saliency"))
    (out / "single.json").write_text('{"name": "single", "table": [')  # torn write
    rep = json.loads((out / "transfer.json").read_text())
    (out / "transfer.json").write_text(json.dumps({"name": "transfer", "summary": "oops", "table": 3}))
    (out / "saliency.csv").write_bytes((out / "saliency.csv").read_bytes()[:-15])  # a row cut short
    (out / "fragility.json").write_text("[1, 2]")  # valid JSON, wrong shape
    area = tmp_path / "area.csv"
    area.write_text("model,area\nlite0,abc\n")
    monkeypatch.setenv("LAVAN_REPORTS_DIR", str(out))
    monkeypatch.setenv("LAVAN_AREA_TABLE", str(area))
    ablation = tmp_path / "ablation.csv"
    ablation.write_text("variant,domain,size\nadam-r8,image,notanumber\n")
    monkeypatch.setenv("LAVAN_ABLATION", str(ablation))
    at = app(PAPER_PAGE)
    assert not at.exception and not at.error
    warnings = "\n".join(w.value for w in at.warning)
    assert "single.json" in warnings and "fragility.json" in warnings and "area.csv" in warnings
    assert "ablation.csv" in warnings
    assert "transfer.json" in warnings  # readable but no table: said so
    assert rep["command"] not in texts(at)
    saliency = json.loads((out / "saliency.json").read_text())
    assert len(_frame(at, "measure", measure=[r["what"] for r in saliency["table"]])) > 0  # intact report still shows
    assert [c.proto.id.rsplit("-", 1)[1] for c in at.get("plotly_chart")] == ["paper_fig_saliency"]


def test_paper_page_reads_the_reports_again_only_when_a_file_changed(tmp_path):
    """The Paper page's views are kept between visits (all sessions) and rebuilt when a report file changes."""
    from ui import reports

    out = _copy_reports(tmp_path / "reports", ("single", "transfer"))
    first = reports.load_all(out)
    assert reports.load_all(out) is first  # nothing changed: the same views, nothing read or drawn again
    rep = json.loads((out / "transfer.json").read_text())
    rep["table"][0]["ours"] = "changed"
    (out / "transfer.json").write_text(json.dumps(rep))
    again = reports.load_all(out)
    assert again is not first
    assert next(v for v in again if v.name == "transfer").table[0]["ours"] == "changed"
    (out / "single.json").unlink()
    assert next(v for v in reports.load_all(out) if v.name == "single").status == "missing"


def test_paper_page_area_tables_are_summarised_again_only_when_a_csv_changed(tmp_path, monkeypatch):
    """The two area tables are kept between visits like the report views, and follow their CSVs."""
    import shutil

    from ui import reports

    ablation, area = tmp_path / "ablation.csv", tmp_path / "area.csv"
    shutil.copy(ROOT / "bench" / "results" / "ablation.csv", ablation)
    shutil.copy(ROOT / "bench" / "results" / "area_table.csv", area)
    monkeypatch.setenv("LAVAN_AREA_TABLE", str(area))
    first, old = reports.default_area_table(ablation), reports.area_table(area)
    assert first[1] is None and old[1] is None and first[0] and old[0]
    assert reports.default_area_table(ablation) is first and reports.area_table(area) is old  # nothing re-read
    lines = ablation.read_text().splitlines(keepends=True)
    ablation.write_text("".join(lines[:1] + [ln for ln in lines[1:] if ",63,224,2000," not in ln]))
    again = reports.default_area_table(ablation)
    assert again is not first and reports.area_table(area) is old
    assert sum(r["configs"] == 0 for r in again[0]) == sum(r["configs"] == 0 for r in first[0]) + 2  # 63 px: gone
    area.write_text("model,area\nlite0,abc\n")  # the area CSV feeds both tables
    assert reports.area_table(area)[1] and reports.default_area_table(ablation) is not again


# ------------------------------------------------------------------------------------------------ whole corpus
# Every upload widget of the app, fed the whole generated corpus (scripts/make_bad_corpus.py) in one session each:
# a bad file gives exactly one st.error carrying the loader's own message and leaves the previous choice in place;
# a tricky-but-valid file is accepted. The page keeps working after every file.
IMAGE_UPLOADERS = [("pages/1_attack.py", "attack_img_upload"), ("pages/4_universal.py", "uni_img_upload")]
PATCH_UPLOADERS = [("pages/2_fragility.py", "frag_patch_file"), ("pages/3_transfer.py", "transfer_patch_file"),
                   ("pages/5_gradients.py", "grad_patch_file"), ("pages/6_models.py", "models_patch_file"),
                   ("pages/4_universal.py", "uni_patch_file")]


def _feed_corpus(at, key: str, directory, cases, kind: str, prefix: str):
    """Upload every corpus file of ``kind`` through one uploader; yield (case, errors) after each rerun.

    Checks what holds for every uploader: no exception; a bad file gives exactly one error starting with
    ``prefix`` and carrying the loader's message; a good file gives no rejection."""
    for case in [c for c in cases if c.kind == kind]:
        at.file_uploader(key=key).upload(case.filename, (directory / case.filename).read_bytes()).run()
        assert not at.exception, (case.name, [e.message for e in at.exception])
        errors = [e.value for e in at.error]
        if case.expect == "error":
            assert len(errors) == 1 and errors[0].startswith(prefix), (case.name, errors)
            assert case.message_fragment.lower() in errors[0].lower(), (case.name, errors[0])
        else:
            assert not any(e.startswith(prefix) for e in errors), (case.name, errors)
        yield case, errors
    at.file_uploader(key=key).clear().run()
    assert not at.exception and not at.error


@pytest.mark.parametrize("page,key", IMAGE_UPLOADERS)
def test_every_corpus_image_through_the_image_uploader(page, key, bad_corpus, universal):
    directory, cases = bad_corpus
    at = app(page, **({"universal": universal} if "universal" in page else {}))  # its drag view needs a patch
    expected = at.session_state["image_src"]["name"] if "image_src" in at.session_state else None
    for case, errors in _feed_corpus(at, key, directory, cases, "image", "Upload rejected — "):
        if case.expect == "error":
            assert case.filename in errors[0], (case.name, errors[0])  # says which file
        else:
            assert not errors, (case.name, errors)
            expected = case.filename
        assert at.session_state.get("image_src", {}).get("name") == expected, case.name


@pytest.mark.parametrize("page,key", PATCH_UPLOADERS)
def test_every_corpus_patch_file_through_the_patch_uploader(page, key, bad_corpus, trained, coffee):
    directory, cases = bad_corpus
    at = app(page, result=trained, result_image=coffee, grad_methods=["saliency"])  # one map: a faster rerun
    for _ in _feed_corpus(at, key, directory, cases, "patch", "Patch file rejected — "):
        pass
    if "universal" not in page:  # the session's own patch is still the one shown
        assert at.session_state["result"] is trained
