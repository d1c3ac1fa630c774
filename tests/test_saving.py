"""Checkpoints written in the background: the training loop waits only for the host copy, one save is in flight at a
time, a failed save raises, an error or Ctrl-C waits for the save in flight, and `busy='skip'` warns. The writer is
slowed down or held by events, so what trains while a write is in flight is decided by the test, not by timing."""
import threading, warnings
from pathlib import Path
import pytest
import torch
from fastai.callback.core import Callback
from resume_job import learner
from test_resume_matrix import assert_same, job
import onecycle_ext.resume as resume_mod
from onecycle_ext import Checkpoint
from onecycle_ext.resume import checkpoints, read_checkpoint

class Trained(Callback):
    "Counts training batches; another thread can wait until `n` have trained"
    order = 101
    def __init__(self): self.n,self.cond = 0,threading.Condition()
    def after_batch(self):
        if not self.training: return
        with self.cond: self.n += 1; self.cond.notify_all()
    def wait_for(self, n):
        with self.cond: return self.cond.wait_for(lambda: self.n >= n, timeout=30)

@pytest.fixture
def writer(monkeypatch):
    "Replaces `write_checkpoint` with one that runs `hold(path)` first, and records each write's start and end"
    real,log = resume_mod.write_checkpoint,[]
    class W:
        hold = staticmethod(lambda path: None)
        active = 0; most = 0
    def write(state, path):
        W.active += 1; W.most = max(W.most, W.active)
        log.append(('start', Path(path).name))
        try:
            W.hold(path)
            real(state, path)
        finally:
            W.active -= 1
            log.append(('end', Path(path).name))
    monkeypatch.setattr(resume_mod, 'write_checkpoint', write)
    W.log = log
    return W

def test_training_goes_on_while_a_save_is_written(tmp_path, writer):
    "Each write waits until 2 more batches have trained: it would never see them if training waited for the write"
    count,seen = Trained(),[]
    def hold(path): seen.append(count.wait_for({'1': 5, '2': 8}.get(path.name[-6], 0)))
    writer.hold = hold
    learn = learner(tmp_path)
    learn.fit(1, 1e-2, cbs=[Checkpoint(every_iters=3, every_epoch=False), count])  # 8 batches: saved after 3, 6, then the end
    assert seen[:2] == [True, True]  # the saves after batches 3 and 6 were in flight while batches 4-5 and 7-8 trained
    assert writer.most == 1  # one save in flight at a time
    assert [n for e,n in writer.log] == ['checkpoint-000000001.ckpt']*2 + ['checkpoint-000000002.ckpt']*2 + ['checkpoint-000000003.ckpt']*2
    assert read_checkpoint(checkpoints(tmp_path/'models')[0])['finished']  # the fit returned once its last save landed

class Weights(Callback):
    "The weights after each training batch, cloned"
    order = 101
    def before_fit(self): self.after = []
    def after_batch(self):
        if self.training: self.after.append({k: v.clone() for k,v in self.learn.model.state_dict().items()})

def test_the_weights_are_copied_before_the_step_changes_them(tmp_path, monkeypatch):
    """The weights and the optimizer's state are copied in the background (slowed down here): each checkpoint still
    holds the weights of its batch, as the optimizer step waits for the copy, and the fit trains as without checkpoints"""
    import onecycle_ext.saving as saving
    real,deferred = saving.snapshot,[]
    class Slow(list):
        def __iter__(self): threading.Event().wait(0.2); return super().__iter__()
    def snapshot(state, pool, later=frozenset()):
        out,pending = real(state, pool, later)
        deferred.append(len(pending))
        return out,Slow(pending)
    monkeypatch.setattr(saving, 'snapshot', snapshot)
    plain,seen = learner(tmp_path/'plain'),Weights()
    plain.fit(1, 1e-2)
    learn = learner(tmp_path/'ck')
    learn.fit(1, 1e-2, cbs=[Checkpoint(every_iters=2, every_epoch=False, keep=10), seen])  # 8 batches: saves after 2, 4, 6, 8, the end
    assert deferred and all(n > 0 for n in deferred)  # the weights and the optimizer's state were left for the background
    files = checkpoints(tmp_path/'ck'/'models')[::-1]
    for i,f in zip((1, 3, 5, 7), files): assert_same(read_checkpoint(f)['model'], seen.after[i])
    assert_same(learn.model.state_dict(), plain.model.state_dict())

def test_a_save_waits_for_the_one_in_flight(tmp_path, writer):
    "Saves after every batch with a slow writer: never two at once, numbered in order, `keep` honoured, all verified"
    writer.hold = lambda path: threading.Event().wait(0.05)
    learn = learner(tmp_path)
    learn.fit(1, 1e-2, cbs=Checkpoint(every_iters=1, keep=3))
    assert writer.most == 1
    assert [e for e,_ in writer.log] == ['start', 'end'] * 9  # 8 batches and the fit's end, each landing before the next
    assert [p.name for p in checkpoints(tmp_path/'models')] == [f"checkpoint-{n:09d}.ckpt" for n in (9, 8, 7)]
    assert sorted(p.name for p in (tmp_path/'models').iterdir()) == [f"checkpoint-{n:09d}.ckpt" for n in (7, 8, 9)]

def test_a_failed_save_raises_and_deletes_nothing(tmp_path, writer):
    "The write of the 2nd checkpoint fails in the background: the fit raises it, and the 1st checkpoint stays"
    def hold(path):
        if path.name.endswith('2.ckpt'): raise OSError('No space left on device')
    writer.hold = hold
    learn = learner(tmp_path)
    with pytest.raises(OSError, match='No space left') as e: learn.fit(2, 1e-2, cbs=Checkpoint(every_iters=3, keep=1))
    assert any('background' in n for n in getattr(e.value, '__notes__', []))
    assert [p.name for p in (tmp_path/'models').iterdir()] == ['checkpoint-000000001.ckpt']
    assert read_checkpoint(tmp_path/'models'/'checkpoint-000000001.ckpt')['iter'] == 3
    # It was raised at the next save, so the fit stopped there: after 6 batches, not at the end of 16.
    assert learn.train_iter < 16

@pytest.mark.parametrize('stop', [RuntimeError, KeyboardInterrupt])
def test_an_error_or_ctrl_c_waits_for_the_save_in_flight(tmp_path, writer, stop):
    "The fit stops while a save is being written: it returns only once that save has landed, whole and verified"
    started = threading.Event()
    def hold(path):
        started.set()
        threading.Event().wait(0.3)  # still writing when the fit stops
    writer.hold = hold
    class Stop(Callback):
        order = 102
        def after_batch(self):
            if self.training and self.learn.train_iter == 4:
                assert started.wait(30)
                raise stop('stopped')
    learn = learner(tmp_path)
    with pytest.raises(stop): learn.fit(1, 1e-2, cbs=[Checkpoint(every_iters=3, every_epoch=False), Stop()])
    assert writer.log == [('start', 'checkpoint-000000001.ckpt'), ('end', 'checkpoint-000000001.ckpt')]
    assert [p.name for p in (tmp_path/'models').iterdir()] == ['checkpoint-000000001.ckpt']  # no .tmp
    assert read_checkpoint(tmp_path/'models'/'checkpoint-000000001.ckpt')['iter'] == 3

def test_skip_mode_warns_and_still_saves_the_end(tmp_path, writer):
    "`busy='skip'`: a save due while the previous is in flight is skipped with a warning; the fit's last is not"
    count = Trained()
    def hold(path):
        if path.name.endswith('1.ckpt'): assert count.wait_for(3)  # the first save is held until 2 more batches have trained
    writer.hold = hold
    learn = learner(tmp_path)
    with pytest.warns(UserWarning, match=r'still being written: epoch 0, batch 2 not saved'):
        learn.fit(1, 1e-2, cbs=[Checkpoint(every_iters=1, every_epoch=False, busy='skip'), count])
    ck = read_checkpoint(checkpoints(tmp_path/'models')[0])
    assert ck['finished'] and writer.most == 1

def test_busy_is_checked():
    with pytest.raises(ValueError, match=r"busy='later' is not allowed: give 'wait' or 'skip'"): Checkpoint(busy='later')

def test_kill_during_a_background_write_keeps_the_previous(tmp_path):
    "A fresh process SIGKILLed in the middle of its 2nd write (on the background thread): the 1st checkpoint is the one"
    whole,d = tmp_path/'whole',tmp_path/'killed'
    assert job([f"adam={whole}"]).returncode == 0
    assert job(['--kill', 'write:2', f"adam={d}"]).returncode == -9
    assert [p.name for p in checkpoints(d/'models')] == ['checkpoint-000000001.ckpt']
    assert (d/'models'/'checkpoint-000000002.ckpt.tmp').exists()  # written, not renamed: never read
    assert read_checkpoint(d/'models'/'checkpoint-000000001.ckpt')['iter'] == 3
    assert job(['--resume', f"adam={d}"]).returncode == 0
    a,c = torch.load(whole/'final.pth'),torch.load(d/'final.pth')
    for part in ('model', 'opt', 'values'): assert_same(c[part], a[part], part)

def test_the_file_format_detects_damage_and_refuses_v1(tmp_path):
    "A byte flipped anywhere in a tensor's data fails its record's CRC-32; a v1 file is refused, saying so"
    from onecycle_ext.resume import CorruptCheckpoint, write_checkpoint
    p = tmp_path/'c.ckpt'
    write_checkpoint({'w': torch.zeros(100_000), 'pos': (2, 5)}, p)
    assert read_checkpoint(p)['pos'] == (2, 5)
    raw = bytearray(p.read_bytes())
    raw[len(raw)//2] ^= 1  # inside the tensor's 400 kB
    p.write_bytes(bytes(raw))
    for load in (True, False):
        with pytest.raises(CorruptCheckpoint, match='truncated or corrupt'): read_checkpoint(p, load=load)
    p.write_bytes(b'onecycle_ext checkpoint v1 sha256=' + b'0'*64 + b'\n' + b'x'*100)
    with pytest.raises(CorruptCheckpoint, match=r'older format \(v1\).*reads v2 only'): read_checkpoint(p)

def test_torch_crcs_switched_off_is_refused(tmp_path):
    torch.serialization.set_crc32_options(False)
    try:
        with pytest.raises(RuntimeError, match='set_crc32_options'): resume_mod.write_checkpoint({'a': 1}, tmp_path/'c.ckpt')
    finally: torch.serialization.set_crc32_options(True)
    assert not list(tmp_path.iterdir())
