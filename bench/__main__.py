"""Run every benchmark and rewrite its section of bench/RESULTS.md: `python -m bench [--quick]` from the
repository root (`make bench`, `make bench ARGS=--quick`). `--quick` uses fewer repetitions, seeds and kills."""
import subprocess, sys, time
from pathlib import Path

here = Path(__file__).parent
quick = '--quick' in sys.argv[1:]
SCRIPTS = [('overhead.py', ['--reps', '3'] if quick else []),
           ('lr_find_speed.py', ['--reps', '5'] if quick else []),
           ('suggest.py', ['--quick'] if quick else []),
           ('suggest_ceiling.py', []),
           ('suggest_frozen.py', []),
           ('resume.py', ['--kills-per-setup', '1'] if quick else []),
           ('first_batch.py', ['--reps', '1'] if quick else []),
           ('superconvergence.py', ['--seeds', '1'] if quick else []),
           ('ddp.py', ['--reps', '2'] if quick else []),
           ('checkpoint_cost.py', ['--quick'] if quick else [])]

for script,args in SCRIPTS:
    start = time.time()
    subprocess.run([sys.executable, str(here/script), '--write', *args], check=True)
    print(f"== {script} done in {time.time()-start:.0f} s", flush=True)
