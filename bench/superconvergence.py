"""Superconvergence without hand-tuning: `lr_find`'s `descent` suggestion (the default before `consensus`), then `fit_one_cycle`, on MNIST-1D with
the demo's CNN (Adam, batch size 100), for 400 steps (10 epochs), over seeds. Side by side, in one process:
fastai 2.8.12's own `lr_find` (`valley`) + `fit_one_cycle`, and a constant learning rate at our suggestion for
the same 400 steps and for 5x as many. Goal: ours reaches at least 95% test accuracy in 400 steps on every seed.

    .venv/bin/python bench/superconvergence.py [--seeds 3] [--write]
"""
import argparse, os, sys, time, warnings
os.environ.setdefault('MPLBACKEND', 'Agg')
warnings.filterwarnings('ignore')
import numpy as np
sys.path.insert(0, os.path.dirname(__file__))
from fastai_ref import fastai_methods  # first: captures fastai's methods before onecycle_ext replaces them
from results import publish
from tasks import learner

EPOCHS = 10  # x 40 batches = 400 steps

def accuracy(learn): return float(learn.recorder.values[-1][2])

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--seeds', type=int, default=3); p.add_argument('--write', action='store_true')
    a = p.parse_args()
    start,rows = time.time(),{k: [] for k in ('ours', 'fastai', 'constant', 'constant x5')}
    lrs = {k: [] for k in ('ours', 'fastai')}
    for seed in range(a.seeds):
        lr = learner('mnist1d_cnn', seed).lr_find(show_plot=False).descent
        l = learner('mnist1d_cnn', seed); l.fit_one_cycle(EPOCHS, lr); rows['ours'].append(accuracy(l))
        l = learner('mnist1d_cnn', seed)
        with fastai_methods():
            v = l.lr_find(show_plot=False).valley
            l = learner('mnist1d_cnn', seed); l.fit_one_cycle(EPOCHS, v)
        rows['fastai'].append(accuracy(l))
        for k,n in (('constant', EPOCHS), ('constant x5', 5*EPOCHS)):
            l = learner('mnist1d_cnn', seed); l.fit(n, lr); rows[k].append(accuracy(l))
        lrs['ours'].append(lr); lrs['fastai'].append(v)
        print(f"seed {seed}: " + ", ".join(f"{k} {v[-1]:.4f}" for k,v in rows.items()), flush=True)
    names = {'ours': f"ours: `lr_find()` (descent) + `fit_one_cycle({EPOCHS})`",
             'fastai': f"fastai 2.8.12: `lr_find()` (valley) + `fit_one_cycle({EPOCHS})`",
             'constant': "constant lr at our suggestion", 'constant x5': "constant lr at our suggestion, 5x the steps"}
    steps = {'ours': 400, 'fastai': 400, 'constant': 400, 'constant x5': 2000}
    table = ["| recipe | steps | suggested lr (per seed) | test accuracy % (per seed) | min % |", "|---|---|---|---|---|"]
    for k,accs in rows.items():
        sug = ", ".join(f"{x:.1e}" for x in lrs.get(k, lrs['ours']))
        table.append(f"| {names[k]} | {steps[k]} | {sug} | {', '.join(f'{100*x:.1f}' for x in accs)} | {100*min(accs):.1f} |")
    publish('superconvergence', "Superconvergence (`bench/superconvergence.py`)",
            f"MNIST-1D, the demo's CNN, Adam, batch size 100, seeds 0..{a.seeds-1}; {time.time()-start:.0f} s. "
            "Goal: ours >= 95% on every seed in 400 steps.",
            table, a.write)

if __name__ == '__main__': main()
