"""Training time under fastai's DDP (`distrib_ctx`, 2 processes on the CPU with `torchrun`): our `fit_one_cycle`
against fastai 2.8.12's, side by side, and the same in one process without DDP.

Each launch alternates ours and fastai's `fit_one_cycle` on the demo's 1-D CNN and MNIST-1D (both with this
package's fixes to `DistributedDL`, which fastai's needs on the CPU), timing each fit after a barrier; the table
gives the median time per training batch of rank 0 and the ratio. It shows what the schedules cost next to
DDP's own communication, and that DDP on the CPU works; it says nothing of speed-ups on GPUs (2 shared cores here).

    .venv/bin/python bench/ddp.py [--reps 3] [--epochs 2] [--write]
"""
import argparse, json, os, subprocess, sys, tempfile, time, warnings
os.environ.setdefault('MPLBACKEND', 'Agg')
warnings.filterwarnings('ignore')
from pathlib import Path
import numpy as np

EVERY = 10  # batches between checkpoints in the checkpointed fits

def worker(out, reps, epochs):
    "One rank: alternate ours and fastai's `fit_one_cycle`, timing each; rank 0 writes the times to `out`"
    import torch
    torch.set_num_threads(1)
    import fastai.callback.schedule  # fastai's fit methods, captured before onecycle_ext replaces them
    from fastai.learner import Learner
    from fastai.torch_core import rank_distrib, num_distrib
    from fastai.distributed import distrib_barrier
    names = ['fit', '_do_fit', 'fit_one_cycle']
    fastai_methods = {n: getattr(Learner, n) for n in names}
    import onecycle_ext
    from onecycle_ext.demo import mnist1d_dls, cnn1d
    ours_methods = {n: getattr(Learner, n) for n in names}
    dls = mnist1d_dls()
    times,saves = {'ours': [], 'fastai': [], 'checkpointed': []},[]
    for rep in range(reps):
        for who,methods in (('ours', ours_methods), ('fastai', fastai_methods), ('checkpointed', ours_methods)):
            for n,f in methods.items(): setattr(Learner, n, f)
            torch.manual_seed(rep)
            learn = Learner(dls, cnn1d(), loss_func=torch.nn.CrossEntropyLoss(), path=Path(out).parent/f'rank{rank_distrib()}')
            ckpt = [onecycle_ext.Checkpoint(every_iters=EVERY)] if who == 'checkpointed' else []
            learn.remove_cbs(learn.cbs.filter(lambda cb: type(cb).__name__ == 'ProgressCallback'))
            learn.logger = lambda *a, **k: None
            distrib_barrier()
            start = time.perf_counter()
            if num_distrib() > 1:
                with learn.distrib_ctx(sync_bn=False): learn.fit_one_cycle(epochs, 1e-2, cbs=ckpt)
            else: learn.fit_one_cycle(epochs, 1e-2, cbs=ckpt)
            n_iter = len(learn.recorder.hps['lr']) // epochs
            times[who].append((time.perf_counter() - start) / (epochs * n_iter))
            if who == 'checkpointed': saves.append(epochs * n_iter // EVERY + epochs)  # every EVERY batches, at epoch ends
    for n,f in ours_methods.items(): setattr(Learner, n, f)
    if rank_distrib() == 0: Path(out).write_text(json.dumps({'times': times, 'n_iter': n_iter, 'saves': saves}))

def launch(nproc, reps, epochs):
    "Run the workers, `nproc` under torchrun (1: a plain process, no DDP); rank 0's times"
    with tempfile.TemporaryDirectory() as d:
        out = Path(d)/'times.json'
        args = [__file__, '--worker', str(out), '--reps', str(reps), '--epochs', str(epochs)]
        pre = [sys.executable] if nproc == 1 else [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(nproc)]
        subprocess.run(pre + args, check=True, timeout=1800, env={**os.environ, 'OMP_NUM_THREADS': '1'},
                       stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--reps', type=int, default=3); p.add_argument('--epochs', type=int, default=2)
    p.add_argument('--worker'); p.add_argument('--write', action='store_true', help='write the table into bench/RESULTS.md')
    a = p.parse_args()
    if a.worker: return worker(a.worker, a.reps, a.epochs)
    sys.path.insert(0, os.path.dirname(__file__))
    from results import publish
    rows = ["| processes | batches per rank per epoch | ours (ms/batch) | fastai (ms/batch) | ours / fastai | same, fit by fit (min-max) "
            f"| with `Checkpoint(every_iters={EVERY})` / without | one save (ms) |", "|---|---|---|---|---|---|---|---|"]
    for nproc in (1, 2):
        r = launch(nproc, a.reps, a.epochs)
        ours,fastai = (1e3*np.median(r['times'][k]) for k in ('ours', 'fastai'))
        pairs = np.array(r['times']['ours']) / np.array(r['times']['fastai'])
        ck = 1e3*np.median(r['times']['checkpointed'])
        per_save = (ck - ours) * a.epochs * r['n_iter'] / r['saves'][0]  # the fit's extra time, per save
        rows.append(f"| {nproc}{' (DDP, gloo)' if nproc > 1 else ''} | {r['n_iter']} | {ours:.2f} | {fastai:.2f} | {ours/fastai:.2f} "
                    f"| {pairs.min():.2f}-{pairs.max():.2f} | {ck/ours:.2f} | {per_save:.1f} |")
    publish('ddp', "Training under DDP on the CPU (`bench/ddp.py`)",
            f"`fit_one_cycle({a.epochs}, 1e-2)` of the demo's 1-D CNN on MNIST-1D (batches of 100), median of {a.reps} fits each, "
            "ours, fastai's and ours with checkpoints alternating in one launch (a save under DDP: each rank's own state gathered "
            "to rank 0, which writes the file while the others wait at a barrier); 2 processes: `torchrun --nproc_per_node 2`, `distrib_ctx(sync_bn=False)`, "
            "each with one thread. Wall time of the fit (validation included) per training batch of rank 0; the machine's load "
            f"average was {os.getloadavg()[0]:.1f} at the end (other jobs share its cores), so ratios within the min-max spread are noise.",
            rows, a.write)

if __name__ == '__main__': main()
