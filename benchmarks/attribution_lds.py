"""Contributor-level linear datamodeling score (LDS) of the generator's attribution, on real openclipart.

    nice -n 10 .venv/bin/python benchmarks/attribution_lds.py [--contributors 16 --works 40 --subsets 16 --steps 600]

1. Picks real openclipart contributors (creator from each SVG's RDF block) with enough works, a fixed number each.
2. Trains the full model on all of them, samples generated images (DDIM), computes the gradient features (training
   and generated; for each --outputs function: the product's main-effect and D-TRAK's v-norm by default) and the
   Gram-similarity baseline.
3. Trains K subset models, each on a random half of the contributors, and measures each generated image's diffusion
   loss under each subset model (fixed timesteps and noise). By default every subset model trains with the full
   model's seed (common random numbers: same init, timesteps and noise per step), so the loss differences between
   subsets measure the data; with a seed per subset (--subset-seeds vary) training noise was ~45 % of the
   across-subset variance of the losses (docs/generator.md).
   --seed-sets 0,1,... trains each subset once per seed set (seed 1000 j) and averages the losses, as LDS protocols
   average several models per subset; benchmarks/lds_stacked.py trains them all at once on a GPU.
   --extra-subsets N adds N more random half-subsets (their own masks; lds_stacked.py trains them): a linear datamodel
   fitted on them scores the K subsets (the ceiling of any additive contributor score), and the chosen methods are also
   scored over them (LDS with K = N).
4. LDS per generated image = Spearman(predicted subset score, -loss) over the K subsets; mean +- SE over images.
   Output, normalisation and lambda (gradient) and top-k (similarity) are chosen on validation images only; the
   table reports the test images, and its bootstrap intervals resample the subset masks and the test images together.
5. --confirm scores the product's frozen recipe and chooses nothing; with a new --seed (new contributors drawn, new
   subset masks, new generated images) and --disjoint-from-seed 0 (none of the development runs' works; the
   contributors both draws share are reported), it is the held-out figure:

    .venv/bin/python benchmarks/attribution_lds.py --confirm --seed 7 --disjoint-from-seed 0 --works 20 \
        --conditioning sentence --guidance 3 --seed-sets 0,1,2,3,4,5,6,7 --threads 2

No Django database needed. Subset losses are cached under var/benchmarks/lds-work/ so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OPENCLIPART = Path("/usr/share/openclipart")
CREATOR_RE = re.compile(r"<dc:creator>\s*<cc:Agent>\s*<dc:title>([^<]+)</dc:title>", re.S)
# the settings a development run chooses among on its validation images
LAMBDAS_REL = (0.01, 0.1, 1.0, 10.0, 100.0)
SIMILARITY_TOP_KS = (1, 5, 10, 40)


def scan_creators(cache: Path) -> dict[str, list[str]]:
    """creator -> relative paths (without extension) of works that have a PNG rendering."""
    if cache.exists():
        return json.loads(cache.read_text())
    by_creator: dict[str, list[str]] = {}
    for svg in sorted((OPENCLIPART / "svg").rglob("*.svg")):
        if svg.is_symlink():
            continue
        rel = svg.relative_to(OPENCLIPART / "svg").with_suffix("")
        if not (OPENCLIPART / "png" / rel.with_suffix(".png")).exists():
            continue
        m = CREATOR_RE.search(svg.read_text(errors="replace")[:200_000])
        name = m.group(1).strip() if m else ""
        if not name or name.startswith("HASH(") or "@" in name:
            continue  # unattributable credits cannot be a contributor
        by_creator.setdefault(name, []).append(str(rel))
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(by_creator))
    return by_creator


def load_dataset(args, work: Path):
    """(images, labels, contributor names, captions, overlap with the development draw); cached in the work folder,
    so a run elsewhere needs no openclipart (caches written before captions were kept have none: unconditional runs
    only)."""
    import torch

    cache = work / "dataset.pt"
    if cache.exists():
        d = torch.load(cache)
        return d["images"], np.array(d["labels"]), d["names"], d.get("captions"), d.get("overlap")
    images, labels, chosen, captions, overlap = _read_openclipart(args, work)
    torch.save(
        {
            "images": images,
            "labels": labels.tolist(),
            "names": chosen,
            "captions": captions,
            "overlap": overlap,
        },
        cache,
    )
    return images, labels, chosen, captions, overlap


def conditioning(args, captions: list[str] | None, n_generated: int, images):
    """(training conditions, generated images' conditions), both None when unconditional. The generated images'
    prompts are captions of training works drawn at random (rng seed + 3), as a user would ask for what is there,
    read as the product reads a prompt (an `image` model through its training works' conditions)."""
    import torch

    if args.conditioning == "none":
        return None, None
    if captions is None:
        raise SystemExit(
            "this work folder's dataset.pt has no captions: use a fresh --work for a conditioned run"
        )
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")  # the encoder reads its settings
    django.setup()  # and imports the API's error type, which needs the apps loaded
    from generator.conditioning import conditioning_spec, encode_prompts, training_conditions

    spec = conditioning_spec(args.conditioning)
    pixels = ((images.permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
    conds = training_conditions(captions, pixels, spec)
    pick = np.random.default_rng(args.seed + 3).choice(len(captions), n_generated, replace=False)
    prompts = encode_prompts([captions[i] for i in pick], spec, conds)
    return torch.from_numpy(conds), torch.from_numpy(prompts)


def draw_contributors(
    by_creator: dict[str, list[str]],
    seed: int,
    contributors: int,
    works: int,
    exclude: frozenset[str] = frozenset(),
) -> tuple[list[tuple[str, list[str]]], int]:
    """The contributors drawn (sorted by name), each with its works outside `exclude` in the order they are taken,
    and how many contributors were eligible (at least works + 5 works outside `exclude`, a margin for unreadable
    files). With nothing excluded the draw is the one every earlier run made with the same seed."""
    rng = random.Random(seed)
    available = {c: sorted(w for w in ws if w not in exclude) for c, ws in by_creator.items()}
    eligible = sorted(c for c, ws in available.items() if len(ws) >= works + 5)
    chosen = sorted(rng.sample(eligible, contributors))
    drawn = []
    for name in chosen:
        rng.shuffle(available[name])
        drawn.append((name, available[name]))
    return drawn, len(eligible)


def _take_works(drawn: list[tuple[str, list[str]]], works: int, resolution: int):
    """Yields (contributor index, relative path, image tensor) for the first `works` readable works of each."""
    import torch
    from PIL import Image

    from provenance.imaging import ImageRejected, load_rgb_path

    for ci, (_name, candidates) in enumerate(drawn):
        taken = 0
        for rel in candidates:
            if taken == works:
                break
            try:
                img = load_rgb_path(OPENCLIPART / "png" / f"{rel}.png", max_side=256).image
            except ImageRejected:
                continue
            img = img.resize((resolution, resolution), Image.Resampling.BICUBIC)
            yield ci, rel, torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 127.5 - 1
            taken += 1


def _development_draw(args, by_creator) -> tuple[set[str], frozenset[str]]:
    """The contributors and works the development runs used (seed --disjoint-from-seed, --dev-contributors x
    --dev-works), drawn again exactly as they were."""
    drawn, _ = draw_contributors(by_creator, args.disjoint_from_seed, args.dev_contributors, args.dev_works)
    rels = frozenset(rel for _ci, rel, _img in _take_works(drawn, args.dev_works, 8))
    return {name for name, _ in drawn}, rels


def _read_openclipart(args, work: Path):
    import torch

    from provenance.metadata import svg_metadata

    by_creator = scan_creators(work.parent / "openclipart-creators.json")
    dev_names, exclude, overlap = set(), frozenset(), None
    if args.disjoint_from_seed is not None:
        dev_names, exclude = _development_draw(args, by_creator)
    drawn, n_eligible = draw_contributors(by_creator, args.seed, args.contributors, args.works, exclude)
    images, labels, rels, captions = [], [], [], []
    for ci, rel, image in _take_works(drawn, args.works, args.resolution):
        images.append(image)
        labels.append(ci)
        rels.append(rel)
        meta = svg_metadata((OPENCLIPART / "svg" / f"{rel}.svg").read_bytes())
        # the caption a manifest carries: title, then the first keywords (provenance's Asset.caption_text)
        captions.append(". ".join(p for p in (meta.title, ", ".join(meta.keywords[:8])) if p))
    chosen = [name for name, _ in drawn]
    if args.disjoint_from_seed is not None:
        overlap = {
            "development_seed": args.disjoint_from_seed,
            "contributors_shared": len(dev_names & set(chosen)),
            "works_shared": len(exclude & set(rels)),
        }
    print(
        f"data: {len(chosen)} contributors of {n_eligible} eligible, {len(images)} works; overlap {overlap}"
    )
    return torch.stack(images), np.array(labels), chosen, captions, overlap


def _legacy(args) -> bool:
    return getattr(args, "unet", "scale-shift") == "bias"  # the recipe measured before issue 27


def unet_config(args, cond_dim: int = 0):
    from generator.ml.unet import UNetConfig

    old = _legacy(args)
    return UNetConfig(
        resolution=args.resolution,
        cond_dim=cond_dim,
        cond_layers=1 if old else 2,
        scale_shift=not old,
        cond_gain=not old,
    )


def train_model(images, args, seed: int, conds=None):
    import torch

    from generator.ml.diffusion import TrainConfig, train_state_new, train_steps
    from generator.ml.unet import UNet

    torch.manual_seed(seed)
    # initialised on the CPU, so a GPU run starts from the same weights
    model = UNet(unet_config(args, 0 if conds is None else conds.shape[1])).to(args.device)
    # the old recipe weighed every timestep's loss alike, at a lower learning rate
    before = {"min_snr": 0.0, "lr": 1e-3} if _legacy(args) else {}
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, seed=seed, **before)
    state = train_state_new(model, config)
    for _ in train_steps(state, images, conds, config):
        pass
    return state.ema.model


def _cached_model(path: Path, images, args, seed: int, conds=None):
    """The full model is kept, so a resumed run does not train it again (its time is then the load time)."""
    import torch

    from generator.ml.unet import UNet

    if path.exists():
        model = UNet(unet_config(args, 0 if conds is None else conds.shape[1]))
        model.load_state_dict(torch.load(path))
        return model.eval()
    model = train_model(images, args, seed=seed, conds=conds)
    torch.save(model.state_dict(), path)
    print(f"full model trained ({args.steps} steps)", flush=True)
    return model


def probe_losses(model, images, n_t: int = 50, draws: int = 2, seed: int = 99, conds=None) -> np.ndarray:
    """Each image's v-loss (under its own prompt, if any) averaged over fixed timesteps and noise: the same probe
    for every subset model."""
    import torch

    from generator.ml.diffusion import T_STEPS, v_loss

    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    ts = torch.linspace(0, T_STEPS - 1, n_t).round().long().repeat(draws)
    eps = torch.randn((ts.shape[0], *images.shape[1:]), generator=g)
    ts, eps = ts.to(device), eps.to(device)
    out = []
    with torch.no_grad():
        for i, x in enumerate(images.to(device)):
            c = None if conds is None else conds[i].to(device)[None].expand(ts.shape[0], -1)
            out.append(v_loss(model, x[None].expand(ts.shape[0], -1, -1, -1), ts, eps, c).mean().item())
    return np.array(out)


def lds(pred: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """pred, actual: (K subsets, images). Spearman per image over the subsets."""
    from scipy.stats import spearmanr

    return np.array([spearmanr(pred[:, j], actual[:, j]).statistic for j in range(pred.shape[1])])


def split_images(n_images: int, n_validation: int) -> tuple[np.ndarray, np.ndarray]:
    """(validation, test) image indices: the first n_validation generated images choose settings, the rest report.
    The generated images are i.i.d. draws, so the first ones are as random a validation set as any."""
    if not 0 <= n_validation < n_images:
        raise ValueError(f"{n_validation} validation images leave no test image among {n_images}")
    return np.arange(n_validation), np.arange(n_validation, n_images)


def choose_on_validation(
    results: dict[str, np.ndarray], candidates: list[str], validation: np.ndarray
) -> str:
    """The candidate with the best mean LDS over the validation images; the test images are never read."""
    return max(candidates, key=lambda name: (np.nanmean(results[name][validation]), name))


def bootstrap_mean_lds(
    scores: list[np.ndarray],
    masks: np.ndarray,
    actual: np.ndarray,
    rng: np.random.Generator,
    rounds: int = 2000,
) -> np.ndarray:
    """(rounds, methods) bootstrap draws of each method's mean LDS, resampling the subset masks and the images
    together (the same draw for every method, so differences between methods are paired): with K subsets each
    image's Spearman is itself an estimate (about 0.07 of mask-sampling error at K = 16), so an interval over images
    alone is too narrow. scores: per method (images, contributors); masks: (K, contributors); actual: (K, images)."""
    import warnings

    preds = [masks @ s.T for s in scores]
    k, n = actual.shape
    means = np.empty((rounds, len(scores)))
    # a resample that repeats one mask can leave a ranking undefined (NaN): such rounds drop out of the percentiles
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in range(rounds):
            rows, cols = np.ix_(rng.choice(k, k), rng.choice(n, n))
            means[r] = [np.nanmean(lds(pred[rows, cols], actual[rows, cols])) for pred in preds]
    return means


def gradient_method_name(output: str, normalise: bool, lambda_rel: float) -> str:
    return f"gradient {output} {'unit' if normalise else 'raw'} lambda_rel={float(lambda_rel)}"


def freeze_product_recipe(args) -> None:
    """A confirmation run measures the product's features exactly (its probes, projection and output) and keeps
    no validation images: there is nothing left to choose."""
    from generator.ml.features import FeatureConfig

    recipe = FeatureConfig()
    args.timesteps, args.noise_draws, args.proj_dim = recipe.timesteps, recipe.noise_draws, recipe.proj_dim
    args.outputs, args.validation = recipe.output, 0


def product_methods() -> dict[str, str]:
    """The rows of the product's own recipe, frozen: what a confirmation run reports, with nothing chosen."""
    from generator.conf import DEFAULTS
    from generator.ml.features import FeatureConfig

    recipe = FeatureConfig()
    return {
        "gradient": gradient_method_name(recipe.output, recipe.normalise, recipe.lambda_rel),
        "similarity": f"similarity gram top{DEFAULTS['GENERATOR_SIMILARITY_TOP_K']}",
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--contributors", type=int, default=16)
    p.add_argument("--works", type=int, default=40)
    p.add_argument("--subsets", type=int, default=16)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--generated", type=int, default=48)
    p.add_argument("--validation", type=int, default=12)
    p.add_argument("--timesteps", type=int, default=20)
    p.add_argument("--noise-draws", type=int, default=1)
    p.add_argument("--proj-dim", type=int, default=2048)
    p.add_argument(
        "--outputs",
        default="main-effect,vnorm",
        help="the gradient method's output functions to measure (generator.ml.attribution.OUTPUTS; the product's "
        "is main-effect, vnorm is D-TRAK's), each with its own rows; one is chosen on validation among all",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--conditioning",
        choices=["none", "keywords", "sentence", "text", "image"],
        default="none",
        help="train on each work's caption (image: the product's recipe where the default model is built, "
        "generator/conditioning.py); the "
        "generated images are drawn for captions of training works",
    )
    p.add_argument(
        "--guidance", type=float, default=1.0, help="classifier-free guidance of the generated images"
    )
    p.add_argument(
        "--unet",
        choices=["scale-shift", "bias"],
        default="scale-shift",
        help="the product's UNet and loss, or those before issue 27 (conditioning as a bias, no gain, every "
        "timestep's loss alike; what earlier caches hold)",
    )
    p.add_argument(
        "--subset-seeds",
        choices=["same", "vary"],
        default="same",
        help="same: every subset model trains with the full model's seed (common random numbers: init, timesteps "
        "and noise are shared, so loss differences measure the data); vary: seed + 100 + k per subset",
    )
    p.add_argument(
        "--seed-sets",
        default="0",
        help="comma-separated seed sets j (each subset trains with seed + 1000 j per set); the ground truth is "
        "each subset's loss averaged over them, as LDS protocols average several models per subset",
    )
    p.add_argument(
        "--extra-subsets",
        type=int,
        default=0,
        help="N more random half-subsets (benchmarks/lds_stacked.py trains them on a GPU): a linear datamodel fitted "
        "on them gives the additive ceiling on the K subsets, and the chosen methods are also scored over them",
    )
    p.add_argument("--extra-seed-sets", default="0", help="seed sets averaged for the extra subsets")
    p.add_argument("--device", default="cpu", help="where subset models train (cuda for a GPU)")
    p.add_argument("--subsets-only", action="store_true", help="train and measure subset models, then stop")
    p.add_argument(
        "--shard", default="0/1", help="with --subsets-only: i/n trains the subsets k with k %% n == i"
    )
    p.add_argument("--no-imagenet-baseline", dest="imagenet_baseline", action="store_false")
    p.add_argument("--analyse-only", action="store_true", help="use only the subset models already cached")
    p.add_argument(
        "--confirm",
        action="store_true",
        help="a confirmation run: score the product's frozen recipe (generator.ml.features.FeatureConfig and the "
        "similarity top-k setting), every generated image a test image, nothing chosen",
    )
    p.add_argument(
        "--disjoint-from-seed",
        type=int,
        default=None,
        help="draw no work the development runs used (their seed; sizes --dev-contributors x --dev-works) and "
        "report how many contributors both draws share",
    )
    p.add_argument("--dev-contributors", type=int, default=16)
    p.add_argument("--dev-works", type=int, default=40)
    p.add_argument("--work", default=str(ROOT / "var" / "benchmarks" / "lds-work"))
    p.add_argument("--out", default=str(ROOT / "var" / "benchmarks" / "attribution_lds.json"))
    args = p.parse_args()
    if args.shard != "0/1" and not args.subsets_only:
        p.error("--shard needs --subsets-only: the analysis needs every subset")
    if args.confirm:
        freeze_product_recipe(args)

    import torch

    from generator.ml.attribution import (
        FeatureConfig,
        GramFeaturizer,
        contributor_vectors,
        similarity_scores,
        unit_normalise,
    )
    from generator.ml.diffusion import ddim_sample

    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):  # full fp32, repeatable kernels: common random numbers stay common
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    # earlier caches (bias UNet, unconditional) keep their folder names; "-ss" folders hold models of the recipe
    # before the condition's gain and the Min-SNR loss, which no option trains now
    recipe = (
        ("" if args.unet == "bias" else "-ss-msnr")
        + ("" if args.conditioning == "none" else f"-{args.conditioning}-g{args.guidance:g}")
        + ("" if args.disjoint_from_seed is None else f"-disjoint{args.disjoint_from_seed}")
    )
    work = (
        Path(args.work)
        / f"c{args.contributors}w{args.works}s{args.steps}b{args.batch_size}r{args.resolution}seed{args.seed}{recipe}"
    )
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    images, labels, names, captions, overlap = load_dataset(args, work)
    n_c = len(names)
    conds, gen_conds = conditioning(args, captions, args.generated, images)
    # loading the embedding model for the conditions sets its own thread count: two shards of two threads each on
    # two cores spin against each other (a subset model took 25-32 minutes instead of 200 s)
    torch.set_num_threads(args.threads)
    if conds is not None:
        # what benchmarks/lds_stacked.py --conditions reads, so a GPU without the default model trains the subsets
        torch.save(
            {"train": conds, "generated": gen_conds, "guidance": args.guidance}, work / "conditions.pt"
        )

    t0 = time.perf_counter()
    full = _cached_model(work / "full-model.pt", images, args, seed=args.seed, conds=conds)
    timings["train_full_model_s"] = time.perf_counter() - t0
    # sampled on the CPU once, so subset models trained elsewhere see the same images
    gen_cache = work / "generated.pt"
    if gen_cache.exists():
        gen = torch.load(gen_cache)
    else:
        t0 = time.perf_counter()
        gen = ddim_sample(
            full,
            n=args.generated,
            resolution=args.resolution,
            seed=args.seed + 10_000,
            cond=gen_conds,
            guidance=args.guidance,
        )
        timings["sample_per_image_s"] = (time.perf_counter() - t0) / args.generated
        torch.save(gen, gen_cache)
        save_grid(gen, work / "generated.png")
    # one rng: the subset masks first, then the random baseline and the bootstrap
    rng = np.random.default_rng(args.seed + 1)
    if args.subsets_only:
        masks, losses = subset_losses(args, work, images, labels, gen, n_c, timings, rng, (conds, gen_conds))
        print(f"{len(masks)} subsets measured: {timings['subset_models_total_s']:.0f} s", flush=True)
        if args.extra_subsets:
            extra_subset_losses(args, work, images, labels, gen, n_c, train=True, conds=(conds, gen_conds))
        return

    # raw features are cached; the unit-normalised rows normalise them here exactly as the featurizer would
    features = {}
    for output in args.outputs.split(","):
        fconf = FeatureConfig(
            proj_dim=args.proj_dim,
            timesteps=args.timesteps,
            noise_draws=args.noise_draws,
            normalise=False,
            output=output,
        )
        features[output] = _gradient_features(
            full, fconf, images, gen, args, work, timings, (conds, gen_conds)
        )
    gram = GramFeaturizer()
    sim_train, sim_gen = gram(images).numpy(), gram(gen).numpy()

    masks, losses = subset_losses(args, work, images, labels, gen, n_c, timings, rng, (conds, gen_conds))
    masks_a, actual = np.array(masks, dtype=float), -np.array(losses)  # lower loss = more help

    val, test = split_images(len(gen), args.validation)
    results = {}
    candidates: dict[str, list[str]] = {"gradient": [], "similarity": []}
    # method -> (images, contributors) scores, for the extra subsets
    score_of = {}
    for output, (phi_train, phi_gen) in features.items():
        for normalise in (False, True):
            for lam in LAMBDAS_REL:
                name = gradient_method_name(output, normalise, lam)
                a, b = (
                    (unit_normalise(phi_train), unit_normalise(phi_gen))
                    if normalise
                    else (phi_train, phi_gen)
                )
                scores = b @ contributor_vectors(a, labels, n_c, lam)  # (images, contributors)
                per = lds(masks_a @ scores.T, actual)
                results[name] = per
                score_of[name] = scores
                candidates["gradient"].append(name)
    sim_candidates = {"similarity gram": (sim_gen, sim_train)}
    if args.imagenet_baseline:
        t0 = time.perf_counter()
        sim_candidates["similarity imagenet-lite0"] = _imagenet_features(gen, images, work)
        timings["imagenet_features_s"] = time.perf_counter() - t0
    for label, (q, t) in sim_candidates.items():
        for top_k in SIMILARITY_TOP_KS:
            scores = similarity_scores(q, t, labels, n_c, top_k)
            per = lds(masks_a @ scores.T, actual)
            results[f"{label} top{top_k}"] = per
            score_of[f"{label} top{top_k}"] = scores
            candidates["similarity"].append(f"{label} top{top_k}")
    pix = torch.nn.functional.normalize(images.flatten(1), dim=1).numpy()
    pix_g = torch.nn.functional.normalize(gen.flatten(1), dim=1).numpy()
    results["pixel cosine top5"] = lds(masks_a @ similarity_scores(pix_g, pix, labels, n_c, 5).T, actual)
    results["random"] = lds(masks_a @ rng.standard_normal((args.generated, n_c)).T, actual)

    chosen = (
        product_methods()
        if args.confirm
        else {m: choose_on_validation(results, names, val) for m, names in candidates.items()}
    )
    extra = (
        extra_subset_losses(args, work, images, labels, gen, n_c, train=False, conds=(conds, gen_conds))
        if args.extra_subsets
        else None
    )
    if extra is not None:
        extra_masks, extra_actual = np.array(extra[0], dtype=float), -np.array(extra[1])
        # fewer would fit the noise of a few subsets, not a ceiling
        if len(extra_masks) >= 2 * (n_c + 1):
            results["datamodel fitted on the extra subsets"] = lds(
                datamodel_predict(extra_masks, extra_actual, masks_a), actual
            )
        extra_lds = {m: lds(extra_masks @ score_of[name].T, extra_actual) for m, name in chosen.items()}
    margin = results[chosen["gradient"]][test] - results[chosen["similarity"]][test]
    boot_both = bootstrap_mean_lds(
        [score_of[chosen["gradient"]][test], score_of[chosen["similarity"]][test]],
        masks_a,
        actual[:, test],
        rng,
    )
    boot_gradient, boot = boot_both[:, 0], boot_both[:, 0] - boot_both[:, 1]
    summary = {
        "K": len(masks),
        "contributors": n_c,
        "works_per_contributor": args.works,
        "steps": args.steps,
        "resolution": args.resolution,
        "test_images": len(margin),
        "validation_images": len(val),
        "chosen_on_validation": chosen,
        "confirmation": args.confirm,
        "overlap_with_development_draw": overlap,
        "test_lds": {
            k: [float(np.nanmean(v[test])), float(np.nanstd(v[test]) / np.sqrt(len(margin)))]
            for k, v in results.items()
        },
        "gradient_chosen_bootstrap_95": np.nanpercentile(boot_gradient, [2.5, 97.5]).tolist(),
        "margin_gradient_minus_similarity": [
            float(np.nanmean(margin)),
            *np.nanpercentile(boot, [2.5, 97.5]).tolist(),
        ],
        "extra_subsets": None
        if extra is None
        else {
            "K": len(extra[0]),
            "seed_sets": args.extra_seed_sets,
            "test_lds_of_chosen": {
                m: [float(np.nanmean(v[test])), float(np.nanstd(v[test]) / np.sqrt(len(margin)))]
                for m, v in extra_lds.items()
            },
        },
        "timings": timings,
        "product_recipe": FeatureConfig().to_dict(),
        "features_measured": {
            "proj_dim": args.proj_dim,
            "timesteps": args.timesteps,
            "noise_draws": args.noise_draws,
            "outputs": args.outputs.split(","),
        },
        "args": vars(args),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    _print_table(summary)


def _gradient_features(
    full, fconf, images, gen, args, work: Path, timings: dict, conds=(None, None)
) -> tuple[np.ndarray, np.ndarray]:
    """Raw features of the training and generated images under one output function, cached per recipe (the
    v-norm cache keeps the name it had before the output option existed)."""
    import torch

    from generator.ml.attribution import GradientFeaturizer

    output = "" if fconf.output == "vnorm" else f"{fconf.output}-"
    cache = work / f"features-{output}t{fconf.timesteps}d{fconf.noise_draws}p{fconf.proj_dim}.npz"
    if cache.exists():  # a resumed run reuses them (their timings are then not re-measured)
        with np.load(cache) as cached:
            return cached["train"], cached["gen"]
    feat = GradientFeaturizer(full, fconf, args.resolution)
    t0 = time.perf_counter()
    phi_train = torch.stack(list(feat.many(images, conds[0]))).numpy()
    timings[f"features_{fconf.output}_per_train_image_s"] = (time.perf_counter() - t0) / len(images)
    t0 = time.perf_counter()
    phi_gen = torch.stack(list(feat.many(gen, conds[1]))).numpy()
    timings[f"features_{fconf.output}_per_generated_image_s"] = (time.perf_counter() - t0) / len(gen)
    np.savez(cache, train=phi_train, gen=phi_gen)
    return phi_train, phi_gen


def subset_losses(args, work: Path, images, labels, gen, n_c: int, timings: dict, rng, conds=(None, None)):
    """Each subset's mask and the generated images' probe losses, averaged over the subset's seed sets."""
    import torch

    seed_sets = [int(j) for j in args.seed_sets.split(",")]
    shard, shards = (int(x) for x in args.shard.split("/"))
    masks, losses = [], []
    t0 = time.perf_counter()
    for k in range(args.subsets):
        mask = subset_mask(rng, n_c)
        if k % shards != shard:
            continue  # another process's subset (the mask is still drawn, so every shard sees the same masks)
        per_set = []
        for j in seed_sets:
            cache = work / subset_cache_name(args.subset_seeds, k, j)
            if cache.exists():
                per_set.append(json.loads(cache.read_text())["loss"])
                continue
            if args.analyse_only:
                break  # report on the subsets finished so far (K is then what was measured)
            ts = time.perf_counter()
            sub = torch.as_tensor(mask[labels])
            base = args.seed if args.subset_seeds == "same" else args.seed + 100 + k
            model = train_model(images[sub], args, seed=base + 1000 * j, conds=_rows(conds[0], sub))
            loss = probe_losses(model, gen, conds=conds[1])
            cache.write_text(
                json.dumps({"mask": mask.tolist(), "loss": loss.tolist(), "device": args.device})
            )
            per_set.append(loss.tolist())
            print(f"subset {k + 1}/{args.subsets} seed set {j}: {time.perf_counter() - ts:.0f} s", flush=True)
        if len(per_set) < len(seed_sets):
            break
        masks.append(mask)
        losses.append(np.mean(per_set, axis=0))
    timings["subset_models_total_s"] = time.perf_counter() - t0
    return masks, losses


def _rows(conds, rows):
    return None if conds is None else conds[rows]


def extra_subset_losses(args, work: Path, images, labels, gen, n_c: int, *, train: bool, conds=(None, None)):
    """The extra half-subsets (masks from rng(seed + 2), cache index K, K + 1, ...; common random numbers, as
    --subset-seeds same), each averaged over --extra-seed-sets: more subsets than the benchmark's K, for a datamodel
    fit and a large-K LDS. Trains them (with --subsets-only, sharded like the benchmark's subsets) or reads what is
    cached; a subset missing a seed set is left out."""
    import torch

    seed_sets = [int(j) for j in args.extra_seed_sets.split(",")]
    shard, shards = (int(x) for x in args.shard.split("/"))
    masks, losses = [], []
    for k, mask in enumerate(extra_subset_masks(args.seed, n_c, args.extra_subsets), start=args.subsets):
        per_set = []
        for j in seed_sets:
            cache = work / subset_cache_name("same", k, j)
            if not cache.exists() and train and k % shards == shard:
                rows = torch.as_tensor(mask[labels])
                model = train_model(
                    images[rows], args, seed=args.seed + 1000 * j, conds=_rows(conds[0], rows)
                )
                record = {
                    "mask": mask.tolist(),
                    "loss": probe_losses(model, gen, conds=conds[1]).tolist(),
                    "device": args.device,
                }
                cache.write_text(json.dumps(record))
                print(f"extra subset {k} seed set {j} done", flush=True)
            if cache.exists():
                per_set.append(json.loads(cache.read_text())["loss"])
        if len(per_set) == len(seed_sets):
            masks.append(mask)
            losses.append(np.mean(per_set, axis=0))
    return (masks, losses) if masks else None


def datamodel_predict(train_masks: np.ndarray, train_actual: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """A linear datamodel per generated image (least squares of the measured effect on the contributor mask, with an
    intercept), fitted on other subsets: the best any additive contributor score can do, up to the fit's noise."""

    def design(m):
        return np.c_[np.ones(len(m)), m]

    weights, *_ = np.linalg.lstsq(design(train_masks), train_actual, rcond=None)
    return design(masks) @ weights


def subset_mask(rng: np.random.Generator, n_c: int) -> np.ndarray:
    """A random half of the contributors (the benchmark's masks are the first K draws of rng(seed + 1))."""
    mask = np.zeros(n_c, dtype=bool)
    mask[rng.choice(n_c, n_c // 2, replace=False)] = True
    return mask


def extra_subset_masks(seed: int, n_c: int, count: int) -> list[np.ndarray]:
    """The extra half-subsets' masks: their own rng, so the benchmark's masks and baselines stay as they were."""
    rng = np.random.default_rng(seed + 2)
    return [subset_mask(rng, n_c) for _ in range(count)]


def subset_cache_name(mode: str, k: int, seed_set: int) -> str:
    name = f"subset{k}" if mode == "vary" else f"subset{k}-sameseed"
    return f"{name}.json" if seed_set == 0 else f"{name}-set{seed_set}.json"


def _imagenet_features(gen, images, work: Path) -> tuple[np.ndarray, np.ndarray]:
    """A stronger similarity baseline than the product's: pooled ImageNet EfficientNet-Lite0 features (the default
    embedding model's trunk), images upscaled to 224 px; cached, since they depend only on the images."""
    cache = work / "imagenet-lite0.npz"
    if cache.exists():
        with np.load(cache) as c:
            return c["gen"], c["train"]
    import torch
    from torch.nn import functional as F

    from embeddings.encoders.torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    import timm

    from embeddings.encoders.default_model import load_lite0_trunk

    trunk = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=0)
    load_lite0_trunk(trunk)
    trunk.eval()

    def feats(x):
        out = []
        with torch.no_grad():
            for i in range(0, len(x), 32):
                b = F.interpolate(x[i : i + 32].clamp(-1, 1), size=224, mode="bicubic", align_corners=False)
                out.append(F.normalize(trunk(b), dim=1))  # inputs in [-1, 1] = the trunk's mean 0.5, std 0.5
        return torch.cat(out).numpy()

    g, t = feats(gen), feats(images)
    np.savez(cache, gen=g, train=t)
    return g, t


def save_grid(gen, path: Path) -> None:
    from PIL import Image

    from generator.ml.diffusion import to_uint8

    arr = to_uint8(gen).numpy()
    n, h, w, _ = arr.shape
    cols = 8
    rows = (n + cols - 1) // cols
    grid = np.full((rows * h, cols * w, 3), 255, dtype=np.uint8)
    for i in range(n):
        grid[(i // cols) * h : (i // cols + 1) * h, (i % cols) * w : (i % cols + 1) * w] = arr[i]
    Image.fromarray(grid).save(path)


def _print_table(s: dict) -> None:
    print(
        f"\nContributor-level LDS: K = {s['K']} half-subset models, {s['contributors']} contributors x "
        f"{s['works_per_contributor']} works, {s['steps']} steps (batch {s['args']['batch_size']}) at {s['resolution']}px, "
        f"{s['test_images']} test images ("
        + (
            "the product's frozen recipe, nothing chosen"
            if s["confirmation"]
            else f"settings chosen on {s['validation_images']} validation images"
        )
        + f"; overlap with the development draw: {s['overlap_with_development_draw']}), "
        f"subset seeds: {s['args']['subset_seeds']}, seed sets per subset averaged: {s['args']['seed_sets']}"
    )
    print(f"{'method':48s} {'test LDS':>9s} {'+- SE':>7s}")
    for k, (m, se) in s["test_lds"].items():
        chosen = " <- product recipe" if s["confirmation"] else " <- chosen"
        mark = chosen if k in s["chosen_on_validation"].values() else ""
        print(f"{k:48s} {m:9.3f} {se:7.3f}{mark}")
    lo, hi = s["gradient_chosen_bootstrap_95"]
    print(
        f"gradient (chosen) test LDS: bootstrap 95% {lo:.3f} .. {hi:.3f} (subset masks and images resampled)"
    )
    mg = s["margin_gradient_minus_similarity"]
    print(f"margin gradient - similarity: {mg[0]:+.3f} (bootstrap 95% {mg[1]:+.3f} .. {mg[2]:+.3f})")
    if s["extra_subsets"]:
        e = s["extra_subsets"]
        print(
            f"over {e['K']} extra subsets (seed sets {e['seed_sets']}): "
            + ", ".join(f"{m} {v[0]:.3f} +- {v[1]:.3f}" for m, v in e["test_lds_of_chosen"].items())
        )
    print("timings: " + ", ".join(f"{k}={v:.3f}" for k, v in s["timings"].items()))
    f, r = s["features_measured"], s["product_recipe"]
    print(
        f"features measured: {f['timesteps']} timesteps x {f['noise_draws']} noise draws, CountSketch {f['proj_dim']}, "
        f"outputs {', '.join(f['outputs'])}; product recipe (generator.ml.attribution.FeatureConfig): {r['output']}, "
        f"{r['timesteps']} x {r['noise_draws']}, {'unit' if r['normalise'] else 'raw'} lambda_rel={r['lambda_rel']}"
    )


if __name__ == "__main__":
    main()
