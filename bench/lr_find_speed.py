"""Wall time of `lr_find(num_it=100)`: ours against 100 plain training steps of the same model, and against
fastai 2.8.12's `lr_find`, alternating in one process (median of `--reps` runs each). And the cost of the trials
`lr_find` adds to a flat range test: on two tasks whose test never falls (plain SGD on spirals, from bench/suggest_fresh.py;
a deep MLP under RMSprop, from bench/suggest_fresh3.py), `lr_find()` against `lr_find(trials=False)`.

"Plain steps": the same `Learner.fit` over 100 training batches, with no scheduler, no snapshot and no
validation. Ours includes the in-memory snapshot and restore; fastai's saves and reloads a model file.

    .venv/bin/python bench/lr_find_speed.py [--reps 11] [--write]
"""
import argparse, os, re, sys, tempfile, time, warnings
os.environ.setdefault('MPLBACKEND', 'Agg')
warnings.filterwarnings('ignore')
from pathlib import Path
import numpy as np
sys.path.insert(0, os.path.dirname(__file__))
from fastai_ref import fastai_methods  # first: captures fastai's methods before onecycle_ext replaces them
from fastai.callback.core import Callback, CancelFitException, CancelValidException
from results import publish
from tasks import learner

class Steps(Callback):
    "Stop after `n` training batches, skipping validation"
    def __init__(self, n): self.n = n
    def after_batch(self):
        if self.learn.train_iter >= self.n: raise CancelFitException()
    def before_validate(self): raise CancelValidException()

def timed(f):
    t = time.perf_counter(); f(); return time.perf_counter() - t

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--reps', type=int, default=11); p.add_argument('--task', default='mnist1d_cnn')
    p.add_argument('--write', action='store_true')
    a = p.parse_args()
    times = {'ours': [], 'plain': [], 'fastai': []}
    with tempfile.TemporaryDirectory() as d:
        for rep in range(a.reps + 1):  # the first round warms up and is not counted
            for name in ('ours', 'plain', 'fastai'):
                learn = learner(a.task, rep)
                learn.path = Path(d)
                n_epoch = 100 // len(learn.dls.train) + 1
                if name == 'ours': t = timed(lambda: learn.lr_find(num_it=100, show_plot=False))
                elif name == 'plain': t = timed(lambda: learn.fit(n_epoch, lr=1e-3, cbs=Steps(100)))
                else:
                    with fastai_methods(): t = timed(lambda: learn.lr_find(num_it=100, show_plot=False))
                if rep: times[name].append(t)
    ours,plain,theirs = (np.median(times[k]) for k in ('ours', 'plain', 'fastai'))
    from suggest_fresh import BY_NAME
    from suggest_fresh3 import FRESH3
    from suggest_tasks import learner as task_learner
    flat_rows = []
    for task in (BY_NAME['spirals_mlp_plain_sgd'], next(t for t in FRESH3 if t.name == 'rings_deep_mlp_rmsprop_noisy')):
        flat,n_trials = {True: [], False: []},set()
        for rep in range(a.reps + 1):
            for trials in flat:
                with warnings.catch_warnings(record=True) as w:
                    warnings.simplefilter('always')
                    t = timed(lambda: task_learner(task, rep % 5).lr_find(show_plot=False, trials=trials))
                n_trials.update(int(m.group(1)) for x in w if (m := re.search(r'best of (\d+) trials', str(x.message))))
                if rep: flat[trials].append(t)
        with_trials,without = np.median(flat[True]),np.median(flat[False])
        flat_rows.append(f"| {task.name} | {'-'.join(map(str, sorted({min(n_trials), max(n_trials)})))} | {with_trials:.3f} | {without:.3f} | {with_trials/without:.1f}x |")
    table = ["| task | ours (s) | 100 plain steps (s) | fastai lr_find (s) | ours / plain | ours / fastai |", "|---|---|---|---|---|---|",
             f"| {a.task} | {ours:.3f} | {plain:.3f} | {theirs:.3f} | {ours/plain:.2f} | {ours/theirs:.2f} |", "",
             "| flat range test | trials run | `lr_find()`, with its trials (s) | `lr_find(trials=False)` (s) | ratio |", "|---|---|---|---|---|",
             *flat_rows]
    publish('lr_find_speed', "lr_find speed (`bench/lr_find_speed.py`)",
            f"`lr_find(num_it=100)`, median of {a.reps} runs each, alternating in one process. "
            "Goals: ours / plain <= 1.1, ours / fastai <= 1. The trials (each `num_it` batches and one validation pass) run "
            "only when the loss falls by less than 1% over the test, going down from where it ended until one trains (at most 8); "
            "the second table is what they cost then, on two such tasks of bench/suggest.py, seeds 0..4 in turn.",
            table, a.write)

if __name__ == '__main__': main()
