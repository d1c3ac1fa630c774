"""Resume on users' setups, in fresh processes as in real life: for each setup of `resume_job.SETUPS` (optimizers,
losses, callbacks, fit methods, models, loaders), process A runs to the end, process B is killed with SIGKILL (in
the middle of an epoch, after an epoch's last batch, during validation or in the middle of a checkpoint write), and
process C resumes with `resume=True`. C must end with A's weights, optimizer state, `recorder.values` and logs
exactly, having trained again no more than one save interval (two when killed during a background write). A and C each run every setup in one process;
B is one process per kill. `bench/resume.py` runs the same matrix with kills at random points."""
import subprocess, sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import pytest
import torch
from resume_job import EVERY, SETUPS

JOB = str(Path(__file__).with_name('resume_job.py'))
# 8 training batches an epoch, 2 validation batches: 'batch:8' is an epoch's last batch, 'valid:3' epoch 1's validation.
KILLS = ['batch:13', 'batch:8', 'valid:3', 'write:4', 'batch:5', 'batch:16', 'valid:1']
# Each setup with one kind of kill; and fine_tune killed in its other stage (batch 5 is in its frozen epoch), kills
# before the first checkpoint (batch 2, the first write: C starts over), and right after an epoch's end (batch 17:
# the newest checkpoint is epoch 2's end) with callbacks that draw random numbers or write a log as epochs start or end.
CASES = [(s, KILLS[i % len(KILLS)]) for i,s in enumerate(SETUPS)] + [
    ('fine_tune', 'batch:5'), ('adam', 'valid:4'), ('adam', 'batch:2'), ('sgd', 'write:1'),
    ('random_epoch', 'batch:17'), ('csv_log', 'batch:17')]

def job(args, timeout=300):
    "Run resume_job.py in a fresh Python process; its exit code (-9 when it was killed)"
    return subprocess.run([sys.executable, JOB, *args], timeout=timeout, capture_output=True, text=True)

def run_matrix(root, cases, parallel=2):
    "A, B and C for each `(setup, kill)` in `root`: {(setup, kill): (A's final state, C's, B's result, B's kill point, C's error)}"
    root = Path(root)
    setups = sorted({s for s,_ in cases})
    a = job([f"{s}={root/'whole'/s}" for s in setups])
    assert a.returncode == 0, a.stderr
    def killed(case):
        s,k = case
        return job(['--kill', k, f"{s}={root/(s + k)}"])
    with ThreadPoolExecutor(parallel) as pool: b = dict(zip(cases, pool.map(killed, cases)))
    job(['--resume', *[f"{s}={root/(s + k)}" for s,k in cases]])  # a setup that fails writes its error.txt
    out = {}
    for s,k in cases:
        d = root/(s + k)
        error = (d/'error.txt').read_text() if (d/'error.txt').exists() else None
        out[s,k] = (torch.load(root/'whole'/s/'final.pth'), None if error else torch.load(d/'final.pth'), b[s,k],
                    int((d/'killed_at.txt').read_text()) if (d/'killed_at.txt').exists() else None, error)
    return out

@pytest.fixture(scope='module')
def matrix(tmp_path_factory):
    return run_matrix(tmp_path_factory.mktemp('matrix'), CASES)

def assert_same(a, b, path=''):
    "Exactly equal, tensors bit for bit, through dicts and lists"
    if isinstance(a, torch.Tensor): assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a: assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i,(x,y) in enumerate(zip(a, b)): assert_same(x, y, f"{path}[{i}]")
    else: assert a == b, path

@pytest.mark.parametrize('setup,kill', CASES, ids=[f"{s}-{k}" for s,k in CASES])
def test_killed_then_resumed_equals_uninterrupted(matrix, setup, kill):
    whole,resumed,b,killed_at,error = matrix[setup, kill]
    assert b.returncode == -9, f"B was not killed ({b.returncode}): {b.stderr[-2000:]}"
    assert error is None, error
    for part in ('model', 'opt', 'values', 'logs'): assert_same(resumed[part], whole[part], part)
    # A loader that counts its loads (with or without workers): C loads only the batches it trains, as A did.
    if whole['loads'] is not None: assert resumed['loads'] - 32*resumed['trained'] == whole['loads'] - 32*whole['trained']
    # C trains what was lost since the last checkpoint (at most EVERY batches; up to twice that when killed in the middle
    # of a write, as training goes on while a save is written) and what was never trained.
    lost = 2*EVERY if kill.startswith('write') else EVERY
    assert whole['trained'] - killed_at <= resumed['trained'] <= whole['trained'] - killed_at + lost
