"""How precise a suggestion must be to meet the goal, read from the grids of `bench/suggest.py` (no training).

For each task, the regret of the task's recipe one grid step (a quarter of a decade, a factor of 1.8) and two steps away
from the grid rate that is best on average over the seeds, on the worse side averaged with the better one and on the
better side alone; the seed-to-seed spread of `lr_find()`'s suggestion (the standard deviation of log10 of the rate over
seeds, same task); and, with hindsight, the best of 3 full trainings at half a decade below, at and above the suggestion
(nearest grid rates, chosen per seed by the score itself): a ceiling for any search among those three rates.

    .venv/bin/python bench/suggest_ceiling.py [--write]
"""
import os, sys, warnings
warnings.filterwarnings('ignore')
import numpy as np
sys.path.insert(0, os.path.dirname(__file__))
from results import publish
from suggest import GROUPS, Result, groups, lr_find_default, points, regret

SEEDS = range(5)

def task_figures(task, cache):
    "(regret 1 step away: both sides, better side; 2 steps: both, better; spread of the suggestion; best of 3 in hindsight)"
    grid = np.array(task.grid())
    scores = np.array([[cache.fit(task, s, lr) for lr in grid] for s in SEEDS])
    best = Result(task, scores).fixed_best()
    worst = np.inf if task.loss == 'mse' else 0.
    scores = np.where(np.isfinite(scores), scores, worst)
    at = lambda i, s: float(points(task, regret(task, best, scores[s, i])))
    mean = scores.mean(0)
    top = int(np.argmin(mean) if task.loss == 'mse' else np.argmax(mean))
    def away(k):
        sides = [np.mean([at(i, s) for s in SEEDS]) for i in (top-k, top+k) if 0 <= i < len(grid)]
        return np.mean(sides),min(sides)
    lrs = np.log10([lr_find_default(cache, task, s) for s in SEEDS])
    near = lambda x: int(np.argmin(abs(np.log10(grid) - x)))
    best_of_3 = np.mean([min(at(near(x + d), s) for d in (-.5, 0, .5)) for s,x in zip(SEEDS, lrs)])
    return (*away(1), *away(2), lrs.std(), best_of_3)

def main():
    lines = ["| group | 1/4 decade off: either side | better side | 1/2 decade off: either side | better side | "
             "spread of the suggestion over seeds (decades) | best of 3 trainings in hindsight |", "|---|---|---|---|---|---|---|"]
    every = []
    for name,(tasks,cache) in groups().items():
        f = np.array([task_figures(t, cache) for t in tasks])
        every.append(f)
        cell = lambda j: f"{f[:, j].mean():.1f} ({f[:, j].max():.1f})"
        lines.append(f"| {name} | " + " | ".join(cell(j) for j in (0, 1, 2, 3)) + f" | {np.median(f[:, 4]):.2f} | {cell(5)} |")
    f = np.concatenate(every)
    cell = lambda j: f"**{f[:, j].mean():.1f}** ({f[:, j].max():.1f})"
    lines.append(f"| **all {len(f)} tasks** | " + " | ".join(cell(j) for j in (0, 1, 2, 3)) + f" | **{np.median(f[:, 4]):.2f}** | {cell(5)} |")
    publish('suggest_ceiling', "How precise a suggestion must be (`bench/suggest_ceiling.py`)",
            "From the grids of `bench/suggest.py` (groups as there: " + ", ".join(GROUPS) + "), no training. Regret in points as "
            "there (mean over tasks, worst task in brackets) of the recipe a quarter and half a decade from the grid rate best "
            "on average over seeds 0-4: on either side (the mean of the two) and on the better side; the median over tasks of the "
            "seed-to-seed spread of `lr_find()`'s suggestion; and the best of 3 full trainings at the nearest grid rates to half "
            "a decade below, at and above the suggestion, picked per seed with hindsight by the score itself.",
            lines, '--write' in sys.argv)

if __name__ == '__main__': main()
