"""Evaluations of the safety layer: the bundled deepfake detector (`safety.detector`), the watermark, likeness.

    data.py      research media -> unmarked fakes (paired with real clips) -> re-encoded variants -> features
    train.py     features -> cross-validated, calibrated model -> assets/detector.pkl + assets/detector_eval.json
    evaluate.py  metrics with confidence intervals per test set; `python -m safety.detector evaluate`
    watermark.py robustness and false positives of the watermark (`python -m tools.evals.watermark`)
    likeness.py  likeness-screening accuracy (`python -m tools.evals.likeness`)

The library (`safety.detector`) never imports this package except for the `evaluate` command.
"""
