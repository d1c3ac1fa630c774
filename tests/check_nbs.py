"""Check that the notebooks are clean and that `onecycle_ext/` is exactly what `nbdev_export` makes of them.

Run with the tools environment's python (`.tools/bin/python tests/check_nbs.py`); it works on a copy, so
nothing in the tree changes. Exits 1 and names the files that differ."""
import filecmp, shutil, subprocess, sys, tempfile
from pathlib import Path

root = Path(__file__).resolve().parent.parent
bin_dir = Path(sys.executable).parent

def differing(a, b, pattern):
    "Files matching `pattern` under `a` or `b` whose contents differ (or exist on one side only)"
    names = {p.relative_to(a) for p in a.rglob(pattern)} | {p.relative_to(b) for p in b.rglob(pattern)}
    return sorted(str(n) for n in names if not ((a/n).exists() and (b/n).exists() and filecmp.cmp(a/n, b/n, shallow=False)))

with tempfile.TemporaryDirectory() as d:
    d = Path(d)
    shutil.copy(root/'settings.ini', d)
    for sub in ('nbs', 'onecycle_ext'): shutil.copytree(root/sub, d/sub, ignore=shutil.ignore_patterns('__pycache__'))
    for cmd in ('nbdev_clean', 'nbdev_export'): subprocess.run([str(bin_dir/cmd)], cwd=d, check=True)
    unclean = differing(root/'nbs', d/'nbs', '*.ipynb')
    stale = differing(root/'onecycle_ext', d/'onecycle_ext', '*.py')

for what,files,fix in [('notebooks not clean', unclean, 'nbdev_clean'), ('package not in sync with nbs/', stale, 'nbdev_export')]:
    if files: print(f"{what}: {', '.join(files)} (run {fix})")
sys.exit(1 if unclean or stale else 0)
