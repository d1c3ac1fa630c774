"""Suggestion regret on tasks nobody tuned the default on.

For each of the 16 task configurations of `bench/suggest_tasks.py` (8 tuning, 8 held out, fixed before any rule was
tried) and each seed: train the task's recipe (`fit_one_cycle(epochs)` or `fine_tune(epochs)`) at every learning rate
of a grid with 4 points per decade over the range where anything trains, run `lr_find` on the fresh learner, and train
at each function's suggestion with the same recipe and seed. Regret = best grid score - score at the suggestion:
accuracy points for classification (multi-label: `accuracy_multi`), relative increase of the validation loss (%) for
regression. Every fit is cached in bench/suggest_cache.json (grid, curves, suggestions), so choosing rules on the saved
curves costs only the fits at new rates. Delete the cache after changing `lr_find`, the tasks or their recipes.

    .venv/bin/python bench/suggest.py [--quick] [--seeds S ...] [--write]
"""
import argparse, inspect, json, os, sys, time, warnings
os.environ.setdefault('MPLBACKEND', 'Agg')
warnings.filterwarnings('ignore')
import numpy as np
import torch
sys.path.insert(0, os.path.dirname(__file__))
from results import publish
from suggest_tasks import TASKS, learner, score
from fastai.learner import Learner
from onecycle_ext import valley, slide, minimum, steep, descent, consensus, suggestion_points

CACHE = os.path.join(os.path.dirname(__file__), 'suggest_cache.json')
FUNCS = (valley, slide, minimum, steep, descent, consensus)

class Cache:
    "Grid scores, lr_find curves and fits at other rates, per task and seed, kept on disk between runs"
    def __init__(self, path=CACHE):
        self.path = path
        self.d = json.load(open(path)) if os.path.exists(path) else {}
    def save(self):
        with open(self.path, 'w') as f: json.dump(self.d, f, indent=0, sort_keys=True)
    def entry(self, task, seed): return self.d.setdefault(task.name, {}).setdefault(str(seed), {'fits': {}})
    def fit(self, task, seed, lr):
        "The task's score at `lr` (trained once, then read from the cache)"
        fits = self.entry(task, seed)['fits']
        key = f"{lr:.6g}"
        if key not in fits: fits[key] = score(task, seed, float(key))
        return fits[key]
    def curve(self, task, seed):
        "The LR range test of the fresh learner: (lrs, smoothed losses) as lists"
        e = self.entry(task, seed)
        if 'curve' not in e:
            res = learner(task, seed).lr_find(show_plot=False, suggest_funcs=(valley,))
            e['curve'] = [list(map(float, res.lrs)), list(map(float, res.losses))]
        return e['curve']

def regret(task, best, s):
    "Points of accuracy below the grid's best, or % of validation loss above it (capped at 1000% when it diverges)"
    if task.loss == 'mse': return min(100*(s - best)/best, 1000.) if np.isfinite(s) else 1000.
    return 100*(best - s)

def suggest(func, curve, num_it=100):
    lrs,losses = suggestion_points(*curve, num_it)
    return float(func(torch.tensor(lrs), torch.tensor(losses), num_it)[0])

def evaluate(cache, funcs, tasks, seeds, log=print):
    "{task: {func name: (suggestions, regrets)}} plus each task's best grid score per seed"
    out = {}
    for task in tasks:
        rows = {f.__name__ if hasattr(f, '__name__') else str(f): ([], []) for f in funcs}
        for seed in seeds:
            grid = [cache.fit(task, seed, lr) for lr in task.grid()]
            best = min(grid) if task.loss == 'mse' else max(grid)
            curve = cache.curve(task, seed)
            for f,(suggs,regs) in zip(funcs, rows.values()):
                lr = suggest(f, curve)
                suggs.append(lr); regs.append(regret(task, best, cache.fit(task, seed, lr)))
            log(f"{task.name} seed {seed}: best {best:.3f} at {task.grid()[int(np.argmin(grid) if task.loss == 'mse' else np.argmax(grid))]:.1e}; "
                + ", ".join(f"{k} {s[-1]:.1e} ({r[-1]:+.1f})" for k,(s,r) in rows.items()))
            cache.save()
        out[task.name] = rows
    return out

def table(res, tasks, names, default):
    "One row per task: the unit, then each function's mean regret (worst seed) and geometric-mean suggestion"
    head = "| task | unit | " + " | ".join(f"{n}{' (default)' if n == default else ''}" for n in names) + " |"
    lines = [head, "|---|---|" + "---|"*len(names)]
    for t in tasks:
        cells = []
        for n in names:
            s,r = res[t.name][n]
            cells.append(f"{np.mean(r):.1f} (worst {np.max(r):.1f}) at {np.exp(np.mean(np.log(s))):.0e}")
        lines.append(f"| {t.name}: {t.about}, {t.opt.func.__name__ if hasattr(t.opt, 'func') else t.opt.__name__}, bs {t.bs}, "
                     f"{t.epochs} ep{', fine_tune' if t.fine_tune else ''} | {t.unit} | " + " | ".join(cells) + " |")
    # Summary in points: a regression's % of loss counts 1 point per 5% (the goal's equivalence).
    def pts(t, r): return np.asarray(r)/5 if t.loss == 'mse' else np.asarray(r)
    mean = {n: np.mean([np.mean(pts(t, res[t.name][n][1])) for t in tasks]) for n in names}
    worst = {n: np.max([np.mean(pts(t, res[t.name][n][1])) for t in tasks]) for n in names}
    lines.append("| **mean over tasks** | points | " + " | ".join(f"**{mean[n]:.1f}**" for n in names) + " |")
    lines.append("| **worst task** | points | " + " | ".join(f"**{worst[n]:.1f}**" for n in names) + " |")
    return lines

def default_name():
    "The name of `lr_find`'s default suggestion"
    f = inspect.signature(Learner.lr_find).parameters['suggest_funcs'].default
    return (f[0] if isinstance(f, tuple) else f).__name__

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--quick', action='store_true', help='2 seeds, 4 tasks of each half')
    p.add_argument('--write', action='store_true', help='write the tables into bench/RESULTS.md')
    p.add_argument('--seeds', type=int, nargs='+', help='other seeds than the default 0..4')
    a = p.parse_args()
    torch.set_num_threads(1)
    seeds = a.seeds or ([0, 1] if a.quick else list(range(5)))
    tasks = [t for i,t in enumerate(TASKS) if not a.quick or i % 2 == 0]
    start = time.time()
    cache = Cache()
    res = evaluate(cache, FUNCS, tasks, seeds)
    names,default = [f.__name__ for f in FUNCS],default_name()
    tune,held = [t for t in tasks if not t.held_out],[t for t in tasks if t.held_out]
    lines = ["### Held out (the figures to read)", ""] + table(res, held, names, default)
    lines += ["", "### Tuning half (rules were chosen on these)", ""] + table(res, tune, names, default)
    publish('suggest', f"LR finder suggestions (`bench/suggest.py{' --quick' if a.quick else ''}`)",
            f"Each task's recipe at each grid rate (4 per decade) and at each suggestion, seeds {seeds}; "
            f"{time.time()-start:.0f} s this run (fits read from bench/suggest_cache.json where there; about 12 min from an empty "
            "cache on 2 shared cores). Cells: mean regret over seeds "
            "(worst seed) at the geometric-mean suggestion. Goal for the default on the held-out half: mean at most "
            "1 point (5% of loss), worst task at most 3, never more than 1 point worse than `valley` on a task.",
            lines, a.write)

if __name__ == '__main__': main()
