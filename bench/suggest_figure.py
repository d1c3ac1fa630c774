"""The picture of nbs/03_lr_finder.ipynb: on fresh held-out tasks, the LR range test with `consensus` and `valley`, and
the score each task's recipe reaches at each rate of the grid, per seed, with both suggestions; read from the caches
(run `bench/suggest.py` first).

    .venv/bin/python bench/suggest_figure.py [--tasks majority_attn_adamw spirals_mlp_plain_sgd] [--out nbs/images/suggest_heldout.png]
"""
import argparse, os, sys
os.environ.setdefault('MPLBACKEND', 'Agg')
import numpy as np
import matplotlib.pyplot as plt
sys.path.insert(0, os.path.dirname(__file__))
from suggest_fresh import BY_NAME, CACHE
from suggest import Cache, suggest
from onecycle_ext import consensus, valley

def draw(task, cache, ax0, ax1):
    seeds = sorted(int(s) for s in cache.d[task.name])
    lrs,losses = cache.curve(task, seeds[0])
    n = len(lrs) - 5
    ax0.plot(lrs[:n], losses[:n], color='k', lw=1)
    colors = {'consensus': 'C0', 'valley': 'C1'}
    for f in (consensus, valley):
        lr = suggest(f, [lrs, losses])
        ax0.plot(lr, np.interp(np.log(lr), np.log(lrs[:n]), losses[:n]), 'o', c=colors[f.__name__], label=f"{f.__name__}: {lr:.1e}")
    ax0.set_xscale('log'); ax0.set_xlabel('learning rate'); ax0.set_ylabel('smoothed loss'); ax0.legend()
    ax0.set_title(f"lr_find, seed {seeds[0]}")
    scale,unit = (1, 'validation loss') if task.loss == 'mse' else (100, 'validation accuracy %')
    grid = task.grid()
    scores = np.array([[cache.fit(task, s, lr) for lr in grid] for s in seeds])*scale
    for row in scores: ax1.plot(grid, row, '.', c='0.6')
    ax1.plot(grid, scores.mean(0), '-', c='k', lw=1, label=f"grid, mean of seeds {seeds[0]}..{seeds[-1]}")
    for f in (consensus, valley):
        sug = [suggest(f, cache.curve(task, s)) for s in seeds]
        ax1.plot(sug, [scale*cache.fit(task, s, lr) for s,lr in zip(seeds, sug)], 'o', c=colors[f.__name__],
                 label=f"at {f.__name__}'s suggestion (each seed)")
    ax1.set_xscale('log'); ax1.set_xlabel('learning rate'); ax1.set_ylabel(unit); ax1.legend(fontsize=8)
    ax1.set_title(f"{task.name}: {task.epochs} epochs", fontsize=10)

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--tasks', nargs='+', default=['majority_attn_adamw', 'spirals_mlp_plain_sgd'])
    p.add_argument('--out', default=os.path.join(os.path.dirname(__file__), '..', 'nbs', 'images', 'suggest_heldout.png'))
    a = p.parse_args()
    cache = Cache(CACHE)
    fig,axs = plt.subplots(len(a.tasks), 2, figsize=(11, 4*len(a.tasks)), squeeze=False)
    for name,(ax0,ax1) in zip(a.tasks, axs): draw(BY_NAME[name], cache, ax0, ax1)
    fig.tight_layout()
    fig.savefig(a.out, dpi=72)
    print(f"wrote {a.out}")

if __name__ == '__main__': main()
