"""fastai's real learners through a user's whole session, for tests/test_learners.py: each `step` runs in a fresh
process (`python learners_job.py DIR STEP...`) and records what it saw in DIR/KIND/STAGE.json.

- `crash:KIND`  make the learner, `lr_find`, `fit_one_cycle` with a `Checkpoint` to the end (the reference), then again,
                SIGKILLed mid-epoch
- `resume:KIND` make the learner afresh, `fit_one_cycle(..., resume=True)`, compare with the reference, `export`
- `load:KIND`   `load_learner` the export and predict, in a process that never imports onecycle_ext

A step records its error instead of raising, so that the next step of the same process still runs."""
import json, os, pickle, signal, sys, traceback, warnings
from pathlib import Path
warnings.filterwarnings('ignore')
import numpy as np, pandas as pd
import torch
from torch import nn
from fastai.basics import *
from fastai.callback.fp16 import *  # Learner.to_fp16
from fastai.tabular.all import TabularDataLoaders, tabular_learner, Categorify, FillMissing, Normalize
from fastai.vision.all import ImageDataLoaders, vision_learner, resnet18, Resize, aug_transforms
from fastai.text.all import TextDataLoaders, text_classifier_learner, AWD_LSTM, awd_lstm_clas_config

N_EPOCH,EVERY = 2,2

def tabular(path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({'x1': rng.normal(size=256), 'x2': rng.normal(size=256), 'colour': rng.choice(['red', 'green', 'blue'], 256)})
    df.loc[::17, 'x2'] = np.nan
    df['label'] = np.where(df.x1 + (df.colour == 'red') > 0.5, 'yes', 'no')
    dls = TabularDataLoaders.from_df(df, path=path, y_names='label', cat_names=['colour'], cont_names=['x1', 'x2'],
                                     procs=[Categorify, FillMissing, Normalize], valid_idx=list(range(192, 256)), bs=32)
    return tabular_learner(dls, layers=[16, 8], metrics=accuracy),[df.iloc[i] for i in range(4)]

def vision(path):
    "Dark and light 24-pixel images, with fastai's augmentation, into a resnet18 (no pretrained weights: nothing to download)"
    from PIL import Image
    rng,folder = np.random.default_rng(0),path/'images'
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(32):
        lo = 0 if i % 2 else 128
        Image.fromarray(rng.integers(lo, lo + 128, (24, 24, 3), dtype=np.uint8)).save(folder/f"{['light', 'dark'][i % 2]}_{i}.png")
    fnames = sorted(folder.glob('*.png'))
    dls = ImageDataLoaders.from_name_re(path, fnames, r'^([a-z]+)_\d+\.png$', valid_pct=0.25, seed=0, item_tfms=Resize(24),
                                        batch_tfms=aug_transforms(size=24, min_scale=0.8), bs=8, num_workers=0)
    return vision_learner(dls, resnet18, pretrained=False, metrics=accuracy),fnames[:4]

def text(path):
    "A two-word-list sentiment corpus into a small AWD-LSTM classifier"
    rng = np.random.default_rng(0)
    words = {'pos': ['good', 'great', 'happy', 'nice'], 'neg': ['bad', 'awful', 'sad', 'poor']}
    rows = [(' '.join(rng.choice(words[l] + ['the', 'movie', 'is', 'a'], 8)), l) for l in ['pos', 'neg'] * 24]
    df = pd.DataFrame(rows, columns=['text', 'label']).assign(is_valid=[i >= 36 for i in range(48)])
    dls = TextDataLoaders.from_df(df, path=path, text_col='text', label_col='label', valid_col='is_valid', bs=8, seq_len=8)
    config = dict(awd_lstm_clas_config, emb_sz=16, n_hid=24, n_layers=1)
    return text_classifier_learner(dls, AWD_LSTM, config=config, pretrained=False, metrics=accuracy),list(df.text[:4])

def fp16(path):
    "The tabular learner with fastai's mixed precision; on a CPU, torch turns its autocast off (bf16 takes the same path)"
    learn,items = tabular(path)
    return learn.to_fp16(),items

KINDS = {f.__name__: f for f in (tabular, vision, text, fp16)}

def make(kind, path):
    set_seed(0)
    learn,items = KINDS[kind](path)
    learn.remove_cbs(learn.cbs.filter(lambda cb: type(cb).__name__ == 'ProgressCallback'))
    learn.logger = noop
    return learn,items

def _weights(learn): return {k: v.detach().clone() for k,v in learn.model.state_dict().items()}

class KillAt(Callback):
    "SIGKILLs its own process after `at` training batches"
    order = 101
    def __init__(self, at): self.at,self.n = at,0
    def after_batch(self):
        self.n += self.training
        if self.n == self.at: os.kill(os.getpid(), signal.SIGKILL)

class Count(Callback):
    "Training batches run in this process"
    def __init__(self): self.counts = [0]  # a list: a resumed fit puts callbacks' plain attributes back
    def after_batch(self): self.counts[0] += self.training

def crash(kind, d):
    from onecycle_ext import Checkpoint
    learn,_ = make(kind, d/'whole')
    before = _weights(learn)
    sugg = learn.lr_find(num_it=20, show_plot=False)
    untouched = all(torch.equal(v, learn.model.state_dict()[k]) for k,v in before.items())
    learn.fit_one_cycle(N_EPOCH, 1e-3, cbs=Checkpoint(every_iters=EVERY))
    torch.save(_weights(learn), d/'whole.pth')
    n_iter = len(learn.dls.train)
    ckpts = sorted(p.name for p in (d/'whole'/learn.model_dir).glob('checkpoint-*.ckpt'))
    _record(d, 'crash', suggestion=float(sugg[0]), lr_find_untouched=untouched, n_iter=n_iter, checkpoints=ckpts,
            lrs=len(learn.recorder.hps['lr']), moms=len(learn.recorder.hps.get('mom', [])), loss=float(learn.recorder.losses[-1]))
    learn,_ = make(kind, d/'run')
    learn.fit_one_cycle(N_EPOCH, 1e-3, cbs=[Checkpoint(every_iters=EVERY), KillAt(n_iter + n_iter//2 + 1)])
    _record(d, 'crash', error='the fit was not killed')

def resume(kind, d):
    from onecycle_ext import Checkpoint
    learn,items = make(kind, d/'run')
    count = Count()
    learn.fit_one_cycle(N_EPOCH, 1e-3, cbs=[Checkpoint(every_iters=EVERY), count], resume=True)
    whole = torch.load(d/'whole.pth')
    same = all(torch.equal(v, learn.model.state_dict()[k]) for k,v in whole.items())
    learn.export(d/'export.pkl')
    (d/'items.pkl').write_bytes(pickle.dumps(items))
    torch.save(predict(learn, items), d/'preds.pth')
    _record(d, 'resume', same_as_whole=same, trained=count.counts[0], total=N_EPOCH*len(learn.dls.train),
            cbs=[type(cb).__name__ for cb in learn.cbs])

def load(kind, d):
    learn = load_learner(d/'export.pkl')
    preds = predict(learn, pickle.loads((d/'items.pkl').read_bytes()))
    same = all(torch.allclose(a, b, atol=1e-6) for a,b in zip(preds, torch.load(d/'preds.pth')))
    _record(d, 'load', same_preds=same, onecycle_ext_imported='onecycle_ext' in sys.modules,
            cbs=[type(cb).__name__ for cb in learn.cbs])

def predict(learn, items): return [learn.predict(o)[2] for o in items]

def _record(d, stage, **kw):
    p = d/f'{stage}.json'
    old = json.loads(p.read_text()) if p.exists() else {}
    p.write_text(json.dumps({**old, **kw}))

if __name__ == '__main__':
    torch.set_num_threads(1)
    root = Path(sys.argv[1])
    for step in sys.argv[2:]:
        stage,kind = step.split(':')
        d = root/kind
        d.mkdir(parents=True, exist_ok=True)
        try: {'crash': crash, 'resume': resume, 'load': load}[stage](kind, d)
        except Exception: _record(d, stage, error=traceback.format_exc())
