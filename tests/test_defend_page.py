"""AppTest for the Defend page (pages/8_defend.py): PatchCleanser on the session's patch and the clean photo's
certificate."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import attack

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
PAGE = "pages/8_defend.py"


pytestmark = pytest.mark.usefixtures("steady_server")  # tests/conftest.py


def app(**state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    at.switch_page(PAGE).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def defended(at: AppTest, timeout: float = 240) -> AppTest:
    """Rerun (as the page's polling fragment would) until the background defence has drawn its verdicts."""
    end = time.time() + timeout
    while not any(m.label == "PatchCleanser" for m in at.metric):
        assert time.time() < end, "the defence never finished"
        time.sleep(0.3)
        at.run()
        assert not at.exception, [e.message for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption] + [m.value for m in at.info]
                     + [m.value for m in at.success] + [m.value for m in at.warning])


def test_defend_page_without_a_patch_asks_for_one():
    at = app()
    assert at.title[0].value.endswith("Defend") and "No patch yet" in texts(at)


def test_defend_page_on_the_real_patch(real_attack, model):
    """The trained 63-px king-snake patch: the page shows the 36 masks, the undefended target beside the defended
    label as attack.defend computes it, the occlusion verdict and the three-sentence explanation."""
    from attack.defend import double_masking, occlusion_defence

    res = real_attack.result
    at = defended(app(result=res, result_image=real_attack.image))
    assert not at.error, [e.value for e in at.error]
    body = texts(at)
    assert "36 masks of 89×89 px at stride 27 px" in body
    x = attack.apply_patch(real_attack.image, res.patch, res.loc, res.domain, model).unsqueeze(0)
    r = double_masking(model, x, res.size, domain=res.domain, certify=False)
    o = occlusion_defence(model, x, res.size, domain=res.domain)
    names = attack.class_names()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["undefended"] == names[res.target] == names[int(r.undefended[0])]
    assert metrics["PatchCleanser"] == names[int(r.label[0])]
    assert f"case {int(r.case[0])}" in body and f"{int(r.forwards[0])} forwards" in body
    assert f"says **{names[int(o.label[0])]} ({int(o.label[0])})**" in body
    assert "**Guaranteed:**" in body and "**Not guaranteed:**" in body
    assert len(at.get("image")) >= 2  # the masks over the image, the image under one mask
    covering = r.masks.covering(res.loc)
    assert at.selectbox(key="defend_mask").value == covering[0]


def test_defend_page_certifies_a_clean_photo(real_attack, photo):
    """ai-benchmark/1 is certified against 16-px patches with 4×4 masks (tests/test_defend.py): the toggle says so."""
    at = app(result=real_attack.result, result_image=photo)
    # one rerun with all three changes (each rerun recomputes the page's defence: three cost ~3x the time)
    at.number_input(key="defend_size").set_value(16)
    at.slider(key="defend_k").set_value(4)
    at.toggle(key="defend_certify").set_value(True).run()
    assert not at.exception and not at.error
    end = time.time() + 240
    while not at.success:  # the certificate is a background job too
        assert time.time() < end, "the certificate never came"
        time.sleep(0.3)
        at.run()
        assert not at.exception and not at.error
    assert len(at.success) == 1 and at.success[0].value.startswith("Certified for 16-px patches")


def _map(at: AppTest, stride: int = 81, steps: int = 2) -> AppTest:
    """Press Map (a ui.jobs thread) and rerun, as the page's fragment timer would, until the heat-map is drawn."""
    at.number_input(key="defend_map_stride").set_value(stride).run()
    at.number_input(key="defend_map_steps").set_value(steps).run()
    at.button(key="defend_map_go").click().run()
    assert not at.exception and not at.error, [e.message for e in at.exception]
    end = time.time() + 240
    while not any(c.proto.id.endswith("-defend_map_chart") for c in at.get("plotly_chart")):
        assert time.time() < end, "the map never finished"
        time.sleep(0.4)
        at.run()
        assert not at.exception and not at.error, [e.message for e in at.exception]
    return at


def test_defend_page_draws_the_vulnerability_map(real_attack, model, tmp_path):
    """A 3 × 3 grid of 2-evaluation attacks, run as a background job: the heat-map is drawn, the best cell named is
    the grid's argmax, the map is cached on disk, and Map again is answered from the cache without a job."""
    at = app(result=real_attack.result, result_image=real_attack.image)
    at.number_input(key="defend_map_stride").set_value(81).run()
    assert at.metric[-1].value == "9"
    _map(at)
    assert at.session_state["_lavan_jobs"]["defend_map"].page == "defend"
    from ui import defend

    key = defend.map_key(model, attack.image_hash(real_attack.image), real_attack.target, real_attack.result.size,
                         81, 2, real_attack.result.domain)
    vm = defend.cached_map(key)
    assert vm is not None and (tmp_path / "cache" / "maps" / f"{key}.json").is_file()
    flat = [(p, tuple(loc)) for prow, lrow in zip(vm["p_target"], vm["locs"]) for p, loc in zip(prow, lrow)]
    best = max(flat, key=lambda t: t[0])
    assert tuple(vm["best_loc"]) == best[1]
    assert f"Best cell: x={best[1][1]}, y={best[1][0]}" in texts(at)
    at.button(key="defend_map_go").click().run()
    assert "defend_map" not in at.session_state["_lavan_jobs"]  # from the cache: no thread
    assert any(c.proto.id.endswith("-defend_map_chart") for c in at.get("plotly_chart"))


def test_defend_map_cell_places_the_patch_on_the_attack_page(real_attack, model):
    """The click's twin (AppTest cannot click plotly): choosing a cell sets the Attack page's target, size, domain
    and x/y, links there with the cell as a deep link (ax/ay), and the Attack page then shows that place."""
    res = real_attack.result
    at = _map(app(result=res, result_image=real_attack.image))
    box = at.selectbox(key="defend_map_cell")
    assert "(best)" in box.format_func(box.value)
    pick = len(box.options) - 1 if box.value != len(box.options) - 1 else 0  # a cell other than the shown one
    xy = 161 if pick else 0  # the bottom-right corner (224 - 63) or the top-left one
    box.set_value(pick).run()
    assert not at.exception and not at.error
    assert (at.session_state["attack_loc_x"], at.session_state["attack_loc_y"]) == (xy, xy)
    assert at.session_state["attack_size"] == res.size and at.session_state["attack_domain"] == res.domain
    assert at.session_state["attack_target"].endswith(attack.class_names()[res.target])
    assert any(m.value.startswith(f"The patch is placed at x={xy}, y={xy}") for m in at.success)
    link = [p for p in at.get("page_link") if f"Train at x={xy}, y={xy}" in p.proto.label]
    assert link and f"ax={xy}&ay={xy}" in link[0].proto.query_string
    at.switch_page("pages/1_attack.py").run()
    assert not at.exception
    assert (at.number_input(key="attack_loc_x").value, at.number_input(key="attack_loc_y").value) == (xy, xy)


def test_clicked_cell_is_the_nearest_cell_centre():
    """A plotly selection event (a click on a cell's marker) names the cell whose patch centre is nearest."""
    from ui.defend import clicked_cell

    vm = {"p_target": [[0.1, 0.2], [0.3, 0.9]], "locs": [[[0, 0], [0, 161]], [[161, 0], [161, 161]]],
          "best_loc": [161, 161]}
    assert clicked_cell(vm, 63, {"selection": {"points": [{"x": 192.5, "y": 31.5}]}}) == 1
    assert clicked_cell(vm, 63, {"selection": {"points": [{"x": 40, "y": 180}]}}) == 2
    assert clicked_cell(vm, 63, {"selection": {"points": []}}) is None
    assert clicked_cell(vm, 63, None) is None
