"""sedlib finetune: a shipped checkpoint fine-tuned on your own classes from Audacity labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from sedlib import cli
from sedlib.config import PROJECT_ROOT
from sedlib.data.spec import open_source
from sedlib.train.finetune import positive_weights, split_by_file, transfer_model

SHIPPED = str(PROJECT_ROOT / "data/checkpoints/context/fmn04+bigru-104_teacher.safetensors")
SR = 16_000


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Eight 10 s recordings with beeps ('bell', 1 kHz) and hums ('buzz', 150 Hz) over noise,
    each with the Audacity label track Audacity would export."""
    root = tmp_path_factory.mktemp("mine") / "rec"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        x = 0.005 * rng.standard_normal(10 * SR)
        lines = []
        for label, freq in (("bell", 1000), ("buzz", 150)):
            for _ in range(1 + i % 2):
                on = rng.uniform(0, 8)
                dur = rng.uniform(0.3, 1.5)
                t = np.arange(int(dur * SR)) / SR
                x[int(on * SR):int(on * SR) + len(t)] += 0.2 * np.sin(2 * np.pi * freq * t)
                lines.append(f"{on:.6f}\t{on + dur:.6f}\t{label}\n")
        sf.write(root / f"take{i}.wav", x.astype(np.float32), SR)
        (root / f"take{i}.txt").write_text("".join(lines))
    return root


def test_finetune_keeps_the_best_checkpoint_which_detects_the_new_classes(recordings, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(["finetune", "--init", SHIPPED, "--data", f"audacity:{recordings}", "--out", str(run),
                     "--steps", "6", "--batch-size", "4", "--validations", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "macro" in out and "bell" in out and "buzz" in out
    from sedlib.models.checkpoints import checkpoint_metadata

    meta = checkpoint_metadata(run / "model.safetensors")
    assert json.loads(meta["classes"]) == ["bell", "buzz"] and meta["model"] == "fmn04+BiGRU:104"
    assert meta["selected"] == "best validation PSDS1 macro" and (run / "best.safetensors").is_file()
    validations = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if "psds1_macro" in ln]
    assert len(validations) == 2 and float(meta["psds1_macro"]) == pytest.approx(
        max(v["psds1_macro"] for v in validations), abs=1e-6)
    assert cli.main(["detect", "--checkpoint", str(run / "model.safetensors"), str(recordings / "take0.wav"),
                     "--scores-dir", str(tmp_path / "scores"), "--no-progress"]) == 0
    header = (tmp_path / "scores" / "take0.tsv").read_text().splitlines()[0].split("\t")
    assert header[2:] == ["bell", "buzz"]


def test_a_plain_folder_of_audacity_labelled_recordings_trains(recordings, tmp_path, capsys, caplog):
    """--data DIR on recordings with their label tracks beside them (no audio/ + strong.tsv): read
    as audacity:DIR, said in one line, and trained; same classes as the explicit spec."""
    import logging

    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="sedlib.data.spec"):
        assert cli.main(["finetune", "--init", SHIPPED, "--data", str(recordings), "--out", str(run),
                         "--steps", "2", "--batch-size", "4", "--validations", "1", "--no-progress"]) == 0
    said = [r.getMessage() for r in caplog.records if "reading it as audacity:" in r.getMessage()]
    assert len(said) == 1 and "\n" not in said[0] and f"audacity:{recordings}" in said[0]
    from sedlib.models.checkpoints import checkpoint_metadata

    assert json.loads(checkpoint_metadata(run / "model.safetensors")["classes"]) == ["bell", "buzz"]


def test_a_malformed_label_file_trains_nothing(recordings, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in ("take0.wav", "take1.wav"):
        (bad / f).write_bytes((recordings / f).read_bytes())
    (bad / "take0.txt").write_text("1.0\t2.0\tbell\n")
    (bad / "take1.txt").write_text("1.0\t2.0\tbell\n3,5\t4.0\tbuzz\n")
    assert cli.main(["finetune", "--init", SHIPPED, "--data", f"audacity:{bad}", "--out", str(tmp_path / "run"),
                     "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{bad / 'take1.txt'}:2: expected a number of seconds for start" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
    (bad / "take1.txt").write_text("1.0\t2.0\tbuzz\n")
    (tmp_path / "classes.txt").write_text("bell\n")
    assert cli.main(["finetune", "--init", SHIPPED, "--data", f"audacity:{bad}", "--out", str(tmp_path / "run"),
                     "--classes", str(tmp_path / "classes.txt"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{bad / 'take1.txt'}:1: unknown class 'buzz'" in err and not (tmp_path / "run").exists()


def test_heads_are_new_even_when_the_class_count_matches():
    from safetensors.torch import load_file

    ckpt = load_file(SHIPPED)
    model = transfer_model(SHIPPED, int(ckpt["strong_head.weight"].shape[0]))
    sd = model.state_dict()
    assert not torch.equal(sd["strong_head.weight"], ckpt["strong_head.weight"])
    assert all(torch.equal(sd[k], v) for k, v in ckpt.items() if not k.startswith(("strong_head", "weak_head")))


def test_split_by_file_and_positive_weights(recordings):
    spec = f"audacity:{recordings}"
    train, val = split_by_file(open_source(spec), open_source(spec, split="validation"), 0.25, seed=1)
    assert len(val) == 2 and len(train) == 6 and not set(train.filenames) & set(val.filenames)
    assert set(val.ground_truth) == set(val.filenames)
    weights = positive_weights(train)
    assert len(weights) == 2 and all(1.0 <= w <= 10.0 for w in weights)
    truth = train.ground_truth
    from sedlib.data.labels import merge_overlapping

    bell = sum(e.offset - e.onset for evs in truth.values() for e in merge_overlapping(evs) if e.label == "bell")
    assert weights[0] == pytest.approx(min(10.0, (60.0 - bell) / bell), rel=1e-6)


def test_the_same_seed_gives_the_same_weights_and_scratch_needs_a_model(recordings, tmp_path):
    """New heads and a scratch model are drawn from the seed, whatever the global RNG did."""
    from safetensors.torch import load_file

    from sedlib.errors import SedlibError
    from sedlib.train.finetune import finetune

    runs = []
    for i in range(2):
        torch.manual_seed(100 + i)  # a different global RNG state each time
        finetune("scratch", f"audacity:{recordings}", tmp_path / f"r{i}", steps=2, batch_size=2, validations=1,
                 seed=3, model_name="fmntiny+TF:16", clip_seconds=2.0, progress=False)
        runs.append(load_file(tmp_path / f"r{i}" / "model.safetensors"))
    assert runs[0].keys() == runs[1].keys() and all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    with pytest.raises(SedlibError, match="--init scratch needs --model"):
        transfer_model("scratch", 2)


def test_freeze_steps_train_the_heads_first(recordings, tmp_path, capsys):
    """--freeze-steps: a first run with the backbone frozen (its weights unchanged there), then
    the whole model from its weights."""
    from safetensors.torch import load_file

    run = tmp_path / "run"
    assert cli.main(["finetune", "--init", "scratch", "--model", "fmntiny+TF:16", "--data", f"audacity:{recordings}",
                     "--out", str(run), "--steps", "2", "--freeze-steps", "2", "--batch-size", "2",
                     "--validations", "1", "--no-progress"]) == 0
    frozen, final = load_file(run / "frozen" / "model.safetensors"), load_file(run / "model.safetensors")
    torch.manual_seed(0)
    fresh = transfer_model("scratch", 2, name="fmntiny+TF:16")
    assert "bell" in capsys.readouterr().out
    stem = "model.fmn.features.0.0.weight"
    assert stem in frozen and stem in final and not torch.equal(frozen[stem], final[stem])
    assert torch.equal(fresh.state_dict()[stem], frozen[stem])  # frozen in the first run
