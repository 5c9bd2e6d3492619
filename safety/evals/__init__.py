"""Training data, training and evaluation of the bundled deepfake detector (`safety.detector`).

    data.py      research media -> unmarked fakes (paired with real clips) -> re-encoded variants -> features
    train.py     features -> cross-validated, calibrated model -> assets/detector.pkl + assets/detector_eval.json
    evaluate.py  metrics with confidence intervals per test set; `python -m safety.detector evaluate`

The library (`safety.detector`) never imports this package except for the `evaluate` command.
"""
