"""The paper's three success criteria on hand-made probabilities, and evaluate_patch's exclusion rule."""
from __future__ import annotations

import math

import pytest
import torch

import attack
from attack.evaluate import evaluate_patch, success
from attack.patch import patched_logits


def test_criteria_on_hand_made_probabilities():
    probs = torch.tensor([
        [0.95, 0.05, 0.00],  # confident, argmax, not source
        [0.90, 0.10, 0.00],  # exactly 0.9 counts as confident
        [0.50, 0.30, 0.20],  # argmax but not confident
        [0.10, 0.20, 0.70],  # neither, but the source (1) is no longer top-1
        [0.30, 0.60, 0.10],  # the source is still top-1
    ])
    out = success(probs, target=0, source=1)
    assert out["confident"].tolist() == [True, True, False, False, False]
    assert out["argmax"].tolist() == [True, True, True, False, False]
    assert out["not_source"].tolist() == [True, True, True, True, False]


def test_criteria_per_row_sources_and_targets():
    probs = torch.tensor([[0.1, 0.9, 0.0], [0.2, 0.1, 0.7]])
    out = success(probs, target=torch.tensor([1, 2]), source=torch.tensor([1, 0]))
    assert out["confident"].tolist() == [True, False]
    assert out["argmax"].tolist() == [True, True]
    assert out["not_source"].tolist() == [False, True]


def test_evaluate_patch_excludes_target_class_images(model, photos):
    imgs = photos[:4]
    clean = attack.predict(model, imgs).argmax(1)
    target = int(clean[0])
    patch = torch.full((3, 16, 16), 0.5)
    locs = torch.tensor([[0, 0], [10, 20], [100, 100], [208, 208]])
    out = evaluate_patch(model, imgs, patch, locs, target)
    expected_keep = (clean != target).tolist()
    assert out["kept"] == expected_keep and out["n"] == sum(expected_keep)
    assert out["clean_pred"] == clean.tolist()
    # fractions are over the kept images only, recomputed from the per-image lists
    kept = [i for i, k in enumerate(expected_keep) if k]
    assert out["argmax"] == pytest.approx(sum(out["pred"][i] == target for i in kept) / len(kept))
    assert out["mean_p_target"] == pytest.approx(sum(out["p_target"][i] for i in kept) / len(kept))
    assert out["confident"] == pytest.approx(sum(out["p_target"][i] >= 0.9 for i in kept) / len(kept))
    # per-image values agree with pasting by hand
    with torch.no_grad():
        direct = torch.softmax(patched_logits(model, imgs[1:2], patch, locs[1:2], "image"), 1)[0, target]
    assert out["p_target"][1] == pytest.approx(float(direct), abs=1e-5)
    # without exclusion every image counts
    assert evaluate_patch(model, imgs, patch, locs, target, exclude_target=False)["n"] == 4


def test_evaluate_patch_all_excluded_gives_nan(model, photos):
    target = int(attack.predict(model, photos[:1]).argmax())
    out = evaluate_patch(model, photos[:1], torch.zeros(3, 8, 8), (0, 0), target)
    assert out["n"] == 0 and math.isnan(out["confident"]) and math.isnan(out["mean_p_target"])


def test_evaluate_patch_network_domain_matches_training(model, real_attack):
    res = real_attack.result
    out = evaluate_patch(model, real_attack.image.unsqueeze(0), res.patch, real_attack.loc, res.target,
                         domain="network")
    assert out["n"] == 1 and out["confident"] == 1.0 and out["argmax"] == 1.0 and out["not_source"] == 1.0
    assert out["p_target"][0] == pytest.approx(res.p_target, abs=1e-4)


def test_transplant_keeps_area_share_and_corner():
    from attack.evaluate import transplant

    patch = torch.rand(3, 63, 63)
    same, loc = transplant(patch, (0, 161), 224, 224)
    assert same is patch and loc == (0, 161)  # on its own size nothing moves
    big, loc = transplant(patch, (161, 161), 224, 260)
    assert big.shape == (3, 73, 73) and loc == (260 - 73, 260 - 73)  # same share, still in the corner
    assert 0 <= float(big.min()) and float(big.max()) <= 1


def test_cross_model_eval_on_the_training_model_is_the_plain_evaluation(model, photos):
    from attack.evaluate import cross_model_eval

    img = photos[0]
    patch = torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(0))
    out = cross_model_eval(model, img, patch, (10, 20), 859, from_size=model.input_size)
    probs = torch.softmax(patched_logits(model, img, patch, (10, 20), "image").float(), 1)[0]
    assert out["loc"] == (10, 20) and out["size"] == 40 and out["pasted_as"] == "image"
    assert out["p_target"] == pytest.approx(float(probs[859]), abs=1e-5)
    assert out["argmax"] == (int(probs.argmax()) == 859)
