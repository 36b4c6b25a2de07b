"""Paper 000's EIS + dermoscopy melanoma detection (task "eis"): EIS-only models (SVM, FC-NN, GRU
with last-state / state-mean / state-max pooling), dermoscopy CNNs (DenseNet121, SE-ResNeXt50),
max-probability ensembles and joint models (Lin / FC / cross-attention fusion).

`rows` holds the paper's 17 Table 1 rows and figures as data; `report.table1` evaluates a run's
predictions the paper's way (98 % sensitivity operating point, BCa CIs, permutation tests);
`bench` times that evaluation (`skinkeras bench eis-stats`). Heavy imports happen inside functions.
"""
