"""The picture of nbs/03_lr_finder.ipynb: on one held-out task, the LR range test with `consensus` and `valley`, and the
accuracy the task's recipe reaches at each rate of the grid, per seed, with both suggestions; read from
bench/suggest_cache.json (run `bench/suggest.py` first).

    .venv/bin/python bench/suggest_figure.py [--task mnist1d_noisy_cnn] [--out nbs/images/suggest_heldout.png]
"""
import argparse, os, sys
os.environ.setdefault('MPLBACKEND', 'Agg')
import numpy as np
import matplotlib.pyplot as plt
sys.path.insert(0, os.path.dirname(__file__))
from suggest_tasks import BY_NAME
from suggest import Cache, suggest
from onecycle_ext import consensus, valley, suggestion_points

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--task', default='mnist1d_noisy_cnn')
    p.add_argument('--out', default=os.path.join(os.path.dirname(__file__), '..', 'nbs', 'images', 'suggest_heldout.png'))
    a = p.parse_args()
    task,cache = BY_NAME[a.task],Cache()
    assert task.held_out, f"{a.task} is a tuning task: show a held-out one"
    seeds = sorted(int(s) for s in cache.d[task.name])
    fig,(ax0,ax1) = plt.subplots(1, 2, figsize=(11, 4))
    lrs,losses = cache.curve(task, seeds[0])
    n = len(lrs) - 5
    ax0.plot(lrs[:n], losses[:n], color='k', lw=1)
    colors = {'consensus': 'C0', 'valley': 'C1'}
    for f in (consensus, valley):
        lr = suggest(f, [lrs, losses])
        ax0.plot(lr, np.interp(np.log(lr), np.log(lrs[:n]), losses[:n]), 'o', c=colors[f.__name__], label=f"{f.__name__}: {lr:.1e}")
    ax0.set_xscale('log'); ax0.set_xlabel('learning rate'); ax0.set_ylabel('smoothed loss'); ax0.legend()
    ax0.set_title(f"lr_find, seed {seeds[0]}")
    grid = task.grid()
    accs = np.array([[cache.fit(task, s, lr) for lr in grid] for s in seeds])*100
    for s,row in zip(seeds, accs): ax1.plot(grid, row, '.', c='0.6')
    ax1.plot(grid, accs.mean(0), '-', c='k', lw=1, label=f"grid, mean of seeds {seeds[0]}..{seeds[-1]}")
    for f in (consensus, valley):
        sug = [suggest(f, cache.curve(task, s)) for s in seeds]
        acc = [100*cache.fit(task, s, lr) for s,lr in zip(seeds, sug)]
        ax1.plot(sug, acc, 'o', c=colors[f.__name__], label=f"at {f.__name__}'s suggestion (each seed)")
    ax1.set_xscale('log'); ax1.set_xlabel('learning rate'); ax1.set_ylabel('validation accuracy %'); ax1.legend(fontsize=8)
    ax1.set_title(f"{task.name}: {task.epochs} epochs of fit_one_cycle")
    fig.tight_layout()
    fig.savefig(a.out, dpi=72)
    print(f"wrote {a.out}")

if __name__ == '__main__': main()
