"""attack.spec.TrainingSpec: the defaults of a single-image training resolved in one place (per patch area, domain
and model), cache keys that stay those of the trainings cached before the spec existed, and the spec as the one
way the CLI, the Attack page and the shared batch train."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

import attack
from attack.cache import PatchCache, store, training_key
from attack.spec import LEAK_SMALL, LOSS_SMALL, RESTARTS_SMALL, TrainingSpec, default_patch_size, has_relu6

IMG = "0123456789abcdef"


def _tiny(act: type[nn.Module], input_size: int = 224, name: str = "tiny") -> nn.Module:
    """A model-shaped module (name, input_size, net) whose activation is ``act``."""
    m = nn.Module()
    m.net = nn.Sequential(nn.Conv2d(3, 4, 3), act(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1000))
    m.name, m.input_size = name, input_size
    return m


def test_defaults_at_the_default_area_and_below(model):
    assert attack.TrainingSpec is TrainingSpec  # a public export
    big = TrainingSpec().resolve(model)
    assert big.size == default_patch_size(224) == 63
    assert (big.optimizer, big.restarts, big.loss, big.init, big.relu6_leak) == ("adam", 1, "logprob", "mixed", 0.0)
    assert (big.lr, big.param, big.steps, big.stop_at, big.seed, big.halving) == (0.05, "sigmoid", 10_000, 0.9, None, 4)
    small = TrainingSpec(size=42).resolve(model)
    assert (small.restarts, small.loss, small.relu6_leak) == (RESTARTS_SMALL, LOSS_SMALL, LEAK_SMALL)
    assert TrainingSpec(domain="image").resolve(model).lr == 0.3
    assert TrainingSpec(optimizer="sgd").resolve(model).lr == 7.0
    assert TrainingSpec(optimizer="apgd", domain="image").resolve(model).param == "clamp"
    # explicit choices are kept, "auto" is the default
    kept = TrainingSpec(size=42, restarts=2, loss="logit", relu6_leak=0.1, lr=0.2, init="gray").resolve(model)
    assert (kept.restarts, kept.loss, kept.relu6_leak, kept.lr, kept.init) == (2, "logit", 0.1, 0.2, "gray")
    assert TrainingSpec(size=42, restarts="auto", loss="auto", relu6_leak="auto").resolve(model) == small


def test_the_default_size_follows_the_input_size():
    for side in (224, 299):
        m = _tiny(nn.ReLU6, side)
        s = TrainingSpec().resolve(m)
        assert s.size == default_patch_size(side) and s.restarts == 1
        assert TrainingSpec(size=42).resolve(m).restarts == (RESTARTS_SMALL if 42 < s.size else 1)


def test_a_model_without_relu6_gets_no_leak_and_keeps_its_old_key():
    relu, relu6 = _tiny(nn.ReLU), _tiny(nn.ReLU6)
    assert not has_relu6(relu) and has_relu6(relu6)
    assert TrainingSpec(size=42).resolve(relu6).relu6_leak == LEAK_SMALL
    assert TrainingSpec(size=42).resolve(relu).relu6_leak == 0.0
    assert TrainingSpec(size=42, relu6_leak=0.1).resolve(relu).relu6_leak == 0.0  # nothing to leak through
    key = TrainingSpec(size=42, steps=2000, seed=0).key(relu, IMG, 859, (0, 0))
    assert key == training_key(relu, IMG, 859, (0, 0), 42, domain="network", loss=LOSS_SMALL, steps=2000, lr=0.05,
                               optimizer="adam", stop_at=0.9, seed=0, init="mixed", restarts=RESTARTS_SMALL)
    assert key != TrainingSpec(size=42, steps=2000, seed=0).key(_tiny(nn.ReLU6), IMG, 859, (0, 0))


def test_keys_of_default_trainings_are_the_ones_cached_before_the_spec():
    """The CLI and the Attack page keyed their trainings with these exact training_key calls before the spec
    existed (restarts only when not 1, the leak only when on): the spec gives the same keys, and the same digests."""
    lite = SimpleNamespace(name="efficientnet-lite0", input_size=224, modules=_tiny(nn.ReLU6).modules)
    big = TrainingSpec(steps=2000, seed=0).key(lite, IMG, 859, (0, 0))
    assert big == training_key(lite, IMG, 859, (0, 0), 63, domain="network", loss="logprob", steps=2000, lr=0.05,
                               optimizer="adam", stop_at=0.9, seed=0, init="mixed")
    assert big == "0123a230cbfc52124081aa52ec5e4996181913188c7a39fb7669d4a91b75cd01"
    small = TrainingSpec(size=42, domain="image", steps=2000, seed=3).key(lite, IMG, 859, (182, 0))
    assert small == training_key(lite, IMG, 859, (182, 0), 42, domain="image", loss="margin_ce", steps=2000, lr=0.3,
                                 optimizer="adam", stop_at=0.9, seed=3, init="mixed", restarts=8, relu6_leak=0.05)
    assert small == "d491222171b6a26fe49c648f9ed8b601671a35ee72f1dbb4c65fa4093d75a33e"


def test_every_setting_that_changes_the_result_changes_the_key():
    lite = _tiny(nn.ReLU6, name="efficientnet-lite0")
    base = TrainingSpec(size=42, steps=500, seed=0)
    keys = {base.key(lite, IMG, 859, (0, 0))}
    for change in (dict(size=40), dict(domain="image"), dict(optimizer="sgd"), dict(restarts=4), dict(loss="logit"),
                   dict(lr=0.1), dict(init="random"), dict(relu6_leak=0.1), dict(steps=501), dict(stop_at=0.8),
                   dict(seed=1), dict(param="clamp", domain="image"), dict(halving=2)):
        keys.add(base.replace(**change).key(lite, IMG, 859, (0, 0)))
    keys.add(base.key(lite, IMG, 859, (0, 1)))
    assert len(keys) == 15
    assert base.replace(local=False, pad_batches=True).key(lite, IMG, 859, (0, 0)) == base.key(lite, IMG, 859, (0, 0))
    with pytest.raises(ValueError, match="seed"):
        TrainingSpec().key(lite, IMG, 859, (0, 0))


@pytest.mark.parametrize("fields,msg", [
    (dict(domain="pixels"), "domain"), (dict(optimizer="rmsprop"), "optimizer"), (dict(param="tanh"), "param"),
    (dict(steps=-1), "steps"), (dict(stop_at=0.0), "stop_at"), (dict(restarts=0), "restarts"),
    (dict(loss="hinge"), "loss"), (dict(init="zeros"), "init"), (dict(relu6_leak=1.5), "relu6_leak"),
    (dict(halving=1), "halving"),
])
def test_resolve_checks_every_field(fields, msg):
    with pytest.raises(ValueError, match=msg):
        TrainingSpec(**fields).resolve(_tiny(nn.ReLU6))


def test_unknown_fields_are_refused():
    with pytest.raises(TypeError):
        TrainingSpec.of(None, st_relu6=True)
    with pytest.raises(TypeError):
        TrainingSpec.of(None, rule_options={"patience": 20})


def test_the_spec_trains_what_train_patch_trains(model, photo):
    spec = TrainingSpec(size=16, steps=3, stop_at=1.0, seed=4, domain="image")
    a = spec.train(model, photo, 859, (0, 0))
    b = attack.train_patch(model, photo, 859, (0, 0), size=16, steps=3, stop_at=1.0, seed=4, domain="image")
    c = attack.train_patch(model, photo, 859, (0, 0), **spec.kwargs())
    assert torch.equal(a.patch, b.patch) and torch.equal(a.patch, c.patch)
    capped = {**spec.kwargs(), "steps": 2}  # what ui/jobs does to a budget over the server's cap
    assert attack.train_patch(model, photo, 859, (0, 0), **capped).evaluations == 2
    assert a.meta["optimizer"] == "adam" and a.meta["relu6_leak"] == LEAK_SMALL and a.loss == LOSS_SMALL
    d = attack.train_patches(model, photo[None], 859, [(0, 0)], spec.replace(restarts=1), steps=4)[0]
    assert d.evaluations == 4 and d.meta["restarts"] == 1


def test_one_store_rule_for_the_cli_and_the_app(tmp_path):
    from attack.results import PatchResult

    def result(cancelled):
        return PatchResult(patch=torch.rand(3, 8, 8), loc=(0, 0), target=859, source=1, domain="network", size=8,
                           steps=1, success={"confident": False, "argmax": False, "not_source": True}, p_target=0.5,
                           p_source=0.1, history={"p_target": [0.5]}, model_name="efficientnet-lite0",
                           input_size=224, cancelled=cancelled)
    cache, key = PatchCache(tmp_path), "ab" * 32
    stopped = result(True)
    assert not store(cache, key, stopped, IMG) and stopped.meta["image_hash"] == IMG and cache.get(key) is None
    assert not store(None, key, result(False), IMG)
    assert store(cache, key, result(False), IMG) and cache.get(key).meta["image_hash"] == IMG


def test_a_spec_joins_the_shared_batch_as_the_attack_page_starts_it(model, photo):
    """ui/jobs hands the page's ``train_patch(..., spec=…)`` to shared_options: at the default area it joins a
    shared batch and trains what the spec trains alone; below it (8 restarts, a leak) it does not."""
    from attack.scheduler import SharedBatch, shared_options

    spec = TrainingSpec(steps=3, stop_at=1.0, seed=2)
    opts = shared_options(model, photo, 859, (0, 0), **spec.kwargs())
    assert opts is not None and (opts["size"], opts["domain"]) == (63, "network")
    assert shared_options(model, photo, 859, (0, 0), spec=spec.replace(size=42)) is None
    batch = SharedBatch(model, size=opts["size"], domain=opts["domain"])
    handle = batch.add(**opts)
    batch.run_until_idle()
    alone = spec.replace(local=False).train(model, photo, 859, (0, 0))
    assert handle.result.history["p_target"] == pytest.approx(alone.history["p_target"], abs=1e-5)
    assert handle.result.meta["shared_batch"] and handle.result.evaluations == alone.evaluations == 3
