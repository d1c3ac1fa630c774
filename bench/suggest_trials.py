"""Beyond the curve, tried (in the previous round, on the first 16 tasks) and not adopted: short 1cycle trials from the finder's starting point at candidate rates
around the curve's lowest point (lr_min x 10**DEC), keeping the best by validation loss. Run on the tuning half
(n_it 50 and 100), then once on the held-out half (n_it 100). Trial results are cached in bench/suggest_trials_cache.json.

    .venv/bin/python bench/suggest_trials.py [--held-out] [--write]
"""
import os, sys, warnings, time, json
os.environ.setdefault('MPLBACKEND', 'Agg'); warnings.filterwarnings('ignore')
import numpy as np, torch
sys.path.insert(0, os.path.dirname(__file__))
from suggest_tasks import TASKS, learner
from suggest import Cache, regret
from results import publish
from onecycle_ext import suggestion_points, trial_losses
from onecycle_ext.lr_finder import Snapshot

torch.set_num_threads(1)
held = '--held-out' in sys.argv
DEC = np.array([-1.5, -1.0, -0.5, 0., 0.5])
cache = Cache(); tc_path = os.path.join(os.path.dirname(__file__), 'suggest_trials_cache.json')
tc = json.load(open(tc_path)) if os.path.exists(tc_path) else {}
lines = ["| trial batches | candidates (decades from the lowest point) | mean regret (points) | worst task |", "|---|---|---|---|"]
for n_it in ((100,) if held else (50, 100)):
    per = []
    for t in [t for t in TASKS if t.held_out == held]:
        regs = {}
        for s in range(5):
            e = cache.entry(t, s); g = [cache.fit(t, s, lr) for lr in t.grid()]
            best = min(g) if t.loss == 'mse' else max(g)
            l,L = suggestion_points(*cache.curve(t, s), 100); m = l[np.argmin(L)]
            cands = [float(f"{m*10**d:.6g}") for d in DEC]
            key = f"{t.name}|{s}|{n_it}"
            if key not in tc:
                t0 = time.time(); learn = learner(t, s); tc[key] = [cands, trial_losses(learn, cands, n_it, Snapshot(learn)), time.time()-t0]
                json.dump(tc, open(tc_path, 'w'))
            cands,vl,_ = tc[key]
            for name,idx in (('5', [0,1,2,3,4]), ('4lo', [0,1,2,3]), ('3', [1,2,3]), ('4hi', [1,2,3,4])):
                i = idx[int(np.argmin([vl[j] for j in idx]))]
                regs.setdefault(name, []).append(regret(t, best, cache.fit(t, s, cands[i])))
            cache.save()
        per.append({k: np.mean(v)/(5 if t.loss == 'mse' else 1) for k,v in regs.items()})
        print(n_it, t.name, {k: f"{v:.1f}" for k,v in per[-1].items()}, flush=True)
    for k,idx in (('5', [0,1,2,3,4]), ('4lo', [0,1,2,3]), ('3', [1,2,3]), ('4hi', [1,2,3,4])):
        lines.append(f"| {n_it} | {[float(x) for x in DEC[idx]]} | {np.mean([p[k] for p in per]):.1f} | {np.max([p[k] for p in per]):.1f} |")
half = 'held-out' if held else 'tuning'
publish(f'suggest_trials_{half}', f"Short trials instead of a curve rule, {half} half (`bench/suggest_trials.py{' --held-out' if held else ''}`)",
        "Each candidate trained for `n_it` batches of 1cycle from the finder's start, best validation loss kept, then the task's "
        "recipe at that rate; seeds 0..4; regret against each seed's best grid rate (the bracketed figure of `bench/suggest.py`; 5% of loss = 1 point). Cost: one trial of 100 "
        "batches plus a validation pass is about one `lr_find`, so 3-5 candidates cost 3-5 `lr_find`s on top of the test.",
        lines, '--write' in sys.argv)
