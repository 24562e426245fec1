"""PatchCleanser double masking and the occlusion heuristic (attack/defend.py) on the real model."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attack import apply_patch, predict
from attack.defend import double_masking, mask_set, occlusion_defence


@settings(max_examples=200, deadline=None)
@given(n=st.integers(8, 300), data=st.data())
def test_mask_set_covers_every_patch_location(n, data):
    p = data.draw(st.integers(1, n))
    k = data.draw(st.integers(1, 8))
    ms = mask_set(n, p, k)
    assert ms.stride == -(-(n - p + 1) // k) and ms.size == p + ms.stride - 1  # the paper's m and s
    assert len(ms) <= k * k
    masks = ms.masks()
    assert masks.shape == (len(ms), 1, n, n)
    # Every (top, left) where a p-patch fits: some mask contains the whole patch (checked per axis, both axes
    # use the same offsets, plus a drawn 2-D location through MaskSet.covering and the mask tensor itself).
    offsets = sorted(set(ms.positions[:, 0].tolist()))
    for t in range(n - p + 1):
        assert any(o <= t and t + p <= o + ms.size for o in offsets), (n, p, k, t)
    t, l = data.draw(st.integers(0, n - p)), data.draw(st.integers(0, n - p))
    cover = ms.covering((t, l))
    assert cover
    assert masks[cover[0], 0, t:t + p, l:l + p].all()


def test_mask_set_default_geometry_and_checks():
    ms = mask_set(224, 63)
    assert (ms.size, ms.stride, len(ms)) == (89, 27, 36)
    assert ms.positions[:, 1].tolist()[:6] == [0, 27, 54, 81, 108, 135]
    with pytest.raises(ValueError):
        mask_set(224, 0)
    with pytest.raises(ValueError):
        mask_set(224, 225)
    with pytest.raises(ValueError):
        mask_set(224, 63, k=0)


# ai-benchmark/1 (the `photo` fixture) is certified against 16-px patches with a 4x4 mask set (found by running
# double_masking over the first 8 photos: 3 of 8 certified).
CERT = {"patch": 16, "k": 4}


def test_certified_photo_keeps_its_label_under_random_patches(model, photo):
    clean = double_masking(model, photo, CERT["patch"], k=CERT["k"])
    assert bool(clean.certified[0]) and int(clean.case[0]) == 1
    assert int(clean.label[0]) == int(clean.undefended[0])
    assert (clean.second[0] == clean.label[0]).all()  # every pair was run and agrees
    g = torch.Generator().manual_seed(0)
    n = 4
    locs = torch.randint(0, model.input_size - CERT["patch"] + 1, (n, 2), generator=g)
    patches = torch.rand(n, 3, CERT["patch"], CERT["patch"], generator=g)
    x = torch.stack([apply_patch(photo, patches[i], locs[i].tolist()) for i in range(n)])
    r = double_masking(model, x, CERT["patch"], k=CERT["k"], certify=False)
    assert r.label.tolist() == [int(clean.label[0])] * n
    assert (r.forwards >= 1 + len(r.masks)).all()


def test_the_first_round_can_be_watched_row_by_row_and_stopped(model, real_attack):
    """``on_first`` sees the first round one row of masks at a time (the Defend page draws them as they come) and
    changes nothing in the result; an exception raised in it stops the run."""
    res, loc = real_attack.result, real_attack.loc
    x = apply_patch(real_attack.image, res.patch, loc, "network", model).unsqueeze(0)
    plain = double_masking(model, x, 63, k=4, domain="network", certify=False)
    seen: dict[int, list[int]] = {}
    watched = double_masking(model, x, 63, k=4, domain="network", certify=False,
                             on_first=lambda start, labels: seen.__setitem__(start, labels))
    assert sorted(seen) == [0, 4, 8, 12] and all(len(v) == 4 for v in seen.values())  # 16 masks, 4 per row
    assert sum(seen.values(), []) == plain.first[0].tolist() == watched.first[0].tolist()
    assert watched.label.tolist() == plain.label.tolist() and watched.forwards.tolist() == plain.forwards.tolist()

    class Stop(Exception):
        pass

    def stop(start, labels):
        raise Stop
    with pytest.raises(Stop):
        double_masking(model, x, 63, k=4, domain="network", certify=False, on_first=stop)


def test_real_patch_masked_away(model, real_attack):
    """The trained 63-px network-domain patch: the masks that cover it see the clean label, their two-mask rows
    equal the clean photo's, and the defence returns the clean label exactly when one of those rows is unanimous."""
    res, loc, size = real_attack.result, real_attack.loc, real_attack.result.patch.shape[-1]
    x = apply_patch(real_attack.image, res.patch, loc, "network", model).unsqueeze(0)
    clean_label = int(predict(model, real_attack.image).argmax(1))
    r = double_masking(model, x, size, domain="network", certify=False)
    assert int(r.undefended[0]) == real_attack.target != clean_label
    cover = r.masks.covering(loc)
    assert cover and all(int(r.first[0, i]) == clean_label for i in cover)
    # The covering masks' second round equals the clean photo's two-mask predictions (computed independently).
    M = r.masks.masks()
    for i in cover:
        pair = M[i] | M  # (K,1,H,W)
        xc = torch.where(pair, torch.tensor(0.5), real_attack.image.unsqueeze(0))
        assert r.second[0, i].tolist() == model(xc).argmax(1).tolist()
    recovered = bool((r.first[0] == clean_label).all()) or any((r.second[0, i] == clean_label).all() for i in cover)
    assert (int(r.label[0]) == clean_label) == recovered
    if not recovered:
        assert int(r.case[0]) == 3 and int(r.label[0]) == int(torch.mode(r.first[0]).values)
    assert int(r.forwards[0]) == 1 + int((r.second[0] >= 0).sum())  # undefended + first round + pairs run


def test_occlusion_finds_the_real_patch(model, real_attack):
    res, loc, size = real_attack.result, real_attack.loc, real_attack.result.patch.shape[-1]
    x = apply_patch(real_attack.image, res.patch, loc, "network", model).unsqueeze(0)
    o = occlusion_defence(model, x, size, domain="network")
    top, left = o.loc[0].tolist()
    assert abs(top - loc[0]) < size and abs(left - loc[1]) < size  # the window overlaps the patch
    assert int(o.undefended[0]) == real_attack.target
    assert int(o.label[0]) == int(predict(model, real_attack.image).argmax(1))
    assert float(o.drop[0]) > 0.5


def test_grid_locs_fit_and_reach_the_far_edge():
    from attack.defend import grid_locs

    g = grid_locs(224, 63, 56)
    assert g.shape == (4, 4, 2)
    assert g[0, :, 1].tolist() == [0, 56, 112, 161] and g[:, 0, 0].tolist() == [0, 56, 112, 161]
    with pytest.raises(ValueError):
        grid_locs(224, 63, 0)


def test_vulnerability_map_best_cell_is_the_argmax_of_its_grid(model, photo):
    from attack.defend import vulnerability_map

    m = vulnerability_map(model, photo, 859, size=63, stride=81, steps=6, generator=torch.Generator().manual_seed(0))
    assert m.p_target.shape == (3, 3) and m.locs.shape == (3, 3, 2) and len(m.results) == 9
    i = int(m.p_target.flatten().argmax())
    assert m.best_loc == tuple(m.locs.view(-1, 2)[i].tolist())
    assert [r.loc for r in m.results] == [tuple(x) for x in m.locs.view(-1, 2).tolist()]
    best = m.results[i]
    x = apply_patch(photo, best.patch, m.best_loc, best.domain, model)
    p = torch.softmax(model.net(x.unsqueeze(0)).float(), 1)[0, 859]
    assert abs(float(p) - float(m.p_target.flatten()[i])) < 1e-3  # the map reports what the patch does there
    assert (m.evaluations > 0).all() and m.cpu_s > 0


def test_defend_report_summary_is_a_pure_function_of_rows():
    from lab.experiments.defend import summarise

    def row(kind, **kw):
        base = {"config": f"{kind}-{len(kw)}", "kind": kind, "variant": "app-network" if kind == "patch" else "clean",
                "size": "63", "input_size": "224", "k": "4", "forwards": "40", "cpu_s": "2", "occlusion_forwards": "17",
                "occlusion_cpu_s": "1", "recovered": "", "target_kept": "", "occlusion_recovered": "", "agree": "",
                "certified": "", "occlusion_agree": ""}
        return {**base, **kw}

    rows = [row("patch", recovered="1", target_kept="0", occlusion_recovered="1"),
            row("patch", recovered="0", target_kept="1", occlusion_recovered="1"),
            row("clean", agree="1", certified="1"), row("clean", agree="1", certified="0"),
            row("clean", agree="0", certified="0", size="32"),
            row("clean", agree="1", certified="1", k="6")]  # another k: its own group, not in the headline
    s = summarise(rows, 2, 2, [63, 32], 4)
    assert s["recovered"] == 0.5 and s["occlusion_recovered"] == 1.0 and s["patches"] == 2
    assert s["clean_63"] == {"n": 2, "agree": 1.0, "certified": 0.5, "median_forwards": 40.0}
    assert s["clean_32"]["agree"] == 0.0 and s["configs"] == 5 and s["planned"] == 2 + 2 * 2
    assert set(s["groups"]) == {"patch app-network (63 px on 224, k=4)", "clean (63 px on 224, k=4)",
                                "clean (32 px on 224, k=4)", "clean (63 px on 224, k=6)"}
    assert s["_table"][0][2] == "50.0% / 100.0% (2 patches)"


def test_placement_summary_from_hand_made_rows(tmp_path):
    """bench/placement.py's rows -> lab.tables.summarise_placement: successes and medians per place, a config
    counted only once all six of its rows exist (a run stopped mid-write leaves none behind)."""
    import csv

    from lab import tables

    fields = ["config", "seed", "kind", "stride", "map_steps", "budget", "size", "domain", "success", "p_target",
              "evaluations", "cpu_s", "best_is_corner", "cells"]

    def rows(cfg, best, corners, best_is_corner=0):
        common = dict(config=cfg, seed=1, stride=56, map_steps=10, budget=200, size=63, domain="network")
        out = [dict(common, kind="map", success="", p_target=0.01, evaluations=160, cpu_s=16.0 + cfg,
                    best_is_corner=best_is_corner, cells=16)]
        for kind, ev in zip(tables.PLACEMENT_KINDS, [best, *corners]):
            out.append(dict(common, kind=kind, success=int(ev is not None), p_target=0.9 if ev else 0.1,
                            evaluations=ev or 200, cpu_s=1.0, best_is_corner="", cells=""))
        return out

    path = tmp_path / "placement.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        w.writerows(rows(0, 50, [None, 100, None, None]) + rows(1, None, [None, None, None, None], 1)
                    + rows(2, 70, [30, 40, None, 60])[:4])  # config 2 stopped after its fourth row
    [c] = tables.summarise_placement(tables.read_placement(path))
    assert (c["configs"], c["best_ok"], c["corner_ok"], c["corner_runs"], c["any_corner_ok"]) == (2, 1, 1, 8, 1)
    assert (c["best_median"], c["corner_median"], c["best_is_corner"], c["map_cpu_max"]) == (50, 100, 1, 17.0)
    md = tables.placement_markdown([c])
    assert "| 63×63, network | 16 cells every 56 px, 10 | 200 | 2 | 1/2 (50 %) | 1/8 (12 %) |" in md
