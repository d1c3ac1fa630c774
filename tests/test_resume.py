"""Kill a training process (SIGKILL) anywhere, run it again with `resume=True`: the final weights are
bit-identical to a run that was never interrupted."""
import random, warnings
from pathlib import Path
import pytest
import torch
from fastai.callback.core import Callback
from resume_job import run_in_child, learner
from onecycle_ext import Checkpoint
from onecycle_ext.resume import checkpoints

METHODS = ['fit_one_cycle', 'fit_flat_cos', 'partial', 'fine_tune']
# 4 epochs x 8 batches (3 for the partial slice, 1 + 2 for fine_tune); a checkpoint every 3 batches and at each epoch's end.
KILLS = [('batch', 1), ('batch', 5), ('batch', 13), ('batch', 22), ('write', 1), ('write', 4), ('valid', 1), ('valid', 3)]

@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    out = {}
    for m in METHODS:
        d = tmp_path_factory.mktemp(f'whole_{m}')
        assert run_in_child(d, m) == 0
        out[m] = torch.load(d/'final.pth')
    return out

class Boom(Callback):
    "Raises after `at` training batches: a crash inside the process"
    order = 101
    def __init__(self, at): self.at = at
    def after_batch(self):
        if self.training and self.learn.train_iter == self.at: raise RuntimeError('boom')

def assert_same(a, b):
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

def _crash_and_resume(path, fit, crash_at):
    "The final weights of `fit(learn, extra_cbs, resume)` run whole, and crashed at batch `crash_at` then resumed"
    def run(p, cbs=(), resume=None):
        learn = learner(p)
        fit(learn, list(cbs), resume)
        return learn.model.state_dict()
    whole = run(path/'a')
    with pytest.raises(RuntimeError): run(path/'b', cbs=[Boom(crash_at)])
    return whole,run(path/'b', resume=True)

@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('kill', KILLS, ids=lambda k: f'{k[0]}{k[1]}')
def test_kill_and_resume_is_bit_identical(tmp_path, uninterrupted, method, kill):
    code = run_in_child(tmp_path, method, kill=kill)
    assert code == -9, f"the job was not killed ({code})"
    assert not (tmp_path/'final.pth').exists()
    assert run_in_child(tmp_path, method, resume=True) == 0
    assert_same(torch.load(tmp_path/'final.pth'), uninterrupted[method])
    total = {'partial': 3, 'fine_tune': 3}.get(method, 4) * 8
    trained = int((tmp_path/'trained.txt').read_text())
    # A kill before the first checkpoint is saved restarts from scratch; any later one resumes.
    assert trained == total if kill in [('batch', 1), ('write', 1)] else trained < total

def test_random_kills(tmp_path, uninterrupted):
    "Kills at random moments chosen by the parent, on top of the ones above"
    import multiprocessing as mp, os, signal, time
    from resume_job import train
    rng = random.Random(0)
    for i in range(4):
        d = tmp_path/str(i)
        p = mp.get_context('fork').Process(target=train, args=(d, 'fit_one_cycle'))
        p.start(); time.sleep(rng.uniform(0.05, 0.6)); os.kill(p.pid, signal.SIGKILL); p.join()
        assert run_in_child(d, 'fit_one_cycle', resume=True) == 0
        assert_same(torch.load(d/'final.pth'), uninterrupted['fit_one_cycle'])

def test_finished_run_resumes_to_its_final_weights(tmp_path, uninterrupted):
    assert run_in_child(tmp_path, 'fit_one_cycle') == 0
    (tmp_path/'final.pth').unlink()
    assert run_in_child(tmp_path, 'fit_one_cycle', resume=True) == 0
    assert_same(torch.load(tmp_path/'final.pth'), uninterrupted['fit_one_cycle'])

def test_mismatched_run_is_refused_and_changes_nothing(tmp_path):
    assert run_in_child(tmp_path, 'fit_one_cycle', kill=('batch', 13)) == -9
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

def test_truncated_checkpoint_falls_back(tmp_path, uninterrupted):
    assert run_in_child(tmp_path, 'fit_one_cycle', kill=('batch', 22)) == -9
    newest = checkpoints(tmp_path/'models')[0]
    newest.write_bytes(newest.read_bytes()[:1000])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        learn = learner(tmp_path)
        learn.fit_one_cycle(4, 1e-2, cbs=Checkpoint(every_iters=3), resume=True)
    assert any('truncated or corrupt' in str(o.message) for o in w)
    assert_same(learn.model.state_dict(), uninterrupted['fit_one_cycle'])

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

def test_sgdr_resume(tmp_path):
    "fit_sgdr takes resume= too: an exception mid-run, then resume, equals the whole run"
    def fit(learn, cbs, resume): learn.fit_sgdr(2, 1, 1e-2, cbs=[Checkpoint(every_iters=4), *cbs], resume=resume)
    whole,resumed = _crash_and_resume(tmp_path, fit, 19)
    assert_same(resumed, whole)

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

def _two_group_learner(path):
    learn = learner(path)
    learn.splitter = lambda m: [list(m[0].parameters()), list(m[3].parameters())]
    return learn

def test_resumed_recorder_continues_the_history(tmp_path):
    "The recorder of a crashed-and-resumed fit holds what the uninterrupted fit's holds: losses, lrs, metrics, hps"
    def run(path, cbs=(), resume=None):
        learn = _two_group_learner(path)
        learn.fit_one_cycle(3, slice(1e-3, 1e-2), cbs=[Checkpoint(every_iters=5), *cbs], resume=resume)
        return learn.recorder
    whole = run(tmp_path/'a')
    with pytest.raises(RuntimeError): run(tmp_path/'b', cbs=[Boom(13)])
    resumed = run(tmp_path/'b', resume=True)
    assert [float(o) for o in resumed.losses] == [float(o) for o in whole.losses] and len(whole.losses) == 24
    assert resumed.lrs == whole.lrs and resumed.iters == whole.iters and resumed.values == whole.values
    assert resumed.hps == whole.hps and resumed.group_hps == whole.group_hps
    assert len(whole.group_hps['lr']) == 24 and whole.group_hps['lr'][0][0] < whole.group_hps['lr'][0][1]

def test_checkpoint_from_another_device_loads_with_a_note(tmp_path, uninterrupted):
    "A checkpoint saved on CUDA resumes on the CPU: weights and optimizer continue exactly, and a warning says the random streams differ"
    from onecycle_ext.resume import read_checkpoint, write_checkpoint
    assert run_in_child(tmp_path, 'fit_one_cycle', kill=('batch', 13)) == -9
    newest = checkpoints(tmp_path/'models')[0]
    ck = read_checkpoint(newest)
    write_checkpoint({**ck, 'device': 'cuda'}, newest)
    learn = learner(tmp_path)
    with pytest.warns(UserWarning, match='saved on cuda, resumed on cpu.*random streams differ'):
        learn.fit_one_cycle(4, 1e-2, cbs=Checkpoint(every_iters=3), resume=True)
    assert_same(learn.model.state_dict(), uninterrupted['fit_one_cycle'])  # here the streams are the CPU's in both

def test_mixed_precision_resumes(tmp_path):
    "fastai's MixedPrecision (a disabled GradScaler on a machine without CUDA) in a crashed-and-resumed fit"
    def fit(learn, cbs, resume): learn.to_fp16().fit_one_cycle(2, 1e-2, cbs=[Checkpoint(every_iters=3), *cbs], resume=resume)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # torch: CUDA is not available, autocast and the scaler disabled
        whole,resumed = _crash_and_resume(tmp_path, fit, 10)
    assert_same(resumed, whole)

def test_checkpoint_of_an_older_format_is_refused(tmp_path):
    assert run_in_child(tmp_path, 'fit_one_cycle', kill=('batch', 13)) == -9
    from onecycle_ext.resume import read_checkpoint, write_checkpoint
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

def test_callbacks_state_resumes(tmp_path):
    "SaveModelCallback's best so far survives the crash: here 'best' is the highest loss, epoch 0's, loaded at the end"
    import numpy as np
    from fastai.callback.tracker import SaveModelCallback
    def fit(learn, cbs, resume):
        learn.fit_one_cycle(4, 1e-2, cbs=[Checkpoint(every_iters=3), SaveModelCallback(monitor='valid_loss', comp=np.greater), *cbs],
                            resume=resume)
    whole,resumed = _crash_and_resume(tmp_path, fit, 21)
    assert_same(resumed, whole)

def test_gradient_accumulation_resumes(tmp_path):
    "A checkpoint between two accumulated batches keeps the gradients accumulated so far"
    from fastai.callback.training import GradientAccumulation
    def fit(learn, cbs, resume):
        learn.fit_one_cycle(2, 1e-2, cbs=[Checkpoint(every_iters=3), GradientAccumulation(n_acc=64), *cbs], resume=resume)
    whole,resumed = _crash_and_resume(tmp_path, fit, 11)
    assert_same(resumed, whole)

class Noisy:
    "A dataset whose items are drawn with fresh noise each time, as random augmentation does"
    def __init__(self, x, y): self.x,self.y = x,y
    def __len__(self): return len(self.x)
    def __getitem__(self, i): return self.x[i] + 0.1*torch.randn(self.x.shape[1]), self.y[i]

def test_worker_processes_resume(tmp_path):
    "DataLoader workers draw their random numbers from seeds taken when each epoch's iterator starts"
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    def fit(learn, cbs, resume):
        x = torch.randn(320, 8); y = (x[:, :2].sum(1) > 0).long()
        learn.dls = DataLoaders(DataLoader(Noisy(x[:256], y[:256]), bs=32, shuffle=True, num_workers=2),
                                DataLoader(Noisy(x[256:], y[256:]), bs=32, num_workers=2))
        learn.fit_one_cycle(3, 1e-2, cbs=[Checkpoint(every_iters=3), *cbs], resume=resume)
    whole,resumed = _crash_and_resume(tmp_path, fit, 13)
    assert_same(resumed, whole)

def test_diverged_weights_are_not_saved(tmp_path):
    "Weights that turn NaN do not push the good checkpoints out; fastai's TerminateOnNaNCallback then ends the fit"
    from fastai.callback.tracker import TerminateOnNaNCallback
    from onecycle_ext.resume import read_checkpoint
    class Diverge(Callback):
        order = 99  # before Checkpoint
        def after_batch(self):
            if self.training and self.learn.train_iter >= 10:
                with torch.no_grad(): self.learn.model[0].weight.fill_(float('nan'))
    learn = learner(tmp_path)
    with pytest.warns(UserWarning, match='not finite.*not saved'):
        learn.fit_one_cycle(4, 1e-2, cbs=[Checkpoint(every_iters=3), Diverge(), TerminateOnNaNCallback()])
    saved = [read_checkpoint(p) for p in checkpoints(tmp_path/'models')]
    # 8 batches an epoch, saved after training batches 3, 6, 8 (the epoch's end) and 9; 12 and the fit's end were NaN.
    assert [(ck['epoch'], ck['iter'], ck['finished']) for ck in saved] == [(1, 1, False), (1, 0, False)]
    assert all(torch.isfinite(v).all() for ck in saved for v in ck['model'].values())

def test_interrupted_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    "Ctrl-C in the middle of a save: the previous checkpoint is intact, no partial file is left"
    import onecycle_ext.resume as r
    learn = learner(tmp_path)
    learn.fit_one_cycle(1, 1e-2, cbs=Checkpoint())
    before = {p.name: p.read_bytes() for p in (tmp_path/'models').iterdir()}
    def interrupted(fd): raise KeyboardInterrupt()
    monkeypatch.setattr(r.os, 'fsync', interrupted)
    with pytest.raises(KeyboardInterrupt): learn.fit_one_cycle(1, 1e-2, cbs=Checkpoint())
    assert {p.name: p.read_bytes() for p in (tmp_path/'models').iterdir()} == before

def test_resume_with_other_checkpoint_settings(tmp_path, uninterrupted):
    "How often to save is not part of the run: the resumed fit may save at other moments, with the same result"
    assert run_in_child(tmp_path, 'fit_one_cycle', kill=('batch', 13)) == -9
    learn,ck = learner(tmp_path),Checkpoint(every_iters=5, keep=3)
    learn.fit_one_cycle(4, 1e-2, cbs=ck, resume=True)
    assert (ck.every_iters, ck.keep) == (5, 3)
    assert len(checkpoints(tmp_path/'models')) == 3
    assert_same(learn.model.state_dict(), uninterrupted['fit_one_cycle'])
