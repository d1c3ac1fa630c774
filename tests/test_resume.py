"""Checkpoints and resume: what is refused, what falls back, what is never deleted, and the features a fit carries
across a crash. The crash and the resume run in fresh processes where the point is the process (the matrix of
users' setups is in test_resume_matrix.py); an exception inside the process stands in for a crash elsewhere."""
import os, subprocess, sys, warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import pytest
import torch
from fastai.callback.core import Callback
from resume_job import Noisy, learner
from test_resume_matrix import assert_same, job
from onecycle_ext import Checkpoint
from onecycle_ext.resume import UnreadableCheckpoint, checkpoints, read_checkpoint, write_checkpoint

def fit(learn, cbs=(), resume=None, every_iters=3):
    "The same fit as resume_job's 'adam' setup"
    learn.fit_one_cycle(4, 1e-2, cbs=[Checkpoint(every_iters=every_iters), *cbs], resume=resume)

@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    d = tmp_path_factory.mktemp('whole')
    assert job([f"adam={d}"]).returncode == 0
    return torch.load(d/'final.pth')['model']

@pytest.fixture
def killed(tmp_path):
    "A folder whose 'adam' job was SIGKILLed after 13 batches (its newest checkpoint after batch 12)"
    assert job(['--kill', 'batch:13', f"adam={tmp_path}"]).returncode == -9
    return tmp_path

class Boom(Callback):
    "Raises after `at` training batches: a crash inside the process"
    order = 101
    def __init__(self, at): self.at = at
    def after_batch(self):
        if self.training and self.learn.train_iter == self.at: raise RuntimeError('boom')

def _crash_and_resume(path, fit, crash_at):
    "The final weights of `fit(learn, extra_cbs, resume)` run whole, and crashed at batch `crash_at` then resumed"
    def run(p, cbs=(), resume=None):
        learn = learner(p)
        fit(learn, list(cbs), resume)
        return learn.model.state_dict()
    whole = run(path/'a')
    with pytest.raises(RuntimeError): run(path/'b', cbs=[Boom(crash_at)])
    return whole,run(path/'b', resume=True)

def test_finished_run_resumes_to_its_final_weights(tmp_path, uninterrupted):
    assert job([f"adam={tmp_path}"]).returncode == 0
    (tmp_path/'final.pth').unlink()
    assert job(['--resume', f"adam={tmp_path}"]).returncode == 0
    assert_same(torch.load(tmp_path/'final.pth')['model'], uninterrupted)

def test_mismatched_run_is_refused_and_changes_nothing(killed):
    tmp_path = killed
    files = {p: p.read_bytes() for p in (tmp_path/'models').iterdir()}
    learn = learner(tmp_path)
    w = {k: v.clone() for k,v in learn.model.state_dict().items()}
    with pytest.raises(ValueError, match='n_epoch: checkpoint 4, this fit 7'):
        learn.fit_one_cycle(7, 1e-2, cbs=Checkpoint(every_iters=3), resume=True)
    with pytest.raises(ValueError, match="schedule: checkpoint .*this fit"):
        learn.fit_one_cycle(4, 3e-2, cbs=Checkpoint(every_iters=3), resume=True)
    assert_same(w, learn.model.state_dict())
    assert learn.opt is None
    assert {p: p.read_bytes() for p in (tmp_path/'models').iterdir()} == files

def test_truncated_checkpoint_falls_back(killed, uninterrupted):
    tmp_path = killed
    newest = checkpoints(tmp_path/'models')[0]
    newest.write_bytes(newest.read_bytes()[:1000])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        learn = learner(tmp_path)
        fit(learn, resume=True)
    assert any('truncated or corrupt' in str(o.message) for o in w)
    assert_same(learn.model.state_dict(), uninterrupted)

def test_no_checkpoint_starts_fresh_and_says_so(tmp_path):
    learn = learner(tmp_path)
    with pytest.warns(UserWarning, match='starting fresh'): learn.fit_one_cycle(1, 1e-2, resume=True)

def test_keeps_the_newest(tmp_path):
    learn = learner(tmp_path)
    learn.fit_one_cycle(2, 1e-2, cbs=Checkpoint(every_iters=2, keep=3))
    names = [p.name for p in checkpoints(tmp_path/'models')]
    assert names == ['checkpoint-000000010.ckpt', 'checkpoint-000000009.ckpt', 'checkpoint-000000008.ckpt']  # 8 every 2 batches, 2 at epoch ends, 1 at the end
    assert not list((tmp_path/'models').glob('*.tmp'))

def test_checkpoint_loads_without_running_code(tmp_path):
    "The payload loads with torch.load(weights_only=True): no pickled code"
    learn = learner(tmp_path)
    learn.fit_one_cycle(1, 1e-2, cbs=Checkpoint())
    raw = checkpoints(tmp_path/'models')[0].read_bytes()
    import io
    state = torch.load(io.BytesIO(raw.partition(b'\n')[2]), weights_only=True)
    assert state['finished'] and state['epoch'] == 1

@pytest.mark.parametrize('kw,msg', [(dict(every_iters=0), 'every_iters=0'), (dict(keep=0), 'keep=0'), (dict(fname='a/b'), "fname='a/b'")])
def test_bad_checkpoint_arguments(kw, msg):
    with pytest.raises(ValueError, match=msg): Checkpoint(**kw)

def test_lr_find_with_a_checkpoint_callback_writes_nothing(tmp_path):
    learn = learner(tmp_path)
    learn.add_cb(Checkpoint(every_iters=1))
    learn.lr_find(show_plot=False)
    assert not (tmp_path/'models').exists() or list((tmp_path/'models').iterdir()) == []

def test_grad_scaler_state_resumes(tmp_path):
    "MixedPrecision keeps a GradScaler in learn.scaler (CUDA only); its state is saved and restored. Here a CPU one."
    class Scaler(Callback):
        "Stands in for MixedPrecision: makes learn.scaler at before_fit and changes its scale every step"
        order = 10
        def before_fit(self):
            self.learn.scaler = torch.amp.GradScaler('cpu', init_scale=2.**16)
            self.learn.scaler.scale(torch.ones(1))  # a scaler's state starts at its first use
        def after_step(self): self.learn.scaler.update(self.learn.scaler.get_scale() * 0.9)
        def after_fit(self): self.final = self.learn.scaler.get_scale()
    def run(path, cbs=(), resume=None):
        learn = learner(path)
        s = Scaler()
        learn.fit_one_cycle(3, 1e-2, cbs=[s, Checkpoint(every_iters=4), *cbs], resume=resume)
        return s.final
    whole = run(tmp_path/'a')
    with pytest.raises(RuntimeError): run(tmp_path/'b', cbs=[Boom(13)])
    assert run(tmp_path/'b', resume=True) == whole
    assert whole == pytest.approx(2.**16 * 0.9**24, rel=1e-5)  # 24 steps: the resumed run did not start the scale over

def test_resumed_recorder_continues_the_history(tmp_path):
    "The recorder of a crashed-and-resumed fit holds what the uninterrupted fit's holds: losses, lrs, metrics, hps"
    def run(path, cbs=(), resume=None):
        learn = learner(path)
        learn.fit_one_cycle(3, slice(1e-3, 1e-2), cbs=[Checkpoint(every_iters=5), *cbs], resume=resume)
        return learn.recorder
    whole = run(tmp_path/'a')
    with pytest.raises(RuntimeError): run(tmp_path/'b', cbs=[Boom(13)])
    resumed = run(tmp_path/'b', resume=True)
    assert [float(o) for o in resumed.losses] == [float(o) for o in whole.losses] and len(whole.losses) == 24
    assert resumed.lrs == whole.lrs and resumed.iters == whole.iters and resumed.values == whole.values
    assert resumed.hps == whole.hps and resumed.group_hps == whole.group_hps
    assert len(whole.group_hps['lr']) == 24 and whole.group_hps['lr'][0][0] < whole.group_hps['lr'][0][1]

def test_checkpoint_from_another_device_loads_with_a_note(killed, uninterrupted):
    "A checkpoint saved on CUDA resumes on the CPU: weights and optimizer continue exactly, and a warning says the random streams differ"
    tmp_path = killed
    newest = checkpoints(tmp_path/'models')[0]
    ck = read_checkpoint(newest)
    write_checkpoint({**ck, 'device': 'cuda'}, newest)
    learn = learner(tmp_path)
    with pytest.warns(UserWarning, match='saved on cuda, resumed on cpu.*random streams differ'):
        learn.fit_one_cycle(4, 1e-2, cbs=Checkpoint(every_iters=3), resume=True)
    assert_same(learn.model.state_dict(), uninterrupted)  # here the streams are the CPU's in both

def test_mixed_precision_resumes(tmp_path):
    "fastai's MixedPrecision (a disabled GradScaler on a machine without CUDA) in a crashed-and-resumed fit"
    def fit(learn, cbs, resume): learn.to_fp16().fit_one_cycle(2, 1e-2, cbs=[Checkpoint(every_iters=3), *cbs], resume=resume)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # torch: CUDA is not available, autocast and the scaler disabled
        whole,resumed = _crash_and_resume(tmp_path, fit, 10)
    assert_same(resumed, whole)

def test_checkpoint_of_an_older_format_is_refused(killed):
    tmp_path = killed
    newest = checkpoints(tmp_path/'models')[0]
    ck = read_checkpoint(newest)
    write_checkpoint({**ck, 'run': {k: v for k,v in ck['run'].items() if k != 'checkpoint format'}}, newest)
    with pytest.raises(ValueError, match=r'checkpoint format: checkpoint None, this fit \d'):
        learner(tmp_path).fit_one_cycle(4, 1e-2, cbs=Checkpoint(every_iters=3), resume=True)

def test_history_tensors_convert_only_new_items():
    "A long run's checkpoints convert only the losses recorded since the last save (on CUDA each conversion is a sync)"
    from onecycle_ext.resume import _Tensors
    class Loss(torch.Tensor):
        "A loss that counts its conversions to float"
        n = 0
        def __float__(self): Loss.n += 1; return super().__float__()
    t,xs = _Tensors(),[torch.tensor(float(i)).as_subclass(Loss) for i in range(5)]
    assert t('losses', xs).tolist() == [0., 1., 2., 3., 4.] and Loss.n == 5
    xs += [torch.tensor(5.).as_subclass(Loss)]
    assert t('losses', xs).tolist() == [0., 1., 2., 3., 4., 5.] and Loss.n == 6
    assert t('losses', xs).tolist() == [0., 1., 2., 3., 4., 5.] and Loss.n == 6
    assert t('losses', [torch.tensor(9.).as_subclass(Loss)]).tolist() == [9.] and Loss.n == 7  # another list: a new fit's
    assert t('rows', []).tolist() == [] and t('rows', [[1., 2.]]).tolist() == [[1., 2.]]  # per-group rows, from empty
    assert t('iters', [0, 1, 2], torch.int64).tolist() == [0, 1, 2]

def test_diverged_weights_are_not_saved(tmp_path):
    "Weights that turn NaN or inf do not push the good checkpoints out; fastai's TerminateOnNaNCallback then ends the fit"
    from fastai.callback.tracker import TerminateOnNaNCallback
    from onecycle_ext.resume import read_checkpoint
    class Diverge(Callback):
        order = 99  # before Checkpoint
        def after_batch(self):
            if self.training and self.learn.train_iter >= 10:
                with torch.no_grad(): self.learn.model[0].weight[0, 0] = float('inf')  # one weight is enough
    learn = learner(tmp_path)
    with pytest.warns(UserWarning, match='not finite.*not saved'):
        learn.fit_one_cycle(4, 1e-2, cbs=[Checkpoint(every_iters=3), Diverge(), TerminateOnNaNCallback()])
    saved = [read_checkpoint(p) for p in checkpoints(tmp_path/'models')]
    # 8 batches an epoch, saved after training batches 3, 6, 8 (the epoch's end) and 9; 12 and the fit's end were NaN.
    assert [(ck['epoch'], ck['iter'], ck['finished']) for ck in saved] == [(1, 1, False), (1, 0, False)]
    assert all(torch.isfinite(v).all() for ck in saved for v in ck['model'].values())

def test_interrupted_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    "Ctrl-C in the middle of a save: the previous checkpoint is intact, no partial file is left"
    learn = learner(tmp_path)
    learn.fit_one_cycle(1, 1e-2, cbs=Checkpoint())
    before = {p.name: p.read_bytes() for p in (tmp_path/'models').iterdir()}
    def interrupted(fd): raise KeyboardInterrupt()
    monkeypatch.setattr(os, 'fsync', interrupted)
    with pytest.raises(KeyboardInterrupt): learn.fit_one_cycle(1, 1e-2, cbs=Checkpoint())
    assert {p.name: p.read_bytes() for p in (tmp_path/'models').iterdir()} == before

def test_resume_with_other_checkpoint_settings(killed, uninterrupted):
    "How often to save is not part of the run: the resumed fit may save at other moments, with the same result"
    tmp_path = killed
    learn,ck = learner(tmp_path),Checkpoint(every_iters=5, keep=3)
    learn.fit_one_cycle(4, 1e-2, cbs=ck, resume=True)
    assert (ck.every_iters, ck.keep) == (5, 3)
    assert len(checkpoints(tmp_path/'models')) == 3
    assert_same(learn.model.state_dict(), uninterrupted)

# Faults lose nothing: a checkpoint is deleted only by a run that has just written a newer, verified one.

def _unsafe_checkpoint(path):
    "A checkpoint with a valid checksum whose payload a safe load refuses (it pickles a function)"
    write_checkpoint({'f': os.getcwd}, path)  # only the checksum is checked as it is written

@pytest.mark.parametrize('fault', ['unsafe payload', 'permission denied'])
def test_unreadable_newest_stops_resume_and_deletes_nothing(killed, fault, monkeypatch):
    newest = checkpoints(killed/'models')[0]
    if fault == 'unsafe payload': _unsafe_checkpoint(newest)
    else:
        read = Path.read_bytes
        def denied(p): 
            if p == newest: raise PermissionError(13, 'Permission denied', str(p))
            return read(p)
        monkeypatch.setattr(Path, 'read_bytes', denied)
    files = {p.name: p.read_bytes() for p in (killed/'models').iterdir() if p != newest}
    learn = learner(killed)
    w = {k: v.clone() for k,v in learn.model.state_dict().items()}
    with pytest.raises(UnreadableCheckpoint, match=f"{newest.name} cannot be read .*(Permission denied|Unpickling)"): fit(learn, resume=True)
    assert_same(w, learn.model.state_dict())
    assert {p.name: p.read_bytes() for p in (killed/'models').iterdir() if p != newest} == files
    assert newest.exists()

def test_all_corrupt_stops_resume_naming_each_file(killed):
    files = checkpoints(killed/'models')
    for p in files: p.write_bytes(p.read_bytes()[:500])
    before = {p.name: p.read_bytes() for p in files}
    with pytest.warns(UserWarning, match='trying the previous checkpoint'):
        with pytest.raises(UnreadableCheckpoint) as e: fit(learner(killed), resume=True)
    assert all(p.name in str(e.value) for p in files) and 'Nothing was deleted' in str(e.value)
    assert {p.name: p.read_bytes() for p in checkpoints(killed/'models')} == before

def test_failed_write_deletes_nothing(tmp_path, monkeypatch):
    "A save whose file does not verify (here: read back corrupt) raises, and the older checkpoints stay"
    import onecycle_ext.resume as r
    learn = learner(tmp_path)
    fit(learn, every_iters=None)
    before = {p.name: p.read_bytes() for p in (tmp_path/'models').iterdir()}
    real = os.replace
    def corrupting(src, dst):
        Path(src).write_bytes(Path(src).read_bytes()[:-10]); real(src, dst)
    monkeypatch.setattr(os, 'replace', corrupting)
    with pytest.raises(r.CorruptCheckpoint): fit(learner(tmp_path), every_iters=None)
    after = {p.name: p.read_bytes() for p in (tmp_path/'models').iterdir()}
    assert all(after[k] == v for k,v in before.items())

def test_file_name_is_taken_literally(tmp_path, uninterrupted):
    "`fname='exp[1]'` is a name, not a glob pattern: numbered files, `keep` honoured, and resume finds them"
    def run(path, cbs=(), resume=None): 
        learn = learner(path)
        learn.fit_one_cycle(4, 1e-2, cbs=[Checkpoint(every_iters=3, fname='exp[1]', keep=2), *cbs], resume=resume)
        return learn.model.state_dict()
    with pytest.raises(RuntimeError): run(tmp_path, [Boom(13)])
    names = [p.name for p in checkpoints(tmp_path/'models', 'exp[1]')]
    assert names == ['exp[1]-000000005.ckpt', 'exp[1]-000000004.ckpt'] and sorted(os.listdir(tmp_path/'models')) == sorted(names)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # not "starting fresh"
        assert_same(run(tmp_path, resume=True), uninterrupted)

def test_failed_resumed_fit_leaves_nothing_behind(killed):
    "A resumed fit that fails does not leak into the next fit: it trains every batch from the learner's state"
    learn = learner(killed)
    with pytest.raises(RuntimeError): fit(learn, [Boom(14)], resume=True)
    assert not any(hasattr(learn, a) for a in ('resume_state', 'run_identity', 'epoch_start', 'first_epoch'))
    n = []
    class Count(Callback):
        def after_batch(self): n.append(self.training)
    learn.fit_one_cycle(1, 1e-2, cbs=Count())
    assert sum(n) == 8 and len(n) == 10

def test_export_with_a_checkpoint_loads_without_this_package(tmp_path):
    "`learn.export()` with a `Checkpoint` in `learn.cbs`: `load_learner` in a clean process does not import onecycle_ext"
    from fastai.data.core import Datasets
    from fastai.data.transforms import ItemGetter
    from fastai.learner import Learner
    from fastai.losses import MSELossFlat
    x = torch.randn(64, 3)
    dsets = Datasets([(a, a.sum(0, keepdim=True)) for a in x], tfms=[[ItemGetter(0)], [ItemGetter(1)]], splits=[range(48), range(48, 64)])
    learn = Learner(dsets.dataloaders(bs=16), torch.nn.Linear(3, 1), loss_func=MSELossFlat(), path=tmp_path, cbs=Checkpoint())
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 1e-2)
    learn.export('export.pkl')
    assert any(isinstance(cb, Checkpoint) for cb in learn.cbs)  # still there for the next fit
    code = (f"import sys, torch; from fastai.learner import load_learner; learn = load_learner({str(tmp_path/'export.pkl')!r}); "
            "assert 'onecycle_ext' not in sys.modules, 'imported'; "
            "assert not any(hasattr(learn, a) for a in ('run_identity', 'epoch_start', 'first_epoch', 'resume_state')); "
            f"torch.save(learn.model(torch.ones(2, 3)), {str(tmp_path/'pred.pth')!r})")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert torch.equal(torch.load(tmp_path/'pred.pth'), learn.model(torch.ones(2, 3)))

def test_run_identity_is_the_same_in_another_process(tmp_path):
    "What identifies a run holds no memory address: partial optimizers, OptimWrapper, lambdas"
    code = ("import sys, json; sys.path.insert(0, {tests!r}); from resume_job import learner, OPTIMIZERS; "
            "from onecycle_ext.resume import run_identity; "
            "print(json.dumps([run_identity(learner({path!r}, opt_func=o), 3, None, None, [])['optimizer'] for o in OPTIMIZERS.values()]))")
    code = code.format(tests=str(Path(__file__).parent), path=str(tmp_path))
    a,b = [subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120) for _ in range(2)]
    assert a.returncode == 0, a.stderr[-2000:]
    assert a.stdout == b.stdout and ' at 0x' not in a.stdout and 'nesterov=True' in a.stdout

def test_resume_starts_at_its_batch_without_loading_the_ones_before(tmp_path):
    "A loader without workers: the resumed epoch loads only the batches it trains, and ends as the whole run"
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    def run(path, cbs=(), resume=None):
        learn = learner(path)
        x = torch.randn(320, 8); y = (x[:, :2].sum(1) > 0).long()
        train = Noisy(x[:256], y[:256])  # random augmentation, here in this process; it counts its loads
        learn.dls = DataLoaders(DataLoader(train, bs=32, shuffle=True), DataLoader(Noisy(x[256:], y[256:]), bs=32))
        fit(learn, cbs, resume)
        return learn.model.state_dict(),train.loads.value
    whole,_ = run(tmp_path/'a')
    with pytest.raises(RuntimeError): run(tmp_path/'b', cbs=[Boom(13)])
    resumed,loads = run(tmp_path/'b', resume=True)
    assert_same(resumed, whole)
    assert loads == (32 - 12) * 32  # the newest checkpoint is after batch 12 of 32: only the 20 batches after it load

def test_validate_outside_a_fit_saves_nothing(tmp_path):
    "A Checkpoint kept in `learn.cbs`: `learn.validate()` after a fit stopped by an error runs `after_epoch` too, and saves nothing"
    learn = learner(tmp_path)
    learn.add_cb(Checkpoint())
    with pytest.raises(RuntimeError, match='boom'): learn.fit_one_cycle(4, 1e-2, cbs=Boom(13))
    files = {p.name: p.read_bytes() for p in (tmp_path/'models').iterdir()}
    learn.validate()
    assert {p.name: p.read_bytes() for p in (tmp_path/'models').iterdir()} == files

def test_resume_with_workers_starts_at_its_batch_without_loading_the_ones_before(tmp_path):
    """Loaders with 2 worker processes (a `DataLoader` with per-item noise, one with `persistent_workers`, a `TfmdDL` with
    a per-item random transform and a random batch transform), killed after batch 13 and resumed in fresh processes:
    only the batches after the newest checkpoint load, and the run ends as the whole one. Resuming with 3 workers
    instead of 2 ends the same: a batch's randomness is its own, whichever worker loads it"""
    setups = ['workers', 'persistent_workers', 'tfmd_workers']
    assert job([f"{s}={tmp_path/'whole'/s}" for s in setups]).returncode == 0
    # (setup killed, folder, setup resuming)
    runs = [(s, tmp_path/s, s) for s in setups] + [('workers', tmp_path/'workers3', 'workers3')]
    with ThreadPoolExecutor(2) as pool: killed = list(pool.map(lambda r: job(['--kill', 'batch:13', f"{r[0]}={r[1]}"]), runs))
    for b in killed: assert b.returncode == -9, b.stderr[-2000:]
    assert job(['--resume', *[f"{s}={d}" for _,d,s in runs]]).returncode == 0
    for s,d,_ in runs:
        whole,resumed = torch.load(tmp_path/'whole'/s/'final.pth'),torch.load(d/'final.pth')
        for part in ('model', 'opt', 'values'): assert_same(resumed[part], whole[part], f"{d.name}: {part}")
        one = 1 if s.startswith('tfmd') else 0  # the item a `TfmdDL` loads by itself, at a fit's first batch
        assert whole['loads'] == 4*8*32 + one  # the count sees the workers' loads
        # The newest checkpoint is after batch 12 of 32: only the 20 batches after it load.
        assert (resumed['trained'],resumed['loads']) == (32 - 12, (32 - 12)*32 + one), d.name

def test_checkpoint_of_a_loader_without_workers_is_refused_with_workers(killed):
    "Items loaded in workers are seeded per batch, in the main process they are not: a resume across the two is refused"
    learn = learner(killed, workers=2)
    with pytest.raises(ValueError, match='items seeded per batch: checkpoint False, this fit True'): fit(learn, resume=True)
