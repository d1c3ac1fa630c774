"""The rules tried for `lr_find`'s default on the 16 development tasks of `bench/suggest_tasks.py`. The first rounds read
the tuning half only; the first held-out half was then looked at, so the third round (curves averaged over a window of
log lr) was chosen on all 16. The fresh held-out set of `bench/suggest_fresh.py` is read only by `bench/suggest.py`.
Fits at new rates are added to bench/suggest_cache.json.

    .venv/bin/python bench/suggest_rules.py [--write]
"""
import functools, os, sys, warnings
os.environ.setdefault('MPLBACKEND', 'Agg')
warnings.filterwarnings('ignore')
import numpy as np
import torch
sys.path.insert(0, os.path.dirname(__file__))
from suggest_tasks import TASKS
from suggest import Cache, evaluate
from results import publish
from onecycle_ext import valley, minimum, descent
from onecycle_ext.lr_finder import _curve, _averaged

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

def median_clip(k):
    "min/k kept between where the loss has made half and 80% of its fall (the default's shape)"
    @rule(f"min/{k} in [fall0.5,fall0.8]")
    def f(lrs, losses, num_it):
        a,lo,hi = min_div(k)(lrs, losses, num_it)[0],fall_frac(.5)(lrs, losses, num_it)[0],fall_frac(.8)(lrs, losses, num_it)[0]
        lr = float(np.clip(a, lo, hi)); return lr,(lr, 0.)
    return f

def averaged(f, decades):
    "`f` read on the curve averaged over `decades` of log lr"
    @rule(f"{f.__name__}~{decades}")
    def g(lrs, losses, num_it):
        l,s = _curve(lrs, losses); return f(l, _averaged(l, s, decades), num_it)
    return g

RULES = [valley, minimum, descent, min_div(3), min_div(5), min_div(20), rise_div(0.25, 3), rise_div(0.25, 10), fall_frac(0.5),
         fall_frac(0.8), geo(valley, min_div(1)), clipped(descent, 30, 2), clipped(descent, 10, 3),
         # second round, after the first table
         fall_frac(0.7), fall_frac(0.9), geo(min_div(5), fall_frac(0.8)), geo(min_div(3), fall_frac(0.8)),
         median(min_div(5), fall_frac(0.8), clipped(descent, 10, 3)), median(min_div(4), fall_frac(0.8), fall_frac(0.5)),
         clipped(fall_frac(0.8), 10, 2),
         # third round, on all 16 tasks: the lowest point of a flat, noisy curve is noise, so average the curve first
         *[averaged(min_div(k), d) for d in (.5, .75, 1.) for k in (3, 4, 5)],
         *[averaged(median_clip(k), d) for d in (.5, .75, 1.) for k in (3, 4, 5)]]

if __name__ == '__main__':
    torch.set_num_threads(1)
    tasks = TASKS
    res = evaluate(Cache(), RULES, tasks, range(5), log=lambda s: None)
    lines = ["| rule | " + " | ".join(t.name for t in tasks) + " | mean | worst | tasks > valley+1 |", "|---|" + "---|"*(len(tasks)+3)]
    for n in res[tasks[0].name].funcs:
        per = [res[t.name].regret(n) for t in tasks]
        vs = np.subtract(per, [res[t.name].regret('valley') for t in tasks])
        lines.append(f"| {n} | " + " | ".join(f"{v:.1f}" for v in per) + f" | {np.mean(per):.1f} | {np.max(per):.1f} | {sum(v > 1 for v in vs)} |")
    publish('suggest_rules', "Curve rules tried for the default, 16 development tasks (`bench/suggest_rules.py`)",
            "Regret in points against the best fixed grid rate, mean over seeds 0..4 (5% of validation loss = 1 point), as in "
            "`bench/suggest.py`. The default, `consensus`, is `min/4 in [fall0.5,fall0.8]~0.75`. `~d`: read on the curve "
            "averaged over d decades of log lr. The first 8 columns are the tuning half, the next 8 the first held-out half.",
            lines, '--write' in sys.argv)
