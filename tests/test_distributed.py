"""fastai's DDP (`distrib_ctx`) with real processes: `python -m torch.distributed.run --nproc_per_node 2` on the
CPU (gloo) runs `ddp_job.py`, whose ranks save what they saw; the tests compare the ranks with each other, with
a single process running the same fit on the rank's batch count, and with fastai's own `fit_one_cycle`."""
import json, os, signal, socket, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch
from conftest import fastai_methods  # noqa: F401  (fastai's methods captured before onecycle_ext patches them)
import ddp_job
from onecycle_ext import suggestion_points, trial_rates
from ddp_job import BS, N_TRAIN

JOB = Path(__file__).parent/'ddp_job.py'

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

def launch(out, modes, nproc=2, args=None, timeout=120, env=None, killed=False):
    """Run `ddp_job.py` in `nproc` processes with torchrun, killing the whole job after `timeout` s; each mode's ranks'
    results, or with `killed`, the job's exit code and log (a job that kills itself)"""
    env = {**os.environ, 'MPLBACKEND': 'Agg', 'OMP_NUM_THREADS': '1', **(env or {})}
    # 2 ranks share no GPU: the CPU, also where there is one; without one, `distrib_ctx` chooses the CPU by itself.
    if torch.cuda.is_available(): env.setdefault('ACCELERATE_USE_CPU', '1')
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(nproc), '--master_addr', '127.0.0.1',
           '--master_port', str(free_port()), str(JOB), str(out), ','.join(modes), json.dumps(args or {})]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try: log,_ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        log,_ = p.communicate()
        raise AssertionError(f"{modes} did not finish in {timeout} s:\n{log[-3000:]}")
    if killed: return p.returncode,log
    assert p.returncode == 0, f"{modes} failed ({p.returncode}):\n{log[-3000:]}"
    return {m: [torch.load(Path(out)/f'{m}-rank{r}.pt', weights_only=True) for r in range(nproc)] for m in modes}

@pytest.fixture(scope='module')
def launched(tmp_path_factory):
    "One launch on 2 ranks: every case of `ddp_job.CASES`, `distrib_ctx` twice on one learner, a model with BatchNorm"
    out = tmp_path_factory.mktemp('ddp')
    return launch(out, ['schedules', 'contexts', 'batchnorm', 'checkpointed', 'checkpointed_workers', 'range_tests'],
                  args={'checkpointed': {'root': str(out/'whole')}, 'range_tests': {'root': str(out/'lr_find')},
                        'checkpointed_workers': {'root': str(out/'whole_workers'), 'workers': 2}})

@pytest.fixture(scope='module')
def ranks(launched): return launched['schedules']

@pytest.fixture(scope='module')
def single():
    "Every case in one process, on a loader of as many batches per epoch as a rank runs (3: 48 samples)"
    return {name: ddp_job.run_case(name, ddp_job.learner(n_train=48), distributed=False) for name in ddp_job.CASES}

CASES = list(ddp_job.CASES)

def test_ranks_ran_ddp_on_cpu(ranks):
    assert [r['_env'] for r in ranks] == [{'rank': i, 'world_size': 2, 'backend': 'gloo'} for i in range(2)]
    for name in CASES:
        for r in ranks: assert all(f['model'] == 'DistributedDataParallel' for f in r[name]['fits']), name

def test_each_rank_runs_its_share_of_every_epoch(ranks):
    "112 samples in batches of 16, the last partial one dropped: 56 per rank, so 3 batches (fastai's length says 4)"
    for name in CASES:
        for r in ranks:
            for fit in r[name]['fits']:
                assert fit['len'] == 3 and fit['batches'] == [3]*len(fit['batches']), name
                assert fit['fastai_len'] == 4
    # Within an epoch the ranks train on different samples (slices of one shuffled order), so their losses differ.
    a,b = (r['fit_one_cycle']['fits'][0] for r in ranks)
    per_epoch = 3 * ddp_job.BS
    for e in range(3): assert not set(a['samples'][e*per_epoch:(e+1)*per_epoch]) & set(b['samples'][e*per_epoch:(e+1)*per_epoch])
    assert a['losses'] != b['losses']

@pytest.mark.parametrize('name', CASES)
def test_schedule_is_the_single_process_one_at_the_rank_batch_count(ranks, single, name):
    for r in ranks:
        assert len(r[name]['fits']) == len(single[name])
        for fit,ref in zip(r[name]['fits'], single[name]):
            assert fit['hps'] == ref['hps'] and fit['group_hps'] == ref['group_hps'], name
            assert len(fit['hps']['lr']) == sum(fit['batches'])

def test_ranks_agree_on_schedule_and_weights(ranks):
    for name in CASES:
        a,b = ranks
        assert [f['hps'] for f in a[name]['fits']] == [f['hps'] for f in b[name]['fits']], name
        for k,w in a[name]['weights'].items(): assert torch.equal(w, b[name]['weights'][k]), (name, k)

def test_schedules_end_where_they_should(ranks):
    "The last batch of each rank is the last of the 1cycle; on fastai's length (4 per epoch) it would end at 3/4 of its last epoch, at twice the lr"
    from onecycle_ext import OneCycleScheduler
    last = ranks[0]['fit_one_cycle']['fits'][0]['hps']['lr'][-1]
    assert last == OneCycleScheduler(1e-2).preview(3, 3)['lr'][-1]
    assert last < OneCycleScheduler(1e-2).preview(3, 4)["lr"][2*4 + 2] / 2  # the batch it would end on

def test_same_weights_as_fastai_fit_one_cycle(ranks):
    "fastai's own `fit_one_cycle` under `distrib_ctx` (its phases in float64) trains to the same weights and schedule"
    for r in ranks:
        ours,theirs = r['fit_one_cycle'],r['fastai_fit_one_cycle']
        for k in ('lr', 'mom'):
            np.testing.assert_allclose(ours['fits'][0]['hps'][k], theirs['fits'][0]['hps'][k], atol=1e-12, rtol=0)
        for k,w in ours['weights'].items(): torch.testing.assert_close(w, theirs['weights'][k], rtol=1e-5, atol=1e-6)

def test_plot_sched_on_rank_0(ranks):
    for name in CASES:
        assert ranks[0][name]['plot'] == ranks[0][name]['fits'][-1]['hps'], name

@pytest.mark.parametrize('device', ['cpu', pytest.param('cuda', marks=pytest.mark.skipif(not torch.cuda.is_available(), reason='no GPU'))])
def test_world_size_1(tmp_path, device):
    "`torchrun --nproc_per_node 1`: one process without DDP's numbers, and `distrib_ctx` can be entered again"
    res = launch(tmp_path, ['schedules', 'contexts'], nproc=1, args={'schedules': {'cases': ['fit_one_cycle']}},
                 env={'ACCELERATE_USE_CPU': '1' if device == 'cpu' else '0'})
    (one,),(ctx,) = res['schedules'],res['contexts']
    assert one['_env']['backend'] == ('gloo' if device == 'cpu' else 'nccl')
    ref = ddp_job.learner()
    fits = ddp_job.run_case('fit_one_cycle', ref, distributed=False)
    assert one['fit_one_cycle']['fits'][0]['batches'] == fits[0]['batches'] == [7, 7, 7]
    assert one['fit_one_cycle']['fits'][0]['hps'] == fits[0]['hps']
    weights = one['fit_one_cycle']['weights']
    assert all(w.device.type == device for w in weights.values())
    # On the CPU the same batches and dropout as the single process: the same weights, to the bit.
    if device == 'cpu':
        for k,w in ref.model.state_dict().items(): torch.testing.assert_close(weights[k], w, rtol=0, atol=0)
    # fastai keeps its DistributedTrainer after a context of one process: the second one would wrap the model twice.
    assert [f['model'] for f in ctx['fits']] == ['DistributedDataParallel', 'DistributedDataParallel', 'Sequential']
    assert 'DistributedTrainer' not in ctx['cbs']

def test_distrib_ctx_twice_on_2_ranks(launched):
    for ctx in launched['contexts']:
        assert [f['model'] for f in ctx['fits']] == ['DistributedDataParallel', 'DistributedDataParallel', 'Sequential']
        assert [f['batches'] for f in ctx['fits']] == [[3], [3], [7]]
        assert 'DistributedTrainer' not in ctx['cbs']

def test_batchnorm_on_cpu(launched):
    "fastai's default `sync_bn=True` makes DDP refuse the model on the CPU: it is ignored there, with a warning"
    a,b = launched['batchnorm']
    for r in (a, b): assert any('sync_bn=True is ignored on the CPU' in w for w in r['warnings'])
    assert any('running_mean' in k for k in a['state'])
    for k,v in a['state'].items(): assert torch.equal(v, b['state'][k]), k

def test_import_without_accelerate():
    "Accelerate is only needed for DDP: without it `import onecycle_ext` works and leaves fastai's DDP alone"
    code = "import sys; sys.modules['accelerate'] = None; import onecycle_ext; print(hasattr(onecycle_ext, 'model_device'))"
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == 'False'

# Checkpoints and exact resume under DDP: 3 batches per rank an epoch, 9 in all, a checkpoint every 2 and at epoch ends.

def _resumed(tmp_path, kill, who='all', kill_rank=0, workers=0):
    "Kill the job after `kill` batches, check what is on disk, resume it: the ranks' results and the job's exit code"
    args = {'root': str(tmp_path), 'kill': kill, 'who': who, 'kill_rank': kill_rank, 'workers': workers}
    code,log = launch(tmp_path, ['checkpointed'], args={'checkpointed': args}, killed=True, timeout=90)
    from onecycle_ext.resume import checkpoints, read_checkpoint
    files = checkpoints(tmp_path/'rank0'/'models')  # newest first; a kill in the middle of a write may also leave a .tmp
    assert code != 0 and len(files) == 2 and not (tmp_path/'rank1'/'models').exists(), (code, files, log[-2000:])
    assert len(read_checkpoint(files[0])['ranks']) == 2  # the newest is whole: each rank's own state
    resume = {'root': str(tmp_path), 'resume': True, 'workers': workers}
    return code,launch(tmp_path, ['checkpointed'], args={'checkpointed': resume})['checkpointed']

def _same_as_whole(resumed, whole, kill, intervals=1):
    "Every rank bit-identical to the uninterrupted run, having re-trained at most `intervals` save intervals"
    for r,(a,b) in enumerate(zip(resumed, whole)):
        for k,v in b['model'].items(): assert torch.equal(a['model'][k], v), (r, k)
        assert a['values'] == b['values'] and a['losses'] == b['losses'], r
        assert 9 - kill <= a['trained'] <= 9 - kill + 2*intervals, (r, a['trained'])

def test_kill_of_the_whole_job_then_resume_is_bit_identical_on_every_rank(tmp_path, launched):
    code,resumed = _resumed(tmp_path, kill=5)
    assert code == -9
    _same_as_whole(resumed, launched['checkpointed'], 5)

def test_one_rank_killed_ends_the_job_and_resume_is_bit_identical(tmp_path, launched):
    "torchrun ends the other ranks when one dies; the last checkpoint is intact"
    code,resumed = _resumed(tmp_path, kill=7, who='self', kill_rank=1)
    assert code not in (0, -9)  # torchrun itself was not killed: it ended the job with an error
    # Rank 0's save in flight when its peer died may be lost with it (saves are written in the background).
    _same_as_whole(resumed, launched['checkpointed'], 7, intervals=2)

def test_kill_then_resume_with_workers_loads_only_what_it_trains_and_is_bit_identical(tmp_path, launched):
    "`DistributedDL` over loaders with 2 worker processes each (items with noise): each rank starts at its batch"
    code,resumed = _resumed(tmp_path, kill=5, workers=2)
    assert code == -9
    whole = launched['checkpointed_workers']
    _same_as_whole(resumed, whole, 5)
    share = N_TRAIN // 2  # each rank's items an epoch: 3 batches of 16 and 8 more, loaded and dropped (drop_last)
    for a,b in zip(resumed, whole):
        assert b['loads'] == 3*share
        # The newest checkpoint is after batch 4 of 9, batch 1 of epoch 1: each rank loads that epoch from batch 1 on.
        assert (a['trained'],a['loads']) == (9 - 4, share - BS + share)

def test_checkpoint_of_another_number_of_processes_is_refused(launched, tmp_path):
    "A checkpoint of the 2-rank job, resumed by one process: an error naming both, and nothing changed"
    import shutil
    shutil.copytree(Path(launched['checkpointed'][0]['root'])/'rank0', tmp_path/'rank0')
    learn = ddp_job.learner(path=tmp_path/'rank0')
    from onecycle_ext import Checkpoint
    with pytest.raises(ValueError, match='processes: checkpoint 2, this fit 1'):
        learn.fit_one_cycle(3, 1e-2, cbs=Checkpoint(every_iters=2, keep=2), resume=True)

# The LR finder under DDP: the ranks decide together on the mean of their losses.

@pytest.mark.parametrize('case', ['whole', 'diverged', 'flat'])
def test_lr_find_gives_every_rank_the_same_curve_and_leaves_no_trace(launched, case):
    a,b = (r[case] for r in launched['range_tests'])
    assert a['lrs'] == b['lrs'] and a['losses'] == b['losses'] and a['suggestion'] == b['suggestion']
    assert len(a['lrs']) == 40 if case != 'diverged' else 2 <= len(a['lrs']) < 40  # all num_it batches, though a rank runs 3 an epoch
    if case == 'flat': assert a['suggestion'] in trial_rates(suggestion_points(a['lrs'], a['losses'], 40)[0])  # the ranks' trials agreed
    assert a['untouched'] and b['untouched'] and a['files'] == b['files'] == []
