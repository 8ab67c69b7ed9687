"""End-to-end: real ``dvc repro``, ``dvc exp run``, push/pull and the plots page on a tiny configuration."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from dvc_repo import Repo, make_repo


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """The pipeline reproduced once and committed, shared by the tests below (in file order)."""
    repo = make_repo(tmp_path_factory.mktemp("pipeline"))
    repo.dvc("repro")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "reproduced")
    return repo


def test_repro_writes_every_artifact(repo: Repo) -> None:
    p = repo.path
    for name in ("train", "valid", "test"):
        assert (p / "data/corpus" / f"{name}.src").stat().st_size > 0
    assert (p / "data/tokenizer/src.model").is_file()
    assert (p / "data/encoded/train-00000.parquet").is_file()
    assert json.loads((p / "reports/prepare.json").read_text())["train"]["kept"] == 400
    assert (p / "models/model.pt").is_file()
    hyps = (p / "outputs/test.hyp").read_text(encoding="utf-8").splitlines()
    assert len(hyps) == 40
    metrics = json.loads((p / "reports/metrics.json").read_text())
    for key in ("bleu", "chrf", "rouge1", "rouge2", "rougeL", "rougeLsum"):
        assert 0.0 <= metrics[key] <= 100.0
    assert metrics["ter"] >= 0.0  # an edit rate: above 100 when the output is longer than the reference
    signatures = json.loads((p / "reports/signatures.json").read_text())
    assert signatures["bleu"].startswith("nrefs:1|bs:50|seed:12345")
    stats = json.loads((p / "reports/preprocess.json").read_text())
    assert stats["train"]["input"] == 400
    assert stats["train"]["kept"] + stats["train"]["dropped_empty"] + stats["train"]["dropped_too_long"] == 400
    train_metrics = json.loads((p / "reports/train/metrics.json").read_text())
    # Validated at the end of each of the two epochs; the x of the curves is the optimizer step.
    valid_loss = (p / "reports/train/plots/metrics/valid/loss.tsv").read_text()
    valid_steps = [line.split("\t")[0] for line in valid_loss.splitlines()]
    assert len(valid_steps) == 3 and int(valid_steps[2]) == 2 * int(valid_steps[1]) == train_metrics["step"]
    assert 0.0 <= train_metrics["valid"]["bleu"] <= 100.0 and train_metrics["best_step"] in map(int, valid_steps[1:])
    (state,) = (p / ".dvc/tmp/train").glob("*/state.pt")  # machine-local scratch, not an output
    assert torch.load(state, weights_only=True)["progress"]["finished"]


def test_evaluate_writes_intervals_sentences_and_buckets(repo: Repo) -> None:
    p = repo.path
    metrics = json.loads((p / "reports/metrics.json").read_text())
    assert set(metrics["ci95"]) == {"bleu", "chrf", "ter", "rouge1", "rouge2", "rougeL", "rougeLsum"}
    assert all(value >= 0.0 for value in metrics["ci95"].values())
    # The defect figures are numbers beside the scores, so dvc exp show lists them (issue 22).
    assert metrics["unk_glyph_outputs"] == 0 and 0.0 <= metrics["invented_word_pct"] <= 100.0
    assert 0.0 <= metrics["repeat_pct"] <= 100.0
    assert set(json.loads((p / "reports/signatures.json").read_text())) == {"bleu", "chrf", "ter", "rouge"}
    with (p / "reports/sentences.tsv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len(rows) == 40
    assert list(rows[0]) == ["line", "bleu", "chrf", "source", "reference", "hypothesis"]
    sources = (p / "data/corpus/test.src").read_text(encoding="utf-8").splitlines()
    hyps = (p / "outputs/test.hyp").read_text(encoding="utf-8").splitlines()
    assert [r["source"] for r in rows] == sources and [r["hypothesis"] for r in rows] == hyps
    assert all(0.0 <= float(r["bleu"]) <= 100.0 and 0.0 <= float(r["chrf"]) <= 100.0 for r in rows)
    buckets = json.loads((p / "reports/length_buckets.json").read_text())
    assert sum(b["sentences"] for b in buckets) == 40
    assert [b["source_words"] for b in buckets] == sorted(b["source_words"] for b in buckets)
    assert set(buckets[0]) == {"bucket", "source_words", "sentences", "bleu", "chrf"}
    heatmaps = sorted((p / "reports/attention").iterdir())
    assert [h.name for h in heatmaps] == ["line-01.png", "line-02.png"]  # evaluate.attention_heatmaps: 2
    assert all(h.read_bytes()[:4] == b"\x89PNG" for h in heatmaps)


def test_second_repro_does_nothing(repo: Repo) -> None:
    # How fast this is, is measured by bench/pipeline.py, not asserted here.
    out = repo.dvc("repro").stdout
    assert "Running stage" not in out
    assert "up to date" in out
    assert "up to date" in repo.dvc("status").stdout


def test_metrics_and_plots_are_declared(repo: Repo) -> None:
    shown = json.loads(repo.dvc("metrics", "show", "--json").stdout)
    (workspace,) = shown.values()
    files = workspace["data"]
    assert "bleu" in files["reports/metrics.json"]["data"]
    assert "valid" in files["reports/train/metrics.json"]["data"]
    plots = json.loads(repo.dvc("plots", "show", "--json").stdout)["data"]
    assert "reports/train/plots/metrics/valid/loss.tsv" in plots
    (buckets,) = plots["reports/length_buckets.json"]
    assert buckets["type"] == "vega"
    assert buckets["content"]["encoding"]["x"]["field"] == "source_words"
    assert [kind["type"] for kind in plots["reports/attention/line-01.png"]] == ["image"]


def test_push_clone_pull_is_clean(repo: Repo, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    repo.dvc("remote", "add", "-d", "shared", str(remote))
    repo.git("commit", "-q", "-am", "add remote")
    repo.dvc("push")
    clone = tmp_path / "clone"
    repo.git("clone", "-q", str(repo.path), str(clone))
    other = Repo(clone, repo.env)
    other.dvc("pull")
    assert (clone / "models/model.pt").read_bytes() == (repo.path / "models/model.pt").read_bytes()
    assert "up to date" in other.dvc("status").stdout
    out = other.dvc("repro").stdout
    assert "Running stage" not in out


def test_clone_without_cache_reproduces_every_stage(repo: Repo, tmp_path: Path) -> None:
    """A new user clones a repo whose dvc.lock is committed but has no remote: repro rebuilds it all."""
    clone = tmp_path / "fresh"
    repo.git("clone", "-q", str(repo.path), str(clone))
    other = Repo(clone, repo.env)
    other.dvc("config", "--local", "core.remote", "")  # no remote to pull from: only dvc repro helps
    out = other.dvc("repro").stdout
    for stage in ("prepare", "tokenizer", "preprocess", "train", "decode", "evaluate"):
        assert f"Running stage '{stage}'" in out
    assert (clone / "reports/metrics.json").read_text() == (repo.path / "reports/metrics.json").read_text()
    assert "up to date" in other.dvc("status").stdout


def test_exp_run_decode_param_does_not_retrain(repo: Repo) -> None:
    out = repo.dvc("exp", "run", "-S", "decode.beam_size=2").stdout
    assert "Running stage 'decode'" in out
    assert "Running stage 'evaluate'" in out
    for upstream in ("prepare", "tokenizer", "preprocess", "train"):
        assert f"Running stage '{upstream}'" not in out
    table = repo.dvc("exp", "show", "--csv").stdout
    header = table.splitlines()[0].split(",")
    assert "bleu" in header and "decode.beam_size" in header
    for column in ("chrf", "ter", "rouge1", "rouge2", "rougeL", "rougeLsum", "ci95.bleu", "ci95.rougeLsum"):
        assert column in header
    assert "nrefs:" not in table  # signatures are strings: they stay out of the table
    repo.dvc("exp", "show", "--csv", "--sort-by", "reports/metrics.json:ter", "--sort-order", "asc")
    diff = json.loads(repo.dvc("metrics", "diff", "HEAD", "--all", "--json").stdout)
    assert {"bleu", "chrf", "ter", "rougeLsum", "ci95.bleu"} <= set(diff["reports/metrics.json"])
    plots = json.loads(repo.dvc("plots", "diff", "HEAD", "--json").stdout)["data"]
    for name in ("reports/length_buckets.json", "reports/train/plots/metrics/valid/loss.tsv"):
        (plot,) = plots[name]
        assert plot["revisions"] == ["workspace", "HEAD"]


# Headless Chromium with nothing reaching out: no network, no profile, no updates.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--virtual-time-budget=15000"]
VEGA = Path(__file__).parent / "assets" / "vega"


def offline_page(html: str) -> str:
    """The page with its CDN scripts (vega, vega-lite, vega-embed) served from tests/assets/vega."""
    return re.sub(r"https://cdn\.jsdelivr\.net/npm/(vega|vega-lite|vega-embed)@[0-9.]+",
                  lambda match: (VEGA / f"{match[1]}.min.js").as_uri(), html)


@pytest.mark.slow
def test_plots_page_renders_in_chromium(repo: Repo, tmp_path: Path) -> None:
    """`dvc plots show` draws the training curves, the length buckets and the heatmaps on one page."""
    import matplotlib.image

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("needs Debian's chromium: apt-get install chromium")
    out = tmp_path / "plots"
    repo.dvc("plots", "show", "-o", str(out))
    html = (out / "index.html").read_text(encoding="utf-8")
    for div in ("reports_train_plots_metrics_train_loss_tsv", "reports_train_plots_metrics_valid_loss_tsv",
                "reports_length_buckets_json"):
        assert f'<div id = "{div}"' in html
    images = re.findall(r'<img src="(static/[^"]+_reports_attention_line-\d+\.png)">', html)
    assert len(images) == 2
    page = out / "offline.html"
    page.write_text(offline_page(html), encoding="utf-8")
    assert page.read_text(encoding="utf-8").count(VEGA.as_uri()) == 3
    browser = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*browser, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    charts = html.count("vegaEmbed(")
    assert charts >= 3
    assert dom.count('class="marks"') == charts  # vega drew a canvas for every chart; none failed
    shot = tmp_path / "plots.png"
    subprocess.run([*browser, f"--screenshot={shot}", "--window-size=1400,2400", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    pixels = matplotlib.image.imread(shot)  # (H, W, 3) in 0-1
    assert pixels.shape[:2] == (2400, 1400)
    assert (pixels.min(axis=2) < 0.9).mean() > 0.02  # more than a blank page: lines, labels, heatmaps


def test_misspelled_param_key_fails_with_its_name(repo: Repo) -> None:
    params = repo.params()
    params["train"]["lrr"] = params["train"].pop("lr")
    repo.write_params(params)
    try:
        proc = repo.run("python", "stages/train.py", check=False)
        assert proc.returncode != 0
        assert "train.lrr" in proc.stderr or "'lrr'" in proc.stderr
        assert "valid keys" in proc.stderr
        assert "Traceback" not in proc.stderr
        proc = repo.dvc("repro", check=False)
        assert proc.returncode != 0
        assert "lrr" in proc.stdout + proc.stderr
    finally:
        restore(repo)


def restore(repo: Repo) -> None:
    """The committed params, dvc.lock and outputs: git's files from git, the others from the DVC cache."""
    repo.git("checkout", "--", ".")
    repo.dvc("checkout")


# What a failed run must not take away: an output of every stage.
OUTPUTS = ("data/corpus/train.src", "reports/prepare.json", "data/tokenizer/src.model",
           "data/encoded/train-00000.parquet", "models/model.pt", "outputs/test.hyp", "reports/metrics.json")


@pytest.mark.parametrize(
    ("section", "value", "error"),
    [
        ("seed", "1234", "error: params.yaml: seed: expected int, got str '1234'"),
        ("decoding", {"beam_size": 2}, "error: params.yaml: unknown key decoding; valid keys: seed, paths, prepare,"),
    ],
    ids=["seed-as-string", "misnamed-section"],
)
def test_bad_params_fail_repro_before_any_output_is_removed(repo: Repo, section: str, value: object,
                                                            error: str) -> None:
    """The params stage checks every key of params.yaml first: DVC removes a stage's outputs just before
    running it, so a check in prepare would come too late, and one in decode would never run at all
    for an unknown section, which no stage depends on."""
    restore(repo)
    before = {path: (repo.path / path).read_bytes() for path in OUTPUTS}
    params = repo.params()
    params[section] = value
    repo.write_params(params)
    try:
        proc = repo.dvc("repro", check=False)
        assert proc.returncode != 0
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]  # ours, not DVC's
        assert len(errors) == 1 and errors[0].startswith(error), proc.stderr
        assert {path: (repo.path / path).read_bytes() for path in OUTPUTS if (repo.path / path).exists()} == before
        assert "Running stage 'params'" in proc.stdout and "Running stage 'prepare'" not in proc.stdout
        assert repo.git("status", "--porcelain", "dvc.lock").stdout == ""  # nothing recorded
    finally:
        restore(repo)


def test_bad_params_fail_a_temp_experiment_too(repo: Repo) -> None:
    # dvc exp run --temp runs in a copy, as queued experiments do.
    proc = repo.dvc("exp", "run", "--temp", "-S", "+decoding.beam_size=2", check=False)
    assert proc.returncode != 0
    assert "error: params.yaml: unknown key decoding" in proc.stderr
    assert "Running stage 'prepare'" not in proc.stdout


def test_a_stage_failing_on_its_data_is_restored_by_dvc_checkout(repo: Repo) -> None:
    """A check that needs the data runs in its stage, after DVC has removed that stage's outputs;
    ``dvc checkout`` puts back those of its last successful run from the cache (the README's promise)."""
    restore(repo)
    tokenizer = {p.name: p.read_bytes() for p in (repo.path / "data/tokenizer").iterdir()}
    params = repo.params()
    params["tokenizer"]["vocab_size"] = 5000
    repo.write_params(params)
    proc = repo.dvc("repro", check=False)
    assert proc.returncode != 0
    assert "error: tokenizer.vocab_size: 5000 is more than this corpus allows" in proc.stderr
    assert "Running stage 'tokenizer'" in proc.stdout and "Running stage 'prepare'" not in proc.stdout
    assert not (repo.path / "data/tokenizer").exists()  # DVC removed it before running the stage
    assert (repo.path / "data/corpus/train.src").exists() and (repo.path / "models/model.pt").exists()
    repo.git("checkout", "params.yaml", "dvc.lock")  # dvc.lock: the params stage passed, and was recorded
    repo.dvc("checkout")
    assert {p.name: p.read_bytes() for p in (repo.path / "data/tokenizer").iterdir()} == tokenizer
    assert "up to date" in repo.dvc("status").stdout
