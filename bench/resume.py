"""Kill-and-resume on MNIST-1D: SIGKILL a training process at random moments, resume it with `resume=True`,
and count how many runs end bit-identical to an uninterrupted one (goal: all). Then the cost of
checkpointing: the same fit with and without `Checkpoint`, alternating in one process.

Each run is `fit_one_cycle(3)` of the demo's 1-D CNN (120 batches, dropout-free but shuffled data, Adam)
with `Checkpoint(every_iters=7)`, in a forked child process (one torch thread).

    .venv/bin/python bench/resume.py [--kills 100] [--write]
"""
import argparse, multiprocessing as mp, os, random, signal, sys, tempfile, time, warnings
os.environ.setdefault('MPLBACKEND', 'Agg')
warnings.filterwarnings('ignore')
from pathlib import Path
import numpy as np
import torch
sys.path.insert(0, os.path.dirname(__file__))
from results import publish
from tasks import learner, dls_for
from onecycle_ext import Checkpoint

def train(path, resume=False, ckpt=True, every_iters=7):
    torch.set_num_threads(1)
    learn = learner('mnist1d_cnn', 0)
    learn.path = Path(path)
    learn.fit_one_cycle(3, 2e-2, cbs=[Checkpoint(every_iters=every_iters)] if ckpt else [], resume=resume)
    torch.save(learn.model.state_dict(), Path(path)/'final.pth')

def child(path, resume=False):
    p = mp.get_context('fork').Process(target=train, args=(path, resume))
    p.start()
    return p

def same(a, b): return all(torch.equal(a[k], b[k]) for k in a)

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--kills', type=int, default=100); p.add_argument('--write', action='store_true')
    a = p.parse_args()
    rng = random.Random(0)
    dls_for('mnist1d_cnn')  # made once here, so the children only train
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        t = time.time(); c = child(d/'whole'); c.join(); full = time.time() - t
        whole = torch.load(d/'whole'/'final.pth')
        identical,killed,finished_first,resumed_from_ckpt = 0,0,0,0
        while killed < a.kills:
            run = d/f'run{killed}_{finished_first}'
            c = child(run); time.sleep(rng.uniform(0.02, 0.95) * full); os.kill(c.pid, signal.SIGKILL); c.join()
            if c.exitcode != -signal.SIGKILL: finished_first += 1; continue  # the run ended before the kill: not a kill
            killed += 1
            resumed_from_ckpt += (run/'models').exists() and any((run/'models').glob('*.ckpt'))
            c = child(run, resume=True); c.join()
            identical += c.exitcode == 0 and same(torch.load(run/'final.pth'), whole)
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
            ck = Checkpoint(); ck.learn = learn; ck.save(3, 0)
            times = []
            for _ in range(7):
                t = time.perf_counter(); ck.save(3, 0); times.append(time.perf_counter() - t)
            save_ms[len(rec.lrs)] = 1e3*np.median(times)
    base = np.median(costs['none'])
    table = ["| processes killed | resumed from a checkpoint (the rest died before the first) | bit-identical to the uninterrupted run |",
             "|---|---|---|", f"| {killed} | {resumed_from_ckpt} | {identical} |", "",
             "| checkpointing | ms per batch | relative to none |", "|---|---|---|"]
    table += [f"| {k} | {1e3*np.median(v):.2f} | {np.median(v)/base:.2f} |" for k,v in costs.items()]
    (short,s_ms),(long,l_ms) = save_ms.items()
    table += ["", "| batches of history | one save (ms) | relative |", "|---|---|---|",
              f"| {short:,} | {s_ms:.1f} | 1.00 |", f"| {long:,} | {l_ms:.1f} | {l_ms/s_ms:.2f} |"]
    publish('resume', "Kill and resume (`bench/resume.py`)",
            f"`fit_one_cycle(3)` of the 1-D CNN on MNIST-1D (120 batches, {full:.1f} s uninterrupted in a child process), "
            "`Checkpoint(every_iters=7)`, SIGKILL at a uniformly random moment (runs that ended first are not counted), then "
            "`resume=True`. Goal: all bit-identical. "
            "Checkpoint cost: median of 7 fits each, alternating in one process. One save: median of 7, the history padded "
            "as a long run's would be.",
            table, a.write)

if __name__ == '__main__': main()
