"""Paper 000: electrical impedance spectroscopy (EIS) + dermoscopy for melanoma detection (task "eis").

The paper's Table 1 grid: per-measurement SVM / FC-NN baselines, GRUs over the measurement sequence
(last-state, state-mean and state-max pooling), image CNNs, max ensembles, and joint image + EIS
models (Lin, FC, cross-attention), 5-fold cross-validation with predictions for every lesion, and
its report at 98 % sensitivity.

`task` registers it; `config` its section; `rows` the table's rows as data; `data` the lesions in
memory and the tf.data streams; `model` / `layers` the builders (each returns
`model.EISModels(train, infer)`) and registered layers; `train` / `fitting` the grid; `evaluate`,
`report`, `stats` the Table 1 report; `predict` / `export` the deployed model.
"""
