"""Nothing internal shown to visitors, and one tab cannot start trainings in a loop — through the real app (AppTest).

An unexpected error in a page, in the Home page, or in a training shows a short message with an error id; the
traceback is logged under that id (``lavan.errors`` on stderr) and never reaches the page. The Home and Paper pages
show no server path. The Streamlit config keeps XSRF protection and CORS at their defaults and shows no error
details (the real-server check that an upload without the XSRF token is refused is in test_browser_sessions.py).
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

import attack

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LAVAN_CACHE_DIR", str(tmp_path / "cache"))
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _server_after_first_run(monkeypatch):
    """As in test_app.py: model a server whose first session has already gone through app.py."""
    from streamlit.runtime.pages_manager import PagesManager

    init = PagesManager.__init__

    def steady_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", steady_init)


def app(page: str | None = None, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    if page:
        at.switch_page(page).run()
    return at


def shown(at: AppTest) -> str:
    """Everything the page says in text."""
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success", "title")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def error_id(at: AppTest) -> str:
    ids = [m.group(1) for e in at.error for m in [re.search(r"error id \*\*([0-9a-f]{8})\*\*", e.value)] if m]
    assert len(ids) == 1, [e.value for e in at.error]
    return ids[0]


def logged(caplog, eid: str):
    (rec,) = [r for r in caplog.records if r.name == "lavan.errors" and eid in r.getMessage()]
    return rec


def assert_nothing_internal(at: AppTest, *secrets: str) -> None:
    assert not at.exception, "Streamlit's own exception element (a traceback) was shown"
    text = shown(at)
    for s in ("Traceback", "File \"", str(ROOT), *secrets):
        assert s not in text, f"{s!r} shown on the page"


def test_config_hides_error_details_and_keeps_xsrf_and_cors():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["client"]["showErrorDetails"] == "none"
    server = cfg.get("server", {})
    assert server.get("enableXsrfProtection", True) is True and server.get("enableCORS", True) is True


def test_an_error_in_a_page_shows_an_id_and_logs_the_traceback(monkeypatch, caplog):
    from ui import reports

    def broken():
        raise RuntimeError("secret detail at /srv/lavan/private.json")

    monkeypatch.setattr(reports, "load_all", broken)
    at = app("pages/7_paper.py")
    eid = error_id(at)
    assert_nothing_internal(at, "secret detail", "/srv/lavan", "RuntimeError")
    rec = logged(caplog, eid)
    assert "page paper" in rec.getMessage() and "secret detail" in str(rec.exc_info[1])
    assert rec.exc_info[2] is not None  # the traceback itself
    assert at.selectbox(key="model_name").value == "efficientnet-lite0"  # the rest of the app is still there
    assert "Paper vs us" in shown(at)  # what the page drew before the error stays


def test_an_error_in_the_home_page_shows_an_id(monkeypatch, caplog):
    from lab import findings

    monkeypatch.setattr(findings, "home_rows", lambda: 1 / 0)
    at = app()
    eid = error_id(at)
    assert_nothing_internal(at, "ZeroDivisionError", "division by zero")
    assert "ZeroDivisionError" in logged(caplog, eid).getMessage()


def test_an_error_in_a_fragment_shows_an_id(monkeypatch, caplog):
    """The Universal page's drag view is an st.fragment (its reruns skip app.py): its errors get an id too."""
    def broken(*a, **k):
        raise RuntimeError("fragment internals /srv/lavan")

    at = app("pages/4_universal.py")
    monkeypatch.setattr(attack.patch, "patched_logits", broken)
    at.button(key="uni_use_asset").click().run()
    eid = error_id(at)
    assert_nothing_internal(at, "fragment internals", "/srv/lavan")
    assert "fragment live_view" in logged(caplog, eid).getMessage()
    assert at.dataframe, "the page above the fragment is still drawn"


def test_a_failing_training_shows_an_id_and_logs_the_traceback(monkeypatch, caplog):
    def broken(*a, **k):
        raise ValueError("shape mismatch in /srv/lavan/attack/train.py")

    monkeypatch.setattr(attack, "train_patch", broken)
    at = app("pages/1_attack.py")
    at.number_input(key="attack_steps").set_value(3).run()
    at.button(key="attack_train").click().run()
    job = at.session_state["_lavan_jobs"]["attack"]
    job.thread.join(30)
    at.run()
    (msg,) = [e.value for e in at.error if "training failed" in e.value]
    eid = re.search(r"error id ([0-9a-f]{8})", msg).group(1)
    assert_nothing_internal(at, "shape mismatch", "/srv/lavan", "ValueError")
    rec = logged(caplog, eid)
    assert "shape mismatch" in str(rec.exc_info[1])


def test_no_server_paths_on_the_home_and_paper_pages(monkeypatch, tmp_path):
    at = app()
    assert_nothing_internal(at, str(tmp_path), "lavan-cache")
    assert "cached on the server" in shown(at)
    at = app("pages/7_paper.py")
    assert_nothing_internal(at)
    assert "`reports`" in shown(at)


def test_a_bad_weights_file_is_reported_without_its_server_path(tmp_path, monkeypatch):
    lite0 = attack.load_model("efficientnet-lite0", device="cpu", channels_last=True)
    photo = {x.name: x for x in attack.sample_images()}["skimage/coffee"]
    image = attack.load_image(photo.path, lite0.input_size)
    res = attack.train_patch(lite0, image, 859, (16, 24), size=40, steps=2, generator=torch.Generator().manual_seed(0))
    res.meta["image_hash"] = attack.image_hash(image)
    from safetensors.torch import save_file

    bad = tmp_path / "operators-secret-dir" / "inception_v3.safetensors"
    bad.parent.mkdir()
    save_file({"not_inception.weight": torch.zeros(2, 2)}, bad)  # readable, but not Inception v3
    monkeypatch.setenv("LAVAN_INCEPTION_WEIGHTS", str(bad))
    at = app("pages/6_models.py", result=res, result_image=image)
    errors = [e.value for e in at.error if e.value.startswith("inception-v3")]
    assert errors, [e.value for e in at.error]
    assert_nothing_internal(at, str(tmp_path), "operators-secret-dir")


def test_a_tab_that_starts_trainings_in_a_loop_is_told_to_wait(monkeypatch):
    """One iteration per training (LAVAN_MAX_ITER=1), a new patch place each time so that the cache does not
    answer: the second start within the interval is refused with a message saying when to try again, and nothing
    runs; with the interval off, the per-tab quota refuses the third."""
    monkeypatch.setenv("LAVAN_MAX_ITER", "1")
    monkeypatch.setenv("LAVAN_START_INTERVAL_S", "600")
    at = app("pages/1_attack.py")

    def train(x: int):
        at.number_input(key="attack_loc_x").set_value(x).run()
        at.button(key="attack_train").click().run()
        job = at.session_state["_lavan_jobs"]["attack"]
        if job.thread is not None:
            job.thread.join(60)
            at.run()
        return job

    assert train(0).status == "done"
    refused = train(8)
    assert refused.status == "refused" and refused.thread is None
    (msg,) = [w.value for w in at.warning if "Train again in" in w.value]
    assert "at most once every 600 s" in msg
    assert not at.exception
    monkeypatch.setenv("LAVAN_START_INTERVAL_S", "0")
    monkeypatch.setenv("LAVAN_START_QUOTA", "2")
    assert train(16).status == "done"
    assert train(24).status == "refused"
    assert any("started 2 trainings in the last 10 minutes" in w.value for w in at.warning)


def test_one_model_copy_however_get_model_is_called():
    """bench/load.py (30 sessions) logged the model loaded twice: the Lesson called get_model(name), the sidebar
    get_model(name, None), and Streamlit keys its cache on the arguments as passed."""
    from ui import cache

    m = cache.get_model("efficientnet-lite0")
    assert cache.get_model("efficientnet-lite0", None) is m and cache.get_model("efficientnet-lite0", weights=None) is m
