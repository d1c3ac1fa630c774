"""The rules tried for `lr_find`'s default, on the TUNING half of `bench/suggest_tasks.py` only (the held-out half is
read by `bench/suggest.py` once a rule is chosen). Fits at new rates are added to bench/suggest_cache.json.

    .venv/bin/python bench/suggest_rules.py [--held-out] [--write]   # --held-out: only after the choice, to report it
"""
import functools, os, sys, warnings
os.environ.setdefault('MPLBACKEND', 'Agg')
warnings.filterwarnings('ignore')
import numpy as np
import torch
sys.path.insert(0, os.path.dirname(__file__))
from suggest_tasks import TASKS
from suggest import Cache, evaluate, regret as regret_
from results import publish
from onecycle_ext import valley, minimum, descent
from onecycle_ext.lr_finder import _curve

def rule(name):
    def deco(f): f.__name__ = name; return f
    return deco

def min_div(k):
    @rule(f"min/{k}")
    def f(lrs, losses, num_it):
        lrs,losses = _curve(lrs, losses); i = int(np.argmin(losses))
        return lrs[i]/k,(lrs[i], losses[i])
    return f

def rise_div(frac, k):
    "The last lr before the loss rises `frac` of its drop above its minimum, divided by k"
    @rule(f"rise{frac}/{k}")
    def f(lrs, losses, num_it):
        lrs,losses = _curve(lrs, losses); i = int(np.argmin(losses))
        drop = max(losses[0] - losses[i], 1e-12)
        j = i
        while j+1 < len(losses) and losses[j+1] <= losses[i] + frac*drop: j += 1
        return lrs[j]/k,(lrs[j], losses[j])
    return f

def fall_frac(frac):
    "The first lr where the loss has made `frac` of its total drop"
    @rule(f"fall{frac}")
    def f(lrs, losses, num_it):
        lrs,losses = _curve(lrs, losses); i = int(np.argmin(losses))
        target = losses[0] - frac*(losses[0] - losses[i])
        j = int(np.argmax(losses[:i+1] <= target))
        return lrs[j],(lrs[j], losses[j])
    return f

def geo(f1, f2):
    @rule(f"geo({f1.__name__},{f2.__name__})")
    def f(lrs, losses, num_it):
        a,b = f1(lrs, losses, num_it)[0],f2(lrs, losses, num_it)[0]
        lr = float(np.sqrt(a*b)); return lr,(lr, float(np.interp(np.log(lr), np.log(_curve(lrs, losses)[0]), _curve(lrs, losses)[1])))
    return f

def clipped(f0, lo_k, hi_k):
    "f0's suggestion kept within [lr_min/lo_k, lr_min/hi_k]"
    @rule(f"{f0.__name__}[min/{lo_k},min/{hi_k}]")
    def f(lrs, losses, num_it):
        a = f0(lrs, losses, num_it)[0]
        l,s = _curve(lrs, losses); m = l[int(np.argmin(s))]
        lr = float(np.clip(a, m/lo_k, m/hi_k)); return lr,(lr, float(np.interp(np.log(lr), np.log(l), s)))
    return f

def median(*fs):
    @rule("median(" + ",".join(f.__name__ for f in fs) + ")")
    def f(lrs, losses, num_it):
        lr = float(np.exp(np.median([np.log(g(lrs, losses, num_it)[0]) for g in fs])))
        l,s = _curve(lrs, losses); return lr,(lr, float(np.interp(np.log(lr), np.log(l), s)))
    return f

RULES = [valley, minimum, descent, min_div(3), min_div(5), min_div(20), rise_div(0.25, 3), rise_div(0.25, 10), fall_frac(0.5),
         fall_frac(0.8), geo(valley, min_div(1)), clipped(descent, 30, 2), clipped(descent, 10, 3),
         # second round, after the first table
         fall_frac(0.7), fall_frac(0.9), geo(min_div(5), fall_frac(0.8)), geo(min_div(3), fall_frac(0.8)),
         median(min_div(5), fall_frac(0.8), clipped(descent, 10, 3)), median(min_div(4), fall_frac(0.8), fall_frac(0.5)),
         clipped(fall_frac(0.8), 10, 2)]

if __name__ == '__main__':
    torch.set_num_threads(1)
    held = '--held-out' in sys.argv
    tasks = [t for t in TASKS if t.held_out == held]
    res = evaluate(Cache(), RULES, tasks, range(5), log=lambda s: None)
    lines = ["| rule | " + " | ".join(t.name for t in tasks) + " | mean | worst | tasks > valley+1 |", "|---|" + "---|"*(len(tasks)+3)]
    pts = lambda n: [np.mean(res[t.name][n][1]) / (5 if t.loss == 'mse' else 1) for t in tasks]  # 5% of loss = 1 point
    for n in res[tasks[0].name]:
        per = pts(n)
        vs = np.subtract(per, pts('valley'))
        lines.append(f"| {n} | " + " | ".join(f"{v:.1f}" for v in per) + f" | {np.mean(per):.1f} | {np.max(per):.1f} | {sum(v > 1 for v in vs)} |")
    # The floor: the one grid rate that is best on average over the seeds still has a regret (each seed's best is a max of noisy fits).
    cache = Cache()
    floor = []
    for t in tasks:
        g = np.array([[cache.fit(t, s, lr) for lr in t.grid()] for s in range(5)])
        best = g.min(1) if t.loss == 'mse' else g.max(1)
        r = [[regret_(t, b, v) for v in row] for b,row in zip(best, g)]
        floor.append(np.min(np.mean(r, 0)) / (5 if t.loss == 'mse' else 1))
    lines.append("| floor: the best single grid rate per task | " + " | ".join(f"{v:.1f}" for v in floor) + f" | {np.mean(floor):.1f} | {np.max(floor):.1f} | |")
    half = 'held-out' if held else 'tuning'
    publish(f'suggest_rules_{half}', f"Curve rules tried for the default, {half} half (`bench/suggest_rules.py{' --held-out' if held else ''}`)",
            "Mean regret over seeds 0..4 per task, in points (5% of validation loss = 1 point); rates cached with `bench/suggest.py`'s. "
            "`consensus` is `median(min/4,fall0.8,fall0.5)`. The floor is what no rule can beat: each seed's best is a max of noisy fits.",
            lines, '--write' in sys.argv)
