"""Image classification (paper 001 and the classifiers of papers 002-004): task "classification".

A registry backbone with a head (GAP, SE, CBAM or soft attention) and an optional metadata branch,
trained with a class-weighted loss on a lesion-grouped split; evaluated from its predictions file
(metrics with BCa intervals, report, plots); predicted and exported through `skinkeras.export`.
"""
