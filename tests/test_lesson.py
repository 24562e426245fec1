"""The Lesson page (AppTest): every step renders from the shipped patches, its control changes the prediction, and
each "Try it yourself" link opens its page with the same photo and patch; the deep-link helper on its own."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

import attack
from ui import lesson

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
LESSON = "pages/0_lesson.py"
M = json.loads((ROOT / "assets" / "lesson" / "lesson.json").read_text())


pytestmark = pytest.mark.usefixtures("steady_server")  # tests/conftest.py


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def open_lesson(step: int = 1) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page(LESSON)
    at.session_state["lesson_step"] = step
    return ok(at.run())


def shown(at: AppTest) -> dict:
    return at.session_state["lesson_shown"]


def links(at: AppTest) -> list:
    return [p for p in at.get("page_link") if p.proto.label.startswith("Try it yourself")]


# ------------------------------------------------------------------------------------------------ assets
def test_shipped_patches_match_their_manifest():
    s = M["single"]
    res = attack.load_patch(ROOT / s["file"], model_name=M["model"], input_size=M["input_size"])
    assert (res.target, list(res.loc), res.size, res.domain) == (s["target"], s["loc"], s["size"], s["domain"])
    assert res.meta["image"] == s["image"] and res.meta["command"] == s["command"]
    assert s["command"].startswith("python -m attack attack ") and f"--size {s['size']}" in s["command"]
    assert s["p_target"] >= 0.9 and s["iterations"] <= s["max_iter"] <= 600
    u = M["universal"]
    res = attack.load_patch(ROOT / u["file"], model_name=M["model"], input_size=M["input_size"])
    assert res.loc is None and res.target == u["target"] and res.meta["command"] == u["command"]
    assert u["command"].startswith("python -m attack universal ")


def test_the_shipped_patch_really_works(model):
    """The numbers of step 2 and 3 from the files alone: p >= 0.9 in place, and the suggested nudge loses it."""
    res = attack.load_patch(ROOT / M["single"]["file"])
    img = attack.load_image(next(s.path for s in attack.sample_images() if s.name == M["single"]["image"]), 224)
    dy, dx = M["single"]["nudge"]
    maps = attack.shift_map(model, img, res.patch, res.loc, res.target, radius=1, domain=res.domain)
    assert float(maps["p_target"][1, 1]) >= 0.9
    assert int(maps["argmax"][1 + dy, 1 + dx]) != res.target


# ------------------------------------------------------------------------------------------------ steps
def test_home_links_the_lesson_first():
    at = AppTest.from_file(APP, default_timeout=180)
    ok(at.run())
    assert at.get("page_link")[0].proto.page.endswith("lesson") or "lesson" in at.get("page_link")[0].proto.page


def test_back_and_next_walk_every_step():
    at = open_lesson(1)
    assert at.button(key="lesson_back").disabled
    seen = []
    for step in range(1, len(lesson.STEPS) + 1):
        assert f"Step {step} of {len(lesson.STEPS)}" in "\n".join(m.value for m in at.markdown)
        seen.append(shown(at)["label"])
        assert len(links(at)) == 1
        if step < len(lesson.STEPS):
            ok(at.button(key="lesson_next").click().run())
    assert at.button(key="lesson_next").disabled
    ok(at.button(key="lesson_back").click().run())
    assert at.session_state["lesson_step"] == len(lesson.STEPS) - 1
    assert seen[0] == M["single"]["source_label"] and seen[1] == M["single"]["target_label"]


def test_step1_photo_and_top5():
    at = open_lesson(1)
    out = shown(at)
    assert out["label"] == M["single"]["source_label"] and not out["hit"]
    bars = "\n".join(m.value for m in at.markdown if "lesson-bar" in m.value)
    assert bars.count("class='lesson-bar'") == 5 and M["single"]["source_label"] in bars
    assert len(at.get("image")) == 1


def test_step2_patch_reaches_the_target():
    out = shown(open_lesson(2))
    assert out["hit"] and out["p_target"] >= 0.9


def test_step3_one_pixel_nudge_snaps_back_and_reset_restores():
    at = open_lesson(3)
    assert shown(at)["hit"]
    dy, dx = M["single"]["nudge"]
    key = {(0, 1): "right", (1, 0): "down"}.get((dy, dx), "right")
    ok(at.button(key=f"lesson_nudge_{key}").click().run())
    assert not shown(at)["hit"] and shown(at)["p_target"] < 0.5
    assert "moved by" in "\n".join(m.value for m in at.markdown)
    ok(at.button(key="lesson_nudge_reset").click().run())
    assert shown(at)["hit"]


def test_step4_the_grid_place_wins_where_the_exact_corner_does_not():
    """The toggle swaps the two shipped patches: the exact corner's stays below p 0.9, the grid place's reaches it;
    the cell-centre counts are attack.meter's, and the page shows lesson.json's offset, never a server path."""
    pl = M["place"]
    at = open_lesson(4)
    assert "Step 4 of 9 — Where the square sits" in "\n".join(m.value for m in at.markdown).replace("</b>", "")
    corner = shown(at)
    assert corner["place"] == "corner" and corner["loc"] == pl["patches"]["corner"]["loc"]
    assert corner["p_target"] < 0.9 and abs(corner["p_target"] - pl["patches"]["corner"]["p_target"]) < 2e-3
    assert [o for o in at.radio(key="lesson_place").options] == ["exact corner", f"{pl['offset']} px in"]
    ok(at.radio(key="lesson_place").set_value("grid").run())
    grid = shown(at)
    assert grid["place"] == "grid" and grid["loc"] == pl["patches"]["grid"]["loc"]
    assert grid["p_target"] >= 0.9 and grid["hit"] and grid["p_target"] != corner["p_target"]
    assert (corner["cells_centre"], grid["cells_centre"]) == (1, 4)  # 1 centre at the corner, 2 x 2 in from it
    assert grid["cells_centre"] == pl["patches"]["grid"]["cells_centre"]
    text = "\n".join(m.value for m in at.markdown) + "\n".join(c.value for c in at.caption)
    assert f"{pl['offset']} px in" in text and "forward+backward evaluations" in text
    assert f"covers {grid['cells_centre']} cell centres" in text
    assert str(ROOT) not in text and "/work/" not in text and "/home/" not in text
    assert len(links(at)) == 1


def test_step4_shipped_patches_match_their_manifest(model):
    """lesson.json's 'place' section against the files and attack.meter: the same size and budget, the exact corner
    and the grid place 'offset' px in from it, and the p(target) each reaches there (forwards only)."""
    from attack.meter import meter, place

    pl = M["place"]
    img = attack.load_image(next(s.path for s in attack.sample_images() if s.name == pl["image"]), 224)
    assert pl["tried"] and pl["tried"][-1]["image"] == pl["image"] and pl["budget"] == 2000
    for how, q in pl["patches"].items():
        res = attack.load_patch(ROOT / q["file"], model_name=M["model"], input_size=M["input_size"])
        assert (res.target, list(res.loc), res.size, res.domain) == (pl["target"], q["loc"], 42, "image")
        assert list(place(model, img, res.target, res.size, pl["corner"], how)) == q["loc"]
        assert res.meta["command"] == q["command"] and f"--place {how}" in q["command"]
        assert f"--max-iter {pl['budget']}" in q["command"] and "--threads 1" in q["command"]
        assert q["evaluations"] <= pl["budget"]
        m = meter(model, img, res.target, res.size, tuple(res.loc))
        assert (m.cells_centre, m.cells_touched) == (q["cells_centre"], q["cells_touched"])
        with torch.no_grad():
            p = torch.softmax(attack.patch.patched_logits(model, img, res.patch, res.loc, res.domain), 1)[0]
        assert abs(float(p[res.target]) - q["p_target"]) < 2e-3
    c, g = pl["patches"]["corner"], pl["patches"]["grid"]
    assert c["p_target"] < 0.9 <= g["p_target"]
    assert pl["offset"] == max(abs(a - b) for a, b in zip(c["loc"], g["loc"])) > 0


def test_step5_border_slider_brings_the_patch_back():
    at = open_lesson(5)
    assert not shown(at)["hit"]
    ok(at.slider(key="lesson_border").set_value(25).run())
    assert shown(at)["hit"]


def test_step6_universal_patch_moves_with_the_inputs():
    at = open_lesson(6)
    show = M["universal"]["showcase"]
    assert at.selectbox(key="lesson_uni_photo").value == show["image"]
    before = shown(at)
    assert before["hit"] and abs(before["p_target"] - show["p_target"]) < 1e-3
    at.number_input(key="lesson_uni_x").set_value((show["loc"][1] + 80) % 160).run()
    ok(at)
    assert shown(at)["p_target"] != before["p_target"]
    ok(at.selectbox(key="lesson_uni_photo").set_value(M["universal"]["photos"][-1]).run())
    assert not at.exception


def test_step7_gradient_maps_compare_share_with_area():
    at = open_lesson(7)
    first = shown(at)
    assert 0.0 <= first["share"] <= 1.0 and first["hit"]
    ok(at.radio(key="lesson_method").set_value("grad_cam").run())
    assert shown(at)["share"] != first["share"]
    area = attack.area_fraction(M["patch_size"], 224)
    assert f"which is {area:.0%} of the image" in "\n".join(m.value for m in at.markdown)


def test_step8_other_networks_are_not_fooled():
    at = open_lesson(8)
    out = shown(at)
    assert out["model"] == "efficientnet-lite1" and not out["hit"]
    assert out["label"] == M["other_model"]["top1_label"]
    ok(at.radio(key="lesson_other").set_value("efficientnet-lite2").run())
    assert shown(at)["model"] == "efficientnet-lite2" and shown(at)["p_target"] != out["p_target"]


def test_step9_masking_recovers_the_label_beside_the_undefended_one():
    d = M["defend"]
    at = open_lesson(9)
    out = shown(at)
    assert out["defence"] == "cleanser" and out["undefended"] == M["single"]["target_label"]
    assert not out["hit"] and out["label"] == d["label_name"] == M["single"]["source_label"]
    text = "\n".join(m.value for m in at.markdown)
    assert "without defence" in text and "Guaranteed" in text and "This photo is not" in text
    assert "--defend-only" in text  # the precomputed answer names the command that regenerates it
    ok(at.radio(key="lesson_defence").set_value("none").run())
    assert shown(at)["hit"] and shown(at)["label"] == M["single"]["target_label"]
    ok(at.radio(key="lesson_defence").set_value("occlusion").run())
    assert shown(at)["label"] == d["occlusion"]["label_name"] and not shown(at)["hit"]


def test_step9_precomputed_defence_matches_its_masks(model):
    """lesson.json's step-9 numbers against the files: the mask the label came from hides the whole patch and its one
    forward says that label, as do the first-round labels of every mask (36 forwards, not the 45 s second round)."""
    from attack.defend import mask_set

    d = M["defend"]
    res = attack.load_patch(ROOT / M["single"]["file"])
    img = attack.load_image(next(s.path for s in attack.sample_images() if s.name == M["single"]["image"]), 224)
    ms = mask_set(224, res.size, d["k"])
    assert (len(ms), ms.size, ms.positions[d["mask"]].tolist()) == (d["masks"], d["mask_size"], d["mask_loc"])
    assert d["mask"] in ms.covering(res.loc) and d["covering"] == ms.covering(res.loc)
    x = attack.apply_patch(img, res.patch, res.loc, res.domain, model).unsqueeze(0)
    masked = torch.where(ms.masks(), torch.full((1, 3, 1, 1), 0.5), x)
    with torch.no_grad():
        first = attack.patch.domain_logits(model, masked, res.domain).argmax(1).tolist()
    assert first == d["first"] and first[d["mask"]] == d["label"]
    assert d["undefended"] == res.target and d["command"] == "python scripts/lesson_assets.py --defend-only"


def test_reload_keeps_the_step():
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["step"] = "4"
    at.run()
    ok(at.switch_page(LESSON).run())
    assert at.session_state["lesson_step"] == 4 and shown(at)["place"] == "corner"  # "Where the square sits"


# ------------------------------------------------------------------------------------------------ deep links
def _follow(at: AppTest, link) -> AppTest:
    """Click a page link as the browser would: the page it names, with its query parameters."""
    from urllib.parse import parse_qsl

    fresh = AppTest.from_file(APP, default_timeout=180)
    for k, v in parse_qsl(link.proto.query_string):
        fresh.query_params[k] = v
    ok(fresh.run())
    page = {"attack": "pages/1_attack.py", "fragility": "pages/2_fragility.py", "transfer": "pages/3_transfer.py",
            "universal": "pages/4_universal.py", "gradients": "pages/5_gradients.py",
            "models": "pages/6_models.py", "defend": "pages/8_defend.py"}
    name = next(k for k in page if link.proto.page.rstrip("/").endswith(k) or page[k] in link.proto.page)
    if name == "defend":
        fresh.session_state["defend_k"] = 2  # 2 x 2 masks: the same state, without the 45 s of the 6 x 6 default
    return ok(fresh.switch_page(page[name]).run()), name


@pytest.mark.parametrize("step", [1, 2, 3, 4, 5, 6, 7, 8, 9])
def test_try_it_yourself_opens_the_full_page_with_the_same_photo_and_patch(step):
    at = open_lesson(step)
    if step == 3:
        at.button(key="lesson_nudge_right").click().run()
    if step == 4:
        ok(at.radio(key="lesson_place").set_value("grid").run())
    (link,) = links(at)
    page, name = _follow(at, link)
    src = page.session_state["image_src"]
    if step == 4:  # the grid-place patch, at its place, on its photo
        pl = M["place"]
        res = page.session_state["result"]
        assert name == "attack" and src["name"] == pl["image"]
        assert (res.target, list(res.loc), res.size) == (pl["target"], pl["patches"]["grid"]["loc"], pl["size"])
        assert page.number_input(key="attack_loc_x").value == pl["patches"]["grid"]["loc"][1]
        return
    if step == 6:
        assert name == "universal"
        assert page.session_state["universal"].target == M["universal"]["target"]
        assert src["name"] == at.selectbox(key="lesson_uni_photo").value
        assert page.number_input(key="uni_loc_x").value == at.number_input(key="lesson_uni_x").value
        return
    assert src["name"] == M["single"]["image"]
    if step == 1:
        assert name == "attack"
        return
    res = page.session_state["result"]
    assert (res.target, list(res.loc)) == (M["single"]["target"], M["single"]["loc"])
    expected = {2: "attack", 3: "fragility", 5: "transfer", 7: "gradients", 8: "models", 9: "defend"}[step]
    assert name == expected
    if step == 2:
        assert page.selectbox(key="attack_target").value.startswith(f"{M['single']['target']} ·")
        assert page.number_input(key="attack_loc_x").value == M["single"]["loc"][1]
    if step == 3:
        assert page.number_input(key="frag_dx").value == 1
        assert f"trained at x={res.loc[1]}, y={res.loc[0]}" in "\n".join(c.value for c in page.caption)
    if step == 8:
        assert "efficientnet-lite1" in page.dataframe[0].value["model"].tolist()
    if step == 9:
        import time

        end = time.time() + 240
        while "PatchCleanser" not in [m.label for m in page.metric]:  # the defence is a background job now
            assert time.time() < end, "the defence never finished"
            time.sleep(0.3)
            page.run()
            assert not page.exception
        assert [m.label for m in page.metric][:2] == ["undefended", "PatchCleanser"]
        assert page.metric[0].value == M["single"]["target_label"]


def test_deep_link_refuses_paths_outside_assets_and_unknown_photos():
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["patch"] = "../README.md"
    at.query_params["photo"] = "no/such"
    at.run()
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert any("no patch file" in w for w in warnings) and any("no sample photo" in w for w in warnings)
    assert "result" not in at.session_state
