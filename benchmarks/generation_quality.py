"""How well the bundled generator does its own job, on prompts made from held-out works (one command, a table).

    nice -n 10 .venv/bin/python benchmarks/generation_quality.py [--recipes current,sentence,image --guidance-sweep 1,2,3,4,6]

Works are read from the openclipart folder itself (no ingest needed to train) and split by a hash of their path: the
held-out fifth never trains a generator here. Test prompts (title + keywords) come from held-out works that the
default embedding model's heads never saw either (its own split, by asset id, where the collection is ingested); their
pixels at the generator's resolution are the reference. Each recipe is trained once on the other works with the product's
own code and settings (`generator.training`, PROVENANT_GENERATOR_THREADS), cached under --work and timed.

1. Prompt following: each generated image through the default model's image tower, each prompt through its text
   tower; text-to-image recall@1 / @10 among the --prompts test prompts (chance 1/n, 10/n) and the mean cosine to
   the own prompt minus the mean to the other prompts. The same on the real held-out works at the same resolution
   is the ceiling.
2. Sample quality: KID (torchmetrics, polynomial kernel) between generated and held-out works on the image tower's
   embeddings, beside the current recipe and samples of the training set's per-pixel mean and variance.
3. Prompt sensitivity of the influence shares: Spearman between the share vectors (all contributors) of unrelated
   test prompts (no keyword in common) drawn with the same seed, lower is better; and for prompts naming a subject,
   the share mass on contributors who drew that subject against their share of the training works.

The guidance of a recipe without a fixed one is chosen on --validation prompts (disjoint from the test prompts):
the best recall@10 there; the table reports the product's default (GENERATOR_GUIDANCE). Needs the built default
model (PROVENANT_MODELS_DIR); --train-only trains and times the recipes and stops.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

# The shipped recipe before issue 27 (hashed keywords, conditioning as a bias, no guidance) and the two conditionings
# measured against it (generator.conditioning), each with the MLP and AdaGN; the table marks the product's.
RECIPES = {
    "current": {
        "conditioning": "keywords",
        "run": {"cond_layers": 1, "scale_shift": False, "cond_gain": False, "min_snr": 0.0, "lr": 1e-3},
        "guidance": 1.0,
    },
    "sentence": {"conditioning": "sentence", "run": {}, "guidance": None},
    "image": {"conditioning": "image", "run": {}, "guidance": None},
}
SUBJECTS = ("cat", "dog", "bird", "fish", "flower", "tree", "car", "house", "star", "flag", "apple", "heart")
GRID_PROMPTS = (
    "a red apple",
    "a cat",
    "a house with a tree",
    "a blue car",
    "a star",
    "a green tree",
    "a yellow sun",
    "a flag",
)


def load_avg() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def collection_examples(root: Path):
    """(training examples, held-out examples) of the openclipart folder, read from the files themselves (credit,
    title, keywords from each SVG's RDF block; pixels from the PNG rendering beside it), so training needs no
    ingest. Split by a hash of the work's path (`is_held_out`): the same works are held out on every machine."""
    from embeddings.encoders.default_model import is_held_out
    from generator.manifest import TrainingExample
    from provenance.metadata import svg_metadata
    from provenance.names import clean_creator

    train, held, display = [], [], {}
    for svg in sorted((root / "svg").rglob("*.svg")):
        png = root / "png" / svg.relative_to(root / "svg").with_suffix(".png")
        if svg.is_symlink():
            continue  # duplicate entries (ingest skips them too)
        meta = svg_metadata(svg.read_bytes())
        who = clean_creator(meta.creator)
        # one person under several spellings is one contributor (the registry's rule)
        label = display.setdefault(who.key, who.display) if who else "unknown"
        source = str(svg.relative_to(root / "svg"))
        caption = ". ".join(p for p in (meta.description or meta.title, ", ".join(meta.keywords[:8])) if p)
        path = png if png.is_file() and not png.is_symlink() else svg
        ex = TrainingExample(path=str(path), caption=caption, contributor=label, asset_id=None)
        (held if is_held_out(f"generator:{source}") else train).append((source, ex))
    return train, held


def tower_held_out(sources: list[str]) -> set[str] | None:
    """The works the default model's heads never saw (its split is by asset id), where the collection is ingested."""
    from embeddings.encoders.default_model import is_held_out
    from provenance.models import Asset

    rows = Asset.objects.filter(source__in=sources).values_list("pk", "source")
    found = {source: pk for pk, source in rows}
    if len(found) < len(sources):
        print(f"  {len(sources) - len(found)} held-out works are not ingested: prompts from all of them")
        return None
    return {source for source, pk in found.items() if is_held_out(pk)}


def decoded(run_dir: Path, examples, resolution: int, spec: dict) -> dict:
    """The run's decoded data; when another recipe's folder beside it has decoded the same examples, only the
    conditioning is computed (decoding the collection takes minutes)."""
    from generator.conditioning import training_conditions
    from generator.training import DATA, prepare_data

    run_dir.mkdir(parents=True, exist_ok=True)
    recipes = RECIPES if run_dir.name in RECIPES else {}  # the held-out folder decodes other works
    done = [run_dir.parent / name / DATA for name in recipes if (run_dir.parent / name / DATA).exists()]
    if done and not (run_dir / DATA).exists():
        with np.load(done[0], allow_pickle=False) as cached:
            base = {k: cached[k] for k in cached.files}
        conds = training_conditions([examples[i].caption for i in base["kept"]], base["pixels"], spec)
        data = {**base, "conds": conds if conds is not None else base["conds"][:, :0]}
        np.savez(run_dir / DATA, **data)
    return prepare_data(run_dir, examples, resolution, spec, progress=True)


def train_recipe(work: Path, name: str, examples, args) -> tuple[dict, dict, dict]:
    """Train (cached) one recipe with the product's code and settings; returns (data, spec, timings)."""
    import dataclasses

    from generator.conditioning import conditioning_spec
    from generator.services import run_config_from_settings
    from generator.training import MODEL, RunConfig, build_attribution, train

    recipe = RECIPES[name]
    run_dir = work / name
    spec_file = run_dir / "spec.json"
    spec = (
        json.loads(spec_file.read_text()) if spec_file.exists() else conditioning_spec(recipe["conditioning"])
    )
    run = {**run_config_from_settings(steps=args.steps, resolution=args.resolution, seed=0), **recipe["run"]}
    config = RunConfig.from_dict(run)
    data = decoded(run_dir, examples, config.resolution, spec)
    spec_file.write_text(json.dumps(spec))
    timing_file = run_dir / "timing.json"
    if (run_dir / MODEL).exists() and timing_file.exists():
        return data, spec, json.loads(timing_file.read_text())
    # kept apart: a run stopped during the feature pass keeps its training time
    trained = run_dir / "train.json"
    if not trained.exists():
        before = load_avg()
        figures = train(run_dir, data, config, spec, progress=True)
        trained.write_text(json.dumps({**figures, "load_before": before, "load_after": load_avg()}))
    figures = json.loads(trained.read_text())
    fitted = attribution_rows(data, args.attribution_works)
    # worker processes change how fast the features come, not what they are (generator/ml/attribution.py)
    workers = dataclasses.replace(config, threads=args.feature_workers or config.threads)
    figures |= build_attribution(run_dir, fitted, workers, spec, progress=True)
    timing = {
        "train_s": round(figures["train_seconds"], 1),
        "features_s": round(figures["feature_seconds"], 1),
        "attribution_works": int(len(fitted["kept"])),
        "feature_workers": workers.threads,
        "threads": config.threads,
        "load_train": [figures["load_before"], figures["load_after"]],
        "load_features_after": load_avg(),
        "works": int(len(data["kept"])),
        "config": dataclasses.asdict(config),
    }
    timing_file.write_text(json.dumps(timing, indent=1))
    return data, spec, timing


def attribution_rows(data: dict, limit: int | None) -> dict:
    """The training works the attribution is fitted on: all (the product), or a random `limit` of them when the
    machine cannot afford the feature pass (every contributor keeps its index; one without a work there scores 0)."""
    if not limit or limit >= len(data["kept"]):
        return data
    rows = np.sort(np.random.default_rng(2).choice(len(data["kept"]), limit, replace=False))
    return {**data, **{k: data[k][rows] for k in ("pixels", "labels", "kept", "conds")}}


def pick_prompts(held_data: dict, held, tower: set[str] | None, args) -> tuple[list[int], list[int]]:
    """Indices into held_data for the validation prompts and for the test pool: the first --prompts of it are the
    test prompts, the rest fill the KID set. Test prompts come from works the default model's heads never saw
    either; validation prompts only choose the guidance, so they may come from works the heads saw (too few works
    are held out of both splits for both sets)."""
    rng = np.random.default_rng(args.draw)
    seen, prompts, others = set(), [], []
    for j in rng.permutation(len(held_data["kept"])):
        source, ex = held[held_data["kept"][j]]
        caption = ex.caption.strip().lower()
        if not caption or caption in seen:  # identical captions would make recall ambiguous
            continue
        seen.add(caption)
        (prompts if tower is None or source in tower else others).append(int(j))
    if len(prompts) < args.prompts:
        raise SystemExit(
            f"only {len(prompts)} distinct held-out captions for test prompts, {args.prompts} needed"
        )
    test, rest = prompts[: args.prompts], prompts[args.prompts :] + others
    if len(rest) < args.validation:
        raise SystemExit(
            f"only {len(rest)} distinct held-out captions left for validation, {args.validation} needed"
        )
    return rest[: args.validation], (test + rest[args.validation :])[: args.kid]


def sample_batch(
    unet, conds: np.ndarray | None, n: int, resolution: int, guidance: float, seed: int
) -> np.ndarray:
    """Generated uint8 images (n, R, R, 3), in batches of 50 (seed + batch index)."""
    import torch

    from generator.ml.diffusion import ddim_sample, to_uint8

    out = []
    for b, start in enumerate(range(0, n, 50)):
        m = min(50, n - start)
        c = None if conds is None else torch.from_numpy(conds[start : start + m])
        x = ddim_sample(unet, n=m, resolution=resolution, seed=seed + b, cond=c, guidance=guidance)
        out.append(to_uint8(x).numpy())
    return np.concatenate(out)


def embed_images(pixels: np.ndarray) -> np.ndarray:
    from PIL import Image

    from embeddings.encoders.factory import get_encoder

    return get_encoder().encode_images([Image.fromarray(p) for p in pixels])


def following(image_emb: np.ndarray, text_emb: np.ndarray) -> dict:
    """Text-to-image recall@1 / @10 (each prompt's own image among all) and own-minus-other cosine."""
    sims = text_emb @ image_emb.T
    n = len(sims)
    rank = (sims > sims.diagonal()[:, None]).sum(1)  # images scored above the prompt's own
    off = (sims.sum() - sims.trace()) / (n * (n - 1))
    return {
        "r1": float((rank < 1).mean()),
        "r10": float((rank < 10).mean()),
        "gap": float(sims.trace() / n - off),
    }


def kid(fake: np.ndarray, real: np.ndarray, subset: int) -> tuple[float, float]:
    import torch
    from torch import nn

    from embeddings.encoders.torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()  # torchmetrics imports torchvision
    from torchmetrics.image.kid import KernelInceptionDistance

    torch.manual_seed(0)  # the subsets are drawn with torch's generator
    warnings.filterwarnings("ignore", message=".*will save all extracted features")  # a few hundred rows here
    metric = KernelInceptionDistance(
        feature=nn.Identity(), subsets=100, subset_size=min(subset, len(fake), len(real))
    )
    metric.update(torch.from_numpy(real).double(), real=True)
    metric.update(torch.from_numpy(fake).double(), real=False)
    mean, std = metric.compute()
    return float(mean), float(std)


def pixel_baseline(pixels: np.ndarray, n: int) -> np.ndarray:
    """Samples of independent per-pixel Gaussians fitted to the training images."""
    x = pixels.astype(np.float32)
    rng = np.random.default_rng(0)
    s = rng.normal(x.mean(0), x.std(0), size=(n, *x.shape[1:]))
    return np.clip(np.round(s), 0, 255).astype(np.uint8)


def share_vectors(gen, jobs: list[tuple[str, int]]) -> np.ndarray:
    """Positive-part influence shares over all contributors of each (prompt, seed), as the product makes them (one
    image, its gradient scores)."""
    shares = []
    for prompt, seed in jobs:
        pos = np.maximum(gen.sample(prompt, seed).gradient_scores, 0.0)
        shares.append(pos / pos.sum() if pos.sum() > 0 else np.full(len(pos), 1 / len(pos)))
    return np.stack(shares)


def unrelated_pairs(prompts: list[str], count: int) -> list[tuple[int, int]]:
    """Random pairs of prompts with no keyword in common."""
    from generator.conditioning import keyword_tokens

    tokens = [set(keyword_tokens(p)) for p in prompts]
    pairs = [
        (i, j) for i in range(len(prompts)) for j in range(i + 1, len(prompts)) if not tokens[i] & tokens[j]
    ]
    rng = np.random.default_rng(1)
    return [pairs[k] for k in rng.permutation(len(pairs))[:count]]


def share_correlation(shares: np.ndarray, pairs: list[tuple[int, int]]) -> tuple[float, float]:
    from scipy.stats import spearmanr

    rho = np.array([spearmanr(shares[i], shares[j]).statistic for i, j in pairs])
    return float(rho.mean()), float(rho.std(ddof=1) / np.sqrt(len(rho)))


def subject_mass(gen, data: dict, examples, subjects: int, seeds: int) -> np.ndarray:
    """Per subject (rows): the share of the training works by contributors with a training work tagged with it
    (what a prompt-blind attribution would give them), and the influence share mass they get for "a <subject>"."""
    from generator.conditioning import keyword_tokens

    labels = data["labels"]
    tags = [set(keyword_tokens(examples[i].caption)) for i in data["kept"]]
    rows = []
    for subject in SUBJECTS[:subjects]:
        drew = np.unique(labels[[w for w, t in enumerate(tags) if subject in t]])
        if len(drew) == 0:
            continue  # nobody drew it: no share mass to compare
        shares = share_vectors(gen, [(f"a {subject}", seed) for seed in range(seeds)])
        rows.append((np.isin(labels, drew).mean(), shares[:, drew].sum(1).mean()))
    return np.array(rows)


def draws(gen, name: str, data: dict, examples, prompts: dict, args, *, shown: bool) -> dict:
    """Everything a recipe makes at one guidance, without the default model's towers (cached under --work, so the
    measures can come later): validation and test images (batched); at the guidance the table shows, also the
    same-seed images' influence shares, the subject prompts' shares and the grid (each drawn as the product draws
    one image)."""
    cache = (
        Path(args.work)
        / name
        / f"draws-g{gen.guidance:g}-draw{args.draw}-{len(prompts['test'])}-{shown:d}.npz"
    )
    if cache.exists():
        with np.load(cache, allow_pickle=False) as saved:
            return {k: saved[k] for k in saved.files}
    out = {}
    for split in ("val", "test"):
        t0 = time.perf_counter()
        conds = gen.encode(prompts[split])
        out[split] = sample_batch(
            gen.unet, conds, len(prompts[split]), args.resolution, gen.guidance, seed=1000
        )
        out["sample_s"] = np.array((time.perf_counter() - t0) / len(prompts[split]))
    if not shown:
        np.savez(cache, **out)
        return out
    out["shares"] = share_vectors(gen, [(p, args.share_seed) for p in prompts["test"][: args.share_prompts]])
    out["subjects"] = subject_mass(gen, data, examples, args.subjects, args.subject_seeds)
    out["grid"] = np.stack([gen.draw(prompt, seed)[0] for prompt in GRID_PROMPTS for seed in range(4)])
    np.savez(cache, **out)
    return out


def measures(made: dict, ref: dict, args) -> dict:
    emb = embed_images(made["test"])
    n = args.prompts
    out = {
        **following(emb[:n], ref["test_text"][:n]),
        "validation": following(embed_images(made["val"]), ref["val_text"]),
        "kid": kid(emb, ref["test_real"], args.kid_subset),
        "sample_s_per_image": round(float(made["sample_s"]), 3),
    }
    if "shares" in made:
        out["share_rho"] = share_correlation(made["shares"], ref["pairs"])
        out["subjects"] = made["subjects"].tolist()  # rows: training share, influence mass
        out["subject_lift"] = float(np.mean(made["subjects"][:, 1] / made["subjects"][:, 0]))
    return out


def save_grid(panels: dict[str, list[list[np.ndarray]]], path: Path, scale: int = 3) -> None:
    """Side-by-side panels (one per recipe) of prompts (rows) x seeds (columns), pixels scaled up without smoothing."""
    from PIL import Image, ImageDraw

    label_w, pad, title_h = 150, 4, 22
    first = next(iter(panels.values()))
    cell = first[0][0].shape[0] * scale
    rows, cols = len(first), len(first[0])
    panel_w = label_w + cols * (cell + pad)
    canvas = Image.new("RGB", (panel_w * len(panels) + pad, title_h + rows * (cell + pad)), "white")
    draw = ImageDraw.Draw(canvas)
    for p, (title, grid) in enumerate(panels.items()):
        x0 = p * panel_w + pad
        draw.text((x0, 4), title, fill="black")
        for r, row in enumerate(grid):
            y = title_h + r * (cell + pad)
            draw.text((x0, y + cell // 2 - 6), GRID_PROMPTS[r], fill="black")
            for c, px in enumerate(row):
                img = Image.fromarray(px).resize((cell, cell), Image.Resampling.NEAREST)
                canvas.paste(img, (x0 + label_w + c * (cell + pad), y))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def prompt_sets(held, held_data: dict, args) -> tuple[dict, dict]:
    """The validation and test prompts with the held-out pixels behind them (no towers needed)."""
    tower = tower_held_out([source for source, _ in held])
    val_idx, test_idx = pick_prompts(held_data, held, tower, args)
    prompts = {
        split: [held[held_data["kept"][j]][1].caption for j in idx]
        for split, idx in (("val", val_idx), ("test", test_idx))
    }
    return prompts, {"val": held_data["pixels"][val_idx], "test": held_data["pixels"][test_idx]}


def references(prompts: dict, real: dict, args) -> dict:
    """The default model's embeddings of the prompts and of the real held-out works."""
    from embeddings.encoders.factory import get_encoder

    encoder = get_encoder()
    return {
        "val_text": encoder.encode_texts(prompts["val"]),
        "test_text": encoder.encode_texts(prompts["test"]),
        "val_real": embed_images(real["val"]),
        "test_real": embed_images(real["test"]),
        "pairs": unrelated_pairs(prompts["test"][: args.share_prompts], args.pairs),
    }


def print_table(report: dict) -> None:
    n = report["prompts"]
    print(
        f"\nTest: {n} held-out prompts (chance R@1 {1 / n:.2f}, R@10 {10 / n:.2f}); KID x 1000 on {report['kid_n']} works"
    )
    print(
        f"{'':36s} {'R@1':>6s} {'R@10':>6s} {'own-oth':>8s} {'KID x1000':>15s} {'share rho':>15s} {'subj.':>6s} {'val R@10':>8s}"
    )
    ceil, kr, kp = report["ceiling"], report["kid_real_halves"], report["kid_pixel_baseline"]
    print(
        f"{'real held-out works (ceiling)':36s} {ceil['r1']:6.3f} {ceil['r10']:6.3f} {ceil['gap']:8.4f} "
        f"{kr[0] * 1000:7.2f} +-{kr[1] * 1000:5.2f}  (one half of them against the other)"
    )
    print(
        f"{'per-pixel mean/variance samples':36s} {'':6s} {'':6s} {'':8s} {kp[0] * 1000:7.2f} +-{kp[1] * 1000:5.2f}"
    )
    for name, r in report["recipes"].items():
        for g, m in r["by_guidance"].items():
            mark = " *" if float(g) == r["default"] and r["product"] else ""
            shares = (
                f"{m['share_rho'][0]:7.3f} +-{m['share_rho'][1]:5.3f} {m['subject_lift']:6.2f}"
                if "share_rho" in m
                else f"{'':15s} {'':6s}"
            )
            print(
                f"{f'{name} recipe, guidance {g}{mark}':36s} {m['r1']:6.3f} {m['r10']:6.3f} {m['gap']:8.4f} "
                f"{m['kid'][0] * 1000:7.2f} +-{m['kid'][1] * 1000:5.2f} {shares} {m['validation']['r10']:8.3f}"
            )
    print(
        f"* the product's default (conditioning {report['product_conditioning']}, guidance GENERATOR_GUIDANCE; the "
        "validation prompts chose "
        + ", ".join(f"{k} {v['chosen_on_validation']}" for k, v in report["recipes"].items())
        + ")"
    )
    for name, t in report["timings"].items():
        print(
            f"{name}: {t['config']['steps']} steps on {t['works']} works in {t['train_s']:.0f} s ({t['threads']} "
            f"threads, load {' -> '.join(t['load_train'])}); attribution features of {t['attribution_works']} works "
            f"{t['features_s']:.0f} s ({t['feature_workers']} workers, load after {t['load_features_after']})"
        )
    print(f"load average {report['load_before']} -> {report['load_after']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--openclipart", default="/usr/share/openclipart")
    p.add_argument("--recipes", default=",".join(RECIPES))
    p.add_argument("--guidance-sweep", default="1,2,3,4,6")
    p.add_argument("--prompts", type=int, default=100, help="test prompts for recall and share correlation")
    p.add_argument("--validation", type=int, default=100)
    p.add_argument("--kid", type=int, default=500, help="held-out works (test prompts first) for KID")
    p.add_argument("--kid-subset", type=int, default=100)
    p.add_argument("--pairs", type=int, default=200)
    p.add_argument("--share-seed", type=int, default=3)
    p.add_argument("--subjects", type=int, default=len(SUBJECTS))
    p.add_argument("--subject-seeds", type=int, default=4)
    p.add_argument(
        "--share-prompts", type=int, default=100, help="test prompts drawn with one seed for the pairs"
    )
    p.add_argument("--draw", type=int, default=0, help="seed of the prompt draw (a fresh draw confirms)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the product's)")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--threads", type=int, default=2, help="torch threads while evaluating")
    p.add_argument("--work", default=str(ROOT / "var" / "benchmarks" / "generation"))
    p.add_argument("--grid", default=str(ROOT / "docs" / "generator-grid.png"))
    p.add_argument("--out", default=str(ROOT / "var" / "benchmarks" / "generation_quality.json"))
    p.add_argument("--train-only", action="store_true", help="train (and time) the recipes, then stop")
    p.add_argument("--draw-only", action="store_true", help="train and draw (no towers needed), then stop")
    p.add_argument(
        "--attribution-works",
        type=int,
        default=None,
        help="fit the attribution on this many random training works (default: all, as the product does)",
    )
    p.add_argument("--feature-workers", type=int, default=None, help="default: PROVENANT_GENERATOR_THREADS")
    args = p.parse_args()

    import django

    django.setup()
    import torch

    from generator import conf
    from generator.conditioning import conditioning_spec
    from generator.runtime import LoadedGenerator

    default = float(conf.get("GENERATOR_GUIDANCE"))
    report = {
        "product_conditioning": conditioning_spec(conf.get("GENERATOR_CONDITIONING"))["kind"],
        "load_before": load_avg(),
        "prompts": args.prompts,
        "kid_n": args.kid,
        "recipes": {},
        "timings": {},
    }
    work = Path(args.work)
    train, held = collection_examples(Path(args.openclipart))
    train_ex = [ex for _, ex in train]
    print(f"{len(train_ex)} training works, {len(held)} held out; load {report['load_before']}", flush=True)
    if args.train_only:
        for name in args.recipes.split(","):
            _, _, timing = train_recipe(work, name, train_ex, args)
            print(f"{name}: {json.dumps({k: v for k, v in timing.items() if k != 'config'})}", flush=True)
        return
    held_data = decoded(
        work / "held-out", [ex for _, ex in held], args.resolution, {"kind": "none", "dim": 0}
    )
    prompts, real = prompt_sets(held, held_data, args)
    made: dict[str, dict] = {}
    for name in args.recipes.split(","):
        data, spec, report["timings"][name] = train_recipe(work, name, train_ex, args)
        torch.set_num_threads(args.threads)
        fixed = RECIPES[name]["guidance"]
        sweep = [fixed] if fixed else sorted({*map(float, args.guidance_sweep.split(",")), default})
        gen = LoadedGenerator(
            work / name, spec, args.resolution, conf.get("GENERATOR_SAMPLING_STEPS"), 1.0, 5
        )
        made[name] = {}
        for g in sweep:
            gen.guidance = g
            made[name][g] = draws(gen, name, data, train_ex, prompts, args, shown=g == (fixed or default))
            print(f"  {name} guidance {g}: drawn", flush=True)
    if args.draw_only:
        return
    ref = references(prompts, real, args)
    report["ceiling"] = following(ref["test_real"][: args.prompts], ref["test_text"][: args.prompts])
    half = len(ref["test_real"]) // 2
    report["kid_real_halves"] = kid(ref["test_real"][:half], ref["test_real"][half:], args.kid_subset)
    report["kid_pixel_baseline"] = kid(
        embed_images(pixel_baseline(data["pixels"], args.kid)), ref["test_real"], args.kid_subset
    )
    panels = {}
    for name, by_g in made.items():
        by_guidance = {g: measures(m, ref, args) for g, m in by_g.items()}
        chosen = max(by_guidance, key=lambda g: (by_guidance[g]["validation"]["r10"], -g))
        shown = RECIPES[name]["guidance"] or default
        report["recipes"][name] = {
            "product": RECIPES[name]["conditioning"] == report["product_conditioning"],
            "by_guidance": by_guidance,
            "chosen_on_validation": chosen,
            "default": shown,
        }
        panels[f"{name} recipe (guidance {shown:g})"] = [
            list(by_g[shown]["grid"][r * 4 : r * 4 + 4]) for r in range(len(GRID_PROMPTS))
        ]
    save_grid(panels, Path(args.grid))
    report["load_after"] = load_avg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1, default=float))
    print_table(report)


if __name__ == "__main__":
    main()
