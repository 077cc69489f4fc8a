"""Visual models (docs/reference.md §2.1-2.4): shapes at the reference sizes, heads, losses and the weights policy."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from streid_lib.visual.models import (  # noqa: E402
    TEST_SIZE,
    TRAIN_SIZE,
    ClassBlock,
    WeightsError,
    WeightsUnavailableError,
    build_model,
    hub_cache_file,
    load_model_state,
    normalise_features,
    num_classes_in_state,
    part_logits_loss,
)

C = 5
FEATURE_DIM = {"pcb": 2048 * 6, "resnet50": 2048, "densenet121": 1024}  # normalised test feature dimensions
_MODELS: dict[str, torch.nn.Module] = {}


def model_for(name: str) -> torch.nn.Module:
    """One randomly initialised model per architecture for the whole module (building one costs seconds)."""
    if name not in _MODELS:
        torch.manual_seed(0)
        _MODELS[name] = build_model(name, C, weights="none").eval()
    return _MODELS[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pcb", "resnet50", "densenet121"])
def test_shapes_at_reference_sizes(name: str) -> None:
    model = model_for(name)
    assert model.weights_info["request"] == "none"
    with torch.no_grad():
        logits = model(torch.randn(1, 3, *TRAIN_SIZE[name]))
        feat = model.embed(torch.randn(1, 3, *TEST_SIZE[name]))
    parts = 6 if name == "pcb" else 1
    assert logits.shape == (1, parts, C)
    if name == "pcb":
        assert feat.shape == (1, 2048, 6)
    else:
        assert feat.shape == (1, FEATURE_DIM[name])
    assert normalise_features(feat).shape == (1, FEATURE_DIM[name])


def test_pcb_structure() -> None:
    model = model_for("pcb")
    l4 = model.model.layer4[0]
    assert l4.conv2.stride == (1, 1) and l4.downsample[0].stride == (1, 1)
    for i in range(6):
        blk = getattr(model, f"classifier{i}")
        kinds = [type(m).__name__ for m in blk.add_block]
        assert kinds == ["Linear", "BatchNorm1d", "Dropout"]  # no ReLU in PCB heads
        assert blk.add_block[0].out_features == 256 and blk.classifier[0].out_features == C
    # stride 1: a 384×192 input gives a 24×12 layer4 map (checked on the stem via a small input's ratio)
    with torch.no_grad():
        m = model.model
        x = torch.randn(1, 3, 64, 32)
        y = m.layer4(m.layer3(m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x))))))))
    assert y.shape[-2:] == (4, 2)  # 64/16 × 32/16
    # The new layers are exactly the six heads; the backbone is everything under model.
    n_new = sum(p.numel() for p in model.new_parameters())
    n_heads = sum(p.numel() for i in range(6) for p in getattr(model, f"classifier{i}").parameters())
    assert n_new == n_heads


def test_baseline_heads_and_densenet_pool() -> None:
    r = model_for("resnet50")
    kinds = [type(m).__name__ for m in r.classifier.add_block]
    assert kinds == ["Linear", "BatchNorm1d", "LeakyReLU", "Dropout"]
    assert r.classifier.add_block[2].negative_slope == pytest.approx(0.1)
    assert r.classifier.add_block[0].out_features == 512
    d = model_for("densenet121")
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        f = d.embed(x)
        # No final ReLU: the pooled norm5 output has negative entries, unlike torchvision's own forward.
        direct = torch.nn.functional.adaptive_avg_pool2d(d.model.features[:-1](x), 1).flatten(1)
    assert torch.allclose(f, direct)
    assert (f < 0).any()


def test_classblock_init() -> None:
    torch.manual_seed(1)
    blk = ClassBlock(2048, 1000, relu=False, bottleneck=256)
    lin, bn, cls = blk.add_block[0], blk.add_block[1], blk.classifier[0]
    # Kaiming normal fan_out: std = sqrt(2 / fan_out) = sqrt(2/256)
    assert lin.weight.std().item() == pytest.approx((2 / 256) ** 0.5, rel=0.05)
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.01) and bn.weight.std().item() == pytest.approx(
        0.02, rel=0.2
    )
    assert cls.weight.std().item() == pytest.approx(0.001, rel=0.05)
    assert not lin.bias.any() and not bn.bias.any() and not cls.bias.any()


def test_part_loss_and_prediction() -> None:
    torch.manual_seed(0)
    logits = torch.randn(4, 6, 3)
    y = torch.tensor([0, 1, 2, 1])
    loss, pred = part_logits_loss(logits, y)
    expected = sum(torch.nn.functional.cross_entropy(logits[:, i], y) for i in range(6))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert torch.equal(pred, logits.softmax(-1).sum(1).argmax(1))
    loss1, pred1 = part_logits_loss(logits[:, :1], y)
    assert loss1.item() == pytest.approx(torch.nn.functional.cross_entropy(logits[:, 0], y).item(), rel=1e-6)


def test_pcb_feature_normalisation_is_per_stripe_channel_major() -> None:
    raw = torch.randn(2, 2048, 6)
    f = normalise_features(raw)
    per = f.reshape(2, 2048, 6)
    assert torch.allclose(per.norm(dim=1), torch.ones(2, 6), atol=1e-5)
    assert torch.allclose(f[:, 5 * 6 + 2], raw[:, 5, 2] / raw[:, :, 2].norm(dim=1))


def test_imagenet_weights_missing_stops_with_instructions(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    for name, fname in (("pcb", "resnet50-0676ba61.pth"), ("densenet121", "densenet121-a639ec97.pth")):
        with pytest.raises(WeightsUnavailableError) as err:
            build_model(name, C, weights="imagenet")
        msg = str(err.value)
        assert fname in msg and "--weights" in msg and "--weights none" in msg and "internet" in msg
        assert str(tmp_path / "torch_home") in msg
    with pytest.raises(WeightsError, match="not found"):
        build_model("resnet50", C, weights=str(tmp_path / "nope.pth"))


@pytest.mark.slow
def test_imagenet_weights_from_cache_and_from_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    torch.manual_seed(3)
    ref = torchvision.models.densenet121(weights=None).state_dict()
    # torchvision's released file uses old-style keys ('norm.1') and has no num_batches_tracked: write it that way.
    old = {
        k.replace(".norm1.", ".norm.1.").replace(".conv2.", ".conv.2."): v
        for k, v in ref.items()
        if not k.endswith("num_batches_tracked")
    }
    assert "features.denseblock1.denselayer1.norm.1.weight" in old
    cached = hub_cache_file("densenet121")
    cached.parent.mkdir(parents=True)
    torch.save(old, cached)
    m = build_model("densenet121", C, weights="imagenet")
    assert "DenseNet121_Weights.IMAGENET1K_V1" in m.weights_info["source"]
    assert torch.equal(
        m.model.features.denseblock1.denselayer1.norm1.weight, ref["features.denseblock1.denselayer1.norm1.weight"]
    )
    assert torch.equal(m.model.features.conv0.weight, ref["features.conv0.weight"])
    m2 = build_model("densenet121", C, weights=str(cached))
    assert m2.weights_info["request"] == "file" and len(m2.weights_info["sha256"]) == 64
    assert torch.equal(m2.model.features.conv0.weight, ref["features.conv0.weight"])
    # A file for the wrong architecture is refused with its name.
    with pytest.raises(WeightsError, match=cached.name):
        build_model("resnet50", C, weights=str(cached))


def test_load_model_state_accepts_reference_layout() -> None:
    a = model_for("resnet50")
    state = dict(a.state_dict())
    # The reference keeps torchvision's unused ImageNet head; it must be ignored, not refused.
    state["model.fc.weight"] = torch.zeros(1000, 2048)
    state["model.fc.bias"] = torch.zeros(1000)
    assert num_classes_in_state("resnet50", state) == C
    b = copy.deepcopy(a)
    with torch.no_grad():
        b.classifier.classifier[0].weight.zero_()
    load_model_state(b, state, "net_last.pth")
    assert torch.equal(a.classifier.classifier[0].weight, b.classifier.classifier[0].weight)
    bad = dict(state)
    del bad["classifier.add_block.0.weight"]
    with pytest.raises(WeightsError, match="net_last.pth"):
        load_model_state(b, bad, "net_last.pth")
