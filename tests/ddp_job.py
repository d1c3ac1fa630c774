"""The job of the distributed tests, one process per rank:

    python -m torch.distributed.run --nproc_per_node 2 --master_port PORT tests/ddp_job.py OUT MODES [ARGS_JSON]

For each mode of the comma-separated MODES, each rank runs `MODES[mode](**ARGS.get(mode, {}))` and saves what it
returns to `OUT/<mode>-rank<r>.pt` (plain values and tensors: `torch.load(weights_only=True)` reads it), so one
launch (the costly part) can run several modes. A new mode (checkpoint, kill, resume...) is one more function in
`MODES` returning a dict. `learner()` and `CASES` are also what the tests run in a single process."""
import contextlib, json, os, signal, sys, warnings
from functools import partial
from pathlib import Path
import torch
from torch import nn
import matplotlib; matplotlib.use('Agg')
import matplotlib.pyplot as plt
from fastai.callback.core import Callback
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.optimizer import Adam
from fastai.torch_core import set_seed, rank_distrib
from fastai.distributed import DistributedDL
FASTAI_LEN = DistributedDL.__len__  # fastai's in the launched job, which imports this before `onecycle_ext` (not so under pytest)
from conftest import fastai_methods  # captures fastai's fit methods, then imports onecycle_ext
from onecycle_ext import Checkpoint, OneCycleScheduler, PartialOneCycleScheduler
from onecycle_ext.saving import _plain
from resume_job import Noisy

N_TRAIN,N_VALID,BS = 112,40,16  # 7 batches, dropping the last partial one: 3 per rank on 2 ranks (fastai says 4)

def learner(n_train=N_TRAIN, path=None, batchnorm=False, workers=0):
    """A model with dropout (and BatchNorm) in 2 parameter groups, Adam with weight decay, shuffled training data; the same on
    every rank. With `workers`, the loaders' worker processes load the items with noise (resume_job's `Noisy`, counting)"""
    set_seed(0)
    x = torch.randn(n_train + N_VALID, 8); y = (x[:, :2].sum(1) > 0).long()
    ds = Noisy if workers else lambda x,y: list(zip(x, y))
    dls = DataLoaders(DataLoader(ds(x[:n_train], y[:n_train]), bs=BS, shuffle=True, drop_last=True, num_workers=workers),
                      DataLoader(ds(x[n_train:], y[n_train:]), bs=BS, num_workers=workers))
    model = nn.Sequential(nn.Linear(8, 32), *([nn.BatchNorm1d(32)] if batchnorm else []), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 2))
    learn = Learner(dls, model, loss_func=nn.CrossEntropyLoss(), opt_func=partial(Adam, wd=0.01), path=path or '.',
                    splitter=lambda m: [list(m[0].parameters()), list(m[-1].parameters())])
    learn.remove_cbs(learn.cbs.filter(lambda cb: type(cb).__name__ == 'ProgressCallback'))
    learn.logger = lambda *a, **k: None
    return learn

class Watch(Callback):
    "Records, per fit: the model's type, the loader's lengths, the batches run per epoch, their samples and losses, the schedule"
    order = 70  # after the schedulers' `after_fit` (60) has filled `recorder.hps`
    def __init__(self): self.fits = []
    def before_fit(self):
        dl = self.dls.train
        self.fits.append({'model': type(self.learn.model).__name__, 'len': len(dl),
                          'fastai_len': FASTAI_LEN(dl) if isinstance(dl, DistributedDL) else None,
                          'batches': [], 'samples': [], 'losses': []})
    def before_epoch(self): self.fits[-1]['batches'].append(0)
    def after_batch(self):
        if not self.training: return
        fit = self.fits[-1]
        fit['batches'][-1] += 1
        fit['samples'] += self.xb[0][:, 0].tolist()
        fit['losses'].append(self.loss.item())
    def after_fit(self):
        rec = self.learn.recorder
        self.fits[-1]['hps'] = {k: [float(v) for v in vs] for k,vs in rec.hps.items()}
        self.fits[-1]['group_hps'] = {k: [[float(v) for v in row] for row in rows] for k,rows in getattr(rec, 'group_hps', {}).items()}

# Every fit method and scheduler, each a fit (or two) of the learner: name -> (runs with fastai's methods, how).
CASES = {
    'fit_one_cycle': (False, lambda l: l.fit_one_cycle(3, 1e-2)),
    'fastai_fit_one_cycle': (True, lambda l: l.fit_one_cycle(3, 1e-2)),
    'fit_flat_cos': (False, lambda l: l.fit_flat_cos(2, 1e-2)),
    'fit_sgdr': (False, lambda l: l.fit_sgdr(2, 1, 1e-2)),
    'fine_tune': (False, lambda l: l.fine_tune(2, 1e-2, freeze_epochs=1)),
    'OneCycleScheduler': (False, lambda l: l.fit(2, cbs=OneCycleScheduler(1e-2, three_phase=True, pct_start=0.3))),
    'PartialOneCycleScheduler': (False, lambda l: l.fit(2, cbs=PartialOneCycleScheduler(1e-2, tot_epochs=4, start_epoch=1))),
    'from_torch': (False, lambda l: l.fit(3, cbs=OneCycleScheduler.from_torch(1e-2))),
}

def run_case(name, learn, distributed):
    "Run case `name` on `learn` (in `distrib_ctx` if `distributed`), with each rank's own random stream"
    fastai,fit = CASES[name]
    watch = Watch()
    learn.add_cb(watch)
    torch.manual_seed(1000 + rank_distrib())  # dropout differs between ranks, as it would
    with fastai_methods(float64=True) if fastai else contextlib.nullcontext():
        if distributed:
            with learn.distrib_ctx(): fit(learn)
        else: fit(learn)
    return watch.fits

def _plotted(learn):
    "The values `plot_sched` draws, panel by panel"
    fig = learn.recorder.plot_sched()
    try: return {ax.get_ylabel(): [float(v) for v in ax.lines[0].get_ydata()] for ax in fig.axes if ax.get_visible()}
    finally: plt.close(fig)

def schedules(cases=None):
    "Run `cases` (all of `CASES` by default) under `distrib_ctx`; rank 0 also plots each schedule"
    res = {}
    for name in cases or CASES:
        learn = learner()
        fits = run_case(name, learn, distributed=True)
        res[name] = {'fits': fits, 'weights': {k: v.clone() for k,v in learn.model.state_dict().items()},
                     'plot': _plotted(learn) if rank_distrib() == 0 else None}
    return res

def contexts():
    "Two `distrib_ctx` in turn on one learner, then a fit outside: the model is wrapped in each context only"
    learn,watch = learner(),Watch()
    learn.add_cb(watch)
    torch.manual_seed(1000 + rank_distrib())
    for _ in range(2):
        with learn.distrib_ctx(): learn.fit_one_cycle(1, 1e-2)
    learn.fit_one_cycle(1, 1e-2)
    return {'fits': watch.fits, 'cbs': [type(cb).__name__ for cb in learn.cbs]}

def batchnorm():
    "A model with BatchNorm, whose `SyncBatchNorm` (fastai's default) PyTorch runs on GPUs only"
    learn = learner(batchnorm=True)
    torch.manual_seed(1000 + rank_distrib())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        with learn.distrib_ctx(): learn.fit_one_cycle(2, 1e-2)
    return {'state': {k: v.clone() for k,v in learn.model.state_dict().items()}, 'warnings': [str(w.message) for w in caught]}

class KillAt(Callback):
    """Counts the training batches this process runs; SIGKILLs after `at` of them: the whole job (`who='all'`) or
    rank `rank`. (Kept in lists and tuples, which a resumed fit does not put back, unlike plain attributes.)"""
    order = 101
    def __init__(self, at=None, who='all', rank=0): self.plan,self.trained = (at, who, rank),[0]
    def after_batch(self):
        self.trained[0] += self.training
        at,who,rank = self.plan
        if at is None or self.trained[0] != at or rank_distrib() != rank: return
        if who == 'all':  # kill -9 of the whole job: torchrun's agent and every rank
            # once rank 0's save in flight has landed, so the newest checkpoint is the last one taken
            for cb in self.learn.cbs:
                if isinstance(cb, Checkpoint): cb.saver.wait()
            import psutil
            agent = psutil.Process(os.getppid())
            for proc in [agent, *agent.children(recursive=True)]:
                if proc.pid != os.getpid(): proc.kill()
        os.kill(os.getpid(), signal.SIGKILL)

def checkpointed(root, resume=False, kill=None, who='all', kill_rank=0, every=2, workers=0):
    """`fit_one_cycle(3)` with `Checkpoint(every_iters=every)` in `root/rank<r>` (each rank its own folder, as on
    separate machines: only rank 0's holds checkpoints), killed after `kill` batches, or resumed; with `workers`, the
    items this rank's training loader loaded are counted"""
    learn = learner(path=Path(root)/f'rank{rank_distrib()}', workers=workers)
    count = KillAt(kill, who, kill_rank)
    torch.manual_seed(1000 + rank_distrib())
    with learn.distrib_ctx(): learn.fit_one_cycle(3, 1e-2, cbs=[Checkpoint(every_iters=every, keep=2), count], resume=resume)
    return {'root': str(root), 'model': learn.model.state_dict(), 'opt': _plain(learn.opt.state_dict()), 'trained': count.trained[0],
            'values': _plain(learn.recorder.values), 'losses': [float(l) for l in learn.recorder.losses],
            'loads': learn.dls.train.dataset.loads.value if workers else None}

def range_tests(root, num_it=40):
    """`lr_find` under `distrib_ctx`, to the end, stopped by a diverging loss (end_lr=1e4), and flat (end_lr=1e-6: trials),
    each rank seeding its own dropout: its curve and suggestion, and whether the learner, the random state and the folder are as before"""
    learn = learner(path=Path(root)/f'rank{rank_distrib()}')
    torch.manual_seed(1000 + rank_distrib())
    res = {}
    for name,end_lr in (('whole', 10), ('diverged', 1e4), ('flat', 1e-6)):  # flat: no rate trains, so lr_find runs its trials
        weights,rng = {k: v.clone() for k,v in learn.model.state_dict().items()},torch.get_rng_state()
        with learn.distrib_ctx(): found = learn.lr_find(num_it=num_it, end_lr=end_lr, show_plot=False)
        res[name] = {'lrs': [float(v) for v in found.lrs], 'losses': [float(v) for v in found.losses], 'suggestion': float(found[0]),
                     'untouched': (all(torch.equal(v, learn.model.state_dict()[k]) for k,v in weights.items())
                                   and torch.equal(rng, torch.get_rng_state()) and learn.opt is None
                                   and type(learn.model).__name__ == 'Sequential' and learn.dls.train.__class__.__name__ == 'DataLoader'),
                     'files': sorted(str(p) for p in Path(root).rglob('*') if p.is_file())}
    return res

MODES = {'schedules': schedules, 'contexts': contexts, 'batchnorm': batchnorm, 'checkpointed': checkpointed,
         'checkpointed_workers': checkpointed, 'range_tests': range_tests}

def main(out, modes, args):
    torch.set_num_threads(1)
    for mode in modes.split(','):
        res = MODES[mode](**args.get(mode, {}))
        res['_env'] = {'rank': rank_distrib(), 'world_size': int(os.environ['WORLD_SIZE']), 'backend': torch.distributed.get_backend()}
        torch.save(res, Path(out)/f'{mode}-rank{rank_distrib()}.pt')
    # Accelerate leaves the process group up; a rank exiting while a peer still holds it can abort (SIGABRT) at exit.
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()

if __name__ == '__main__': main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else {})
