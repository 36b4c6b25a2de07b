"""Paper 004: dermoscopic + clinical (macroscopic) images + patient metadata, late fusion (task "fusion").

The paper's Table 1 grid on derm7pt-shaped data: one image feature tower per modality (separate
weights, or shared), the towers' pooled vectors concatenated with the metadata vector, with or
without the embedding network (Dense(1024, ReLU) x 2) before the softmax; every modality
combination (dsc, macro, dsc + macro, each with and without metadata); a metadata-only random
forest with a 5-fold grid search. A case without a clinical image is predicted by the same row's
model without the clinical tower (its "fallback" row), and the report counts them.

`task` registers it; `config` its section; `rows` the table's rows as data; `features` the metadata
vector; `data` the cases in memory and the tf.data streams; `model` the builder; `train` the grid
(one cell per row and fold); `forest` the random forest; `evaluate` / `report` the Table 1 report;
`predict` / `export` the deployed model.
"""
