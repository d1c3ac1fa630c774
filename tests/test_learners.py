"""fastai's real learners, as users train them, with this package: tabular, vision (resnet18 with augmentation), text
(an AWD-LSTM classifier) and mixed precision. Each is made, `lr_find`, `fit_one_cycle` with a `Checkpoint`, SIGKILLed
mid-epoch, resumed in a fresh process to the same weights as the uninterrupted fit, exported, and loaded with
`load_learner` in a process that never imports onecycle_ext. The steps run in fresh processes (tests/learners_job.py),
chained so that one process resumes a learner and kills the next: 6 processes for the 4 learners."""
import json, math, os, subprocess, sys
from pathlib import Path
import pytest

JOB = Path(__file__).parent/'learners_job.py'
KINDS = ['tabular', 'vision', 'text', 'fp16']

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    "Each step's record, per learner and stage, and the exit code of the process each stage ran in"
    root = tmp_path_factory.mktemp('learners')
    chain = [[f'resume:{a}'] * (a is not None) + [f'crash:{b}'] * (b is not None) for a,b in zip([None] + KINDS, KINDS + [None])]
    chain.append([f'load:{k}' for k in KINDS])
    codes = {}
    for steps in chain:
        code = subprocess.run([sys.executable, str(JOB), str(root), *steps], timeout=300, env={**os.environ, 'MPLBACKEND': 'Agg'}, cwd=root).returncode
        for s in steps: codes[s] = code
    def record(kind, stage):
        p = root/kind/f'{stage}.json'
        return {**(json.loads(p.read_text()) if p.exists() else {'error': 'no record'}), 'code': codes[f'{stage}:{kind}']}
    return record

def no_error(r): assert 'error' not in r, r['error']

@pytest.mark.parametrize('kind', KINDS)
def test_made_lr_find_and_fit_one_cycle_with_checkpoint(runs, kind):
    r = runs(kind, 'crash')
    no_error(r)
    assert r['code'] == -9  # then killed mid-epoch
    assert r['lr_find_untouched'] and 0 < r['suggestion'] < 10
    n = 2 * r['n_iter']
    assert r['lrs'] == r['moms'] == n and len(r['checkpoints']) == 2 and math.isfinite(r['loss'])

@pytest.mark.parametrize('kind', KINDS)
def test_killed_then_resumed_in_a_fresh_process(runs, kind):
    r = runs(kind, 'resume')
    no_error(r)
    assert r['same_as_whole'] and 0 < r['trained'] < r['total']
    assert ('MixedPrecision' in r['cbs']) == (kind == 'fp16')

@pytest.mark.parametrize('kind', KINDS)
def test_export_loads_without_onecycle_ext(runs, kind):
    r = runs(kind, 'load')
    no_error(r)
    assert r['code'] == 0 and not r['onecycle_ext_imported'] and r['same_preds']

def test_tabular_column_named_c():
    """What the issue took for a fastcore bug: in every fastcore, a categorical column named `c` makes fastai's `dls.c`
    (the number of outputs) the column's categories, and `tabular_learner` fails making its layers; `n_out` avoids it"""
    import numpy as np, pandas as pd
    from fastai.tabular.all import TabularDataLoaders, tabular_learner, Categorify
    df = pd.DataFrame({'x': np.linspace(-1, 1, 64), 'c': ['u', 'v'] * 32, 'y': ['no', 'yes'] * 32})
    dls = TabularDataLoaders.from_df(df, y_names='y', cat_names=['c'], cont_names=['x'], procs=[Categorify], bs=16)
    assert dls.c != 2
    with pytest.raises(TypeError, match='must be tuple of ints'): tabular_learner(dls)
    learn = tabular_learner(dls, n_out=2)
    learn.remove_cbs(learn.cbs.filter(lambda cb: type(cb).__name__ == 'ProgressCallback'))
    with learn.no_logging(): learn.fit_one_cycle(1, 1e-2)
    assert len(learn.recorder.hps['lr']) == len(dls.train)
