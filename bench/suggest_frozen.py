"""A setup outside bench/suggest.py for the rate of `fine_tune` on a frozen learner: fastai's `vision_learner` (resnet18,
random init) trained on scikit-learn's digits 0-4 (32x32 RGB), its body loaded into a new learner for digits 5-9 and
frozen, as `vision_learner` leaves a pretrained model. Per seed: `lr_find()`, then `fine_tune(2, lr)` at the rate it
suggests, at 10 times that (`lr_find_frozen10` of bench/suggest.py, which the seventh fresh set's rule chose), at
fastai's `valley` and at `fine_tune`'s default `base_lr`. About 6 minutes on 2 cores.

    .venv/bin/python bench/suggest_frozen.py [--write]
"""
import os, sys, tempfile, time, warnings
os.environ.setdefault('MPLBACKEND', 'Agg')
warnings.filterwarnings('ignore')
from pathlib import Path
import numpy as np
import torch
from PIL import Image
from sklearn.datasets import load_digits
from fastai.vision.all import ImageDataLoaders, ProgressCallback, vision_learner, resnet18, accuracy, set_seed
sys.path.insert(0, os.path.dirname(__file__))
from results import publish
import onecycle_ext  # noqa: F401  (lr_find, fine_tune)

SEEDS = (1, 2, 3)

def write_digits(root):
    "scikit-learn's digits as 32x32 RGB PNGs: 0-4 under root/a, 5-9 under root/b, one folder per class"
    d = load_digits()
    for i,(img,y) in enumerate(zip(d.images, d.target)):
        folder = root/('a' if y < 5 else 'b')/str(y)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img/16*255).astype(np.uint8)).resize((32, 32), Image.NEAREST).convert('RGB').save(folder/f'{i}.png')

def learner(root, part, seed, body=None):
    "A quiet resnet18 learner on `part` (30% to validate); with `body`, those weights loaded and frozen"
    set_seed(seed, reproducible=True)
    dls = ImageDataLoaders.from_folder(root/part, valid_pct=0.3, seed=0, bs=64, num_workers=0)
    learn = vision_learner(dls, resnet18, pretrained=False, metrics=accuracy)
    learn.remove_cb(ProgressCallback)
    learn.logger = lambda *a, **k: None
    if body is not None:
        learn.model[0].load_state_dict(body)
        learn.freeze()
    return learn

def main():
    torch.set_num_threads(2)
    start = time.time()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        write_digits(root)
        pre = learner(root, 'a', 0)
        pre.fit_one_cycle(6, 3e-3)
        body = pre.model[0].state_dict()
        rates,scores = {},{}
        for seed in SEEDS:
            res = learner(root, 'b', seed, body).lr_find(show_plot=False)
            for name,lr in (('`lr_find()`', res.consensus), ('10 times that', 10*res.consensus), ('`valley`', res.valley),
                            ("`fine_tune`'s default", 2e-3)):
                learn = learner(root, 'b', seed, body)
                learn.fine_tune(2, lr)
                rates.setdefault(name, []).append(lr)
                scores.setdefault(name, []).append(float(learn.recorder.values[-1][2]))
    lines = ["| rate | rates (seeds " + ", ".join(map(str, SEEDS)) + ") | accuracy | mean |", "|---|---|---|---|"]
    lines += [f"| {n} | {', '.join(f'{r:.1e}' for r in rates[n])} | {', '.join(f'{100*s:.1f}' for s in scores[n])} | "
              f"**{100*np.mean(scores[n]):.1f}** |" for n in rates]
    publish('suggest_frozen', "The rate for `fine_tune` on a frozen resnet18 (`bench/suggest_frozen.py`)",
            f"Digits 0-4 pretrain a resnet18 (random init, `fit_one_cycle(6, 3e-3)`); a new learner for digits 5-9 loads its body, "
            f"freezes, runs `lr_find()` and `fine_tune(2, rate)`; validation accuracy (%) per seed; {time.time()-start:.0f} s.",
            lines, '--write' in sys.argv)

if __name__ == '__main__': main()
