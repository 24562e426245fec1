"""Issue 26: no page computes on open. Page analyses run as ui.background jobs (progress, Stop, partial results),
their results are shared by every session through the on-disk result cache, and Train cannot start twice."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

import attack
from attack.result_cache import ResultCache, result_key

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")

pytestmark = pytest.mark.usefixtures("steady_server")  # tests/conftest.py: isolated cache dir, one thread


@pytest.fixture(scope="module")
def trained(model):
    s = {x.name: x for x in attack.sample_images()}
    coffee = attack.load_image(s["skimage/coffee"].path, model.input_size)
    res = attack.train_patch(model, coffee, 859, (16, 24), size=40, steps=3, generator=torch.Generator().manual_seed(0))
    res.meta["image_hash"] = attack.image_hash(coffee)
    return res, coffee


def app(page: str, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def poll(at: AppTest, done, timeout: float = 240.0) -> AppTest:
    end = time.time() + timeout
    while not done(at):
        assert time.time() < end, "timed out waiting for the page"
        time.sleep(0.3)
        at.run()
        assert not at.exception, [e.message for e in at.exception]
    return at


def jobs_of(at: AppTest) -> dict:
    return at.session_state["_lavan_jobs"] if "_lavan_jobs" in at.session_state else {}


# ------------------------------------------------------------------------------------------------ result cache
def test_result_cache_is_shared_and_recomputes_corrupt_entries(tmp_path, model):
    """Two caches on one directory (two sessions, two processes) see each other's entries; a corrupt, truncated or
    foreign entry is a miss and is deleted; the key changes with every field; NaN survives."""
    key = result_key("shift_map", model, "img", "patch", (3, 4), radius=2)
    assert key != result_key("shift_map", model, "img", "patch", (3, 5), radius=2)
    assert key != result_key("shift_map", model, "img", "patch", (3, 4), radius=3)
    assert key != result_key("shift_map", ("other", 224), "img", "patch", (3, 4), radius=2)
    a, b = ResultCache(tmp_path), ResultCache(tmp_path)
    assert b.get(key) is None
    value = {"p": [[0.25, float("nan")]], "label": 7}
    a.put(key, value)
    got = b.get(key)
    assert got["label"] == 7 and got["p"][0][0] == 0.25 and got["p"][0][1] != got["p"][0][1]
    path = a.path(key)
    for bad in ('{"key": "' + key + '", "sha256": "0", "value": {"label": 8}}', path.read_text()[:20], "",
                json.dumps({"key": "f" * 64, "sha256": "x", "value": 1})):
        path.write_text(bad)
        assert b.get(key) is None and not path.exists()
        a.put(key, value)
    assert b.get(key)["label"] == 7


# ------------------------------------------------------------------------------------------------ pages
def test_defend_page_does_not_compute_on_open_and_fills_in_then_shares(trained, tmp_path):
    """Opening Defend returns before the 6×6 PatchCleanser is done: the job is running and a progress bar is drawn;
    polling draws the mask grid as it fills, then the verdicts. A second session (a reload, another student)
    reads them from the disk cache at once, with no job."""
    res, coffee = trained
    t = time.perf_counter()
    at = app("pages/8_defend.py", result=res, result_image=coffee)
    opened = time.perf_counter() - t
    job = jobs_of(at)["defend_patched"]
    assert job.active, "the defence finished inside the page's script run"
    assert not any(m.label == "PatchCleanser" for m in at.metric)
    assert at.get("progress"), "no progress bar while the defence runs"
    assert any(b.key == "defend_patched_stop" for b in at.button)
    assert job.page == "defend" and opened < 60
    partial_seen = []

    def finished(a):
        if a.get("progress") and any("masks classified so far" in c.value for c in a.caption):
            partial_seen.append(True)
        return any(m.label == "PatchCleanser" for m in a.metric)

    poll(at, finished)
    assert partial_seen, "the mask grid was never drawn before the result"
    assert list((tmp_path / "cache" / "results").rglob("*.json")), "the defence was not stored"
    other = app("pages/8_defend.py", result=res, result_image=coffee)
    assert any(m.label == "PatchCleanser" for m in other.metric), "a second session recomputed the defence"
    assert "defend_patched" not in jobs_of(other)
    assert {m.label: m.value for m in other.metric}["PatchCleanser"] == \
        {m.label: m.value for m in at.metric}["PatchCleanser"]


def test_transfer_curve_gains_points_and_stop_ends_it(trained):
    """The transfer sweep reports a point per border (the partial curve is drawn), and Stop ends the job: the page
    says so and offers Compute again, which starts a new job; nothing partial is cached."""
    res, coffee = trained
    at = app("pages/3_transfer.py", result=res, result_image=coffee)
    job = jobs_of(at)["transfer_sweep"]
    assert job.active and at.get("progress")
    poll(at, lambda a: any(p.get("partial") for p in job.progress) and bool(a.get("plotly_chart")), timeout=120)
    at.button(key="transfer_sweep_stop").click().run()
    assert job.cancel.is_set()
    job.thread.join(60)
    assert not job.thread.is_alive()
    poll(at, lambda a: any(i.value.startswith("Stopped") for i in a.info), timeout=30)
    assert not any(c.proto.id.endswith("-transfer_chart") for c in at.get("plotly_chart"))
    at.run()
    assert jobs_of(at)["transfer_sweep"] is job, "a stopped analysis restarted by itself"
    at.button(key="transfer_sweep_again").click().run()
    assert jobs_of(at)["transfer_sweep"] is not job and jobs_of(at)["transfer_sweep"].active
    poll(at, lambda a: any(c.proto.id.endswith("-transfer_chart") for c in a.get("plotly_chart")))
    fig = json.loads(next(c for c in at.get("plotly_chart") if c.proto.id.endswith("-transfer_chart")).proto.spec)
    assert fig["data"][0]["x"][0] == 0 and fig["data"][0]["x"][-1] == 50 and len(fig["data"][0]["x"]) == 11


def test_transfer_photo_grid_reads_the_sweep(trained, monkeypatch):
    """Once the sweep has run, moving the border slider draws the photos' predictions from the sweep's per-photo
    results: the captions equal attack.border_transfer's at that border, with no forward of the page's own."""
    res, coffee = trained
    at = app("pages/3_transfer.py", result=res, result_image=coffee)
    poll(at, lambda a: any(c.proto.id.endswith("-transfer_chart") for c in a.get("plotly_chart")))
    import attack.patch

    def no_forward(*a, **k):
        raise AssertionError("the page ran a forward for the photo grid")
    monkeypatch.setattr(attack.patch, "domain_logits", no_forward)
    at.slider(key="transfer_border").set_value(40).run()
    monkeypatch.undo()
    assert not at.exception, [e.message for e in at.exception]
    from ui import cache

    model = cache.get_model("efficientnet-lite0")
    shown = [img.proto.imgs[0].caption for img in at.get("image")][-8:]  # the grid: the last 8 pictures
    samples = cache.samples()
    names = [s[0] for s in samples if s[0].startswith("ai-benchmark/")][:8]
    assert len(shown) == len(names) == 8
    paths = {s[0]: s[1] for s in samples}
    dst = torch.stack([cache.sample_tensor(paths[n], model.input_size, model.resize_size) for n in names])
    out = attack.border_transfer(model, coffee, dst, res.patch, res.loc, res.target, borders=(0.4,), domain=res.domain)
    for j, cap in enumerate(shown):
        assert cap.endswith(f"p(target) {out['p_target_each'][0][j]:.2f}"), (cap, out["p_target_each"][0][j])


def test_fragility_map_is_a_job_and_cached(trained):
    res, coffee = trained
    at = app("pages/2_fragility.py", result=res, result_image=coffee)
    assert jobs_of(at)["frag_map"].active
    poll(at, lambda a: any(c.proto.id.endswith("-frag_heat") for c in a.get("plotly_chart")))
    direct = attack.shift_map(attack.load_model("efficientnet-lite0", device="cpu", channels_last=True), coffee,
                              res.patch, res.loc, res.target, source=res.source, radius=3, domain=res.domain)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["p(target) at the trained place"] == f"{float(direct['p_target'][3, 3]):.3f}"
    other = app("pages/2_fragility.py", result=res, result_image=coffee)
    assert any(c.proto.id.endswith("-frag_heat") for c in other.get("plotly_chart"))
    assert "frag_map" not in jobs_of(other)


def test_train_pressed_twice_trains_once():
    """Train is disabled the moment a training starts (the page redraws at once); a second press that still
    reaches the server (a stale button) does not replace the running training."""
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    at.switch_page("pages/1_attack.py").run()
    at.number_input(key="attack_steps").set_value(10_000).run()
    at.button(key="attack_train").click().run()
    first = jobs_of(at)["attack"]
    assert first.active
    assert at.button(key="attack_train").disabled and not at.button(key="attack_stop").disabled
    stale = at.button(key="attack_train")
    stale.proto.disabled = False  # a press from a browser that has not drawn the disabled button yet
    stale.click().run()
    assert jobs_of(at)["attack"] is first and not first.cancel.is_set()
    at.button(key="attack_stop").click().run()
    first.thread.join(60)
    assert not first.thread.is_alive()


def test_going_back_to_a_cached_answer_stops_the_other_computation(trained):
    """Radius 3 (computed, cached), then 8 (a job starts), then 3 again: the cache answers and the radius-8 job,
    which nobody wants any more, is stopped."""
    res, coffee = trained
    at = app("pages/2_fragility.py", result=res, result_image=coffee)
    poll(at, lambda a: any(c.proto.id.endswith("-frag_heat") for c in a.get("plotly_chart")))
    at.slider(key="frag_radius").set_value(8).run()
    wide = jobs_of(at)["frag_map"]
    assert wide.active
    at.slider(key="frag_radius").set_value(3).run()
    assert wide.cancel.is_set() and "frag_map" not in jobs_of(at)
    assert any(c.proto.id.endswith("-frag_heat") for c in at.get("plotly_chart"))
