"""What checkpoints cost a large model's training: `python bench/checkpoint_cost.py [--reps N] [--write]`.

A 25M-parameter model (6 x Linear(2048, 2048), Adam: 300 MB of weights and optimizer state) trains 20 batches with
`Checkpoint(every_iters=5, every_epoch=False)`. Measured side by side, alternating, in one process:
- how long the training loop waits in each save (the host copy of what the next batch may change, waiting for the
  previous save if it has not landed, and the next optimizer step waiting for the background copy of the weights and
  the optimizer's state) as a fraction of the save's duration (its background write: serialise, fsync, rename, verify);
- the CPU time of that write against a plain `torch.save` of the same state to the same folder;
- the whole fit against the same fit without checkpoints, and against saves written in the loop (synchronously);
- the peak RSS the saves add, in copies of the state (fresh processes, from the batch of the first save on)."""
import argparse, os, statistics, subprocess, sys, tempfile, threading, time, warnings
from pathlib import Path
warnings.filterwarnings('ignore')
import torch
from torch import nn
from fastai.data.core import DataLoaders
from fastai.data.load import DataLoader
from fastai.learner import Learner
from fastai.losses import MSELossFlat
from fastai.optimizer import Adam
sys.path.insert(0, str(Path(__file__).parent))
import onecycle_ext.resume as resume_mod
from onecycle_ext import Checkpoint
from onecycle_ext.saving import Saver

WIDTH,LAYERS,BS,BATCHES,EVERY = 2048,6,64,20,5

def learner(path):
    torch.manual_seed(0)
    x = torch.randn(BS*BATCHES, WIDTH); y = x[:, :1].clone()
    model = nn.Sequential(*[m for _ in range(LAYERS) for m in (nn.Linear(WIDTH, WIDTH), nn.ReLU())], nn.Linear(WIDTH, 1))
    dls = DataLoaders(DataLoader(list(zip(x, y)), bs=BS), DataLoader(list(zip(x[:BS], y[:BS])), bs=BS))
    learn = Learner(dls, model, loss_func=MSELossFlat(), opt_func=Adam, path=path)
    learn.remove_cbs(learn.cbs.filter(lambda cb: type(cb).__name__ == 'ProgressCallback'))
    learn.logger = lambda *a, **k: None
    return learn

def rss():
    "This process's resident memory, in bytes"
    return int(Path('/proc/self/statm').read_text().split()[1]) * 4096

class PeakRSS:
    "The highest RSS seen while the block runs, sampled every 5 ms on a thread"
    def __enter__(self):
        self.peak,self.done = rss(),threading.Event()
        def sample():
            while not self.done.wait(0.005): self.peak = max(self.peak, rss())
        self.thread = threading.Thread(target=sample); self.thread.start()
        return self
    def __exit__(self, *exc): self.done.set(); self.thread.join(); self.peak = max(self.peak, rss())

def peak_after_first_save_point(mode, folder):
    """In a fresh process (an allocator that kept memory from an earlier fit would hide the buffers), one fit in `mode`
    ('none' or 'async'): its peak RSS above the RSS at the batch where the first save is taken, just before it, in bytes"""
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import torch, checkpoint_cost as c\n"
            "from fastai.callback.core import Callback\n"
            "class Before(Callback):\n"
            "    order = 99  # before Checkpoint's after_batch\n"
            "    def after_batch(self):\n"
            "        if self.training and self.learn.train_iter == c.EVERY: self.rss = c.rss()\n"
            "torch.set_num_threads(1); learn,ref = c.learner(sys.argv[1]),Before()\n"
            "cbs = [ref] + ([c.Checkpoint(every_iters=c.EVERY, every_epoch=False)] if sys.argv[2] == 'async' else [])\n"
            "with c.PeakRSS() as m: learn.fit(1, 1e-4, cbs=cbs)\n"
            "print(m.peak - ref.rss)")
    out = subprocess.run([sys.executable, '-c', code, str(folder), mode], capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1])

class Timings:
    "Records, per save, the training loop's wait in `Checkpoint.save` and the background write's wall and CPU time"
    def __init__(self): self.waits,self.writes,self.cpus = [],[],[]
    def __enter__(self):
        self.save,self.write,self.hold = Checkpoint.save,resume_mod.write_checkpoint,Checkpoint.after_backward
        def save(cb, *a, **k):
            t = time.perf_counter(); self.save(cb, *a, **k); self.waits.append(time.perf_counter() - t)
        def hold(cb):  # the optimizer step waiting for the weights' background copy counts as the save's wait
            t = time.perf_counter(); self.hold(cb)
            if self.waits: self.waits[-1] += time.perf_counter() - t
        def write(state, path):
            t,c = time.perf_counter(),time.thread_time()
            self.write(state, path)
            self.writes.append(time.perf_counter() - t); self.cpus.append(time.thread_time() - c)
        Checkpoint.save,resume_mod.write_checkpoint,Checkpoint.after_backward = save,write,hold
        return self
    def __exit__(self, *exc): Checkpoint.save,resume_mod.write_checkpoint,Checkpoint.after_backward = self.save,self.write,self.hold

class InLoop:
    "Saves written in the training loop, as before: `Saver.start` writes before it returns"
    def __enter__(self):
        self.start = Saver.start
        def start(saver, state, write, later=frozenset()):
            self.start(saver, state, write); saver.wait()  # everything copied at once, as before
        Saver.start = start
    def __exit__(self, *exc): Saver.start = self.start

def fit(folder, mode):
    "One fit (mode: 'none', 'async' or 'sync'): (seconds, Timings)"
    learn = learner(folder)
    cbs = [] if mode == 'none' else [Checkpoint(every_iters=EVERY, every_epoch=False)]
    with Timings() as t:
        start = time.perf_counter()
        if mode == 'sync':
            with InLoop(): learn.fit(1, 1e-4, cbs=cbs)
        else: learn.fit(1, 1e-4, cbs=cbs)
        secs = time.perf_counter() - start
    return secs,t

def tensor_bytes(x):
    if isinstance(x, torch.Tensor): return x.numel() * x.element_size()
    if isinstance(x, dict): x = x.values()
    return sum(map(tensor_bytes, x)) if isinstance(x, (list, tuple, type({}.values()))) else 0

def save_synced(state, path):
    "A plain `torch.save` made durable as a checkpoint must be: flushed to the disk before it counts"
    with open(path, 'wb') as f: torch.save(state, f); f.flush(); os.fsync(f.fileno())

def cpu_of(f):
    c = time.thread_time(); f(); return time.thread_time() - c

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--reps', type=int, default=3); p.add_argument('--quick', action='store_true', help='--reps 1')
    p.add_argument('--write', action='store_true', help='write the table into bench/RESULTS.md')
    a = p.parse_args()
    reps = 1 if a.quick else a.reps
    torch.set_num_threads(1)  # one core trains; the other is the background write's (2 cores, shared)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        fits = {m: [] for m in ('none', 'async', 'sync')}
        for r in range(reps):
            for m in fits: fits[m].append(fit(d/f"{m}{r}", m))
        peak = {m: statistics.median(peak_after_first_save_point(m, d/f"rss-{m}{r}") for r in range(reps)) / 2**20 for m in ('none', 'async')}
        # The same state, written both ways, alternating, in this (the main) thread.
        state = resume_mod.read_checkpoint(resume_mod.checkpoints(d/'async0'/'models')[0])
        state_mb = tensor_bytes(state) / 2**20
        # Each write to a new file (the last one deleted untimed): replacing a 300 MB file costs the kernel as much as the
        # write itself, and would be counted in whichever write happens to replace it.
        ours,plain,durable = [],[],[]
        def timed(write, path):
            path.unlink(missing_ok=True)
            return cpu_of(lambda: write(state, path))
        for i in range(5*reps):
            ours.append(timed(resume_mod.write_checkpoint, d/'ours.ckpt'))
            plain.append(timed(torch.save, d/'plain.pth'))
            durable.append(timed(save_synced, d/'synced.pth'))
    asyncs = [t for _,t in fits['async']]
    waits = [w for t in asyncs for w in t.waits]; writes = [w for t in asyncs for w in t.writes]
    cpus = [c for t in asyncs for c in t.cpus]
    secs = {m: statistics.median(s for s,_ in v) for m,v in fits.items()}
    med = statistics.median
    table = ["| measure | value |", "|---|---|",
             f"| state saved (weights + Adam) | {state_mb:.0f} MB, {len(waits)//reps} saves a fit, {reps} fits |",
             f"| loop's wait per save / save's duration (median; worst: the fit's last save waits for the one just before) | {med(waits):.3f} s / {med(writes):.2f} s = "
             f"**{med(waits)/med(writes):.3f}**, {max(w/s for w,s in zip(waits, writes)):.3f} |",
             f"| save's CPU time (background write) / plain `torch.save` (same state, same folder) | {med(cpus):.2f} s / "
             f"{med(plain):.2f} s = **{med(cpus)/med(plain):.2f}x** |",
             f"| the same write alone, in the main thread / plain `torch.save`, alternating | {med(ours):.2f} s / "
             f"{med(plain):.2f} s = **{med(ours)/med(plain):.2f}x** |",
             f"| the same write alone / `torch.save` then fsync (durable, as a checkpoint must be) | {med(ours):.2f} s / "
             f"{med(durable):.2f} s = **{med(ours)/med(durable):.2f}x** |",
             f"| fit, no checkpoints | {secs['none']:.1f} s |",
             f"| fit, background saves | {secs['async']:.1f} s = **{secs['async']/secs['none']:.2f}x** |",
             f"| fit, saves written in the loop (as before) | {secs['sync']:.1f} s = {secs['sync']/secs['none']:.2f}x |",
             f"| peak RSS after batch {EVERY} (the first save's), above the RSS there, fresh processes, median of {reps}: no checkpoints / "
             f"background saves | +{peak['none']:.0f} MB / +{peak['async']:.0f} MB: saves add **{(peak['async']-peak['none'])/state_mb:.2f}** "
             "copies of the state |"]
    from results import publish
    publish('checkpoint_cost', "What checkpoints cost a 25M-parameter model (`bench/checkpoint_cost.py`)",
            "20 batches of 64, `Checkpoint(every_iters=5, every_epoch=False)` (4 saves and the fit's last), "
            "`torch.set_num_threads(1)`, fits alternating with and without checkpoints in one process. The loop waits "
            "for the host copy into reused buffers of what the next batch may change (buffers, gradients, callbacks' "
            "state), and, if the previous save has not landed, for it; the weights and the optimizer's state are copied "
            "by the background thread while the next batch's forward and backward run, the optimizer step waiting for "
            "that copy if it has not finished (counted in the wait). Then the write "
            "(`torch.save` streaming into the file with its per-record CRC-32s, fsync, rename, size/header/zip-directory "
            "check, pruning) runs on one background thread. The copy is bound by memory bandwidth, the write by the disk: "
            "the wait's fraction of the save is smaller the slower the disk. On 2 shared cores the write competes with "
            "training for the CPU and memory bandwidth (its CPU time in the background is higher than alone), so the "
            "fit's slowdown is set by the write's CPU time, not by the loop's wait.", table, a.write)

if __name__ == '__main__': main()
