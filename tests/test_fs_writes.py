"""The app writes only inside its cache directory, and uploaded file names never become paths.

A child process (so that the audit hook cannot leak into pytest) installs ``sys.addaudithook`` and records every
event that can change the file system: ``open``/``os.open`` with a write, create, truncate or append flag,
``os.rename`` (also raised by ``os.replace``), ``os.remove`` (also ``os.unlink``), ``os.rmdir``, ``os.mkdir``,
``os.truncate``, ``os.link``, ``os.symlink``, ``os.chmod``, ``os.chown``, ``os.utime``, ``shutil.*``,
``tempfile.mkstemp``/``mkdtemp`` and ``sqlite3.connect``. Then it drives the studio with ``AppTest`` through the
home page, the attack page (gallery pick, uploads with hostile names, a 3-iteration training, its downloads, the
same configuration again from the cache), every other page with the session's patch, patch files and photos
uploaded under hostile names on those pages, the universal page (shipped patch, evaluation, live view), and home.

Limits, stated so that nobody reads more into a pass than it proves:
* The hook sees writes made through Python (all of the app's, Streamlit's and torch's Python code); a write made
  from native code (a C or Rust library writing on its own) raises no event. The hostile names are therefore also
  checked on disk: none of the places a name like ``../../evil.png`` could resolve to exists after the run.
* ``AppTest`` hands uploads to the script directly; on a real server they arrive over HTTP into Streamlit's
  in-memory upload manager. What the *app* does with the name is the same in both.
"""
from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TORCH_TMP = os.path.join(tempfile.gettempdir(), f"torchinductor_{getpass.getuser()}")

# Every name is an attempt to escape: parent traversal, an absolute path, a home-relative path, Windows
# separators. All contain "evil" so that any file named after them can be found.
HOSTILE_PHOTOS = ["../../evil.png", "/tmp/x/../../etc/evil_passwd.png", "~/evil_home.png", "..\\..\\evil_win.png"]
HOSTILE_BAD_PHOTO = "../../../evil_not_an_image.txt"
HOSTILE_PATCH = "../../evil_patch.safetensors"
HOSTILE_UNIVERSAL = "/tmp/../evil_universal.safetensors"

HARNESS = textwrap.dedent(r'''
    import json, os, sys, time

    OUT, APP, NAMES = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    ROOT = os.path.dirname(APP) + os.sep
    events, recording = [], [True]
    WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    PATH_EVENTS = {"os.rename": (0, 1), "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,),
                   "os.truncate": (0,), "os.link": (0, 1), "os.symlink": (1,), "os.chmod": (0,), "os.chown": (0,),
                   "os.utime": (0,), "shutil.copyfile": (1,), "shutil.copymode": (1,), "shutil.copystat": (1,),
                   "shutil.copytree": (1,), "shutil.rmtree": (0,), "shutil.move": (0, 1),
                   "shutil.make_archive": (0,), "shutil.unpack_archive": (1,), "tempfile.mkstemp": (0,),
                   "tempfile.mkdtemp": (0,), "sqlite3.connect": (0,)}

    def who():
        """Where a write comes from: the outermost frame in the project (not this harness), then the innermost;
        and whether it happens while streamlit.testing's app_test module is being imported (the test driver)."""
        import traceback
        frames = [f for f in traceback.extract_stack()[:-2] if f.filename != __file__]
        ours = [f for f in frames if f.filename.startswith(ROOT) and "/.venv/" not in f.filename]
        driver = any(f.filename.endswith(os.path.join("streamlit", "testing", "v1", "app_test.py"))
                     and f.name == "<module>" for f in frames)
        return {"by": [f"{f.filename}:{f.lineno} {f.name}" for f in ours[-1:] + frames[-4:]], "driver": driver}

    def hook(event, args):
        if not recording[0]:
            return
        if event == "open":
            path, mode, flags = args
            writes = (isinstance(flags, int) and flags & WRITE_FLAGS) or (
                isinstance(mode, str) and any(c in mode for c in "wax+"))
            paths = [path] if writes else []
        elif event in PATH_EVENTS:
            paths = [args[i] for i in PATH_EVENTS[event] if i < len(args)]
        else:
            return
        for p in paths:
            if isinstance(p, bytes):
                p = os.fsdecode(p)
            if isinstance(p, (str, os.PathLike)):
                p = os.fspath(p)
                events.append({"event": event, "path": p, "abs": os.path.join(os.getcwd(), p), **who()})
            elif p is not None and not isinstance(p, int):  # an int is a file descriptor: its open was recorded
                events.append({"event": event, "path": repr(p), "abs": None, **who()})

    sys.addaudithook(hook)

    import io
    import torch
    torch.set_num_threads(1)
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest
    import attack
    from ui import jobs

    from streamlit import config as st_config
    st_config.set_option("runner.postScriptGC", False)  # speed only: no full gc.collect() after each of ~40 runs

    # a server after its first run (see tests/test_app.py: _server_after_first_run)
    _init = PagesManager.__init__
    def steady_init(self, *a, **k):
        _init(self, *a, **k)
        PagesManager.uses_pages_directory = False
    PagesManager.__init__ = steady_init

    facts = {"errors": []}

    def check(at, where):
        assert not at.exception, (where, [e.message for e in at.exception])

    def run(at, where):
        at.run()
        check(at, where)
        return at

    def poll(at, done, where, timeout=90):
        end = time.time() + timeout
        while time.time() < end:
            time.sleep(0.3)
            run(at, where)
            if done(at):
                return
        raise AssertionError("timed out: " + where)

    def png(color):
        from PIL import Image
        buf = io.BytesIO()
        Image.new("RGB", (96, 80), color).save(buf, format="PNG")
        return buf.getvalue()

    def errors(at):
        return [e.value for e in at.error]

    laps = facts["laps"] = {"cpu_imports": round(time.process_time(), 1)}

    def drive():
        t0 = time.time()
        at = run(AppTest.from_file(APP, default_timeout=180), "home")
        facts["home_links"] = len(at.get("page_link"))

        # attack page: a gallery photo, then uploads under hostile names (each becomes the photo), then a bad one
        at.switch_page("pages/1_attack.py"); run(at, "attack")
        at.button(key="attack_img_pick_skimage/chelsea").click(); run(at, "pick")
        facts["picked"] = at.session_state["image_src"]["name"]
        facts["upload_names"] = []
        for i, name in enumerate(NAMES["photos"]):
            at.file_uploader(key="attack_img_upload").upload(name, png((40 * i, 200, 30)), "image/png")
            run(at, "upload " + name)
            facts["upload_names"].append(at.session_state["image_src"]["name"])
            facts["errors"] += errors(at)
        at.file_uploader(key="attack_img_upload").upload(NAMES["bad_photo"], b"not an image", "text/plain")
        run(at, "bad upload")
        facts["bad_upload_errors"] = errors(at)
        at.file_uploader(key="attack_img_upload").upload(NAMES["photos"][0], png((0, 200, 30)), "image/png")
        run(at, "upload again")
        laps["home+attack uploads"] = round(time.time() - t0, 1)
        lap = time.time()

        # a 3-iteration training on the uploaded photo: the patch goes to the cache, three downloads appear
        at.number_input(key="attack_steps").set_value(3); run(at, "steps")
        at.button(key="attack_train").click(); run(at, "train")
        poll(at, lambda a: a.session_state["result"] is not None if "result" in a.session_state else False, "training")
        facts["downloads"] = [b.proto.label for b in at.get("download_button")]
        at.button(key="attack_train").click(); run(at, "train again")
        facts["cache_hit"] = bool(at.session_state["result_from_cache"])
        facts["errors"] += errors(at)
        res = at.session_state["result"]
        patch_file = attack.io.patch_bytes(res)
        laps["training+cache"] = round(time.time() - lap, 1)

        # every other page with the session's patch; on Fragility, a patch file and a photo under hostile names
        at.session_state["transfer_n"], at.session_state["uni_test"] = 2, 4  # fewer photos: the same code, faster
        pages = [str(i["script_path"]) for i in at._registered_pages.values() if i.get("script_path")]
        facts["pages"] = [os.path.basename(p) for p in pages]
        for page in pages:
            if page.endswith(("1_attack.py", "4_universal.py")):
                continue
            lap = time.time()
            at.switch_page(page); run(at, page)
            facts["errors"] += errors(at)
            if page.endswith("2_fragility.py"):
                at.button(key="frag_right").click(); run(at, "nudge")
                at.file_uploader(key="frag_patch_file").upload(NAMES["patch"], patch_file); run(at, "patch upload")
                facts["patch_upload_errors"] = errors(at)
                at.file_uploader(key="frag_img_upload").upload(NAMES["photos"][1], png((9, 9, 200)), "image/png")
                run(at, "frag photo upload")
                facts["errors"] += errors(at)
                poll(at, lambda a: len(a.get("plotly_chart")) >= 1, "fragility map")  # a background job now
                facts["frag_charts"] = len(at.get("plotly_chart"))
            laps[os.path.basename(page)] = round(time.time() - lap, 1)

        # universal: a shipped patch (if any) and its held-out evaluation, a universal patch file under a hostile
        # name, and the live view with a hostile-named photo
        lap = time.time()
        at.switch_page("pages/4_universal.py"); run(at, "universal")
        if any(s.key == "uni_asset" for s in at.selectbox):
            at.button(key="uni_use_asset").click(); run(at, "universal asset")
            facts["universal_asset_table"] = len(at.dataframe)
            uni = at.session_state["universal"]
            at.file_uploader(key="uni_patch_file").upload(NAMES["universal"], attack.io.patch_bytes(uni))
            run(at, "universal upload")
            facts["universal_upload_errors"] = errors(at)
            at.file_uploader(key="uni_img_upload").upload(NAMES["photos"][2], png((200, 200, 9)), "image/png")
            run(at, "universal photo upload")
            facts["errors"] += errors(at)
        laps["4_universal.py"] = round(time.time() - lap, 1)
        home = [h for h, i in at._registered_pages.items() if not i.get("script_path")]
        if home:  # the home page is a function, not a file: switch_page() cannot name it
            at._page_hash = home[0]
            run(at, "home again")
            facts["home_again"] = len(at.get("page_link"))
        facts["seconds"] = round(time.time() - t0, 1)
        laps["cpu_total"] = round(time.process_time(), 1)

    try:
        drive()
    except BaseException:  # still hand back what was recorded: a crash must not hide a bad write
        import traceback
        facts["crash"] = traceback.format_exc()[-4000:]
    finally:
        jobs.stop_all()

    recording[0] = False
    with open(OUT, "w") as f:
        json.dump({"events": events, "facts": facts}, f)
''')


def _inside(path: str, root: Path) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base + os.sep)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fs_writes")
    cache, home = tmp / "cache", tmp / "home"
    home.mkdir()
    out, harness = tmp / "events.json", tmp / "harness.py"
    harness.write_text(HARNESS)
    names = {"photos": HOSTILE_PHOTOS, "bad_photo": HOSTILE_BAD_PHOTO, "patch": HOSTILE_PATCH,
             "universal": HOSTILE_UNIVERSAL}
    # HOME is an empty folder of its own: a write to ~ lands there (outside the cache dir, so it is reported)
    # rather than in the real home. -B: the interpreter itself writes no __pycache__ files (not the app's doing).
    env = dict(os.environ, LAVAN_CACHE_DIR=str(cache), HOME=str(home), PYTHONDONTWRITEBYTECODE="1",
               LAVAN_TORCH_THREADS="1", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    for var in ("LAVAN_INCEPTION_WEIGHTS", "MPLCONFIGDIR", "TORCHINDUCTOR_CACHE_DIR"):  # the app's own defaults
        env.pop(var, None)  # (ui/cache.py sets MPLCONFIGDIR in any process that imported it, pytest's included)
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-B", str(harness), str(out), str(ROOT / "app.py"), json.dumps(names)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-6000:]
    data = json.loads(out.read_text())
    data["log"] = proc.stderr[-4000:]
    print("fs_writes run:", data["facts"].get("seconds"), "s", data["facts"].get("laps"))
    data.update(cache=cache, home=home, tmp=tmp, started=t0)
    return data


def test_the_app_was_really_driven(recorded):
    """The run did what the other assertions rely on (otherwise "no bad write" would prove nothing)."""
    f = recorded["facts"]
    assert "crash" not in f, f.get("crash", "") + recorded["log"]
    assert f["home_links"] == len(f["pages"]) >= 6 and f.get("home_again") == f["home_links"]
    assert f["picked"] == "skimage/chelsea"
    assert f["upload_names"] == HOSTILE_PHOTOS  # every hostile upload was accepted and became the photo
    assert len(f["bad_upload_errors"]) == 1 and f["bad_upload_errors"][0].startswith("Upload rejected — ")
    assert len(f["downloads"]) == 3 and f["cache_hit"]
    assert f["patch_upload_errors"] == [] and f["frag_charts"] >= 1
    assert f["errors"] == []
    if "universal_asset_table" in f:
        assert f["universal_upload_errors"] == []


def test_the_recorder_sees_the_apps_own_writes(recorded):
    """The trained patch was stored in the cache dir, and the hook saw it being written there."""
    cache = recorded["cache"]
    assert len(list(cache.glob("*.safetensors"))) == 1 and len(list(cache.glob("*.json"))) == 1
    assert any(_inside(e["abs"], cache) for e in recorded["events"] if e["abs"])


def allowance(event: dict, cache: Path) -> str | None:
    """Why a recorded write is allowed, or None. Each allowance is as narrow as the write it admits."""
    path = event["abs"]
    if path is None:
        return None
    if _inside(path, cache):
        # The app's own data: attack.PatchCache entries (through a .tmp-* file in the same folder and os.replace),
        # and matplotlib's font cache, which ui/cache.py points there (MPLCONFIGDIR) instead of ~/.cache.
        return "cache dir"
    if path == os.devnull and event["event"] == "open":
        # subprocess.DEVNULL: ctypes.util.find_library (run while torch imports its CUDA helpers) discards the
        # output of `ldconfig -p` there. Nothing is stored.
        return "/dev/null"
    if event["driver"] and _inside(path, Path(tempfile.gettempdir())):
        # streamlit.testing's app_test module makes a TemporaryDirectory when it is imported (and tempfile probes
        # the system temp dir once for that). That is the test driver; a real server never imports it.
        return "AppTest's own temp dir"
    if event["event"] == "os.mkdir" and os.path.realpath(path) == os.path.realpath(TORCH_TMP):
        # torch._dynamo (imported by torchvision, which attack.class_names uses) creates its default compile cache
        # folder /tmp/torchinductor_<user> on import. Only the empty folder: the app compiles nothing, and a
        # write *inside* it would be reported.
        return "torch's compile-cache folder"
    return None


def test_every_write_is_inside_the_cache_dir(recorded):
    """Allowed: $LAVAN_CACHE_DIR, plus the three narrow exceptions in :func:`allowance`. Not the repo, not $HOME,
    not the rest of the system temp dir: downloads and uploads are kept in memory by Streamlit, images and patch
    files are encoded into bytes in memory."""
    outside = [e for e in recorded["events"] if allowance(e, recorded["cache"]) is None]
    assert outside == [], "writes outside the cache dir:\n" + "\n".join(
        f"{e['event']}: {e['path']}\n    " + "\n    ".join(e["by"]) for e in outside)
    assert list(recorded["home"].iterdir()) == [], "something was written to $HOME"


def test_uploaded_names_never_become_paths(recorded):
    named = [e for e in recorded["events"] if "evil" in e["path"]]
    assert named == [], f"a write used an uploaded file name: {named}"
    # Also on disk (covers writes the hook cannot see): every place a hostile name could resolve to, from
    # every folder the app could use as a base.
    bases = [ROOT, ROOT / "pages", recorded["cache"], recorded["home"], Path(tempfile.gettempdir()),
             Path.home(), Path("/")]
    names = HOSTILE_PHOTOS + [HOSTILE_BAD_PHOTO, HOSTILE_PATCH, HOSTILE_UNIVERSAL]
    found = []
    for base in bases:
        for name in names:
            for variant in (name, name.replace("\\", "/"), os.path.expanduser(name), os.path.basename(name)):
                p = Path(os.path.normpath(base / variant))
                if p.exists() and p.stat().st_mtime >= recorded["started"] - 1:
                    found.append(str(p))
    assert found == [], f"files named after uploads: {found}"
    # and nothing named after them anywhere under the run's own folders
    hits = [str(p) for p in recorded["tmp"].rglob("*evil*")]
    assert hits == [], hits
