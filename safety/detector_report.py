"""The detector's evaluation report: markdown tables and figures from an evaluation record
(assets/detector_eval.json, written by `python -m tools.evals.train`). Needs no research media; the demo's
Detector report tab and `python -m safety.detector report` show it."""
from __future__ import annotations

import math

import numpy as np

TARGET_FPR = 0.03          # 'generated' threshold: at most this share of held-out real training clips reach it
UNCERTAIN_FPR = 0.15       # 'real' below the score this share of held-out real training clips exceed


def report_markdown(ev: dict) -> str:
    """The Detector report (markdown): the leave-one-generator-out table, the own-clips table, thresholds and
    which cue groups carry the result."""
    h = ev["headline"]

    def f(v, d=2):
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{d}f}"

    def ci(c, d=2):
        return f" [{f(c[0], d)}-{f(c[1], d)}]" if c else ""
    out = ["### Generators it never saw (leave-one-generator-out)", "",
           f"Each generator is scored by models trained without it and without the real speakers it is compared "
           f"with; {h['real_clips']} real clips, every clip in the same re-encodings (as made, CRF 23/28/35, 50% "
           f"downscale, crop, frame-rate change, CRF 28 + 50% + crop). **Mean AUC over {h['generators']} "
           f"generators {f(h['mean_auc'], 3)}{ci(h['mean_auc_ci'])}**, lowest {f(h['min_auc'])} "
           f"({h['min_auc_generator']}), {len(h['generators_below_0.7'])} below 0.7, pooled (clip-weighted) "
           f"{f(h['pooled_auc_weighted'], 3)}. Real clips called generated at the threshold: "
           f"**{f(100 * h['real_fpr'], 1)}%**{ci([100 * c for c in h['real_fpr_ci']] if h['real_fpr_ci'] else None, 1)}.", "",
           "| generator left out | clips | AUC [95% CI] | AUC as made | AUC CRF 28 + 50% + crop | caught at threshold |",
           "|---|---|---|---|---|---|"]
    for d in ev["per_generator"]:
        name = "our renderer (left out too)" if d["generator"] == "ours" else d["generator"]
        out.append(f"| {name} | {d['clips']} | {f(d['auc'])}{ci(d.get('auc_ci'))} | {f(d['auc_as_made'])} | "
                   f"{f(d['auc_hard'])} | {f(d['recall'])} |")
    out += ["", "### Own clips (watermark stripped) and real clips, held out by person", "",
            "| re-encoding | own clips caught | real clips called generated | other generators AUC (LOGO) |",
            "|---|---|---|---|"]
    for v, d in ev["per_variant"].items():
        out.append(f"| {d['label']} | {f(d['own_recall'])} ({d['own_clips']}) | {f(d['real_fpr'])}"
                   f"{ci(d.get('real_fpr_ci'))} ({d['real_clips']}) | {f(d.get('other_auc'))} |")
    out.append(f"| all | {f(h['own_recall_all_variants'])} | {f(h['real_fpr'])}{ci(h['real_fpr_ci'])} | "
               f"{f(h['pooled_auc_weighted'])} |")
    out.append("| *VASA-1 fakes, figures usually quoted (unsourced: no paper or page found)* | accuracy 0.94, "
               "precision 0.92, recall 0.96 | ? | ? |")
    th = ev.get("thresholds") or {}
    meta = ev.get("meta") or {}
    out += ["", f"Verdicts: 'generated' at forensic score >= {f(th.get('generated'), 3)}, 'real' below "
            f"{f(th.get('real'), 3)}, 'uncertain' in between (chosen on training folds only: "
            f"{int(100 * TARGET_FPR)}% / {int(100 * UNCERTAIN_FPR)}% of held-out real training clips above them). "
            f"Own clips CRF 28 + 50% + crop: recall {f(h['own_hard_recall'])}{ci(h['own_hard_recall_ci'])}. "
            f"95% intervals: clip bootstrap for AUC, Wilson for rates.",
            f"Shipped model trained on renderer version `{meta.get('renderer_version', '?')}` "
            f"({meta.get('n_rows', '?')} clip variants from {meta.get('n_clips', '?')} clips)."]
    groups = ev.get("cue_groups")
    if groups:
        out += ["", "Each cue group alone (a model on its features only, same protocol"
                + (f"; {ev['cue_groups_note']}" if ev.get("cue_groups_note") else "") + "):", "",
                "| cue group | mean AUC over generators | pooled AUC |", "|---|---|---|"]
        out += [f"| {g} | {f(d.get('alone_mean_auc'), 3)} | {f(d.get('alone_pooled_auc'), 3)} |"
                for g, d in groups.items()]
    if ev.get("notes"):
        out += ["", *[f"- {n}" for n in ev["notes"]]]
    return "\n".join(out)


def report_figures(ev: dict) -> list:
    """[matplotlib Figure]: per-generator AUC with intervals, ROC curves, score histograms."""
    from matplotlib.figure import Figure
    figs = []
    gens = ev["per_generator"]
    fig = Figure(figsize=(6.5, max(4.0, 0.2 * len(gens) + 1)))
    ax = fig.add_subplot(111)
    y = np.arange(len(gens))
    a = np.array([d["auc"] for d in gens])
    lo = np.array([d["auc_ci"][0] if d.get("auc_ci") else d["auc"] for d in gens])
    hi = np.array([d["auc_ci"][1] if d.get("auc_ci") else d["auc"] for d in gens])
    ax.errorbar(a, y, xerr=[a - lo, hi - a], fmt="o", ms=3, lw=0.8)
    ax.axvline(0.5, color="k", ls=":", lw=0.8)
    ax.axvline(0.7, color="r", ls="--", lw=0.8)
    ax.set_yticks(y, [d["generator"] for d in gens], fontsize=6)
    ax.set(xlim=(0, 1.02), xlabel="AUC against held-out real clips (95% CI)", title="Each generator left out")
    fig.tight_layout()
    figs.append(fig)
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot(111)
    for name, roc in (ev.get("roc") or {}).items():
        ax.plot(roc["fpr"], roc["tpr"], label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false-positive rate (real clips called generated)", ylabel="true-positive rate", title="ROC")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    figs.append(fig)
    hist = ev.get("histograms")
    if hist:
        fig = Figure(figsize=(5.5, 4.5))
        ax = fig.add_subplot(111)
        bins = np.asarray(hist["bins"])
        centers, wdt = (bins[:-1] + bins[1:]) / 2, bins[1] - bins[0]
        for name, counts in hist["counts"].items():
            c = np.asarray(counts, float)
            ax.bar(centers, c / max(c.sum(), 1), width=wdt, alpha=0.45, label=name)
        th = ev.get("thresholds") or {}
        if "generated" in th:
            ax.axvline(th["generated"], color="k", ls="--", lw=1, label="threshold")
        ax.set(xlabel="forensic score", ylabel="share of clip variants", title="Scores of held-out clips")
        ax.legend(fontsize=7)
        fig.tight_layout()
        figs.append(fig)
    return figs
