"""Kill-and-resume on users' setups, then the cost of checkpointing.

Kills: every setup of tests/resume_job.py (optimizers, losses, fastai callbacks, fit methods, BatchNorm, workers),
each killed (SIGKILL) at random points -- after a random training batch, during a random validation batch, in the
middle of a random checkpoint write -- in fresh processes, then resumed with `resume=True` in another
(tests/test_resume_matrix.py's A, B, C). Counts how many end exactly as the uninterrupted run (weights, optimizer
state, recorder values, logs; goal: all) and how many re-trained more than one save interval.
Cost: `fit_one_cycle(3)` of the demo's 1-D CNN on MNIST-1D with and without `Checkpoint`, alternating in one process.

    .venv/bin/python bench/resume.py [--kills-per-setup 4] [--write]
"""
import argparse, os, random, sys, tempfile, time, warnings
os.environ.setdefault('MPLBACKEND', 'Agg')
warnings.filterwarnings('ignore')
from pathlib import Path
import numpy as np
import torch
sys.path.insert(0, os.path.dirname(__file__)); sys.path.insert(0, str(Path(__file__).parents[1]/'tests'))
from results import publish
from tasks import learner, dls_for
from resume_job import EVERY, SETUPS
from test_resume_matrix import assert_same, run_matrix
from onecycle_ext import Checkpoint
from onecycle_ext.resume import epoch_start_state, run_identity

def random_kills(rng, n):
    "`n` kill points: a training batch of the first 24, a validation batch of the first 6, a checkpoint write of the first 9"
    kinds = {'batch': 24, 'valid': 6, 'write': 9}
    return [f"{kind}:{rng.randint(1, kinds[kind])}" for kind in rng.choices(list(kinds), k=n)]

def kill_matrix(root, per_setup, rng):
    cases = sorted({(s, k) for s in SETUPS for k in random_kills(rng, per_setup)})
    t = time.time()
    res = run_matrix(root, cases)
    killed = identical = within = 0
    for (s,k),(whole,resumed,b,killed_at,error) in res.items():
        if b.returncode != -9: continue  # the run ended before the kill point: not a kill
        killed += 1
        try:
            for part in ('model', 'opt', 'values', 'logs'): assert_same(resumed[part], whole[part])
            identical += 1
        except (AssertionError, TypeError): print(f"NOT identical: {s} {k} {error or ''}")
        within += error is None and resumed['trained'] <= whole['trained'] - killed_at + (2 if k.startswith('write') else 1)*EVERY
    return killed,identical,within,len(SETUPS),time.time() - t

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--kills-per-setup', type=int, default=4); p.add_argument('--write', action='store_true')
    a = p.parse_args()
    dls_for('mnist1d_cnn')
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        killed,identical,within,n_setups,kill_s = kill_matrix(d/'matrix', a.kills_per_setup, random.Random(0))
        # Cost of checkpointing, in this process: fits with and without Checkpoint, alternating.
        torch.set_num_threads(1)
        costs = {k: [] for k in ('none', 'every 7', 'every 1', 'epochs')}
        for rep in range(7):
            for k in (list(costs) if rep % 2 == 0 else list(costs)[::-1]):
                learn = learner('mnist1d_cnn', rep); learn.path = d/f'cost{rep}{k}'
                cbs = {'none': [], 'every 7': [Checkpoint(every_iters=7)], 'every 1': [Checkpoint(every_iters=1)], 'epochs': [Checkpoint()]}[k]
                t = time.perf_counter(); learn.fit_one_cycle(3, 2e-2, cbs=cbs); costs[k].append((time.perf_counter() - t) / 120)
        # One save's cost as the run's history grows: the recorder of a fit of 120 batches, then its per-batch lists
        # (lrs, losses; iters has one item per epoch) padded to 50,120.
        # The first save converts the whole history; the timed ones, like a running Checkpoint's, only what is new.
        save_ms = {}
        for n in (0, 50_000):
            learn = learner('mnist1d_cnn', 0); learn.path = d/f'size{n}'; learn.fit_one_cycle(3, 2e-2)
            rec = learn.recorder
            rec.lrs += rec.lrs[-1:]*n; rec.losses += rec.losses[-1:]*n
            # Saved outside the fit, given what a fit sets for its checkpoints.
            learn.run_identity,learn.epoch_start = run_identity(learn, 3, 2e-2, None, []),epoch_start_state(learn)
            ck = Checkpoint(); ck.learn = learn; ck.save(3, 0)
            times = []
            for _ in range(7):
                t = time.perf_counter(); ck.save(3, 0); times.append(time.perf_counter() - t)
            save_ms[len(rec.lrs)] = 1e3*np.median(times)
    base = np.median(costs['none'])
    table = ["| setups | processes killed | resumed bit-identical | re-trained at most one save interval (two if killed during a background write) |", "|---|---|---|---|",
             f"| {n_setups} | {killed} | {identical} | {within} |", "",
             "| checkpointing | ms per batch | relative to none |", "|---|---|---|"]
    table += [f"| {k} | {1e3*np.median(v):.2f} | {np.median(v)/base:.2f} |" for k,v in costs.items()]
    (short,s_ms),(long,l_ms) = save_ms.items()
    table += ["", "| batches of history | one save (ms) | relative |", "|---|---|---|",
              f"| {short:,} | {s_ms:.1f} | 1.00 |", f"| {long:,} | {l_ms:.1f} | {l_ms/s_ms:.2f} |"]
    publish('resume', "Kill and resume (`bench/resume.py`)",
            f"Every setup of `tests/resume_job.py` (optimizers, losses, fastai callbacks, fit methods, BatchNorm, workers), "
            f"`Checkpoint(every_iters={EVERY})`, SIGKILLed at {a.kills_per_setup} random points each (a training batch, a validation "
            "batch or the middle of a checkpoint write; runs that ended first are not counted), each run a fresh process; "
            f"{kill_s/60:.0f} min. Bit-identical: weights, optimizer state, recorder values and CSV logs equal the uninterrupted run's. "
            "Goal: all. Checkpoint cost: `fit_one_cycle(3)` of the 1-D CNN on MNIST-1D (120 batches), median of 7 fits each, alternating in one process. One save: median of 7, the history padded "
            "as a long run's would be.",
            table, a.write)

if __name__ == '__main__': main()
